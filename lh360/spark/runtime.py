"""The Spark side of lh360's job: Delta and Unity Catalog I/O (DeltaTarget), the micro-batch functions and
the availableNow streams of ingest and refine, and the gold aggregate. pyspark is imported inside the
functions (Spark Connect on serverless).

Serverless compute is Spark Connect: it accepts only a short allow-list of Spark confs and refuses
``cache()``/``persist()``. The job sets no conf and caches nothing; every write is idempotent by itself:
appends carry the DataFrameWriter options ``txnAppId``/``txnVersion`` (the micro-batch id), and the refine
MERGE, which cannot carry them, changes nothing when a batch is replayed (a version no later than silver's
is ignored; a row whose key is NULL, which a MERGE would never match, is quarantined as ``null_key`` and never
reaches it). A full refresh's replaces (CREATE OR REPLACE TABLE ... AS SELECT of the same micro-batch)
give the same tables when replayed (contract.py says when one is).

Without a cache, every action on a micro-batch reads its files again, so the batch functions keep actions
few and narrow. Ingest: one aggregate over the lineage columns (rows, files, sizes), then the append. Refine:
one aggregate that reads only the columns the expectations and keys name (Parquet column pruning;
it must run before any write, as a ``fail`` rule writes nothing), the quarantine append only when rows were
quarantined, then the MERGE. What the writes wrote comes from the writes themselves: the MERGE's own result
row, or its commit's ``operationMetrics`` (``DESCRIBE HISTORY``, table metadata, no data read), never from
counting the source again.

Quarantine replay (:func:`run_replay`, the ``replay`` step: lh360/engines/local/replay.py's semantics on
Spark), exactly once across crashes without a session conf. Replay N first overwrites quarantine with its
rows marked (``_replayed_at``, ``_replay_run`` = N, ``_replay_outcome``) in one commit carrying the app
transaction (``lh360-replay-<table>``, N), so a replayed overwrite is skipped by Delta. Then it MERGEs the
rows marked ``merged`` N into silver, and last records N in silver's table property ``lh360.replay``
(ALTER TABLE: a MERGE can carry neither writer options nor, on serverless, commit metadata). The MERGE takes
only versions STRICTLY later than silver's current row of their key (an equal sequence keeps silver's row,
as on the local engine), so once it has committed, the same MERGE again finds nothing later and changes
nothing: re-merging is a no-op, and the property need not share the MERGE's commit. A run that finds
quarantine's marks at N and silver's property before N (a crash after the overwrite, or after the MERGE
before the property) finishes N from the marks; one that finds both at N judges the pending rows as N + 1
(after the greater of the two: a replay number is never reused while Delta may hold its transaction).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

if __package__:  # inside the lh360 package (the ops box, the tests)
    from lh360.spark import contract as C
    from lh360.spark import transforms as T
else:  # uploaded: the files sit side by side and job.py put their folder on sys.path
    import contract as C  # type: ignore[no-redef]
    import transforms as T  # type: ignore[no-redef]


def load_payload(args: argparse.Namespace, spark_factory=None) -> dict:
    if args.payload_file:
        text = read_payload_file(args.payload_file, spark_factory)
    else:
        text = args.payload
    return C.parse_payload(text, args.step)


def read_payload_file(path: str, spark_factory=None) -> str:
    """A payload file: a local or /Workspace path with open(); a cloud URI (the lake's private
    `_lh360/payloads/`, where the ops box puts payloads too large for a parameter) through Spark, which
    holds the lake's credentials."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", path) and not path.startswith("file:"):
        if spark_factory is None:
            raise C.PayloadError(f"--payload-file: {path} is a URI: reading it needs Spark")
        try:
            rows = spark_factory().read.text(path, wholetext=True).collect()
        except Exception as e:
            raise C.PayloadError(f"--payload-file: cannot read {path}: {C.short_error(e, 500)}") from e
        return rows[0][0] if rows else ""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as e:
        raise C.PayloadError(f"--payload-file: cannot read {path}: {e}") from e


# --------------------------------------------------------------------------- Spark I/O


def _ship_modules() -> None:
    """foreachBatch functions run in a server-side Python worker on serverless / Spark Connect, where the
    job's files are not on sys.path: pickle this module, the contract and the transforms by value."""
    try:
        from pyspark import cloudpickle

        for module in (sys.modules[__name__], C, T):
            cloudpickle.register_pickle_by_value(module)
    except Exception:
        pass


def _delta_exists(spark, path: str) -> bool:
    try:
        spark.read.format("delta").load(path).schema  # noqa: B018 - reads the Delta log
        return True
    except Exception:
        return False


def _table_exists(spark, name: str) -> bool:
    try:
        return bool(spark.catalog.tableExists(name))
    except Exception:
        try:
            spark.sql(f"DESCRIBE TABLE {name}")
            return True
        except Exception:
            return False


def last_commit_metrics(spark, name: str) -> dict[str, str]:
    """The operationMetrics of the table's last commit (``DESCRIBE HISTORY``: the log, no data file read)."""
    row = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
    return dict((row["operationMetrics"] if row is not None else None) or {})


def _last_version(spark, ref: str) -> int | None:
    row = spark.sql(f"DESCRIBE HISTORY {ref} LIMIT 1").first()
    return None if row is None else int(row["version"])


class DeltaTarget:
    """The Delta/Unity Catalog side of ingest and refine (the part open-source Spark cannot run).
    Tests substitute an in-memory target with the same methods."""

    landing_format = "cloudFiles"  # Auto Loader; tests use a plain file stream ("json")

    def __init__(self, spark, payload: dict):
        self.spark = spark
        self.payload = payload
        self.spec = payload["spec"]
        self.paths = payload["paths"]

    # ingest
    def read_landing_stream(self, options: dict[str, str]):
        """The Auto Loader stream with the lineage columns (``_batch_id`` is added per batch)."""
        from pyspark.sql import functions as F

        return (
            self.spark.readStream.format(self.landing_format)
            .options(**options)
            .load(self.paths["landing"])
            .select(
                "*",
                F.col("_metadata.file_path").alias("_source_file"),
                F.col("_metadata.file_modification_time").alias("_source_modified_at"),
                F.current_timestamp().alias("_ingested_at"),
                F.col("_metadata.file_size").alias(C.FILE_SIZE_COLUMN),
            )
        )

    def append_bronze(self, df, batch_id: int, files: list[str] | None = None) -> None:
        opts = C.bronze_writer_options(self.payload, batch_id, files)
        self._append(df, opts, C.table_name(self.payload, "bronze"), self.paths["bronze"])

    def _append(self, df, options: dict[str, str], name: str | None, path: str) -> None:
        """Append by the table's name once Unity Catalog has it: a schema that grows (mergeSchema) is then
        recorded in the catalog too. A write to the path would change the Delta log only, and UC's
        metadata (information_schema, Catalog Explorer, readers through UC) would not show the new
        columns. Before the table is registered (its first write), by path."""
        writer = df.write.format("delta").mode("append").options(**options)
        if name and _table_exists(self.spark, name):
            writer.saveAsTable(name)
        else:
            writer.save(path)

    def ingested_files(self):
        """The landing files bronze already holds (one `_source_file` column), to keep them out of the first
        run of a new checkpoint generation."""
        if not _delta_exists(self.spark, self.paths["bronze"]):
            return self.spark.createDataFrame([], "_source_file string")
        return self.spark.read.format("delta").load(self.paths["bronze"]).select("_source_file").distinct()

    def register_bronze(self) -> None:
        if _delta_exists(self.spark, self.paths["bronze"]):
            self.spark.sql(C.create_external_table_sql(C.table_name(self.payload, "bronze"), self.paths["bronze"]))

    # refine
    def bronze_exists(self) -> bool:
        return _delta_exists(self.spark, self.paths["bronze"])

    def read_bronze_stream(self):
        """Bronze as a Delta streaming source: only the rows committed since the last run (options:
        contract.bronze_reader_options)."""
        opts = C.bronze_reader_options(self.payload)
        return self.spark.readStream.format("delta").options(**opts).load(self.paths["bronze"])

    def read_bronze_empty(self):
        """No bronze row, with bronze's columns (a full refresh of a bronze that holds nothing)."""
        return self.spark.read.format("delta").load(self.paths["bronze"]).limit(0)

    def ensure_silver(self, columns: list[tuple[str, str]]) -> None:
        name, path = C.table_name(self.payload, "silver"), self.paths["silver"]
        if not _table_exists(self.spark, name):
            if _delta_exists(self.spark, path):  # data without a catalog entry: adopt it
                self.spark.sql(C.create_external_table_sql(name, path))
            else:
                part = T.silver_spec(self.spec).get("partition_by") or []
                props = C.silver_properties(self.payload)  # the spec it is built with (spec drift)
                self.spark.sql(C.create_external_table_sql(name, path, columns, list(part), props))
        existing = {f.name.lower() for f in self.spark.table(name).schema.fields}
        missing = [(c, t) for c, t in columns if c.lower() not in existing]
        if missing:
            self.spark.sql(C.add_columns_sql(name, missing))

    def read_current(self):
        df = self.spark.table(C.table_name(self.payload, "silver"))
        return df.where("is_current") if "is_current" in df.columns else df

    def append_quarantine(self, df, batch_id: int) -> None:
        name = self.payload["tables"].get("quarantine")
        self._append(df, C.quarantine_writer_options(self.payload, batch_id), name, self.paths["quarantine"])
        if name:
            self.spark.sql(C.create_external_table_sql(name, self.paths["quarantine"]))

    def replace_quarantine(self, df) -> None:
        """A full refresh: quarantine replaced by `df` in one commit (by name when the payload names it)."""
        name = self.payload["tables"].get("quarantine")
        path, props = self.paths["quarantine"], C.refresh_properties(self.payload, "quarantine")
        if not name:  # no catalog name to give it: overwrite by path (schema replaced too)
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
            return
        self._replace(df, name, path, None, props)

    def _replace(self, df, name: str, path: str, partition_by: list[str] | None, props: dict[str, str]) -> None:
        """CREATE OR REPLACE TABLE ... AS SELECT from the frame; a Delta table at the path that the catalog
        does not know yet is adopted first (a replace would not take a location that holds a table)."""
        if not _table_exists(self.spark, name) and _delta_exists(self.spark, path):
            self.spark.sql(C.create_external_table_sql(name, path))
        view = C.view_name(self.payload, "replace")
        df.createOrReplaceTempView(view)
        self.spark.sql(C.replace_table_sql(name, path, C.quote(view), partition_by, props))

    def replaced_in_generation(self) -> bool:
        """Whether a full refresh of this checkpoint generation already replaced silver (its table property)."""
        name = C.table_name(self.payload, "silver")
        if not _table_exists(self.spark, name):
            return False
        props = {r["key"]: r["value"] for r in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
        return props.get(C.REFRESH_PROPERTY) == str(self.payload.get("state_generation"))

    def replace_silver(self, df) -> int:
        """A full refresh: silver replaced by `df` in one commit (data, columns, partitioning, and the spec
        hash as a table property); the rows written, from the commit's operationMetrics."""
        name = C.table_name(self.payload, "silver")
        part = list(T.silver_spec(self.spec).get("partition_by") or [])
        self._replace(df, name, self.paths["silver"], part, C.refresh_properties(self.payload, "silver"))
        return int(last_commit_metrics(self.spark, name).get("numOutputRows") or 0)

    def merge(self, source_df, batch_id: int, columns: list[str]) -> dict[str, int]:
        """MERGE the batch's rows into silver (a replay changes nothing: see the module docstring). Every
        row has its key: refine_transform quarantined those without one. No session conf: serverless refuses
        Delta's txn confs. The counters are the MERGE's own: its result row, else its commit's
        operationMetrics (SCD2 counts the rows it closed as updated)."""
        view = C.view_name(self.payload, "refine")
        source_df.createOrReplaceTempView(view)
        json_columns = [f.name for f in source_df.schema.fields if T.has_map(f.dataType)]
        rows = self.spark.sql(C.merge_sql(self.payload, columns, C.quote(view), json_columns)).collect()
        result = rows[0].asDict() if rows else {}
        ins, upd = result.get("num_inserted_rows"), result.get("num_updated_rows")
        if ins is None or upd is None:
            metrics = last_commit_metrics(self.spark, C.table_name(self.payload, "silver"))
            ins, upd = metrics.get("numTargetRowsInserted"), metrics.get("numTargetRowsUpdated")
        return {"inserted": int(ins or 0), "updated": int(upd or 0)}

    # both
    # replay
    def replay_missing(self) -> str | None:
        """The table a replay needs that does not exist (quarantine or silver), or None."""
        if not self._quarantine_name() and not _delta_exists(self.spark, self.paths["quarantine"]):
            return "quarantine"
        if not _table_exists(self.spark, C.table_name(self.payload, "silver")):
            return "silver"
        return None

    def _quarantine_name(self) -> str | None:
        """Quarantine's catalog name once Unity Catalog has the table (the job registers it), else None."""
        name = self.payload["tables"].get("quarantine")
        return name if name and _table_exists(self.spark, name) else None

    def _quarantine_ref(self) -> str:
        """Quarantine in SQL: by name once the catalog has it, else by path."""
        return self._quarantine_name() or f"delta.{C.quote(self.paths['quarantine'])}"

    def read_quarantine(self):
        name = self._quarantine_name()
        return self.spark.table(name) if name else self.spark.read.format("delta").load(self.paths["quarantine"])

    def add_replay_columns(self) -> None:
        """The mark (and lineage) columns quarantine lacks, added by the table's name when the catalog has it,
        so that Unity Catalog records them too (a write by path would change the Delta log only)."""
        held = {f.name.lower() for f in self.read_quarantine().schema.fields}
        missing = [(c, t) for c, t in (*T.QUARANTINE_LINEAGE, *T.REPLAY_MARKS) if c.lower() not in held]
        if missing:
            self.spark.sql(C.add_columns_sql(self._quarantine_ref(), missing))

    def mark_quarantine(self, df, run: int) -> None:
        """Quarantine overwritten by `df` (every row, this replay's marked; its columns already the table's)
        in one commit carrying the app transaction (lh360-replay-<table>, run): Delta skips it when that
        transaction is recorded. By name once Unity Catalog has the table, as the job's appends go: an
        overwrite whose condition is always true, whose writer options Delta reads as an append's."""
        from pyspark.sql import functions as F

        name = self._quarantine_name()
        opts = C.replay_writer_options(self.payload, run)
        if name:
            df.writeTo(name).options(**opts).overwrite(F.lit(True))
        else:
            df.write.format("delta").mode("overwrite").options(**opts).save(self.paths["quarantine"])

    def replayed_run(self) -> int:
        """The last replay whose merge into silver finished (silver's table property), -1 before any."""
        name = C.table_name(self.payload, "silver")
        return C.replayed_run({r["key"]: r["value"] for r in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()})

    def merge_replay(self, source_df, columns: list[str]) -> dict[str, int | None]:
        """MERGE a replay's rows into silver (every key is set: NULL keys stay in quarantine); the counters
        are the MERGE's own metrics."""
        view = C.view_name(self.payload, "replay")
        source_df.createOrReplaceTempView(view)
        json_columns = [f.name for f in source_df.schema.fields if T.has_map(f.dataType)]
        rows = self.spark.sql(C.replay_merge_sql(self.payload, columns, C.quote(view), json_columns)).collect()
        metrics = rows[0].asDict() if rows else {}
        return {"inserted": metrics.get("num_inserted_rows"), "updated": metrics.get("num_updated_rows")}

    def record_replayed(self, run: int) -> None:
        """Silver's `lh360.replay` property set to `run`: its merge has finished."""
        name = C.table_name(self.payload, "silver")
        self.spark.sql(C.set_properties_sql(name, {C.REPLAY_PROPERTY: str(int(run))}))

    def versions(self) -> dict[str, int | None]:
        """The versions silver and quarantine are at (DESCRIBE HISTORY)."""
        silver = C.table_name(self.payload, "silver")
        return {
            "silver_version": _last_version(self.spark, silver),
            "quarantine_version": _last_version(self.spark, self._quarantine_ref()),
        }

    # all steps
    def record_metrics(self, step: str, batch_id: int, counters: dict) -> None:
        from pyspark.sql import functions as F

        p = self.payload
        df = self.spark.createDataFrame(
            [(p["run_id"], step, p["table"], int(batch_id), json.dumps(counters, default=str))],
            "run_id string, step string, C.table_name string, batch_id bigint, counters string",
        ).withColumn("recorded_at", F.current_timestamp())
        opts = {"mergeSchema": "true", "txnAppId": C.txn_app_id(p, f"metrics-{step}"), "txnVersion": str(batch_id)}
        df.write.format("delta").mode("append").options(**opts).save(C.metrics_path(p))

    def read_metrics(self, step: str) -> list[dict]:
        if not _delta_exists(self.spark, C.metrics_path(self.payload)):
            return []
        from pyspark.sql import functions as F

        df = self.spark.read.format("delta").load(C.metrics_path(self.payload))
        rows = df.where((F.col("run_id") == self.payload["run_id"]) & (F.col("step") == step)).collect()
        return [json.loads(r["counters"]) for r in sorted(rows, key=lambda r: r["batch_id"])]


def ingest_batch(batch_df, batch_id: int, payload: dict, target) -> dict:
    """One Auto Loader micro-batch: stamp ``_batch_id``, append to bronze (idempotent), count."""
    from pyspark.sql import functions as F

    out = batch_df.withColumn("_batch_id", F.lit(int(batch_id)).cast("bigint"))
    if payload.get("recover"):  # the first run of a new checkpoint: what bronze already holds stays out
        out = out.join(target.ingested_files(), "_source_file", "left_anti")
    # one pass over the batch (no cache(): serverless refuses it): rows, rescued rows, and each file with its
    # size (Auto Loader gives a file to one micro-batch only, so sizes add up); then the write
    has_size = C.FILE_SIZE_COLUMN in out.columns
    file_cols = ["_source_file", C.FILE_SIZE_COLUMN] if has_size else ["_source_file"]
    aggs = [F.count(F.lit(1)).alias("rows"), F.collect_set(F.struct(*file_cols)).alias("files")]
    if C.RESCUED_DATA_COLUMN in out.columns:
        aggs.append(F.count(C.RESCUED_DATA_COLUMN).alias("rescued"))
    row = out.agg(*aggs).first()
    files = [f["_source_file"] for f in row["files"] if f["_source_file"] is not None]
    counters = {"batch_id": int(batch_id), "rows_in": int(row["rows"]), "files": len(files)}
    counters["rows_out"] = counters["rows_in"]
    if C.RESCUED_DATA_COLUMN in out.columns:
        counters["rescued"] = int(row["rescued"])
    data = out
    if has_size:
        counters["bytes"] = sum(int(f[C.FILE_SIZE_COLUMN] or 0) for f in row["files"])
        data = out.drop(C.FILE_SIZE_COLUMN)
    if counters["rows_in"]:
        target.append_bronze(data, batch_id, files)
    target.record_metrics("ingest", batch_id, counters)
    return counters


def replace_batch(batch_df, batch_id: int, payload: dict, target, record: bool = True) -> dict:
    """A full refresh's micro-batch (all of bronze): the same rules as a merged batch (expectations, lh360's
    own quarantine reasons, dedupe, SCD, personal data), but quarantine, then silver, are REPLACED, each in
    one commit. Raises ExpectationFailed before writing. `record`: a real micro-batch records its metrics."""
    spec = payload["spec"]
    source, quarantine, counters = T.refine_transform(batch_df, spec, pii_key(payload, batch_df.sparkSession))
    counters["batch_id"] = int(batch_id)
    columns = T.silver_schema_columns(source, spec)
    if T.scd_type(spec) == 2:
        rows = T.scd2_rebuild(source, spec)
    else:
        rows = source
    silver = rows.select(*[T.col(c) for c, _ in columns])
    target.replace_quarantine(quarantine)
    written = target.replace_silver(silver)
    counters.update(inserted=written, updated=0, rows_out=written, replaced=1)
    if record:
        target.record_metrics("refine", batch_id, counters)
    return counters


def refine_batch(batch_df, batch_id: int, payload: dict, target) -> dict:
    """One bronze micro-batch -> quarantine + silver MERGE. Raises ExpectationFailed before writing.
    Micro-batch 0 of a full refresh (a new checkpoint: all of bronze) replaces them instead (replace_batch)."""
    if payload.get("full_refresh") and int(batch_id) == 0:
        return replace_batch(batch_df, batch_id, payload, target)
    spec = payload["spec"]
    # no cache() (serverless refuses it): each action reads the batch's bronze files again, so there are
    # at most three, and the first reads only the rule columns (see the module docstring)
    source, quarantine, counters = T.refine_transform(batch_df, spec, pii_key(payload, batch_df.sparkSession))
    counters["batch_id"] = int(batch_id)
    columns = T.silver_schema_columns(source, spec)
    target.ensure_silver(columns)
    if counters["quarantined"]:
        target.append_quarantine(quarantine, batch_id)
    data_cols = [c for c, _ in columns if c not in T.SCD2_COLUMNS]
    result = {"inserted": 0, "updated": 0}
    if counters["kept"]:
        if T.scd_type(spec) == 2:
            merge_source = T.scd2_changes(target.read_current(), source, spec)
        else:
            merge_source = source.select(*[T.col(c) for c in data_cols])
        result = target.merge(merge_source, batch_id, data_cols)
    counters["inserted"], counters["updated"] = result["inserted"], result["updated"]
    counters["rows_out"] = result["inserted"] + result["updated"]
    target.record_metrics("refine", batch_id, counters)
    return counters


def _run_stream(start_query, step: str, allow_restart: bool) -> int:
    """Run an availableNow query to completion; restart it (at most C.MAX_SCHEMA_RESTARTS times) when it
    stopped on a schema change the restart resolves. Returns the number of restarts."""
    restarts = 0
    while True:
        query = start_query()
        try:
            query.awaitTermination()
            exc = query.exception()
            if exc is not None:
                raise RuntimeError(str(exc))
            return restarts
        except Exception as e:
            if allow_restart and restarts < C.MAX_SCHEMA_RESTARTS and C.is_marked(e, C.SCHEMA_CHANGE_MARKERS[step]):
                restarts += 1
                print(
                    f"lh360: {step}: schema changed, restarting the stream ({restarts}/{C.MAX_SCHEMA_RESTARTS})",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            raise


def run_ingest(spark, payload: dict, target_factory=DeltaTarget) -> dict:
    """Landing -> bronze with Auto Loader (availableNow). ``target_factory(spark, payload)`` builds
    the Delta side (tests pass an in-memory one); it is also called inside foreachBatch."""
    target = target_factory(spark, payload)
    opts = C.autoloader_options(payload)
    _ship_modules()

    def batch(df, batch_id):
        ingest_batch(df, batch_id, payload, target_factory(df.sparkSession, payload))

    def start():
        return (
            target.read_landing_stream(opts)
            .writeStream.queryName(f"lh360-ingest-{payload['table']}")
            .foreachBatch(batch)
            .option("checkpointLocation", C.checkpoint_location(payload, "bronze"))
            .trigger(availableNow=True)
            .start()
        )

    zero = {"rows_in": 0, "rows_out": 0, "files": 0, "bytes": 0, "rescued": 0, "batches": 0}
    try:
        restarts = _run_stream(start, "ingest", opts["cloudFiles.schemaEvolutionMode"] == "addNewColumns")
    except Exception as e:
        if C.is_marked(e, C.EMPTY_LANDING_MARKERS):
            return {**zero, "note": "landing is empty: no file to infer a schema from yet"}
        raise
    target.register_bronze()
    per_batch = target.read_metrics("ingest")
    return {**zero, **C.sum_counters(per_batch), "batches": len(per_batch), "schema_restarts": restarts}


def run_refine(spark, payload: dict, target_factory=DeltaTarget) -> dict:
    """Bronze -> silver: a Delta stream (availableNow, own checkpoint) whose foreachBatch runs
    :func:`refine_batch`. A failed ``fail`` expectation stops it before that batch writes anything."""
    target = target_factory(spark, payload)
    zero = {"rows_in": 0, "rows_out": 0, "dropped": 0, "quarantined": 0, "warned": {}, "failed": {}, "batches": 0}
    if not target.bronze_exists():
        if payload.get("full_refresh"):  # silver and quarantine stay as they are
            raise RuntimeError("bronze does not exist: there is nothing to rebuild silver from")
        return {**zero, "note": "bronze does not exist yet: nothing to refine"}
    _ship_modules()

    def batch(df, batch_id):
        refine_batch(df, batch_id, payload, target_factory(df.sparkSession, payload))

    def start():
        return (
            target.read_bronze_stream()
            .writeStream.queryName(f"lh360-refine-{payload['table']}")
            .foreachBatch(batch)
            .option("checkpointLocation", C.checkpoint_location(payload, "silver"))
            .trigger(availableNow=True)
            .start()
        )

    restarts = _run_stream(start, "refine", True)
    per_batch = target.read_metrics("refine")
    summary = {**zero, **C.sum_counters(per_batch), "batches": len(per_batch), "schema_restarts": restarts}
    if payload.get("full_refresh"):
        if not any(c.get("replaced") for c in per_batch) and not target.replaced_in_generation():
            # bronze holds no row, so the stream ran no batch: silver and quarantine are replaced by empty
            # tables (no metrics: batch 0 of this checkpoint is still to come, and will be all of bronze)
            summary.update(replace_batch(target.read_bronze_empty(), 0, payload, target, record=False))
        summary["full_refresh"] = True
    return summary


def pii_key(payload: dict, spark) -> bytes | None:
    """The HMAC key of silver.pii's `hash`, when the spec needs it: never in the payload. On Databricks, the
    secret the payload names (`pii_secret`: {scope, key}); elsewhere (tests) LH360_PII_KEY."""
    if not T.needs_pii_key(payload["spec"]):
        return None
    secret = payload.get("pii_secret") or {}
    if secret.get("scope") and secret.get("key"):
        from pyspark.dbutils import DBUtils  # Databricks runtime only

        return DBUtils(spark).secrets.get(secret["scope"], secret["key"]).encode("utf-8")
    key = os.environ.get("LH360_PII_KEY")
    return key.encode("utf-8") if key else None


def pii_views(spark, payload: dict, name: str) -> None:
    """The temp views gold `name` reads its spec's silver through (silver.pii's gold rules, lh360/pii.py)."""
    for view, entry in (payload.get("pii_views") or {}).get(name, {}).items():
        frame = T.gold_view(
            spark.table(entry["table"]), payload["spec"], entry.get("allow") or [], pii_key(payload, spark)
        )
        frame.createOrReplaceTempView(view)


def run_aggregate(spark, payload: dict) -> dict:
    tables = {}
    for name in payload["gold"]:
        started = time.monotonic()
        pii_views(spark, payload, name)
        spark.sql(C.gold_sql(payload, name))
        rows = spark.table(C.table_name(payload, "gold", name)).count()
        tables[name] = {"rows": rows, "seconds": round(time.monotonic() - started, 3)}
    return {"rows_out": sum(t["rows"] for t in tables.values()), "tables": tables}


def run_replay(spark, payload: dict, target_factory=DeltaTarget) -> dict:
    """Quarantine replay (the module docstring says how it is exactly once): the pending quarantined rows
    judged against the spec's rules now, those that leave quarantine marked, those that pass merged into
    silver by sequence. Raises ExpectationFailed (nothing written) when one that would leave fails a `fail`
    rule."""
    target = target_factory(spark, payload)
    spec = payload["spec"]
    missing = target.replay_missing()
    if missing:
        raise RuntimeError(f"{missing}.{payload['table']} does not exist: there is nothing to replay")
    quarantine = target.read_quarantine()
    names = T.replay_silver_columns(quarantine, spec)
    marked, merged = T.last_replay_run(quarantine), target.replayed_run()
    summary: dict = {"resumed": marked > merged, "evaluated": 0, "passed": 0, "dropped": 0, "still_quarantined": 0}
    summary.update(inserted=0, updated=0, stale=0, replay_run=marked)
    if not summary["resumed"]:
        run = max(marked, merged) + 1
        recorded = payload.get("recorded_rules") or []
        counters = T.replay_counters(T.judge_quarantine(quarantine, spec, recorded), spec)
        summary.update(counters, replay_run=None)
        if counters["passed"] + counters["dropped"] == 0:  # nothing leaves quarantine: write nothing
            return {**summary, **target.versions()}
        # the marks are written from quarantine as read after its columns were added: a frame read before
        # that schema change would not be the table's
        target.add_replay_columns()
        judged = T.judge_quarantine(target.read_quarantine(), spec, recorded)
        target.mark_quarantine(T.marked_quarantine(judged, run), run)
        quarantine = target.read_quarantine()
        if T.last_replay_run(quarantine) != run:
            raise RuntimeError(
                f"quarantine holds no mark of replay {run} after its overwrite: Delta skipped it as a transaction "
                f"it had recorded ({C.txn_app_id(payload, 'replay')}, {run})"
            )
        summary["replay_run"] = run
    summary.update(merge_replayed(target, spec, T.replayed_rows(quarantine, summary["replay_run"], names), names))
    target.record_replayed(summary["replay_run"])
    return {**summary, **target.versions()}


def merge_replayed(target, spec: dict, rows, names: list[str]) -> dict:
    """MERGE a replay's `merged` rows into silver: only versions strictly later than silver's current row
    (so a second MERGE of the same rows changes nothing); the others are counted `stale`."""
    passed = rows.count()
    current = target.read_current()
    later = T.replay_later(current, rows, spec)
    fresh = later.count()
    counts = {"passed": passed, "inserted": 0, "updated": 0, "stale": passed - fresh}
    if not fresh:
        return counts
    source = T.replay_merge_source(current, later, spec)
    applied = target.merge_replay(source, [n for n in names if n not in T.SCD2_COLUMNS])
    # the MERGE's own metrics; the source cannot be counted after it (it is computed against silver)
    counts.update(inserted=int(applied["inserted"] or 0), updated=int(applied["updated"] or 0))
    return counts


RUNNERS = {"ingest": run_ingest, "refine": run_refine, "aggregate": run_aggregate, "replay": run_replay}


def get_spark(payload: dict):
    from pyspark.sql import SparkSession

    # no builder options: on serverless (Spark Connect) static confs such as the app name cannot be set
    return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
