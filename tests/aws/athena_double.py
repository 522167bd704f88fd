"""An executing Athena for tests: moto's Athena API, with queries that really run.

moto's Athena accepts queries and returns canned rows queued through its `/moto-api/static/athena/
query-results` API. This double wraps moto's Athena backend in the moto server (a thread of the test
process) so that each `StartQueryExecution` — sent by pyathena → boto3 → HTTP, from the test process or a CLI
subprocess — is:

1. parsed as Athena (Trino) SQL with sqlglot;
2. resolved: each `db.table` is looked up in moto's Glue (GetTable, over HTTP) and must be an external table
   with `table_type=DELTA` and a LOCATION, as real Athena requires;
3. read with delta-rs from that LOCATION on the moto S3, and run on DuckDB (the SQL transpiled to DuckDB);
4. answered by queueing the real rows (header row first, as Athena returns them) with moto's POST API, just
   before moto's own StartQueryExecution takes the next queued result for the new execution id.

Scripted outcomes for the next matching query: `throttle(n)` (the API call fails with ThrottlingException /
TooManyRequestsException), `fail(reason)` (the query ends FAILED with that reason, as Athena reports an
error), `hang()` (the query stays RUNNING until StopQueryExecution). A query that does not parse, names a
table Glue does not know, or fails on DuckDB ends FAILED with the error, as on Athena.

`GetQueryExecution` answers carry the real DataScannedInBytes (the bytes of the Delta data files read), the
StateChangeReason / AthenaError of a FAILED query, and the ResultReuseConfiguration the query was started
with, so tests can check that freshness checks never reuse results.

The transpiled query runs with Trino's type rules and meanings where they differ from DuckDB's for what
lh360 emits (trino_semantics.py): what Trino refuses (a string compared with a bigint, md5 of a varchar)
ends FAILED as on Athena, trim/casts/regexp_replace/avg/date_diff mean what they mean on Trino, and the
session runs in UTC. Known gaps: deletion vectors, column mapping and file statistics are not applied
(Athena applies them; lh360's own tables use none, and `lh360 deploy` refuses reader features Athena
cannot read), and DataScannedInBytes is whole files, where Athena reads only the columns it needs.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import trino_semantics

ACCOUNT = "123456789012"
# The double reads Glue and S3 as Athena does: with the caller's rights, but through Athena (the IAM context has
# aws:CalledVia = athena.amazonaws.com). Its requests sign with this key so a recorder can tell them from the
# caller's own (tests/aws/recorder.py, tests/iam).
VIA_ATHENA_KEY = "AKIAVIAATHENADOUBLE"


@dataclass
class Script:
    kind: str  # throttle | fail | hang
    match: str | None = None  # a substring (case-insensitive) of the query; None: any query
    times: int = 1
    reason: str = ""
    code: str = "ThrottlingException"
    start_delay: float = 0.0  # StartQueryExecution answers this much later (a request in flight)


@dataclass
class Outcome:
    query: str
    state: str  # SUCCEEDED | FAILED | RUNNING (hung)
    reason: str | None = None
    scanned: int = 0
    rows: int = 0
    reuse: dict[str, Any] | None = None
    database: str | None = None
    workgroup: str | None = None
    reused: bool = False  # answered from an earlier result (reuse asked for, same query): nothing scanned


@dataclass
class AthenaDouble:
    url: str = ""
    region: str = "us-east-1"
    scripts: list[Script] = field(default_factory=list)
    executions: dict[str, Outcome] = field(default_factory=dict)
    throttled: list[str] = field(default_factory=list)  # queries refused with a throttling error
    starting: list[str] = field(default_factory=list)  # queries whose delayed StartQueryExecution is in flight
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        with self.lock:
            self.scripts.clear()
            self.executions.clear()
            self.throttled.clear()
            self.starting.clear()

    # ---- scripting ----------------------------------------------------------------------------------

    def throttle(self, times: int = 1, code: str = "ThrottlingException", match: str | None = None) -> None:
        self.scripts.append(Script("throttle", match, times, code=code))

    def fail(self, reason: str, match: str | None = None, times: int = 1) -> None:
        self.scripts.append(Script("fail", match, times, reason=reason))

    def hang(self, match: str | None = None, times: int = 1, start_delay: float = 0.0) -> None:
        self.scripts.append(Script("hang", match, times, start_delay=start_delay))

    def _take(self, query: str) -> Script | None:
        for script in self.scripts:
            if script.match is None or script.match.lower() in query.lower():
                script.times -= 1
                if script.times <= 0:
                    self.scripts.remove(script)
                return script
        return None

    @property
    def queries(self) -> list[Outcome]:
        return list(self.executions.values())

    # ---- executing ----------------------------------------------------------------------------------

    def glue(self):
        import boto3

        return boto3.client(
            "glue",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=VIA_ATHENA_KEY,
            aws_secret_access_key="testing",
        )

    def execute(self, query: str, database: str | None) -> tuple[list[dict], list[dict], int]:
        """Run `query` for real; (moto rows with the header row first, column info, bytes scanned)."""
        import duckdb
        import sqlglot
        from sqlglot import exp

        from lh360.storage import delta_storage_options

        tree = sqlglot.parse_one(query, read="athena")
        if not isinstance(tree, exp.Query):
            raise _QueryError(f"the Athena double runs SELECT queries only, not {tree.key.upper()}")
        con = trino_semantics.connect()  # in UTC, as Athena
        schemas: dict[str, Any] = {}
        scanned = 0
        glue = self.glue()
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        registered: dict[tuple[str, str], str] = {}
        for table in list(tree.find_all(exp.Table)):
            if not table.db and table.name in ctes:
                continue
            db = table.db or database
            if not db:
                raise _QueryError(f"SCHEMA_NOT_FOUND: no database for table {table.name}")
            key = (db.lower(), table.name.lower())
            if key not in registered:
                location = self._delta_location(glue, *key)
                from deltalake import DeltaTable

                options = {  # Athena's own endpoint and identity, whatever the caller's environment says
                    **(delta_storage_options(location) or {}),
                    "AWS_ENDPOINT_URL": self.url,
                    "AWS_ALLOW_HTTP": "true",
                    "AWS_REGION": self.region,
                    "AWS_ACCESS_KEY_ID": VIA_ATHENA_KEY,
                    "AWS_SECRET_ACCESS_KEY": "testing",
                }
                dt = DeltaTable(location, storage_options=options)
                data, size = _snapshot(dt, location)
                scanned += size
                name = f"t{len(registered)}"
                con.register(name, data)
                schemas[name] = data.schema
                registered[key] = name
            new = exp.to_table(registered[key])
            new.set("alias", table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name)))
            table.replace(new)
        try:
            cur = trino_semantics.run(con, tree, schemas)  # Trino's type rules and meanings
            columns = [(d[0], str(d[1])) for d in cur.description]
            data = cur.fetchall()
        except trino_semantics.TrinoRefusal as exc:
            raise _QueryError(str(exc)) from None
        except duckdb.Error as exc:
            raise _QueryError(str(exc).splitlines()[0]) from None
        finally:
            con.close()
        header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
        rows = [header] + [{"Data": [_cell(v) for v in row]} for row in data]
        return rows, [_column_info(name, t) for name, t in columns], scanned

    def _delta_location(self, glue, db: str, name: str) -> str:
        try:
            table = glue.get_table(DatabaseName=db, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            raise _QueryError(f"TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.{db}.{name}' does not exist") from None
        params = {k.lower(): str(v).lower() for k, v in (table.get("Parameters") or {}).items()}
        if params.get("table_type") != "delta":
            raise _QueryError(f"{db}.{name} is not registered with table_type=DELTA")
        return table["StorageDescriptor"]["Location"]

    def queue(self, rows: list[dict], column_info: list[dict]) -> None:
        doc = {"account_id": ACCOUNT, "region": self.region, "results": [{"rows": rows, "column_info": column_info}]}
        req = urllib.request.Request(
            self.url + "/moto-api/static/athena/query-results", data=json.dumps(doc).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201, resp.status


class _QueryError(Exception):
    pass


def _snapshot(dt, location: str):
    """The table's current snapshot as one arrow table, and the bytes of its data files.

    Not delta-rs' QueryBuilder: it keeps the GIL while it waits on HTTP, and the moto server it would wait
    on is a thread of this very process. The data files of the snapshot (its add actions) are downloaded
    with boto3 and read with pyarrow; partition values come from the add actions, as Delta stores them."""
    import tempfile
    from urllib.parse import unquote

    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lh360.delta import arrow_schema
    from lh360.storage import split_s3

    schema = arrow_schema(dt)
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    bucket, prefix = split_s3(location.rstrip("/") + "/")
    s3 = boto3.client(
        "s3",
        endpoint_url=DOUBLE.url,
        region_name=DOUBLE.region,
        aws_access_key_id=VIA_ATHENA_KEY,
        aws_secret_access_key="testing",
    )
    tables = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="athena-double-") as tmp:
        for i, add in enumerate(actions):
            size += int(add.get("size_bytes") or 0)
            local = f"{tmp}/{i}.parquet"
            s3.download_file(bucket, prefix + unquote(add["path"]), local)
            part = pq.read_table(local)
            cols = []
            for f in schema:
                if f.name in part.column_names:
                    cols.append(part.column(f.name).cast(f.type))
                else:
                    value = add.get(f"partition.{f.name}")
                    cols.append(pa.array([value] * part.num_rows).cast(f.type))
            tables.append(pa.Table.from_arrays(cols, schema=schema))
    return (pa.concat_tables(tables) if tables else schema.empty_table()), size


def _cell(v: Any) -> dict[str, str]:
    if v is None:
        return {}
    if isinstance(v, bool):
        return {"VarCharValue": "true" if v else "false"}
    if isinstance(v, datetime):
        text = v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if v.tzinfo is not None:
            text += " UTC"
        return {"VarCharValue": text}
    if isinstance(v, (date, Decimal, int, float)):
        return {"VarCharValue": str(v)}
    if isinstance(v, (list, dict)):
        return {"VarCharValue": json.dumps(v, default=str)}
    return {"VarCharValue": str(v)}


_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "HUGEINT": "decimal",
    "UBIGINT": "decimal",
    "DOUBLE": "double",
    "FLOAT": "real",
    "VARCHAR": "varchar",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "BLOB": "varbinary",
}


def _column_info(name: str, duck_type: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
        "Precision": 0,
        "Scale": 0,
    }
    m = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", duck_type)
    if m:
        info.update(Type="decimal", Precision=int(m.group(1)), Scale=int(m.group(2)))
    else:
        info["Type"] = _TYPES.get(duck_type, "varchar")
        if info["Type"] == "decimal":
            info.update(Precision=38, Scale=0)
    return info


DOUBLE = AthenaDouble()
_ORIGINAL: dict[str, Any] = {}
_local = threading.local()


def install(url: str, region: str) -> AthenaDouble:
    """Wrap moto's Athena backend and responses in this process (where the moto server thread runs)."""
    from moto.athena.models import AthenaBackend
    from moto.athena.responses import AthenaResponse
    from moto.core.exceptions import JsonRESTError

    DOUBLE.url, DOUBLE.region = url, region
    if _ORIGINAL:
        return DOUBLE
    _ORIGINAL["start"] = orig_start = AthenaBackend.start_query_execution
    _ORIGINAL["stop"] = orig_stop = AthenaBackend.stop_query_execution
    _ORIGINAL["resp_start"] = orig_resp_start = AthenaResponse.start_query_execution
    _ORIGINAL["resp_get"] = orig_resp_get = AthenaResponse.get_query_execution

    class Throttled(JsonRESTError):
        code = 400

        def __init__(self, code: str) -> None:
            super().__init__(code, "Rate exceeded")

    def resp_start(self):  # capture what the backend method is not given
        _local.reuse = self._get_param("ResultReuseConfiguration")
        return orig_resp_start(self)

    def start(self, query, context, config, workgroup, execution_parameters):
        with DOUBLE.lock:
            script = DOUBLE._take(query)
        if script is not None and script.start_delay:
            DOUBLE.starting.append(query)
            time.sleep(script.start_delay)
        with DOUBLE.lock:
            database = (context or {}).get("Database")
            outcome = Outcome(
                query=query,
                state="SUCCEEDED",
                reuse=getattr(_local, "reuse", None),
                database=database,
                workgroup=workgroup,
            )
            if script is not None and script.kind == "throttle":
                DOUBLE.throttled.append(query)
                raise Throttled(script.code)
            if script is None:
                try:
                    rows, info, outcome.scanned = DOUBLE.execute(query, database)
                    if (outcome.reuse or {}).get("ResultReuseByAgeConfiguration", {}).get("Enabled") and any(
                        o.query == query and o.state == "SUCCEEDED" for o in DOUBLE.executions.values()
                    ):
                        outcome.reused, outcome.scanned = True, 0  # as Athena: the earlier result, no scan
                    outcome.rows = len(rows) - 1
                    DOUBLE.queue(rows, info)
                except _QueryError as exc:
                    outcome.state, outcome.reason = "FAILED", str(exc)
                except Exception as exc:  # sqlglot cannot parse it, delta-rs cannot read it, ...
                    outcome.state, outcome.reason = "FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            elif script.kind == "fail":
                outcome.state, outcome.reason = "FAILED", script.reason
            elif script.kind == "hang":
                outcome.state = "RUNNING"
            exec_id = orig_start(self, query, context, config, workgroup, execution_parameters)
            execution = self.executions[exec_id]
            if outcome.state != "SUCCEEDED":
                execution.status = outcome.state
                execution._transitions = []  # stays FAILED / RUNNING (until StopQueryExecution)
            DOUBLE.executions[exec_id] = outcome
            return exec_id

    def resp_get(self):
        doc = json.loads(orig_resp_get(self))
        qe = doc["QueryExecution"]
        outcome = DOUBLE.executions.get(qe["QueryExecutionId"])
        if outcome is not None:
            qe["Statistics"]["DataScannedInBytes"] = outcome.scanned
            qe["Statistics"]["ResultReuseInformation"] = {"ReusedPreviousResult": outcome.reused}
            if outcome.reuse:
                qe["ResultReuseConfiguration"] = outcome.reuse
            if qe["Status"]["State"] == "FAILED" and outcome.reason:
                qe["Status"]["StateChangeReason"] = outcome.reason
                qe["Status"]["AthenaError"] = {
                    "ErrorCategory": 2,
                    "ErrorType": 1001,
                    "Retryable": False,
                    "ErrorMessage": outcome.reason,
                }
        return json.dumps(doc)

    def stop(self, exec_id):
        orig_stop(self, exec_id)
        if exec_id in DOUBLE.executions:
            DOUBLE.executions[exec_id].state = "CANCELLED"

    AthenaBackend.start_query_execution = start
    AthenaBackend.stop_query_execution = stop
    AthenaResponse.start_query_execution = resp_start
    AthenaResponse.get_query_execution = resp_get
    return DOUBLE


def uninstall() -> None:
    from moto.athena.models import AthenaBackend
    from moto.athena.responses import AthenaResponse

    if _ORIGINAL:
        AthenaBackend.start_query_execution = _ORIGINAL.pop("start")
        AthenaBackend.stop_query_execution = _ORIGINAL.pop("stop")
        AthenaResponse.start_query_execution = _ORIGINAL.pop("resp_start")
        AthenaResponse.get_query_execution = _ORIGINAL.pop("resp_get")
