"""The lineage graph of a project, from the specs alone: landing → bronze → silver / quarantine → gold, with
gold-to-gold edges from the relations each gold query reads (lh360.deps), and a layered layout of it.

Plain data: `lineage(project)` → `Lineage` (nodes and edges); `layout(lineage)` → positions in a grid of
columns (one per layer, gold spread over as many columns as its longest chain of gold-to-gold reads).
The site draws it as SVG, `plan --format mermaid` as Mermaid text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING

from lh360.deps import gold_graph

if TYPE_CHECKING:
    from lh360.config import Project

# the quarantine table exists once a silver expectation sends rows there
QUARANTINE_ACTION = "quarantine"
LAYER_COLUMN = {"landing": 0, "bronze": 1, "silver": 2, "quarantine": 2, "gold": 3}


@dataclass(frozen=True)
class Node:
    id: str  # layer.name, like silver.clientes (landing.<table> for a landing zone)
    layer: str  # landing | bronze | silver | quarantine | gold
    name: str
    table: str  # the spec that owns it (its page)


@dataclass
class Lineage:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (from id, to id)

    def add(self, node: Node) -> None:
        self.nodes[node.id] = node

    def upstream(self, node_id: str) -> list[str]:
        return [a for a, b in self.edges if b == node_id]


def has_quarantine(spec) -> bool:
    return spec.silver is not None and any(e.action == QUARANTINE_ACTION for e in spec.silver.expectations)


def lineage(project: Project, reads: dict[str, set[str]] | None = None) -> Lineage:
    """Every relation of every spec, and what flows into what (`reads`: deps.gold_graph, if the caller has it)."""
    graph = Lineage()
    for spec in project.select(None):
        t = spec.table
        graph.add(Node(f"landing.{t}", "landing", t, t))
        graph.add(Node(f"bronze.{t}", "bronze", t, t))
        graph.edges.append((f"landing.{t}", f"bronze.{t}"))
        if spec.silver is not None:
            graph.add(Node(f"silver.{t}", "silver", t, t))
            graph.edges.append((f"bronze.{t}", f"silver.{t}"))
            if has_quarantine(spec):
                graph.add(Node(f"quarantine.{t}", "quarantine", t, t))
                graph.edges.append((f"bronze.{t}", f"quarantine.{t}"))
        for name in spec.gold:
            graph.add(Node(f"gold.{name}", "gold", name, t))
    for relation, sources in sorted((reads if reads is not None else gold_graph(project.specs)).items()):
        graph.edges += [(source, relation) for source in sorted(sources)]
    return graph


@dataclass(frozen=True)
class Placed:
    node: Node
    column: int
    row: int


def layout(graph: Lineage) -> dict[str, Placed]:
    """A layered layout: a column per layer (gold after the gold tables it reads), rows ordered so that edges
    cross little (tables in name order, then a few barycentre sweeps over the gold columns)."""
    column = {nid: LAYER_COLUMN[n.layer] for nid, n in graph.nodes.items()}
    for nid in _gold_order(graph):  # a gold node sits right of every gold node it reads
        ups = [column[u] for u in graph.upstream(nid) if graph.nodes[u].layer == "gold"]
        column[nid] = max([LAYER_COLUMN["gold"], *(c + 1 for c in ups)])
    columns: dict[int, list[str]] = {}
    for nid in graph.nodes:  # nodes are in spec-name order: landing, bronze, silver, quarantine rows line up
        columns.setdefault(column[nid], []).append(nid)
    row = {nid: float(i) for ids in columns.values() for i, nid in enumerate(ids)}
    for _ in range(4):  # gold columns follow the mean row of what they read
        for c in sorted(k for k in columns if k >= LAYER_COLUMN["gold"]):
            ids = columns[c]
            ids.sort(key=lambda nid: (_mean([row[u] for u in graph.upstream(nid)], row[nid]), nid))
            for i, nid in enumerate(ids):
                row[nid] = float(i)
    return {nid: Placed(graph.nodes[nid], c, i) for c, ids in columns.items() for i, nid in enumerate(ids)}


def _gold_order(graph: Lineage) -> list[str]:
    """Gold nodes with every gold node they read first (deps.gold_order has refused cycles already)."""

    deps = {
        nid: {u for u in graph.upstream(nid) if graph.nodes[u].layer == "gold"}
        for nid, n in graph.nodes.items()
        if n.layer == "gold"
    }
    return list(TopologicalSorter(deps).static_order())


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default
