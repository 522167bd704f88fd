"""The seam between compiled checks and the engines that run their SQL.

A `QueryRunner` is all a validator needs: how a relation is named in its engine, its sqlglot dialect, and
a way to run one SQL statement and get rows back with the engine's query id and bytes scanned.
`lh360.checks.duckdb` (local), `lh360.checks.athena` (pyathena) and `lh360.checks.databricks_sql`
(Statement Execution API) implement it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    query_id: str | None = None
    bytes_scanned: int | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class QueryRunner(Protocol):
    dialect: str  # a key of lh360.sql.DIALECTS: duckdb | athena | databricks

    def table_name(self, layer: str, name: str) -> str:
        """The engine's name for <layer>.<name>, ready to put in SQL (quoted where needed)."""
        ...

    def table_version(self, layer: str, name: str) -> int | None:
        """The Delta version the next query will read, for the quality ledger (None if unknown)."""
        ...

    def query(self, sql: str, *, reuse_results: bool = False) -> QueryResult: ...

    def close(self) -> None: ...
