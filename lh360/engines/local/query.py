"""The DuckDB QueryRunner: checks and ad-hoc SQL on the local target's Delta tables (LakeCatalog views)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.engines.base import QueryResult
from lh360.engines.local.duck import LakeCatalog, connect
from lh360.sql import quote_ident as q


@dataclass
class DuckDBRunner:
    target: ResolvedTarget
    con: Any = None
    dialect: str = "duckdb"
    queries: list[str] = field(default_factory=list)  # every statement run, in order (tests count them)
    _catalog: Any = None
    _attached: dict[tuple[str, str], int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.con is None:
            self.con = connect(lake=self.target.lake)  # spec check SQL runs here: locked to the lake
        self._catalog = LakeCatalog(self.con, self.target)

    def _attach(self, layer: str, name: str) -> int | None:
        if (layer, name) not in self._attached:
            self._attached[(layer, name)] = self._catalog.attach(layer, name)
        return self._attached[(layer, name)]

    def exists(self, layer: str, name: str) -> bool:
        return self._attach(layer, name) is not None

    def table_name(self, layer: str, name: str) -> str:
        self._attach(layer, name)
        return f"{q(layer)}.{q(name)}"

    def table_version(self, layer: str, name: str) -> int | None:
        return self._attach(layer, name)

    def attach_project(self, specs) -> None:
        """Every existing table of the specs, plus quarantine and the ledgers (for `lh360 sql`)."""
        for relation, version in self._catalog.attach_project(specs).items():
            layer, name = relation.split(".", 1)
            self._attached[(layer, name)] = version
        self._catalog.attach_ledgers()

    def query(self, sql: str, *, reuse_results: bool = False) -> QueryResult:
        started = time.monotonic()
        self.queries.append(sql)
        cur = self.con.execute(sql)
        rows = cur.fetchall()
        columns = [d[0] for d in cur.description] if cur.description else []
        return QueryResult(
            columns=columns,
            rows=rows,
            query_id=f"duckdb-{uuid.uuid4().hex[:12]}",
            seconds=round(time.monotonic() - started, 4),
        )

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None


def make_runner(project: Any, target: ResolvedTarget, **options: Any) -> DuckDBRunner:
    """The `duckdb` validator of a target (lh360.engines.VALIDATORS)."""
    return DuckDBRunner(target)
