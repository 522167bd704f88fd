"""The order of work: which silver and gold tables each gold query reads, and a topological order."""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from lh360.errors import ConfigError
from lh360.spec import TableSpec
from lh360.sql import SQLError, parse_query, table_refs

if TYPE_CHECKING:
    from lh360.config import Project


def relations(specs: dict[str, TableSpec]) -> dict[str, TableSpec]:
    """Every relation (layer.name) the project defines → its owning spec."""
    out: dict[str, TableSpec] = {}
    for spec in specs.values():
        for rel in spec.relations():
            out[rel] = spec
    return out


def gold_graph(specs: dict[str, TableSpec]) -> dict[str, set[str]]:
    """gold.name → the relations its SQL reads. Unknown tables and bad layers are ConfigErrors."""
    known = relations(specs)
    graph: dict[str, set[str]] = {}
    for spec in specs.values():
        for name, gold in spec.gold.items():
            field = f"gold.{name}.sql"
            try:
                tree = parse_query(gold.sql)
            except SQLError as exc:
                raise ConfigError(str(exc), file=_file(spec), field=field) from None
            deps = set()
            for layer, table in table_refs(tree):
                rel = f"{layer}.{table}"
                if layer not in ("silver", "gold"):
                    raise ConfigError(
                        f"reads {rel or table!r}: gold SQL reads silver.<table> or gold.<table>",
                        file=_file(spec),
                        field=field,
                    )
                if rel not in known:
                    raise ConfigError(f"reads {rel}, which no spec defines", file=_file(spec), field=field)
                deps.add(rel)
            graph[f"gold.{name}"] = deps
    return graph


def gold_order(specs: dict[str, TableSpec]) -> list[str]:
    """Gold relations in an order where every query runs after the gold tables it reads."""
    graph = gold_graph(specs)
    try:
        order = list(
            TopologicalSorter({k: {d for d in v if d.startswith("gold.")} for k, v in graph.items()}).static_order()
        )
    except CycleError as exc:
        cycle = " → ".join(exc.args[1]) if len(exc.args) > 1 else "?"
        owner = relations(specs).get(exc.args[1][0]) if len(exc.args) > 1 else None
        raise ConfigError(
            f"gold tables read each other in a cycle: {cycle}", file=_file(owner) if owner else None, field="gold"
        ) from None
    return [r for r in order if r in graph]


def _file(spec: TableSpec | None) -> str | None:
    return str(spec.file) if spec is not None and spec.file else None


@dataclass
class Scope:
    """What `promote --to LAYER` touches: silver tables to refine, gold relations in dependency order, and the
    spec tables whose locks that needs."""

    silver: list[str] = field(default_factory=list)
    gold: list[str] = field(default_factory=list)
    gold_owners: set[str] = field(default_factory=set)

    @property
    def tables(self) -> list[str]:
        return sorted({*self.silver, *self.gold_owners})


def promote_scope(project: Project, tables: list[str] | None, to: str) -> Scope:
    """The named specs' (all when none) silver; with `to="gold"` also their gold tables, the gold tables
    those read (recomputed first), and every silver table any of them reads ("silver first where needed")."""
    specs = project.specs
    selected = project.select(tables)
    scope = Scope(silver=[s.table for s in selected if s.silver is not None])
    if to != "gold":
        return scope
    graph = gold_graph(specs)
    owner = relations(specs)
    wanted = {f"gold.{g}" for s in selected for g in s.gold}
    stack = list(wanted)
    while stack:  # upstream gold: a gold table read by a wanted one must be fresh first
        for dep in graph.get(stack.pop(), ()):
            if dep.startswith("gold.") and dep not in wanted:
                wanted.add(dep)
                stack.append(dep)
    for rel in wanted:
        for dep in graph[rel]:
            if dep.startswith("silver.") and owner[dep].table not in scope.silver:
                scope.silver.append(owner[dep].table)
    scope.silver.sort()
    scope.gold = [r for r in gold_order(specs) if r in wanted]
    scope.gold_owners = {owner[r].table for r in scope.gold}
    return scope


def owner_of(specs: dict[str, TableSpec], relation: str) -> TableSpec:
    """The spec that defines `relation` (layer.name)."""
    spec = relations(specs).get(relation)
    if spec is None:
        raise ConfigError(f"no spec defines {relation!r}")
    return spec
