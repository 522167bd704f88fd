"""The order of work: which silver and gold tables each gold query reads, and a topological order."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from lh360.errors import ConfigError
from lh360.spec import TableSpec
from lh360.sql import SQLError, parse_query, table_refs


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
