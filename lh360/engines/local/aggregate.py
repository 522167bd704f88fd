"""Silver/gold → gold on the local engine: recompute the query on DuckDB, replace the table in one commit.

The query reads `silver.x`/`gold.x` as LakeCatalog views pinned to the versions current when the step
starts; those versions go into the gold commit's metadata (`lh360.sources`), so every gold version says
what it was computed from. `write_deltalake(mode="overwrite", schema_mode="overwrite")` is one atomic
commit: a reader, or a run killed mid-write, sees the old table or the new one, never a mix.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from lh360 import pii
from lh360.config import Project, ResolvedTarget
from lh360.delta import open_table
from lh360.engines.local import transpile
from lh360.engines.local.duck import LakeCatalog, connect
from lh360.errors import ConfigError, EngineError, LockBusy, first_line
from lh360.layout import Lake
from lh360.sql import SQLError, parse_query, table_refs
from lh360.sql import quote_ident as q
from lh360.storage import delta_storage_options, to_delta_uri

# Delta (without column mapping) refuses these in column names
_BAD_NAME = re.compile(r"[ ,;{}()\n\t=]")
# DuckDB results Delta cannot store as they are
_WIDEN = {
    "HUGEINT": "DECIMAL(38,0)",
    "UHUGEINT": "DECIMAL(38,0)",
    "UBIGINT": "DECIMAL(20,0)",
    "UINTEGER": "BIGINT",
    "USMALLINT": "INTEGER",
    "UTINYINT": "SMALLINT",
}


@dataclass
class AggregateResult:
    relation: str
    table: str  # the spec that owns it
    rows_out: int = 0
    version: int | None = None
    sources: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"step": "aggregate", **self.__dict__}


def gold_sql(project: Project, relation: str) -> str:
    """The gold query of `gold.<name>` in DuckDB SQL."""

    spec, gold = _owner(project, relation)
    try:
        return transpile.to_duckdb(parse_query(gold.sql))
    except SQLError as exc:
        raise ConfigError(
            str(exc), file=str(spec.file) if spec.file else None, field=f"gold.{relation[5:]}.sql"
        ) from None


def _owner(project: Project, relation: str):
    name = relation.split(".", 1)[1]
    for spec in project.specs.values():
        if name in spec.gold:
            return spec, spec.gold[name]
    raise ConfigError(f"no spec defines {relation}")


def aggregate(project: Project, target: ResolvedTarget, relation: str, *, con=None) -> AggregateResult:
    """Recompute `gold.<name>` and replace it atomically."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    started = time.monotonic()
    spec, gold = _owner(project, relation)
    name = relation.split(".", 1)[1]
    result = AggregateResult(relation=relation, table=spec.table)
    sql = gold_sql(project, relation)
    own = con is None
    con = con or connect(lake=target.lake)
    try:
        catalog = LakeCatalog(con, target)
        pii.check_gold(project, relation)
        view = pii.gold_view(project, relation, con)  # personal data as silver.pii lets gold see it
        for layer, table in sorted(set(table_refs(parse_query(gold.sql)))):
            if catalog.attach(layer, table, wrap=view) is None:
                raise EngineError(f"{relation} reads {layer}.{table}, which does not exist yet: promote it first")
        result.sources = dict(catalog.versions)
        try:
            rel = con.sql(sql)
            types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))
        except Exception as exc:
            raise EngineError(f"{relation}: the query failed on DuckDB: {first_line(exc)}") from None
        bad = [c for c in types if _BAD_NAME.search(c)]
        if bad:
            raise ConfigError(
                f"column name {bad[0]!r} cannot be stored in Delta: give it an alias (AS name)",
                file=str(spec.file) if spec.file else None,
                field=f"gold.{name}.sql",
            )
        if len(set(map(str.lower, types))) != len(types):
            raise ConfigError(
                "the query returns two columns with the same name: alias them apart",
                file=str(spec.file) if spec.file else None,
                field=f"gold.{name}.sql",
            )
        casts = [
            f"CAST({q(c)} AS {_WIDEN[t.upper()]}) AS {q(c)}" if t.upper() in _WIDEN else q(c) for c, t in types.items()
        ]
        data = con.sql(f"SELECT {', '.join(casts)} FROM ({sql})").to_arrow_table()
        result.rows_out = data.num_rows
        uri = Lake(target.lake).table("gold", name)
        from deltalake import CommitProperties

        props = CommitProperties(
            custom_metadata={
                "lh360.step": "aggregate",
                "lh360.table": spec.table,
                "lh360.relation": relation,
                "lh360.sources": json.dumps(result.sources, sort_keys=True),
            }
        )
        try:
            write_deltalake(
                to_delta_uri(uri),
                data,
                mode="overwrite",
                schema_mode="overwrite",
                partition_by=gold.partition_by or None,
                storage_options=delta_storage_options(uri, target.settings.aws),
                commit_properties=props,
            )
        except CommitFailedError as exc:
            raise LockBusy(f"{relation}: another writer committed first ({first_line(exc)}); try again") from None
        result.version = open_table(uri, target.settings.aws).version()
    finally:
        if own:
            con.close()
    result.seconds = round(time.monotonic() - started, 3)
    return result
