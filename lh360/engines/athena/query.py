"""The Athena QueryRunner: checks and ad-hoc SQL on Athena through pyathena, over the Glue-registered Delta
tables (`lh360 -t prod deploy` registers them; lh360.engines.athena.glue).

Per query: the target's workgroup and result location (`athena.output`, optional where the workgroup
enforces one); result reuse only when the caller allows it (never for freshness: validate never asks);
pyathena's `poll_interval` and `kill_on_interrupt` (Ctrl-C cancels the query); a client-side timeout that
pyathena lacks (`athena.timeout`, default 10m: the query is stopped with StopQueryExecution and the run
exits 4); SIGTERM stops the query as Ctrl-C does, even while StartQueryExecution is in flight (the
signal reaches pyathena as the KeyboardInterrupt its `kill_on_interrupt` acts on).

Transient faults: every Athena call uses botocore's `standard` retries (HTTP 500/502/503/504, connection
errors, brief throttling; StartQueryExecution carries an idempotency token, so a retried start never runs
the query twice). Throttling that lasts — TooManyRequestsException when the account's active-query quota
(queued queries count) is full — gets a budget of minutes (`THROTTLE_BUDGET_S`), by pyathena with
exponential backoff and jitter. A poll that still fails after its retries re-reads the query's state, and
stops the query if it still runs: lh360 never leaves a query it lost track of running and billing. A FAILED
query raises EngineError (exit 3) with Athena's reason.

Each QueryResult carries the query id, the bytes Athena scanned and a cost estimate (`extra["cost_usd"]`):
data scanned rounded up to the next MB, at least 10 MB, at `athena.price_per_tb_usd` (default: the region's
list price, `PRICE_PER_TB_USD`; `extra["price_basis"]` says which); 0 for a result Athena reused.

For checks (lh360.checks.validate), the runner also says what the engine reads: `column_types` (from the
Delta log, which Athena reads the schema from: checks type their literals with it) and `unique_alone`
(whether a table is large enough for its `unique` checks to run as queries of their own).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import open_table
from lh360.durations import format_duration, parse_duration
from lh360.engines.athena.glue import LEDGER_TABLES, glue_client
from lh360.engines.base import QueryResult
from lh360.errors import ConfigError, EngineError, Interrupted, RunTimeout, first_line
from lh360.layout import Lake
from lh360.sql import quote
from lh360.storage import endpoint_for

log = logging.getLogger("lh360.athena")

DEFAULT_TIMEOUT_S = 600.0
MIN_BILLED_BYTES = 10 * 1024 * 1024
# Athena SQL queries, USD per TB scanned, by region: the list prices of https://aws.amazon.com/athena/pricing/
# ("SQL queries", per region), which the AWS Price List API serves as the AmazonAthena offer's
# `<REGION>-DataScannedInTB` SKUs (https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonAthena/current/
# index.json). Only prices confirmed there are listed. Any other region is estimated at the US East price
# and says so (`price_basis`): set `athena.price_per_tb_usd` for an exact figure.
PRICE_PER_TB_USD = {
    "us-east-1": 5.0,  # USE1-DataScannedInTB
    "ap-south-1": 5.0,  # APS1-DataScannedInTB
}
DEFAULT_PRICE_REGION = "us-east-1"
THROTTLING = ("ThrottlingException", "TooManyRequestsException")
API_ATTEMPTS = 3  # attempts per Athena call, the first included (botocore standard mode's default): 5xx, connections
THROTTLE_BUDGET_S = 300.0  # how long a throttled call keeps trying: queued queries can take minutes to drain
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
LEDGER_LAYERS = ("lh360", "ledger")  # `lh360.runs` / `lh360.checks` in SQL, like the local engine


def cost_usd(bytes_scanned: int | None, price_per_tb: float | None = None, *, reused: bool = False) -> float:
    """Athena's price for one query: data scanned rounded up to the MB, 10 MB minimum, at `price_per_tb`
    (default: the US East list price). A query answered from a reused result scans nothing and costs 0."""
    if reused:
        return 0.0
    price = PRICE_PER_TB_USD[DEFAULT_PRICE_REGION] if price_per_tb is None else price_per_tb
    billed = max(math.ceil((bytes_scanned or 0) / 2**20) * 2**20, MIN_BILLED_BYTES)
    return billed / 2**40 * price


def price_per_tb(settings: Any, region: str | None) -> tuple[float, str]:
    """(USD per TB, where that figure comes from) for a target: its setting, else its region's list price."""
    if settings.price_per_tb_usd is not None:
        return settings.price_per_tb_usd, "athena.price_per_tb_usd"
    if region in PRICE_PER_TB_USD:
        return PRICE_PER_TB_USD[region], f"{region} list price"
    return (
        PRICE_PER_TB_USD[DEFAULT_PRICE_REGION],
        f"{DEFAULT_PRICE_REGION} list price (no list price known to lh360 for {region or 'this region'}: "
        "set athena.price_per_tb_usd)",
    )


class _Deadline(Exception):
    def __init__(self, query_id: str | None) -> None:
        super().__init__(query_id)
        self.query_id = query_id


@dataclass
class AthenaRunner:
    target: ResolvedTarget
    timeout_s: float | None = None
    poll_interval: float = 1.0
    throttle_budget_s: float = THROTTLE_BUDGET_S
    retry_multiplier: float = 1.0
    retry_max_delay: float = 60.0
    dialect: str = "athena"
    queries: list[str] = field(default_factory=list)
    resolve_names: bool = False  # `lh360 sql`: silver.x → "<silver database>"."x"
    _conn: Any = None
    _specs: Any = None
    _tables: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings = self.target.settings.athena
        if settings is None:
            raise ConfigError(
                f"target {self.target.name!r} has no athena section (workgroup, databases, output)",
                field=f"targets.{self.target.name}.athena",
            )
        self.settings = settings
        region = self.target.settings.aws.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.price_per_tb, self.price_basis = price_per_tb(settings, region)
        if self.timeout_s is None:
            self.timeout_s = parse_duration(settings.timeout).total_seconds() if settings.timeout else DEFAULT_TIMEOUT_S

    # ---- names --------------------------------------------------------------------------------------

    def database(self, layer: str) -> str:
        dbs = self.settings.databases
        if layer in LEDGER_LAYERS:
            return dbs.get("ledger") or dbs["gold"]
        if layer not in dbs:
            raise EngineError(f"no Athena database for layer {layer!r} (athena.databases: {', '.join(dbs)})")
        return dbs[layer]

    def glue_name(self, layer: str, name: str) -> tuple[str, str]:
        if layer in LEDGER_LAYERS:
            return self.database(layer), LEDGER_TABLES.get(name, name).lower()
        return self.database(layer), name.lower()

    def table_name(self, layer: str, name: str) -> str:
        db, table = self.glue_name(layer, name)
        return f"{quote(db, 'athena')}.{quote(table, 'athena')}"

    def exists(self, layer: str, name: str) -> bool:
        db, table = self.glue_name(layer, name)
        client = glue_client(self.target)
        try:
            client.get_table(DatabaseName=db, Name=table)
            return True
        except client.exceptions.EntityNotFoundException:
            return False

    def table_version(self, layer: str, name: str) -> int | None:
        """The Delta version Athena reads next: the table's latest (Athena reads the current snapshot)."""
        dt = self._delta(layer, name)
        return None if dt is None else dt.version()

    def column_types(self, layer: str, name: str) -> dict[str, Any] | None:
        """Column → Delta type, from the table's log: the schema Athena reads (checks type their literals
        with it, Trino being strict about types)."""

        dt = self._delta(layer, name)
        if dt is None:
            return None
        return {f["name"]: f["type"] for f in json.loads(dt.schema().to_json())["fields"]}

    def unique_alone(self, layer: str, name: str) -> bool:
        """Whether the table is large enough (`athena.unique_alone_rows`, by its Delta log's row counts) for
        its unique checks to run as queries of their own rather than as COUNT(DISTINCT) in the fused scan."""
        limit = self.settings.unique_alone_rows
        dt = self._delta(layer, name)
        if limit is None or dt is None:
            return False
        import pyarrow as pa

        actions = pa.table(dt.get_add_actions(flatten=True))
        if "num_records" not in actions.column_names:
            return False
        rows = sum(n or 0 for n in actions.column("num_records").to_pylist())
        return rows > limit

    def _delta(self, layer: str, name: str) -> Any:
        """The table's Delta log, opened once per runner (None when it cannot be read)."""
        key = (layer, name)
        if key not in self._tables:
            lake = Lake(self.target.lake)
            uri = lake.runs if (layer in LEDGER_LAYERS and name == "runs") else None
            uri = uri or (lake.checks if (layer in LEDGER_LAYERS and name == "checks") else lake.table(layer, name))
            try:
                self._tables[key] = open_table(uri, self.target.settings.aws)
            except Exception as exc:  # version and types are courtesies, never a reason to fail a check
                log.debug("cannot read the Delta log of %s.%s: %s", layer, name, exc)
                self._tables[key] = None
        return self._tables[key]

    def attach_project(self, specs: Any) -> None:
        """For `lh360 sql`: let the user write bronze.x / silver.x / gold.x / lh360.runs in Athena SQL."""
        self.resolve_names = True
        self._specs = specs

    def resolve(self, sql: str) -> str:
        """Rewrite layer-qualified names (silver.clientes) to the target's Glue databases."""
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ParseError, TokenError

        try:
            trees = [t for t in sqlglot.parse(sql, read="athena") if t is not None]
        except (ParseError, TokenError):
            return sql  # let Athena report the syntax error in its own words
        if len(trees) != 1:
            raise EngineError(f"expected one statement, found {len(trees)}")
        tree = trees[0]
        layers = {*self.settings.databases, *LEDGER_LAYERS} - {"ledger"}
        changed = False
        for table in list(tree.find_all(exp.Table)):
            if table.db in layers and not table.catalog:
                db, name = self.glue_name(table.db, table.name)
                table.set("db", exp.to_identifier(db, quoted=True))
                table.set("this", exp.to_identifier(name, quoted=True))
                changed = True
        return tree.sql(dialect="athena") if changed else sql

    # ---- running ------------------------------------------------------------------------------------

    def connection(self):
        if self._conn is None:
            # pyathena logs every failed call with a traceback; lh360 reports the error once, in one line
            if not logging.getLogger("lh360").isEnabledFor(logging.DEBUG):
                logging.getLogger("pyathena").setLevel(logging.CRITICAL)
            from botocore.config import Config
            from pyathena import connect
            from pyathena.util import RetryConfig

            aws = self.target.settings.aws
            kwargs: dict[str, Any] = {}
            endpoint = endpoint_for("athena", aws)
            if endpoint:
                kwargs["endpoint_url"] = endpoint
            self._conn = connect(
                work_group=self.settings.workgroup,
                s3_staging_dir=self.settings.output,
                schema_name=self.settings.databases.get("silver"),
                region_name=aws.region,
                profile_name=aws.profile,
                poll_interval=self.poll_interval,
                kill_on_interrupt=True,
                # botocore retries what is transient per call; pyathena waits out lasting throttling
                config=Config(retries={"mode": "standard", "total_max_attempts": API_ATTEMPTS}),
                retry_config=RetryConfig(
                    exceptions=THROTTLING,
                    attempt=throttle_attempts(self.throttle_budget_s, self.retry_multiplier, self.retry_max_delay),
                    multiplier=self.retry_multiplier,
                    max_delay=self.retry_max_delay,
                ),
                **kwargs,
            )
        return self._conn

    def query(self, sql: str, *, reuse_results: bool = False) -> QueryResult:
        from pyathena.error import DatabaseError, OperationalError

        if self.resolve_names:
            sql = self.resolve(sql)
        self.queries.append(sql)
        started = time.monotonic()
        deadline = started + float(self.timeout_s or DEFAULT_TIMEOUT_S)
        seen: dict[str, str] = {}

        def on_poll(execution: Any) -> None:
            seen["id"] = execution.query_id
            if time.monotonic() > deadline:
                raise _Deadline(execution.query_id)

        def on_start(query_id: str) -> None:
            seen["id"] = query_id
            log.debug("athena query %s started", query_id)

        cursor = self.connection().cursor(on_poll=on_poll)
        try:
            with _signals_as_keyboard_interrupt():
                cursor.execute(
                    sql,
                    result_reuse_enable=reuse_results,
                    result_reuse_minutes=60 if reuse_results else None,
                    on_start_query_execution=on_start,
                )
            columns = [d[0] for d in cursor.description or []]
            rows = [tuple(r) for r in cursor.fetchall()]
            query_id, scanned = cursor.query_id, cursor.data_scanned_in_bytes
            engine_ms, reused = cursor.engine_execution_time_in_millis, bool(cursor.reused_previous_result)
        except _SignalStop as stop:  # pyathena stopped the query it was starting or polling
            if stop.__cause__ is not None:  # ... or tried to: its StopQueryExecution failed
                self._stop(cursor.query_id or seen.get("id"))
            raise Interrupted(stop.signum) from None
        except _Deadline as exc:
            qid = exc.query_id or seen.get("id")
            self._stop(qid)
            raise RunTimeout(
                f"Athena query {qid} ran past the timeout of {_dur(self.timeout_s)}; it was cancelled "
                "(raise athena.timeout in the target if it needs longer)"
            ) from None
        except Interrupted:
            self._stop(seen.get("id"))
            raise
        except OperationalError as exc:
            qid = cursor.query_id or seen.get("id")
            if exc.__cause__ is None:  # the query ended FAILED or CANCELLED: Athena's reason
                raise EngineError(f"Athena query {qid} {self._state(qid)}: {exc}", detail=sql) from None
            raise self._lost(qid, exc.__cause__, sql) from None
        except DatabaseError as exc:  # StartQueryExecution refused (after throttling retries, or invalid)
            cause = exc.__cause__ or exc
            raise EngineError(f"Athena did not start the query: {first_line(cause)}", detail=sql) from None
        finally:
            cursor.close()
        return QueryResult(
            columns=columns,
            rows=rows,
            query_id=query_id,
            bytes_scanned=scanned,
            seconds=round(time.monotonic() - started, 3),
            extra={
                "cost_usd": cost_usd(scanned, self.price_per_tb, reused=reused),
                "price_basis": self.price_basis,
                "engine_ms": engine_ms,
                "reused": reused,
                "workgroup": self.settings.workgroup,
            },
        )

    def _state(self, query_id: str | None) -> str:
        return self._read_state(query_id) or "FAILED"

    def _read_state(self, query_id: str | None) -> str | None:
        """The query's state as Athena reports it now (None: unknown, the request failed too)."""
        if not query_id:
            return None
        try:
            state = self.connection().client.get_query_execution(QueryExecutionId=query_id)
            return state["QueryExecution"]["Status"]["State"]
        except Exception as exc:
            log.debug("cannot read the state of athena query %s: %s", query_id, exc)
            return None

    def _lost(self, query_id: str | None, cause: BaseException, sql: str) -> EngineError:
        """A status or result request failed after its retries: re-read the query's state, and stop the query
        if it still runs (or its state cannot be read) rather than leave it running and billing."""
        state = self._read_state(query_id)
        if state not in TERMINAL:
            self._stop(query_id)
            what = f"it was {state or 'in an unknown state'} and was stopped"
        elif state == "SUCCEEDED":
            what = "it succeeded, but its result could not be read"
        else:
            what = f"it ended {state}"
        return EngineError(f"lost contact with Athena query {query_id} ({first_line(cause)}); {what}", detail=sql)

    def _stop(self, query_id: str | None) -> None:
        if not query_id:
            return
        try:
            self.connection().client.stop_query_execution(QueryExecutionId=query_id)
            log.warning("athena query %s cancelled", query_id)
        except Exception as exc:  # we are already failing; say so, do not mask the real error
            log.warning("could not cancel athena query %s: %s", query_id, exc)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def throttle_attempts(budget_s: float, multiplier: float, max_delay: float) -> int:
    """How many attempts pyathena's exponential backoff (multiplier·2^n, capped at max_delay) makes within
    budget_s of waiting."""
    attempts, waited = 1, 0.0
    while True:
        wait = min(multiplier * 2 ** (attempts - 1), max_delay)
        if waited + wait > budget_s:
            return attempts
        waited += wait
        attempts += 1


class _SignalStop(KeyboardInterrupt):
    """SIGINT/SIGTERM inside pyathena: lh360's signal handler raises Interrupted (a BaseException that no
    library catches), but pyathena's kill_on_interrupt — which stops a query it is starting or polling, even
    one whose StartQueryExecution is still in flight — acts on KeyboardInterrupt only."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_as_keyboard_interrupt() -> Iterator[None]:
    """While pyathena runs a query, lh360's signal handlers raise _SignalStop instead of Interrupted (their
    bookkeeping — the exit code, a second signal ending the process — stays theirs). Main thread only:
    Python runs signal handlers there; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}

    def wrap(handler: Any) -> Any:
        def as_keyboard_interrupt(signum: int, frame: Any) -> None:
            try:
                handler(signum, frame)
            except Interrupted as exc:
                raise _SignalStop(exc.signum) from None

        return as_keyboard_interrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = handler
            signal.signal(sig, wrap(handler))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_runner(project: Any, target: ResolvedTarget, **options: Any) -> AthenaRunner:
    return AthenaRunner(target, **options)


def _dur(seconds: float | None) -> str:
    return format_duration(seconds or 0)
