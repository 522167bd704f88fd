"""The Athena QueryRunner: checks and ad-hoc SQL on Athena through pyathena, over the Glue-registered Delta
tables (`lh360 -t prod deploy` registers them; lh360.engines.athena.glue).

Per query: the target's workgroup and result location (`athena.output`, optional where the workgroup
enforces one); result reuse only when the caller allows it (never for freshness: validate never asks);
pyathena's `poll_interval` and `kill_on_interrupt` (Ctrl-C cancels the query); a client-side timeout that
pyathena lacks (`athena.timeout`, default 10m: the query is stopped with StopQueryExecution and the run
exits 4); SIGTERM stops the query too. Retries: only throttling (ThrottlingException,
TooManyRequestsException), by pyathena with exponential backoff — botocore's own retries are set to one
attempt so there is one retry layer. A FAILED query raises EngineError (exit 3) with Athena's reason.

Each QueryResult carries the query id, the bytes Athena scanned and a cost estimate (`extra["cost_usd"]`):
$5 per TB scanned, each query billed at least 10 MB (data scanned rounded up to the next MB).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.engines.base import QueryResult
from lh360.errors import ConfigError, EngineError, Interrupted, RunTimeout

log = logging.getLogger("lh360.athena")

DEFAULT_TIMEOUT_S = 600.0
PRICE_PER_TB_USD = 5.0
MIN_BILLED_BYTES = 10 * 1024 * 1024
THROTTLING = ("ThrottlingException", "TooManyRequestsException")
LEDGER_LAYERS = ("lh360", "ledger")  # `lh360.runs` / `lh360.checks` in SQL, like the local engine


def cost_usd(bytes_scanned: int | None) -> float:
    """Athena's price for one query: $5/TB, data scanned rounded up to the MB, 10 MB minimum."""
    billed = max(math.ceil((bytes_scanned or 0) / 2**20) * 2**20, MIN_BILLED_BYTES)
    return billed / 2**40 * PRICE_PER_TB_USD


class _Deadline(Exception):
    def __init__(self, query_id: str | None) -> None:
        super().__init__(query_id)
        self.query_id = query_id


@dataclass
class AthenaRunner:
    target: ResolvedTarget
    timeout_s: float | None = None
    poll_interval: float = 1.0
    retry_attempts: int = 6
    retry_multiplier: float = 0.5
    retry_max_delay: float = 30.0
    dialect: str = "athena"
    queries: list[str] = field(default_factory=list)
    resolve_names: bool = False  # `lh360 sql`: silver.x → "<silver database>"."x"
    _conn: Any = None
    _specs: Any = None

    def __post_init__(self) -> None:
        settings = self.target.settings.athena
        if settings is None:
            raise ConfigError(
                f"target {self.target.name!r} has no athena section (workgroup, databases, output)",
                field=f"targets.{self.target.name}.athena",
            )
        self.settings = settings
        if self.timeout_s is None:
            from lh360.durations import parse_duration

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
        from lh360.engines.athena.glue import LEDGER_TABLES

        if layer in LEDGER_LAYERS:
            return self.database(layer), LEDGER_TABLES.get(name, name).lower()
        return self.database(layer), name.lower()

    def table_name(self, layer: str, name: str) -> str:
        from lh360.sql import quote

        db, table = self.glue_name(layer, name)
        return f"{quote(db, 'athena')}.{quote(table, 'athena')}"

    def exists(self, layer: str, name: str) -> bool:
        from lh360.engines.athena.glue import glue_client

        db, table = self.glue_name(layer, name)
        client = glue_client(self.target)
        try:
            client.get_table(DatabaseName=db, Name=table)
            return True
        except client.exceptions.EntityNotFoundException:
            return False

    def table_version(self, layer: str, name: str) -> int | None:
        """The Delta version Athena reads next: the table's latest (Athena reads the current snapshot)."""
        from lh360.delta import open_table
        from lh360.layout import Lake

        lake = Lake(self.target.lake)
        uri = lake.runs if (layer in LEDGER_LAYERS and name == "runs") else None
        uri = uri or (lake.checks if (layer in LEDGER_LAYERS and name == "checks") else lake.table(layer, name))
        try:
            dt = open_table(uri, self.target.settings.aws)
        except Exception as exc:  # the version is a courtesy for the ledger, never a reason to fail a check
            log.debug("cannot read the Delta version of %s.%s: %s", layer, name, exc)
            return None
        return None if dt is None else dt.version()

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

            from lh360.storage import endpoint_for

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
                # one retry layer: pyathena retries throttling only; botocore makes one attempt per call
                config=Config(retries={"mode": "standard", "max_attempts": 1}),
                retry_config=RetryConfig(
                    exceptions=THROTTLING,
                    attempt=self.retry_attempts,
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
        except OperationalError as exc:  # the query ended FAILED or CANCELLED
            qid = cursor.query_id or seen.get("id")
            raise EngineError(f"Athena query {qid} {self._state(qid)}: {exc}", detail=sql) from None
        except DatabaseError as exc:  # StartQueryExecution refused (after throttling retries, or invalid)
            cause = exc.__cause__ or exc
            raise EngineError(f"Athena did not start the query: {_first(cause)}", detail=sql) from None
        finally:
            cursor.close()
        return QueryResult(
            columns=columns,
            rows=rows,
            query_id=query_id,
            bytes_scanned=scanned,
            seconds=round(time.monotonic() - started, 3),
            extra={
                "cost_usd": cost_usd(scanned),
                "engine_ms": engine_ms,
                "reused": reused,
                "workgroup": self.settings.workgroup,
            },
        )

    def _state(self, query_id: str | None) -> str:
        if not query_id:
            return "FAILED"
        try:
            state = self.connection().client.get_query_execution(QueryExecutionId=query_id)
            return state["QueryExecution"]["Status"]["State"]
        except Exception:
            return "FAILED"

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


def make_runner(project: Any, target: ResolvedTarget, **options: Any) -> AthenaRunner:
    return AthenaRunner(target, **options)


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _dur(seconds: float | None) -> str:
    from lh360.durations import format_duration

    return format_duration(seconds or 0)
