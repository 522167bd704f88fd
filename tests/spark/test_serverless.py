"""The job under serverless rules: a session that refuses every Spark conf outside serverless' allow-list
(CONFIG_NOT_AVAILABLE) and refuses cache()/persist() (NOT_SUPPORTED_WITH_SERVERLESS), as Databricks
serverless does. Refine and ingest run under it, a replayed batch (rows with a NULL key included) changes
nothing, and the Delta side (DeltaTarget: MERGE, appends, Unity Catalog registration) is driven against a
recording stand-in for what open-source Spark cannot run (Delta, UC). Where pyspark's Spark Connect client is
installed, refine also runs on `SparkSession.builder.remote("local")`: serverless is Spark Connect."""

from __future__ import annotations

import json
import re

import pytest

from lh360.spark import contract, runtime
from tests.spark.test_spark_job import payload

pytestmark = pytest.mark.spark

ALLOWED_CONFS = {
    "spark.sql.session.timeZone",
    "spark.sql.shuffle.partitions",
    "spark.sql.ansi.enabled",
    "spark.sql.legacy.timeParserPolicy",
}


class Refused(Exception):
    pass


@pytest.fixture
def serverless(spark, monkeypatch):
    """Serverless rules on the test session; `refused` lists every attempt they stopped."""
    from pyspark.sql import DataFrame
    from pyspark.sql.conf import RuntimeConfig

    refused: list[str] = []
    real_set, real_unset = RuntimeConfig.set, RuntimeConfig.unset

    def conf_set(self, key, value):
        if key not in ALLOWED_CONFS:
            refused.append(f"conf {key}")
            raise Refused(f"[CONFIG_NOT_AVAILABLE] Configuration {key} is not available. SQLSTATE: 42K0I")
        return real_set(self, key, value)

    def conf_unset(self, key):
        if key not in ALLOWED_CONFS:
            refused.append(f"unset {key}")
            raise Refused(f"[CONFIG_NOT_AVAILABLE] Configuration {key} is not available. SQLSTATE: 42K0I")
        return real_unset(self, key)

    def no_cache(self, *a, **k):
        refused.append("cache")
        raise Refused("[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute.")

    monkeypatch.setattr(RuntimeConfig, "set", conf_set)
    monkeypatch.setattr(RuntimeConfig, "unset", conf_unset)
    monkeypatch.setattr(DataFrame, "persist", no_cache)
    monkeypatch.setattr(DataFrame, "cache", no_cache)
    return refused


def keyless_payload():
    return contract.parse_payload(payload())


def batch_with_null_keys(spark, batch=0):
    rows = [
        ("1", "11111111111", "ana", "sp", "2025-01-01", "f0.json", batch),
        ("2", "22222222222", "bia", "sp", "2025-01-01", "f0.json", batch),
        (None, "33333333333", "sem id", "sp", "2025-01-01", "f0.json", batch),  # no key: a MERGE never matches it
    ]
    ddl = "id string, cpf string, nome string, uf string, updated_at string, _source_file string, _batch_id bigint"
    return spark.createDataFrame(rows, ddl)


def silver_rows(target):
    return sorted((r["id"] is None, r["id"] or 0, r["nome"]) for r in target.silver.collect())


def test_refine_runs_under_serverless_rules_and_a_replay_changes_nothing(spark, serverless, memory_target_cls):
    p = keyless_payload()
    p["spec"]["silver"]["expectations"] = []  # no rule: the keyless row goes to quarantine all the same
    target = memory_target_cls(spark, p)
    b0 = batch_with_null_keys(spark)
    first = runtime.refine_batch(b0, 0, p, target)
    once = silver_rows(target)
    # a row with a NULL key never enters silver: quarantined as null_key (a MERGE could never match it)
    assert first["inserted"] == 2 and first["quarantined"] == 1 and first["rule_failures"] == {"null_key": 1}
    assert [True for r in once if r[0]] == []
    again = runtime.refine_batch(b0, 0, p, target)  # the stream replays batch 0 (a crash after its writes)
    assert silver_rows(target) == once and again["inserted"] == 0
    assert serverless == []


def test_ingest_runs_under_serverless_rules(spark, serverless, memory_target_cls):
    p = contract.parse_payload(payload("ingest"))
    target = memory_target_cls(spark, p)
    df = spark.createDataFrame(
        [('{"a":1}', "s3://b/raw/clientes/f1.json", 10), ('{"a":2}', "s3://b/raw/clientes/f1.json", 10)],
        "value string, _source_file string, _lh360_file_size bigint",
    )
    counters = runtime.ingest_batch(df, 0, p, target)
    assert counters["rows_in"] == 2 and counters["files"] == 1 and counters["bytes"] == 10
    assert serverless == []


def test_a_new_generations_first_ingest_leaves_out_what_bronze_holds(spark, memory_target_cls):
    p = contract.parse_payload(payload("ingest"))
    target = memory_target_cls(spark, p)
    old = spark.createDataFrame(
        [("x", "s3://b/raw/clientes/f1.json", 5)], "value string, _source_file string, _lh360_file_size bigint"
    )
    runtime.ingest_batch(old, 0, p, target)
    recovering = contract.parse_payload({**payload("ingest"), "state_generation": "g2", "recover": True})
    both = spark.createDataFrame(
        [("x", "s3://b/raw/clientes/f1.json", 5), ("y", "s3://b/raw/clientes/f2.json", 7)],
        "value string, _source_file string, _lh360_file_size bigint",
    )
    target.payload = recovering  # the job builds its target from the run's payload
    counters = runtime.ingest_batch(both, 0, recovering, target)  # batch ids restart at 0 in the new generation
    assert counters["files"] == 1 and counters["rows_in"] == 1
    assert sorted(r["_source_file"] for r in target.bronze.collect()) == [
        "s3://b/raw/clientes/f1.json",
        "s3://b/raw/clientes/f2.json",
    ]


# ---- DeltaTarget, driven against a recording stand-in for Delta and Unity Catalog -----------------------


class Recorder:
    """What DeltaTarget asks of Delta and UC: SQL statements, writes (by path or by name) and their options.
    DataFrames are real; MERGE answers with its metrics row; DESCRIBE HISTORY with the last write."""

    def __init__(self, spark, registered: set[str]):
        self.spark = spark
        self.registered = registered
        self.statements: list[str] = []
        self.writes: list[dict] = []
        self.merge_source_rows: list[tuple] = []
        self.catalog = self

    def tableExists(self, name):  # noqa: N802 - pyspark's spelling
        return name in self.registered

    def sql(self, text):
        self.statements.append(text)
        if text.startswith("MERGE INTO"):
            view = text.split("USING ")[1].split(" AS s")[0].strip("`")
            self.merge_source_rows = [tuple(r) for r in self.spark.table(view).collect()]
            return self.spark.createDataFrame(
                [(len(self.merge_source_rows), 0, 0, len(self.merge_source_rows))],
                "num_affected_rows long, num_updated_rows long, num_deleted_rows long, num_inserted_rows long",
            )
        if text.startswith("DESCRIBE HISTORY"):
            last = self.writes[-1]
            return self.spark.createDataFrame(
                [(last["options"].get("userMetadata"), {"numOutputRows": str(last["rows"])})],
                "userMetadata string, operationMetrics map<string,string>",
            )
        return self.spark.createDataFrame([], "x int")

    def __getattr__(self, name):
        return getattr(self.spark, name)


@pytest.fixture
def recorded_writes(monkeypatch):
    """DataFrameWriter.save / saveAsTable record instead of writing (no Delta here)."""
    from pyspark.sql.readwriter import DataFrameWriter

    log: list[dict] = []

    def record(kind):
        def write(self, target=None, *a, **k):
            log.append(
                {
                    "kind": kind,
                    "target": target,
                    "options": dict(getattr(self, "_lh360_options", {})),
                    "rows": self._df.count(),
                }
            )

        return write

    real_options = DataFrameWriter.options

    def options(self, **opts):
        self._lh360_options = {**getattr(self, "_lh360_options", {}), **opts}
        return real_options(self, **opts)

    monkeypatch.setattr(DataFrameWriter, "options", options)
    monkeypatch.setattr(DataFrameWriter, "save", record("path"))
    monkeypatch.setattr(DataFrameWriter, "saveAsTable", record("name"))
    return log


def test_delta_target_merge_sets_no_conf_and_counts_from_the_merge_itself(spark, serverless, recorded_writes):
    p = keyless_payload()
    rec = Recorder(spark, registered={"`lakehouse360`.`silver`.`clientes`"})
    rec.writes = recorded_writes
    target = runtime.DeltaTarget(rec, p)
    source = spark.createDataFrame(
        [(1, "a", "2025-01-01"), (2, "b", "2025-01-01")], "id bigint, nome string, updated_at string"
    )
    result = target.merge(source, 7, ["id", "nome", "updated_at"])
    assert serverless == []  # no session conf, no cache
    assert rec.merge_source_rows == [(1, "a", "2025-01-01"), (2, "b", "2025-01-01")]
    assert recorded_writes == []  # one statement: the MERGE (no append beside it)
    assert result == {"inserted": 2, "updated": 0}  # the MERGE's own result row
    assert not any(s.startswith("DESCRIBE HISTORY") for s in rec.statements)


def test_without_a_merge_result_row_the_counters_come_from_its_commit(spark, recorded_writes):
    """A MERGE whose result has no row (an older runtime): inserted/updated from the commit's
    operationMetrics (DESCRIBE HISTORY reads the log), never by counting the source again."""

    class Quiet(Recorder):
        def sql(self, text):
            if text.startswith("MERGE INTO"):
                self.statements.append(text)
                return self.spark.createDataFrame([], "x int")
            if text.startswith("DESCRIBE HISTORY"):
                self.statements.append(text)
                metrics = {"numTargetRowsInserted": "3", "numTargetRowsUpdated": "4", "numSourceRows": "7"}
                return self.spark.createDataFrame(
                    [(None, metrics)], "userMetadata string, operationMetrics map<string,string>"
                )
            return super().sql(text)

    rec = Quiet(spark, registered={"`lakehouse360`.`silver`.`clientes`"})
    source = spark.createDataFrame([(1, "a", "2025-01-01")], "id bigint, nome string, updated_at string")
    result = runtime.DeltaTarget(rec, keyless_payload()).merge(source, 0, ["id", "nome", "updated_at"])
    assert result == {"inserted": 3, "updated": 4}
    assert rec.statements[-1] == "DESCRIBE HISTORY `lakehouse360`.`silver`.`clientes` LIMIT 1"


class ReadCounter:
    """Counts the rows a frame's source yields, over every action on it: a Python UDF on the key column,
    with an accumulator (an action that reads the batch again runs it again). No cache, as on serverless."""

    def __init__(self, spark, df, column: str):
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType

        self.rows = df.count()
        self.accumulator = spark.sparkContext.accumulator(0)
        acc = self.accumulator

        def seen(value):
            acc.add(1)
            return value

        self.df = df.withColumn(column, F.udf(seen, StringType(), useArrow=False).asNondeterministic()(F.col(column)))

    @property
    def reads(self) -> float:
        return self.accumulator.value / self.rows


class DeltaTargetOnRecorder(runtime.DeltaTarget):
    """DeltaTarget's writes (quarantine append, MERGE) against the Recorder; silver exists already."""

    def ensure_silver(self, columns):
        pass

    def record_metrics(self, step, batch_id, counters):
        pass


def test_refine_reads_a_batch_twice_and_three_times_only_when_rows_are_quarantined(spark, serverless, recorded_writes):
    """Serverless has no cache, so each action reads the micro-batch's bronze files again. A refine batch
    takes one counting pass (before any write: a `fail` rule writes nothing), the quarantine append when rows
    were quarantined, and the MERGE; nothing else reads the batch."""
    p = keyless_payload()
    rec = Recorder(spark, registered={"`lakehouse360`.`silver`.`clientes`"})
    rec.writes = recorded_writes
    target = DeltaTargetOnRecorder(rec, p)

    clean = batch_with_null_keys(spark).where("id IS NOT NULL")
    counted = ReadCounter(spark, clean, "id")
    counters = runtime.refine_batch(counted.df, 0, p, target)
    assert counters["quarantined"] == 0 and counters["inserted"] == 2
    assert counted.reads == 2  # the counting pass, the MERGE

    mixed = ReadCounter(spark, batch_with_null_keys(spark, batch=1), "id")
    counters = runtime.refine_batch(mixed.df, 1, p, target)
    assert counters["quarantined"] == 1 and counters["inserted"] == 2
    assert mixed.reads == 3  # the counting pass, the quarantine append, the MERGE
    assert serverless == []


def test_the_counting_pass_reads_only_the_columns_the_rules_and_keys_name(spark, tmp_path):
    """Bronze is Parquet: the pass that counts expectations (before any write) reads the columns the rules
    and keys name, not the batch's every column (column pruning down to the scan)."""
    from lh360.spark import transforms as T

    p = keyless_payload()
    spec = p["spec"]
    spec["silver"]["expectations"] = [{"name": "nome_set", "rule": "nome IS NOT NULL", "action": "warn"}]
    batch_with_null_keys(spark).write.parquet(str(tmp_path / "bronze"))
    bronze = spark.read.parquet(str(tmp_path / "bronze"))
    keys, _ = T.keys_and_sequence(spec)
    flagged = T.flag_rows(T.project(bronze, spec), spec)
    plan = flagged.agg(*T.expectation_aggregates(spec))._jdf.queryExecution().executedPlan().toString()
    (read_schema,) = re.findall(r"ReadSchema: struct<([^>]*)>", plan)
    read = {field.split(":")[0] for field in read_schema.split(",")}
    assert read == {*keys, "nome"}  # not cpf, uf, updated_at, _source_file, _batch_id


def test_appends_go_by_name_once_unity_catalog_has_the_table(spark, recorded_writes):
    """UC sees columns a batch adds: once registered, bronze and quarantine are written by name."""
    p = contract.parse_payload({**payload(), "tables": {"quarantine": "`lakehouse360`.`silver`.`clientes_quarantine`"}})
    df = spark.createDataFrame([(1, "s3://b/f.json")], "id bigint, _source_file string")
    fresh = runtime.DeltaTarget(Recorder(spark, registered=set()), p)
    fresh.append_bronze(df, 0, ["s3://b/f.json"])
    registered = runtime.DeltaTarget(
        Recorder(
            spark, registered={"`lakehouse360`.`bronze`.`clientes`", "`lakehouse360`.`silver`.`clientes_quarantine`"}
        ),
        p,
    )
    registered.append_bronze(df, 1, ["s3://b/f.json"])
    registered.append_quarantine(df, 1)
    kinds = [(w["kind"], w["target"]) for w in recorded_writes]
    assert kinds == [
        ("path", "s3://lake/bronze/clientes"),  # the very first write: the job registers it right after
        ("name", "`lakehouse360`.`bronze`.`clientes`"),
        ("name", "`lakehouse360`.`silver`.`clientes_quarantine`"),
    ]
    assert all("txnAppId" in w["options"] and w["options"]["mergeSchema"] == "true" for w in recorded_writes)


# ---- a full refresh (tests/spark/test_full_refresh_spark.py has its stream) ------------------------------

FULL_REFRESH_HASH = "b" * 64


class ReplaceRecorder(Recorder):
    """The Recorder of test_serverless, answering what a full refresh asks of Delta: CREATE OR REPLACE TABLE
    ... AS SELECT (the rows of its source view kept per table), DESCRIBE HISTORY (the rows the last one wrote),
    SHOW TBLPROPERTIES (those it set)."""

    def __init__(self, spark, registered):
        super().__init__(spark, registered)
        self.replaced: dict[str, list] = {}
        self.props: dict[str, str] = {}

    def sql(self, text):
        if text.startswith("CREATE OR REPLACE TABLE"):
            self.statements.append(text)
            name = text.split(" USING DELTA")[0].removeprefix("CREATE OR REPLACE TABLE ")
            view = text.rsplit("SELECT * FROM ", 1)[1].strip("`")
            self.replaced[name] = [r.asDict() for r in self.spark.table(view).collect()]
            self.registered.add(name)
            if "silver`.`clientes`" in name:
                self.props = dict(re.findall(r"'([^']+)' = '([^']*)'", text.split("TBLPROPERTIES")[1]))
            return self.spark.createDataFrame([], "x int")
        if text.startswith("DESCRIBE HISTORY"):
            self.statements.append(text)
            rows = len(self.replaced["`lakehouse360`.`silver`.`clientes`"])
            return self.spark.createDataFrame(
                [(None, {"numOutputRows": str(rows)})], "userMetadata string, operationMetrics map<string,string>"
            )
        if text.startswith("SHOW TBLPROPERTIES"):
            self.statements.append(text)
            return self.spark.createDataFrame(list(self.props.items()) or [("x", "y")], "key string, value string")
        return super().sql(text)


def test_delta_target_replaces_each_table_in_one_statement_under_serverless_rules(spark, serverless, recorded_writes):
    from tests.spark.test_spark_job import bronze_df

    p = {**payload(state_generation="fr1", full_refresh=True, spec_hash=FULL_REFRESH_HASH)}
    p = contract.parse_payload({**p, "tables": {"quarantine": "`lakehouse360`.`silver`.`clientes_quarantine`"}})
    rec = ReplaceRecorder(spark, registered={"`lakehouse360`.`silver`.`clientes`"})
    target = runtime.DeltaTarget(rec, p)
    assert not target.replaced_in_generation()
    bronze = bronze_df(spark, [(1, "11111111111", "ana", "2025-01-01"), (2, "2", "bia", "2025-01-01")])
    counters = runtime.replace_batch(bronze, 0, p, target, record=False)

    assert serverless == [] and recorded_writes == []  # no conf, no cache, no DataFrameWriter: two statements
    creates = [s for s in rec.statements if s.startswith("CREATE OR REPLACE")]
    assert [c.split(" USING")[0] for c in creates] == [
        "CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes_quarantine`",
        "CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes`",
    ]
    assert "PARTITIONED BY (`uf`) LOCATION 's3://lake/silver/clientes'" in creates[1]
    assert [r["id"] for r in rec.replaced["`lakehouse360`.`silver`.`clientes`"]] == [1]
    assert [r["id"] for r in rec.replaced["`lakehouse360`.`silver`.`clientes_quarantine`"]] == [2]
    assert rec.props == {contract.REFRESH_PROPERTY: "fr1", contract.SPEC_HASH_PROPERTY: FULL_REFRESH_HASH}
    assert (counters["rows_out"], counters["quarantined"], counters["replaced"]) == (1, 1, 1)
    assert target.replaced_in_generation()


def test_a_new_silver_records_the_spec_it_is_built_with(spark, serverless):
    p = contract.parse_payload(payload(spec_hash=FULL_REFRESH_HASH))
    rec = Recorder(spark, registered=set())
    rec.table = lambda name: spark.createDataFrame([], "id bigint, uf string")  # the table just created
    runtime.DeltaTarget(rec, p).ensure_silver([("id", "bigint"), ("uf", "string")])
    (create,) = [s for s in rec.statements if s.startswith("CREATE TABLE")]
    assert create.endswith(
        f"LOCATION 's3://lake/silver/clientes' TBLPROPERTIES ('lh360.spec_hash' = '{FULL_REFRESH_HASH}')"
    )


# ---- Spark Connect (what serverless is) ---------------------------------------------------------------


CONNECT_SCRIPT = r"""
import json, sys
from pyspark.sql import SparkSession
from lh360.spark import contract, runtime
from lh360.spark import transforms as T
from tests.spark.conftest import MemoryTarget
from tests.spark.test_serverless import batch_with_null_keys, keyless_payload

spark = SparkSession.builder.remote("local[1]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
assert "connect" in type(spark).__module__, type(spark)
p = keyless_payload()
p["spec"]["silver"]["expectations"] = []
target = MemoryTarget(spark, p)
b0 = batch_with_null_keys(spark)
first = runtime.refine_batch(b0, 0, p, target)
once = sorted(str(r.asDict()) for r in target.silver.collect())
again = runtime.refine_batch(b0, 0, p, target)
twice = sorted(str(r.asDict()) for r in target.silver.collect())
print(json.dumps({"first": first["inserted"], "again": again["inserted"], "same": once == twice, "rows": len(once)}))
spark.stop()
"""


def test_refine_runs_on_spark_connect_and_a_replay_changes_nothing():
    """Serverless is Spark Connect: the refine of a batch (and its replay) on `remote("local")`, in a
    process of its own (a Connect session cannot live beside the classic one of the other tests)."""
    result = run_on_spark_connect(CONNECT_SCRIPT)
    assert result == {"first": 2, "again": 0, "same": True, "rows": 2}  # the keyless row is quarantined


def run_on_spark_connect(script: str) -> dict:
    """Run `script` (which prints one JSON line last) in a process of its own on `remote("local")`; its JSON."""
    import os
    import subprocess
    import sys

    pytest.importorskip("grpc", reason="pyspark's Spark Connect client needs grpcio (pip install 'pyspark[connect]')")
    from tests.databricks_support import REPO

    # SPARK_TESTING: the local Connect server takes an ephemeral port and the client asks it which (pyspark's
    # own parallel tests do so); on the fixed default port, two such tests at once collide
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_TESTING": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
