"""The run and check ledgers as the site needs them: the rows of a time window, a few columns, read through
delta-rs' query engine (the same reader `lh360 history` uses, so it works on S3 as on a local folder).

A year of hourly runs is millions of rows: the window's filter and the column list go into the SQL, and the
rows come back as plain Python values built column by column from Arrow (timestamps as epoch seconds,
which is what the charts plot), never as one dict per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lh360.delta import open_table
from lh360.sql import quote_ident

RUN_COLUMNS = (
    "run_id",
    "table",
    "relation",
    "step",
    "status",
    "started_at",
    "seconds",
    "rows_in",
    "rows_out",
    "rows_quarantined",
    "exit_code",
    "error",
)
CHECK_COLUMNS = (
    "run_id",
    "table",
    "relation",
    "check",
    "kind",
    "severity",
    "status",
    "observed",
    "threshold",
    "message",
    "checked_at",
)
TIME_COLUMNS = {"started_at", "checked_at"}


@dataclass
class LedgerRows:
    """One ledger's rows in the window, as columns (name → list of values, all the same length)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    total: int = 0  # rows in the whole ledger, window or not
    error: str | None = None  # why the ledger could not be read (the site says so and goes on)

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), [])
        return len(first)

    def groups(self, *names: str) -> dict[tuple, list[int]]:
        """The row numbers of each distinct value of `names`, in ledger order (oldest first)."""
        out: dict[tuple, list[int]] = {}
        if not self.columns:
            return out
        for i, key in enumerate(zip(*(self.columns[n] for n in names))):
            group = out.get(key)
            if group is None:
                out[key] = [i]
            else:
                group.append(i)
        return out


def read_runs(uri: str, aws: Any, since: float) -> LedgerRows:
    """Run-ledger rows started at or after `since` (epoch seconds), oldest first; refine rows keep their
    `detail` JSON (its rule_failures count failing rows per expectation)."""
    cols = [*RUN_COLUMNS, "detail"]
    select = ", ".join(
        _col(c) if c != "detail" else "CASE WHEN step = 'refine' THEN detail END AS detail" for c in cols
    )
    return _read(uri, aws, select, "started_at", since)


def read_checks(uri: str, aws: Any, since: float) -> LedgerRows:
    """Check-ledger rows checked at or after `since` (epoch seconds), oldest first."""
    return _read(uri, aws, ", ".join(_col(c) for c in CHECK_COLUMNS), "checked_at", since)


def _read(uri: str, aws: Any, select: str, time_column: str, since: float) -> LedgerRows:
    try:
        dt = open_table(uri, aws)
        if dt is None:
            return LedgerRows()
        import pyarrow as pa
        from deltalake import QueryBuilder

        cutoff = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S")
        qb = QueryBuilder().register("ledger", dt)
        total = pa.table(qb.execute("SELECT count(*) AS n FROM ledger")).column("n")[0].as_py()
        sql = f"SELECT {select} FROM ledger WHERE {quote_ident(time_column)} >= TIMESTAMP '{cutoff}' ORDER BY {quote_ident(time_column)}"
        table = pa.table(qb.execute(sql))
    except Exception as exc:  # the site is still useful without a ledger: say why it is missing
        return LedgerRows(error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
    out = LedgerRows(total=int(total or 0))
    for name in table.column_names:
        out.columns[name] = table.column(name).to_pylist()
    return out


def _col(name: str) -> str:
    """A column for the SELECT list; timestamps as epoch seconds (cheap to build, what the charts plot)."""
    return (
        f"date_part('epoch', {quote_ident(name)}) AS {quote_ident(name)}" if name in TIME_COLUMNS else quote_ident(name)
    )


def parse_json(text: str | None) -> Any:
    """A ledger's JSON text column (detail, observed), or None when it is empty or not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
