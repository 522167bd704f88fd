"""Fixtures of the PySpark job tests: one local SparkSession per test session, and an in-memory
stand-in for the Delta/Unity Catalog side of the job (open-source Spark has no Delta or Auto Loader)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "spark: runs the PySpark job under local pyspark (needs Java 17)")


def spark_unavailable() -> str | None:
    """Why the Spark tests cannot run here, or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: /work/venv/bin/pip install 'pyspark>=4,<5' (or pip install -e '.[spark]')"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "Java is not installed (pyspark 4 needs Java 17 on PATH or JAVA_HOME)"
    return None


@pytest.fixture(scope="session")
def spark():
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind to loopback only
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python UDF workers: this venv's interpreter
    session = (
        SparkSession.builder.master("local[2]")
        .appName("lh360-spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        # tiny data: interpreted execution and no adaptive re-planning are faster than codegen + AQE
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.adaptive.enabled", "false")
        # short-lived JVM: C1-only JIT and the serial GC warm up faster on a 2-core machine
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


class MemoryTarget:
    """The methods of ``runtime.DeltaTarget`` on plain DataFrames, emulating what the job relies on from
    Delta: MERGE semantics (via the reference ``scd1_apply``/``scd2_apply``), and app-transaction
    idempotency of APPENDS and of the replay's quarantine OVERWRITE only (a write whose txnVersion is not
    above the app's last one is skipped): a MERGE carries no app transaction (serverless refuses the session
    confs that would give it one), so a replayed MERGE is applied again, as on Databricks."""

    def __init__(self, spark, payload, *, bronze_stream=None, landing_stream=None, bronze_batch=None):
        self.spark = spark
        self.payload = payload
        self.bronze_stream = bronze_stream
        self.bronze_batch = bronze_batch  # bronze as a batch frame (a full refresh of a bronze with no row)
        self.landing_stream = landing_stream
        self.bronze = None
        self.silver = None
        self.quarantine = None
        self.metrics: list[tuple[str, str, int, dict]] = []
        self.txn: dict[str, int] = {}
        self.calls: list[tuple] = []
        self.properties: dict[str, dict[str, str]] = {"silver": {}, "quarantine": {}}  # Delta table properties

    # the job calls target_factory(spark, payload) on the driver and inside foreachBatch
    def factory(self, spark, payload):
        return self

    def _local(self, df):
        # materialise (as a Delta commit would): later batches must not re-run this batch's plan
        return df.localCheckpoint(eager=True)

    def _skip(self, step: str, batch_id: int) -> bool:
        from lh360.spark import contract

        app = contract.txn_app_id(self.payload, step)  # Delta keys app transactions by the writer's app id
        if batch_id <= self.txn.get(app, -1):
            return True
        self.txn[app] = batch_id
        return False

    # ingest
    def read_landing_stream(self, options):
        self.calls.append(("read_landing_stream", dict(options)))
        return self.landing_stream(self.spark)

    def append_bronze(self, df, batch_id, files=None):
        self.calls.append(("append_bronze", batch_id))
        if self._skip("ingest", batch_id):
            return
        df = self._local(df)
        self.bronze = df if self.bronze is None else self.bronze.unionByName(df, allowMissingColumns=True)

    def register_bronze(self):
        self.calls.append(("register_bronze",))

    def ingested_files(self):
        if self.bronze is None:
            return self.spark.createDataFrame([], "_source_file string")
        return self.bronze.select("_source_file").distinct()

    # refine
    def bronze_exists(self):
        return self.bronze_stream is not None

    def read_bronze_stream(self):
        return self.bronze_stream(self.spark)

    def read_bronze_empty(self):
        return self.bronze_batch(self.spark).limit(0)

    def ensure_silver(self, columns):
        from lh360.spark import contract

        self.calls.append(("ensure_silver", list(columns)))
        if self.silver is None:
            ddl = ", ".join(f"`{c}` {t}" for c, t in columns)
            self.silver = self.spark.createDataFrame([], ddl)
            self.properties["silver"] = contract.silver_properties(self.payload)

    # a full refresh: each table replaced in one commit (data, schema and properties)
    def replace_quarantine(self, df):
        from lh360.spark import contract

        self.calls.append(("replace_quarantine",))
        self.quarantine = self._local(df)
        self.properties["quarantine"] = contract.refresh_properties(self.payload, "quarantine")

    def replace_silver(self, df):
        from lh360.spark import contract

        self.calls.append(("replace_silver",))
        self.silver = self._local(df)
        self.properties["silver"] = contract.refresh_properties(self.payload, "silver")
        return self.silver.count()

    def replaced_in_generation(self):
        from lh360.spark import contract

        return self.properties["silver"].get(contract.REFRESH_PROPERTY) == str(self.payload.get("state_generation"))

    def read_current(self):
        return self.silver.where("is_current") if "is_current" in self.silver.columns else self.silver

    def append_quarantine(self, df, batch_id):
        self.calls.append(("append_quarantine", batch_id))
        if self._skip("quarantine", batch_id):
            return
        df = self._local(df)
        self.quarantine = df if self.quarantine is None else self.quarantine.unionByName(df)

    def merge(self, source_df, batch_id, columns):
        from lh360.spark import transforms as T

        self.calls.append(("merge", batch_id, list(columns)))
        spec = self.payload["spec"]
        keys, seq = T.keys_and_sequence(spec)
        # refine quarantines a row without a key: a MERGE never matches NULL, so a replay would insert it again
        assert source_df.where(" OR ".join(f"`{k}` IS NULL" for k in keys)).count() == 0, "a NULL key reached MERGE"
        if T.scd_type(spec) == 2:
            src = self._local(source_df)
            changes = [r["_change"] for r in src.select("_change").collect()]
            ins, upd = changes.count("insert"), changes.count("close")
            self.silver = self._local(T.scd2_apply(self.silver, src, keys))
        else:
            from pyspark.sql import functions as F

            hits = self.silver.select(*keys).withColumn("_hit", F.lit(True))
            flags = [
                r["_hit"] for r in T.scd1_upserts(self.silver, source_df, keys, seq).join(hits, keys, "left").collect()
            ]
            upd = sum(1 for f in flags if f)
            ins = len(flags) - upd
            self.silver = self._local(T.scd1_apply(self.silver, source_df, keys, seq))
        return {"inserted": ins, "updated": upd}

    # quarantine replay
    def replay_missing(self):
        return "quarantine" if self.quarantine is None else ("silver" if self.silver is None else None)

    def read_quarantine(self):
        return self.quarantine

    def add_replay_columns(self):
        from lh360.spark import transforms as T

        self.calls.append(("add_replay_columns",))
        self.quarantine = self._local(T.with_replay_columns(self.quarantine))

    def mark_quarantine(self, df, run):
        """The overwrite carries the app transaction (lh360-replay-<table>, run): skipped when recorded."""
        self.calls.append(("mark_quarantine", run))
        if self._skip("replay", run):
            return
        self.quarantine = self._local(df)

    def replayed_run(self):
        from lh360.spark import contract

        return contract.replayed_run(self.properties["silver"])

    def merge_replay(self, source_df, columns):
        """A MERGE carries no app transaction: applied again when repeated, as on Databricks."""
        from pyspark.sql import functions as F

        from lh360.spark import transforms as T

        self.calls.append(("merge_replay", list(columns)))
        spec = self.payload["spec"]
        keys, seq = T.keys_and_sequence(spec)
        src = self._local(source_df)
        if T.scd_type(spec) == 2:
            changes = [r["_change"] for r in src.select("_change").collect()]
            self.silver = self._local(T.scd2_apply(self.silver, src, keys))
            return {"inserted": changes.count("insert"), "updated": changes.count("close")}
        hits = self.silver.select(*keys).withColumn("_hit", F.lit(True))
        ups = T.scd1_upserts(self.silver, src, keys, seq)  # as the MERGE: ties never reach it (see run_replay)
        flags = [r["_hit"] for r in ups.join(hits, keys, "left").collect()]
        self.silver = self._local(T.scd1_apply(self.silver, src, keys, seq))
        return {"inserted": sum(1 for f in flags if not f), "updated": sum(1 for f in flags if f)}

    def record_replayed(self, run):
        from lh360.spark import contract

        self.calls.append(("record_replayed", run))
        self.properties["silver"] = {**self.properties["silver"], contract.REPLAY_PROPERTY: str(run)}

    def versions(self):
        return {"silver_version": None, "quarantine_version": None}

    def record_metrics(self, step, batch_id, counters):
        if not self._skip(f"metrics-{step}", batch_id):
            self.metrics.append((self.payload["run_id"], step, batch_id, counters))

    def read_metrics(self, step):
        return [c for run_id, s, _, c in self.metrics if s == step and run_id == self.payload["run_id"]]


@pytest.fixture
def memory_target_cls():
    return MemoryTarget
