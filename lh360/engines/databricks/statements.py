"""A `QueryRunner` on a Databricks SQL warehouse, through the Statement Execution API.

The SDK has no waiter for statements: lh360 submits with `wait_timeout="0s"` (return at once), polls
`get_statement` itself, and cancels the statement (`cancel_execution`) when its own deadline passes
(exit 4) or when it is interrupted (SIGINT 130 / SIGTERM 143). Results come back inline as JSON arrays of
strings; they are converted to Python values by the manifest's column types.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lh360.config import ResolvedTarget
from lh360.durations import format_duration, parse_duration
from lh360.engines.base import QueryResult
from lh360.engines.databricks.client import (
    Deadline,
    Expired,
    api_error,
    cancel_on_interrupt,
    poll,
    poll_seconds,
    settings_of,
    workspace_client,
)
from lh360.errors import ConfigError, EngineError, RunTimeout
from lh360.sql import quote

log = logging.getLogger("lh360.databricks.sql")

DEFAULT_POLL_SECONDS = 1.0
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"}


class DatabricksSQLRunner:
    """Runs SQL on `databricks.warehouse_id` with the target's catalog; names relations `catalog`.`layer`.`name`."""

    dialect = "databricks"

    def __init__(
        self,
        target: ResolvedTarget,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        cancel_wait: float = 10.0,
        client: Any = None,
    ) -> None:
        s = settings_of(target)
        if not s.warehouse_id:
            raise ConfigError(
                "the databricks-sql validator needs databricks.warehouse_id (a serverless SQL warehouse)",
                field=f"targets.{target.name}.databricks.warehouse_id",
            )
        self.target = target
        self.catalog = s.catalog
        self.warehouse_id = s.warehouse_id
        if timeout is None and s.timeout:
            timeout = parse_duration(s.timeout).total_seconds()
        self.timeout = timeout
        self.poll_interval = poll_seconds(poll_interval, DEFAULT_POLL_SECONDS)
        self.cancel_wait = cancel_wait
        self._client = client
        self._versions: dict[tuple[str, str], int | None] = {}
        self.statements: list[str] = []  # ids of every statement this runner executed

    @property
    def client(self):
        if self._client is None:
            self._client = workspace_client(self.target, retry_seconds=self.timeout)
        return self._client

    # ---- QueryRunner ---------------------------------------------------------------------------

    def table_name(self, layer: str, name: str) -> str:
        return ".".join(quote(p, "databricks") for p in (self.catalog, layer, name))

    def table_version(self, layer: str, name: str) -> int | None:
        key = (layer, name)
        if key not in self._versions:
            try:
                res = self.query(f"DESCRIBE HISTORY {self.table_name(layer, name)} LIMIT 1")
                i = res.columns.index("version")
                self._versions[key] = int(res.rows[0][i]) if res.rows else None
            except (EngineError, ValueError, IndexError):
                self._versions[key] = None
        return self._versions[key]

    def query(self, sql: str, *, reuse_results: bool = False) -> QueryResult:
        """Run one statement and return its rows. `reuse_results` is ignored: a check never reads a cache
        on purpose (the warehouse's result cache is keyed on unchanged Delta versions, so it is safe anyway)."""
        return self.execute(sql, timeout=self.timeout)

    def close(self) -> None:
        pass

    # ---- the Statement Execution loop -----------------------------------------------------------

    def execute(
        self, sql: str, *, timeout: float | None = None, parameters: dict[str, str] | None = None
    ) -> QueryResult:
        """Run one statement; `parameters` fill its `:name` markers (values kept out of the statement's text,
        as `lh360 forget` needs for a person's values)."""
        from databricks.sdk.errors import DatabricksError
        from databricks.sdk.service.sql import (
            Disposition,
            ExecuteStatementRequestOnWaitTimeout,
            Format,
            StatementParameterListItem,
        )

        started = time.monotonic()
        deadline = Deadline(timeout)
        w = self.client
        try:
            resp = w.statement_execution.execute_statement(
                statement=sql,
                warehouse_id=self.warehouse_id,
                catalog=self.catalog,
                wait_timeout="0s",
                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                disposition=Disposition.INLINE,
                format=Format.JSON_ARRAY,
                parameters=[StatementParameterListItem(name=k, value=v) for k, v in (parameters or {}).items()] or None,
            )
        except (DatabricksError, TimeoutError) as exc:
            raise self._error_or_timeout(
                f"SQL warehouse {self.warehouse_id}: submitting a statement", exc, deadline
            ) from None
        sid = resp.statement_id
        self.statements.append(sid)
        log.debug("statement submitted", extra={"fields": {"statement_id": sid, "warehouse_id": self.warehouse_id}})

        def cancel() -> None:
            log.warning("cancelling statement %s", sid)
            w.statement_execution.cancel_execution(sid)

        try:
            with cancel_on_interrupt(cancel):
                if _state(resp) not in TERMINAL:
                    resp = poll(
                        lambda: w.statement_execution.get_statement(sid),
                        lambda r: _state(r) in TERMINAL,
                        deadline=deadline,
                        interval=self.poll_interval,
                    )
        except Expired:
            try:
                cancel()
            except Exception as exc:  # noqa: BLE001
                log.warning("could not cancel statement %s: %s", sid, exc)
            raise RunTimeout(
                f"SQL statement {sid} on warehouse {self.warehouse_id} did not finish within "
                f"{_secs(timeout)}; it was cancelled"
            ) from None
        except (DatabricksError, TimeoutError) as exc:
            raise self._error_or_timeout(f"SQL statement {sid}", exc, deadline) from None

        state = _state(resp)
        if state != "SUCCEEDED":
            err = resp.status.error if resp.status else None
            code = getattr(getattr(err, "error_code", None), "value", None) or ""
            message = getattr(err, "message", None) or f"the statement ended {state}"
            raise EngineError(
                f"SQL statement {sid} {state} on warehouse {self.warehouse_id}: {message.splitlines()[0]}"
                + (f" [{code}]" if code else ""),
                detail=f"{message}\n\nSQL:\n{sql}",
            )
        columns, types = _columns(resp)
        rows = [_convert_row(r, types) for r in (resp.result.data_array or [])] if resp.result else []
        next_chunk = resp.result.next_chunk_index if resp.result else None
        while next_chunk is not None:
            chunk = w.statement_execution.get_statement_result_chunk_n(sid, next_chunk)
            rows += [_convert_row(r, types) for r in (chunk.data_array or [])]
            next_chunk = chunk.next_chunk_index
        return QueryResult(
            columns=columns,
            rows=rows,
            query_id=sid,
            bytes_scanned=None,
            seconds=round(time.monotonic() - started, 3),
            extra={"warehouse_id": self.warehouse_id},
        )

    def _error_or_timeout(self, what: str, exc: BaseException, deadline: Deadline) -> Exception:
        if deadline.expired():
            return RunTimeout(f"{what}: gave up after {_secs(deadline.seconds)} ({exc})")
        return api_error(what, exc)


def make_runner(project: Any, target: ResolvedTarget, **options: Any) -> DatabricksSQLRunner:
    """The `--engine databricks-sql` validator of a target (lh360.checks.runner_for). It connects at once:
    an unreachable workspace is one error (exit 3) before any check, not one failed check after another."""
    runner = DatabricksSQLRunner(target, **options)
    runner.client  # noqa: B018 - first contact now
    return runner


def _secs(seconds: float | None) -> str:
    return "?" if seconds is None else format_duration(seconds) if seconds >= 1 else f"{seconds:.2f}s"


def _state(resp: Any) -> str:
    st = getattr(getattr(resp, "status", None), "state", None)
    return getattr(st, "value", st) or "PENDING"


def _columns(resp: Any) -> tuple[list[str], list[str]]:
    cols = (resp.manifest.schema.columns or []) if resp.manifest and resp.manifest.schema else []
    cols = sorted(cols, key=lambda c: c.position or 0)
    names = [c.name for c in cols]
    types = [getattr(c.type_name, "value", c.type_name) or "STRING" for c in cols]
    return names, types


def _convert_row(row: list[Any], types: list[str]) -> tuple[Any, ...]:
    return tuple(convert(v, types[i] if i < len(types) else "STRING") for i, v in enumerate(row))


def convert(value: Any, type_name: str) -> Any:
    """A JSON_ARRAY cell (a string or null) as the Python value of its SQL type."""
    if value is None:
        return None
    if type_name in ("BYTE", "SHORT", "INT", "LONG"):
        return int(value)
    if type_name in ("FLOAT", "DOUBLE"):
        return float(value)
    if type_name == "DECIMAL":
        return Decimal(value)
    if type_name == "BOOLEAN":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if type_name == "DATE":
        return date.fromisoformat(value)
    if type_name == "TIMESTAMP":
        return datetime.fromisoformat(str(value).replace(" ", "T"))
    return value
