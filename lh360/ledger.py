"""The run and quality ledgers: Delta tables under `<lake>/_lh360/` that Athena and Databricks can read too.

`runs`: one row per step of every run (ingest, refine, aggregate, validate, landing) with its status,
times, row counts, Delta versions and error. `checks`: one row per check result. Both are appended with
blind appends (Delta lets concurrent appends commit without conflict, so runs of different tables never
fight over the ledger). A ledger write that fails is logged and never turns a good run into a failed
one: the data commit already happened and is the truth.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lh360 import __version__
from lh360.config import ResolvedTarget
from lh360.delta import open_table
from lh360.engines.base import AggregateResult, IngestResult, MaintainResult, RefineResult
from lh360.errors import EngineError, first_line
from lh360.jsonable import jsonable
from lh360.layout import Lake
from lh360.pii import redact
from lh360.sql import quote_literal
from lh360.storage import delta_storage_options, to_delta_uri

log = logging.getLogger("lh360.ledger")

RUN_FIELDS: list[tuple[str, str]] = [
    ("run_id", "string"),
    ("target", "string"),
    ("table", "string"),
    ("relation", "string"),
    ("step", "string"),
    ("status", "string"),
    ("started_at", "timestamp"),
    ("ended_at", "timestamp"),
    ("seconds", "float64"),
    ("rows_in", "int64"),
    ("rows_out", "int64"),
    ("rows_rescued", "int64"),
    ("rows_quarantined", "int64"),
    ("rows_dropped", "int64"),
    ("version_before", "int64"),
    ("version_after", "int64"),
    ("source_versions", "string"),
    ("exit_code", "int32"),
    ("error", "string"),
    ("detail", "string"),
    ("host", "string"),
    ("pid", "int64"),
    ("lh360_version", "string"),
]
CHECK_FIELDS: list[tuple[str, str]] = [
    ("run_id", "string"),
    ("target", "string"),
    ("table", "string"),
    ("relation", "string"),
    ("check", "string"),
    ("kind", "string"),
    ("severity", "string"),
    ("status", "string"),
    ("observed", "string"),
    ("threshold", "string"),
    ("message", "string"),
    ("failing_rows", "int64"),
    ("sample", "string"),
    ("delta_version", "int64"),
    ("query_id", "string"),
    ("engine", "string"),
    ("checked_at", "timestamp"),
    ("bytes_scanned", "int64"),
    ("cost_usd", "float64"),
]

# one row per `lh360 forget` (lh360.forget.ledger_row): when, which table and key columns, the request's HMAC
# and rows per layer; never a value
ERASURE_FIELDS: list[tuple[str, str]] = [
    ("erasure_id", "string"),
    ("run_id", "string"),
    ("target", "string"),
    ("table", "string"),
    ("key_columns", "string"),
    ("requested_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("landing_lines", "int64"),
    ("landing_files", "int64"),
    ("bronze_rows", "int64"),
    ("silver_rows", "int64"),
    ("quarantine_rows", "int64"),
    ("sample_rows", "int64"),
    ("gold_recomputed", "string"),
    ("noncurrent_versions", "int64"),
    ("vacuumed", "bool"),
    ("resumed", "bool"),
    ("status", "string"),
    ("engine", "string"),
    ("host", "string"),
    ("lh360_version", "string"),
]


def _schema(fields: list[tuple[str, str]]):
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
    }
    return pa.schema([pa.field(n, types[t]) for n, t in fields])


def new_run_id() -> str:
    """Sortable by time, unique across machines: 20261125T175229Z-1a2b3c4d."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


@dataclass
class StepRecord:
    """What a step fills in while it runs; the ledger adds times, status and error when it ends."""

    table: str
    relation: str
    step: str
    rows_in: int | None = None
    rows_out: int | None = None
    rows_rescued: int | None = None
    rows_quarantined: int | None = None
    rows_dropped: int | None = None
    version_before: int | None = None
    version_after: int | None = None
    source_versions: dict[str, int] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    quiet: bool = False  # nothing happened worth a row (maintenance of a table that does not exist)

    def take(self, result: Any) -> None:
        """Fill the row from a step's typed result (lh360.engines.base): the one mapping of results to the
        run ledger."""

        if isinstance(result, IngestResult):
            self.rows_in = self.rows_out = result.rows
            self.rows_rescued = result.rescued
            self.version_after = result.bronze_version
            self.detail = {
                "files": result.files,
                "bytes": result.bytes,
                "malformed": result.malformed,
                "new_columns": result.new_columns,
            }
        elif isinstance(result, RefineResult):
            self.rows_in, self.rows_out = result.rows_in, result.rows_out
            self.rows_quarantined, self.rows_dropped = result.quarantined, result.dropped
            self.version_before, self.version_after = result.bronze_from, result.silver_version
            if result.bronze_to is not None:
                self.source_versions = {f"bronze.{result.table}": result.bronze_to}
            self.detail = {
                "refine_run": result.refine_run,
                "noop": result.noop,
                "rule_failures": result.rule_failures,
                "warned": result.warned,
                "inserted": result.inserted,
                "updated": result.updated,
                "closed": result.closed,
                "quarantine_version": result.quarantine_version,
                "quarantine_replayed": result.quarantine_replayed,
                "full_refresh": result.full_refresh,
                "spec_hash": result.spec_hash,
                "full_refresh_due": result.full_refresh_due,
            }
        elif isinstance(result, AggregateResult):
            self.rows_out, self.version_after, self.source_versions = result.rows_out, result.version, result.sources
        elif isinstance(result, MaintainResult):
            self.version_before, self.version_after = result.version_before, result.version_after
            self.detail = {
                "done": result.done,
                "skipped": result.skipped,
                "files_before": result.files_before,
                "files_after": result.files_after,
                "bytes_before": result.bytes_before,
                "bytes_after": result.bytes_after,
                "compacted_files": result.compacted_files,
                "compacted_into": result.compacted_into,
                "checkpoint_version": result.checkpoint_version,
                "logs_removed": result.logs_removed,
                "vacuumed_files": result.vacuumed_files,
            }
        if getattr(result, "run", None) is not None:
            self.detail["run"] = {"run_id": result.run.run_id, "run_page_url": result.run.run_page_url}


# the step-row fields a `run --json` summary shows for each step
SUMMARY_FIELDS = (
    "table",
    "relation",
    "step",
    "status",
    "seconds",
    "rows_in",
    "rows_out",
    "rows_rescued",
    "rows_quarantined",
    "rows_dropped",
    "version_before",
    "version_after",
    "exit_code",
    "error",
)


class Ledger:
    def __init__(self, target: ResolvedTarget, run_id: str | None = None, *, enabled: bool = True) -> None:
        self.target = target
        self.run_id = run_id or new_run_id()
        self.enabled = enabled
        self.written: list[dict[str, Any]] = []  # this process's step rows, for summaries

    @property
    def runs_uri(self) -> str:
        return Lake(self.target.lake).runs

    @property
    def checks_uri(self) -> str:
        return Lake(self.target.lake).checks

    # ---- writing -----------------------------------------------------------------------------------

    def _append(
        self, uri: str, rows: list[dict[str, Any]], fields: list[tuple[str, str]], *, strict: bool = False
    ) -> None:
        """Append rows; a failure is logged (`strict`: raised, for the erasure ledger, whose row is the
        record that an erasure happened)."""
        if not self.enabled or not rows:
            return
        import pyarrow as pa
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError

        table = pa.Table.from_pylist(rows, schema=_schema(fields))
        for attempt in range(5):
            try:
                write_deltalake(
                    to_delta_uri(uri),
                    table,
                    mode="append",
                    schema_mode="merge",
                    storage_options=delta_storage_options(uri, self.target.settings.aws),
                )
                return
            except CommitFailedError as exc:  # a commit race with another run's append: retry a few times
                if attempt == 4:
                    self._failed(uri, exc, strict)
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # the data commit already happened and is the truth: say so, go on
                self._failed(uri, exc, strict)
                return

    @staticmethod
    def _failed(uri: str, exc: BaseException, strict: bool) -> None:
        if strict:
            raise EngineError(f"could not write the ledger {uri}: {first_line(exc)}") from None
        log.warning("could not write the ledger %s: %s", uri, first_line(exc))

    @contextmanager
    def step(self, table: str, relation: str, step: str) -> Iterator[StepRecord]:
        """Record one step: its row is written when the block ends, with status ok, or failed and the error."""
        record = StepRecord(table=table, relation=relation, step=step)
        started = datetime.now(UTC)
        t0 = time.monotonic()
        log.info(
            f"{step} start",
            extra={"fields": {"run_id": self.run_id, "table": table, "relation": relation, "step": step}},
        )
        try:
            yield record
        except BaseException as exc:
            code = getattr(exc, "exit_code", 3 if isinstance(exc, Exception) else 130)
            record.status = "busy" if code == 75 else "failed"
            self._write_step(record, started, time.monotonic() - t0, code, getattr(exc, "message", None) or str(exc))
            raise
        if not record.quiet:
            self._write_step(record, started, time.monotonic() - t0, 0, None)

    def _write_step(self, r: StepRecord, started: datetime, seconds: float, code: int, error: str | None) -> None:
        row = {
            "run_id": self.run_id,
            "target": self.target.name,
            "table": r.table,
            "relation": r.relation,
            "step": r.step,
            "status": r.status,
            "started_at": started,
            "ended_at": datetime.now(UTC),
            "seconds": round(seconds, 3),
            "rows_in": r.rows_in,
            "rows_out": r.rows_out,
            "rows_rescued": r.rows_rescued,
            "rows_quarantined": r.rows_quarantined,
            "rows_dropped": r.rows_dropped,
            "version_before": r.version_before,
            "version_after": r.version_after,
            "source_versions": json.dumps(r.source_versions, sort_keys=True) if r.source_versions else None,
            "exit_code": code,
            "error": redact(error),  # an engine's error may quote a value
            "detail": json.dumps(jsonable(r.detail), sort_keys=True) if r.detail else None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "lh360_version": __version__,
        }
        self.written.append(row)
        fields = {
            k: row[k]
            for k in (
                "run_id",
                "table",
                "relation",
                "step",
                "status",
                "seconds",
                "rows_in",
                "rows_out",
                "version_after",
                "exit_code",
                "error",
            )
        }
        log.info(f"{r.step} {'done' if r.status == 'ok' else r.status}", extra={"fields": fields})
        self._append(self.runs_uri, [row], RUN_FIELDS)

    def record_checks(self, results: list[Any], engine: str | None = None) -> None:
        rows = []
        for r in results:
            rows.append(
                {
                    "run_id": self.run_id,
                    "target": self.target.name,
                    "table": r.table,
                    "relation": r.relation,
                    "check": r.check,
                    "kind": r.kind,
                    "severity": r.severity,
                    "status": r.status,
                    "observed": json.dumps(jsonable(r.observed)),
                    "threshold": r.threshold,
                    "message": redact(r.message),
                    "failing_rows": r.failing_rows,
                    "sample": json.dumps(jsonable(r.sample)) if r.sample else None,
                    "delta_version": r.delta_version,
                    "query_id": r.query_id,
                    "engine": engine,
                    "checked_at": datetime.fromisoformat(r.checked_at) if r.checked_at else datetime.now(UTC),
                    "bytes_scanned": getattr(r, "bytes_scanned", None),
                    "cost_usd": getattr(r, "cost_usd", None),
                }
            )
        self._append(self.checks_uri, rows, CHECK_FIELDS)

    @property
    def erasures_uri(self) -> str:
        return Lake(self.target.lake).erasures

    def record_erasure(self, row: dict[str, Any]) -> None:
        """One row of the erasure ledger (lh360.forget.ledger_row)."""

        full = {**row, "run_id": self.run_id, "target": self.target.name, "host": socket.gethostname()}
        self._append(self.erasures_uri, [{**full, "lh360_version": __version__}], ERASURE_FIELDS, strict=True)

    def has_erasure(self, erasure_id: str, requested_at: datetime) -> bool:
        """Whether the erasure ledger holds the row of this request's run begun at `requested_at`."""
        return any(
            r["requested_at"] == requested_at
            for r in self._query(
                self.erasures_uri, f"SELECT requested_at FROM ledger WHERE erasure_id = {quote_literal(erasure_id)}"
            )
        )

    def erasures(self, table: str | None = None) -> list[dict[str, Any]]:
        where = f' WHERE "table" = {quote_literal(table)}' if table else ""
        return self._query(self.erasures_uri, f"SELECT * FROM ledger{where} ORDER BY finished_at DESC")

    # ---- reading -----------------------------------------------------------------------------------

    def _query(self, uri: str, sql: str) -> list[dict[str, Any]]:
        dt = open_table(uri, self.target.settings.aws)
        if dt is None:
            return []
        import pyarrow as pa
        from deltalake import QueryBuilder

        batches = QueryBuilder().register("ledger", dt).execute(sql)
        return pa.table(batches).to_pylist() if batches is not None else []

    def history(self, table: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Step rows, newest first (optionally one spec's)."""
        where = f' WHERE "table" = {quote_literal(table)}' if table else ""
        return self._query(self.runs_uri, f"SELECT * FROM ledger{where} ORDER BY started_at DESC LIMIT {int(limit)}")

    def check_history(self, run_ids: list[str]) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        ids = ", ".join(quote_literal(r) for r in run_ids)
        return self._query(self.checks_uri, f"SELECT * FROM ledger WHERE run_id IN ({ids}) ORDER BY checked_at DESC")

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """relation → its newest step row (for `lh360 tables`)."""
        rows = self._query(
            self.runs_uri,
            "SELECT relation, step, status, ended_at, run_id FROM ("
            "SELECT *, row_number() OVER (PARTITION BY relation ORDER BY ended_at DESC) AS rn FROM ledger"
            ") WHERE rn = 1",
        )
        return {r["relation"]: r for r in rows}

    def previous_observations(self) -> dict[tuple[str, str], Any]:
        """(relation, check) → the last value observed for row_count checks (max_change_pct's baseline)."""
        rows = self._query(
            self.checks_uri,
            'SELECT relation, "check", observed FROM ('
            'SELECT *, row_number() OVER (PARTITION BY relation, "check" ORDER BY checked_at DESC) AS rn '
            "FROM ledger WHERE kind = 'row_count' AND status <> 'error') WHERE rn = 1",
        )
        out = {}
        for r in rows:
            try:
                out[(r["relation"], r["check"])] = json.loads(r["observed"])
            except (TypeError, ValueError):
                continue
        return out
