"""lh360's Spark job: one step (ingest | refine | aggregate) of one table, on Databricks.

Usage (a ``spark_python_task``; upload ``job.py`` and ``transforms.py`` to the same folder)::

    python job.py --step refine --payload '{"step": "refine", "table": "clientes", ...}'
    python job.py --step refine --payload-file /Workspace/Shared/lh360/runs/<run_id>.json
    python job.py --step refine --payload-file p.json --explain   # options + SQL, no Spark

pyspark + stdlib only (no lh360 import). Nothing here imports pyspark at module level, so the ops
box can use :func:`parse_payload`, :func:`plan`, :func:`parse_summary` and the option/SQL builders.

The payload (JSON, built by the ops box)::

    {"step": "refine", "table": "clientes", "run_id": "...", "catalog": "lakehouse360",
     "spec": {...the table spec (DESIGN.md's YAML) as JSON...},
     "paths": {"landing": "s3://b/raw/clientes/", "bronze": "s3://lake/bronze/clientes",
               "silver": "s3://lake/silver/clientes", "quarantine": "s3://lake/quarantine/clientes",
               "state": "s3://lake/_lh360/state/clientes"},
     "gold": {"clientes_por_uf": {"sql": "<Databricks SQL, fully qualified>", "path": "s3://lake/gold/clientes_por_uf"}},
     "tables": {"quarantine": "lakehouse360.silver.clientes_quarantine"},   # optional registrations
     "state_generation": 2}                                                 # optional, see txn_app_id()

Output: the last stdout line is one JSON object with ``"lh360_job": 1`` (see :func:`parse_summary`):
status, counters (rows_in, rows_out, dropped, quarantined, warned/failed per rule ...), error.
Exit codes: 0 ok, 1 an expectation with action ``fail`` failed, 2 bad payload/spec, 3 any other error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

try:  # inside the lh360 package
    from . import transforms as T
except ImportError:  # uploaded alone (under any name): transforms.py sits next to this file
    import os as _os

    if "__file__" in globals():
        _here = _os.path.dirname(_os.path.abspath(__file__))
        if _here not in sys.path:
            sys.path.insert(0, _here)
    import transforms as T  # type: ignore[no-redef]

JOB_FILES = ("job.py", "transforms.py")  # what the ops box uploads (same folder)
SUMMARY_KEY = "lh360_job"
SUMMARY_VERSION = 1
STEPS = ("ingest", "refine", "aggregate")
SCHEMA_EVOLUTION_MODES = ("addNewColumns", "rescue", "failOnNewColumns", "none")
DEFAULT_MAX_FILES_PER_BATCH = 1000
MAX_SCHEMA_RESTARTS = 3
RESCUED_DATA_COLUMN = "_rescued_data"
FILE_SIZE_COLUMN = "_lh360_file_size"  # carried through a micro-batch to count its bytes; never written
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
REQUIRED_PATHS = {"ingest": ("landing", "bronze", "state"), "refine": ("bronze", "silver", "quarantine", "state")}
EXIT_OK, EXIT_EXPECTATION_FAILED, EXIT_BAD_PAYLOAD, EXIT_ERROR = 0, 1, 2, 3
SCHEMA_CHANGE_MARKERS = {
    # Auto Loader (addNewColumns): the stream stops once on new columns; a restart picks them up
    "ingest": ("UNKNOWN_FIELD_EXCEPTION", "UnknownFieldException"),
    # Delta streaming source: bronze's schema grew under the refine stream; a restart picks it up
    "refine": ("DELTA_SCHEMA_CHANGED", "DELTA_SCHEMA_CHANGE_SINCE_ANALYSIS"),
}
EMPTY_LANDING_MARKERS = ("CF_EMPTY_DIR_FOR_SCHEMA_INFERENCE", "Unable to infer schema")


class PayloadError(ValueError):
    """The payload (or the spec inside it) is unusable; the message names the field."""


# --------------------------------------------------------------------------- payload


def _req(obj: dict, key: str, where: str, kind: type | tuple = str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PayloadError(f"{where}.{key}: required")
    if not isinstance(value, kind):
        raise PayloadError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def parse_payload(payload: str | bytes | dict, step: str | None = None) -> dict:
    """Parse and validate a payload (JSON text or dict) for ``step`` (default: the payload's).

    Returns a normalised copy (``step`` set, ``run_id``/``catalog``/``gold`` defaulted).
    Raises :class:`PayloadError` naming the field.
    """
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise PayloadError(f"payload: not valid JSON ({e})") from e
    if not isinstance(payload, dict):
        raise PayloadError("payload: must be a JSON object")
    p = dict(payload)
    if step is not None and p.get("step") not in (None, step):
        raise PayloadError(f"payload.step: {p.get('step')!r} does not match --step {step!r}")
    p["step"] = step or p.get("step")
    if p["step"] not in STEPS:
        raise PayloadError(f"payload.step: {p['step']!r} is not one of {', '.join(STEPS)}")
    _req(p, "table", "payload")
    p["run_id"] = str(p.get("run_id") or "manual")
    p["catalog"] = p.get("catalog") or ""
    if not isinstance(p["catalog"], str):
        raise PayloadError("payload.catalog: expected a string")
    spec = _req(p, "spec", "payload", dict)
    paths = p.get("paths") or {}
    if not isinstance(paths, dict):
        raise PayloadError("payload.paths: must be an object")
    p["paths"] = paths
    for key in REQUIRED_PATHS.get(p["step"], ()):
        _req(paths, key, "payload.paths")
    gold = p.get("gold") or {}
    if not isinstance(gold, dict):
        raise PayloadError("payload.gold: must be an object of name -> {sql, path}")
    p["gold"] = gold
    tables = p.get("tables") or {}
    if not isinstance(tables, dict):
        raise PayloadError("payload.tables: must be an object")
    p["tables"] = tables
    gen = p.get("state_generation")
    if gen is not None and (not isinstance(gen, int) or isinstance(gen, bool) or gen < 0):
        raise PayloadError("payload.state_generation: expected a non-negative integer")
    try:
        if p["step"] == "ingest":
            autoloader_options(p)  # validates spec.bronze
        elif p["step"] == "refine":
            T.validate_silver_spec(spec)
        else:
            if not gold:
                raise PayloadError("payload.gold: required for aggregate (name -> {sql, path})")
            for name, entry in gold.items():
                if not isinstance(entry, dict):
                    raise PayloadError(f"payload.gold.{name}: must be an object with sql and path")
                _req(entry, "sql", f"payload.gold.{name}")
                _req(entry, "path", f"payload.gold.{name}")
    except T.SpecError as e:
        raise PayloadError(f"payload.spec.{e}") from e
    return p


def load_payload(args: argparse.Namespace) -> dict:
    if args.payload_file:
        try:
            with open(args.payload_file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as e:
            raise PayloadError(f"--payload-file: cannot read {args.payload_file}: {e}") from e
    else:
        text = args.payload
    return parse_payload(text, args.step)


# --------------------------------------------------------------------------- names and SQL text


def quote(name: str) -> str:
    return T.quote(name)


def sql_string(value: str) -> str:
    """A Spark SQL string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_name(payload: dict, layer: str, name: str | None = None) -> str:
    """``<catalog>.<layer>.<name>`` quoted (``<layer>.<name>`` without a catalog)."""
    parts = [payload.get("catalog") or "", layer, name or payload["table"]]
    return ".".join(quote(x) for x in parts if x)


def txn_app_id(payload: dict, step: str) -> str:
    """Delta app id of a writer: ``lh360-<step>-<table>``; with ``state_generation`` N (bump it when
    a checkpoint is reset, since batch ids restart at 0 and Delta would skip them): ``...-gN``."""
    app = f"lh360-{step}-{payload['table']}"
    gen = payload.get("state_generation")
    return f"{app}-g{gen}" if gen else app


def state_path(payload: dict, *parts: str) -> str:
    return "/".join([payload["paths"]["state"].rstrip("/"), *parts])


def checkpoint_location(payload: dict, layer: str) -> str:
    return state_path(payload, "checkpoint", layer)


def metrics_path(payload: dict) -> str:
    """A small Delta table of per-batch counters (foreachBatch runs server-side on serverless
    compute, so counters travel through storage, not Python variables)."""
    return state_path(payload, "metrics")


def _view_name(payload: dict, step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"lh360_{step}_{payload['table']}_source")


def create_external_table_sql(
    name: str, location: str, columns: list[tuple[str, str]] | None = None, partition_by: list[str] | None = None
) -> str:
    """``CREATE TABLE IF NOT EXISTS <name> [(cols)] USING DELTA [PARTITIONED BY] LOCATION '<path>'``.
    Without columns the location must already hold a Delta table (its schema is adopted)."""
    sql = f"CREATE TABLE IF NOT EXISTS {name}"
    if columns:
        sql += " (" + ", ".join(f"{quote(c)} {t}" for c, t in columns) + ")"
    sql += " USING DELTA"
    if columns and partition_by:
        sql += " PARTITIONED BY (" + ", ".join(quote(c) for c in partition_by) + ")"
    return sql + f" LOCATION {sql_string(location)}"


def add_columns_sql(name: str, columns: list[tuple[str, str]]) -> str:
    return f"ALTER TABLE {name} ADD COLUMNS (" + ", ".join(f"{quote(c)} {t}" for c, t in columns) + ")"


# --------------------------------------------------------------------------- ingest options


def schema_hints(hints: Any) -> str:
    """``cloudFiles.schemaHints`` from ``spec.bronze.schema_hints``: ``{id: bigint, renda_mensal:
    "decimal(18,2)"}`` -> ``"id bigint, renda_mensal decimal(18,2)"``. Dotted names are nested fields
    (``endereco.uf string``); a part that is not a plain identifier is back-quoted. A string or a
    list of ``"name type"`` strings passes through."""
    if not hints:
        return ""
    if isinstance(hints, str):
        return hints.strip()
    if isinstance(hints, list):
        return ", ".join(str(h).strip() for h in hints)
    if not isinstance(hints, dict):
        raise PayloadError("payload.spec.bronze.schema_hints: expected a mapping of column -> type")
    out = []
    for name, typ in hints.items():
        if not str(typ or "").strip():
            raise PayloadError(f"payload.spec.bronze.schema_hints.{name}: empty type")
        parts = str(name).split(".")
        ident = ".".join(p if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) else quote(p) for p in parts)
        out.append(f"{ident} {str(typ).strip()}")
    return ", ".join(out)


def autoloader_options(payload: dict) -> dict[str, str]:
    """The ``cloudFiles`` reader options of the ingest step (all values are strings)."""
    spec = payload.get("spec") or {}
    bronze = spec.get("bronze") or {}
    source = spec.get("source") or {}
    if not isinstance(bronze, dict):
        raise PayloadError("payload.spec.bronze: must be a mapping")
    mode = bronze.get("schema_evolution") or "addNewColumns"
    if mode not in SCHEMA_EVOLUTION_MODES:
        raise PayloadError(
            f"payload.spec.bronze.schema_evolution: {mode!r} is not one of {', '.join(SCHEMA_EVOLUTION_MODES)}"
        )
    max_files = bronze.get("max_files_per_batch", DEFAULT_MAX_FILES_PER_BATCH)
    if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
        raise PayloadError("payload.spec.bronze.max_files_per_batch: expected a positive integer")
    fmt = (source.get("format") if isinstance(source, dict) else None) or "json"
    opts = {
        "cloudFiles.format": str(fmt),
        "cloudFiles.schemaLocation": state_path(payload, "schema"),
        "cloudFiles.schemaEvolutionMode": mode,
        "cloudFiles.inferColumnTypes": "true",
        "cloudFiles.maxFilesPerTrigger": str(max_files),
        "rescuedDataColumn": RESCUED_DATA_COLUMN,
    }
    hints = schema_hints(bronze.get("schema_hints"))
    if hints:
        opts["cloudFiles.schemaHints"] = hints
    return opts


def bronze_writer_options(payload: dict, batch_id: int, files: list[str] | None = None) -> dict[str, str]:
    """Options of the append of one ingest micro-batch to bronze (idempotent by batch id). The commit's
    userMetadata names the micro-batch's landing files, so the ops box can tell which files bronze holds
    (lh360/engines/databricks/landing_state.py) without reading the Auto Loader checkpoint."""
    return {
        "mergeSchema": "true",
        "txnAppId": txn_app_id(payload, "ingest"),
        "txnVersion": str(batch_id),
        "userMetadata": bronze_commit_metadata(batch_id, files or []),
    }


def bronze_commit_metadata(batch_id: int, files: list[str]) -> str:
    """The userMetadata of an ingest commit: {"lh360.step": "ingest", "lh360.batch_id": N, "lh360.files": [...]}
    with each file as `_metadata.file_path` gives it."""
    doc = {"lh360.step": "ingest", "lh360.batch_id": int(batch_id), "lh360.files": sorted(files)}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def quarantine_writer_options(payload: dict, batch_id: int) -> dict[str, str]:
    return {"mergeSchema": "true", "txnAppId": txn_app_id(payload, "quarantine"), "txnVersion": str(batch_id)}


def merge_txn_confs(payload: dict, batch_id: int) -> dict[str, str]:
    """Session confs that make the refine MERGE idempotent: a replayed batch id is skipped."""
    return {TXN_APP_ID_CONF: txn_app_id(payload, "refine"), TXN_VERSION_CONF: str(batch_id)}


# --------------------------------------------------------------------------- refine / aggregate SQL


def _same_values(columns: list[str], json_columns: tuple[str, ...] | list[str] = ()) -> str:
    """``s`` and ``t`` hold the same values in ``columns`` (NULL = NULL; a column holding a map, which
    Spark cannot compare, by its JSON text)."""

    def side(alias: str, c: str) -> str:
        return f"to_json({alias}.{quote(c)})" if c in json_columns else f"{alias}.{quote(c)}"

    return " AND ".join(f"{side('s', c)} <=> {side('t', c)}" for c in columns) or "true"


def scd1_merge_sql(
    target: str,
    source: str,
    columns: list[str],
    keys: list[str],
    sequence_by: str,
    json_columns: tuple[str, ...] | list[str] = (),
) -> str:
    """Update when the incoming version is later (transforms.py rule 4): a greater sequence, one over
    NULL, or the same sequence with other values (a later arrival); insert new keys."""
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
    sets = ", ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns)
    cols = ", ".join(quote(c) for c in columns)
    vals = ", ".join(f"s.{quote(c)}" for c in columns)
    seq = quote(sequence_by)
    later = (
        f"(s.{seq} > t.{seq} OR (t.{seq} IS NULL AND s.{seq} IS NOT NULL) "
        f"OR (s.{seq} <=> t.{seq} AND NOT ({_same_values(columns, json_columns)})))"
    )
    return (
        f"MERGE INTO {target} AS t\nUSING {source} AS s\nON {on}\n"
        f"WHEN MATCHED AND {later} THEN UPDATE SET {sets}\n"
        f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals})"
    )


def scd2_merge_sql(target: str, source: str, columns: list[str], keys: list[str]) -> str:
    """Apply :func:`transforms.scd2_changes`: ``close`` rows change the current row (matched on keys,
    ``valid_from`` and ``is_current``): its values when ``_tie``, and ``valid_to``/``is_current``;
    ``insert`` rows never match and are appended."""
    change, tie = quote(T.CHANGE_COLUMN), quote(T.TIE_COLUMN)
    all_cols = [*[c for c in columns if c not in T.SCD2_COLUMNS], *T.SCD2_COLUMNS]
    on = " AND ".join(
        [f"s.{change} = 'close'", "t.`is_current` = true"]
        + [f"t.{quote(k)} = s.{quote(k)}" for k in keys]
        + ["t.`valid_from` <=> s.`valid_from`"]
    )
    cols = ", ".join(quote(c) for c in all_cols)
    vals = ", ".join(f"s.{quote(c)}" for c in all_cols)
    closing = "t.`valid_to` = s.`valid_to`, t.`is_current` = s.`is_current`"
    values = ", ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns if c not in T.SCD2_COLUMNS and c not in keys)
    return (
        f"MERGE INTO {target} AS t\nUSING {source} AS s\nON {on}\n"
        f"WHEN MATCHED AND s.{tie} THEN UPDATE SET {values + ', ' if values else ''}{closing}\n"
        f"WHEN MATCHED THEN UPDATE SET {closing}\n"
        f"WHEN NOT MATCHED AND s.{change} = 'insert' THEN INSERT ({cols}) VALUES ({vals})"
    )


def merge_sql(
    payload: dict,
    columns: list[str] | None = None,
    source: str | None = None,
    json_columns: tuple[str, ...] | list[str] = (),
) -> str:
    """The refine MERGE into ``<catalog>.silver.<table>`` from the temp view ``source``.
    ``columns``: the silver data columns (default: ``spec.silver.columns``' names); ``json_columns``:
    those holding a map, compared by their JSON text."""
    spec = payload["spec"]
    keys, seq = T.keys_and_sequence(spec)
    if columns is None:
        columns = [c for c, _ in T.silver_columns(spec)]
        if not columns:
            raise PayloadError("payload.spec.silver.columns: empty; pass the bronze-derived columns")
    target = table_name(payload, "silver")
    source = source or quote(_view_name(payload, "refine"))
    if T.scd_type(spec) == 2:
        return scd2_merge_sql(target, source, columns, keys)
    return scd1_merge_sql(target, source, columns, keys, seq, json_columns)


def gold_sql(payload: dict, name: str) -> str:
    """``CREATE OR REPLACE TABLE <catalog>.gold.<name> USING DELTA LOCATION '<path>' AS <sql>``."""
    entry = payload["gold"][name]
    query = str(entry["sql"]).strip().rstrip(";").strip()
    return (
        f"CREATE OR REPLACE TABLE {table_name(payload, 'gold', name)} USING DELTA "
        f"LOCATION {sql_string(entry['path'])} AS\n{query}"
    )


def plan(payload: dict) -> dict[str, Any]:
    """What the step would run -- options, locations and SQL -- without Spark (``--explain``)."""
    step = payload["step"]
    out: dict[str, Any] = {"step": step, "table": payload["table"], "run_id": payload["run_id"]}
    if step == "ingest":
        out.update(
            source=payload["paths"]["landing"],
            reader_options=autoloader_options(payload),
            checkpoint=checkpoint_location(payload, "bronze"),
            target=payload["paths"]["bronze"],
            writer_options=bronze_writer_options(payload, 0) | {"txnVersion": "<batch_id>"},
            register_sql=create_external_table_sql(table_name(payload, "bronze"), payload["paths"]["bronze"]),
            trigger="availableNow",
            max_schema_restarts=MAX_SCHEMA_RESTARTS,
        )
    elif step == "refine":
        spec = payload["spec"]
        cols = [c for c, _ in T.silver_columns(spec)]
        out.update(
            source=payload["paths"]["bronze"],
            checkpoint=checkpoint_location(payload, "silver"),
            target=table_name(payload, "silver"),
            target_path=payload["paths"]["silver"],
            quarantine_path=payload["paths"]["quarantine"],
            scd=T.scd_type(spec),
            expectations=T.expectations(spec),
            merge_sql=merge_sql(payload, cols) if cols else None,
            merge_txn=merge_txn_confs(payload, 0) | {TXN_VERSION_CONF: "<batch_id>"},
            trigger="availableNow",
        )
    else:
        out["gold"] = [{"name": n, "sql": gold_sql(payload, n)} for n in payload["gold"]]
    return out


# --------------------------------------------------------------------------- summaries


def sum_counters(items: list[dict]) -> dict[str, Any]:
    """Add up per-batch counters: numbers are summed, dicts are summed per key, others dropped."""
    out: dict[str, Any] = {}
    for c in items:
        for k, v in c.items():
            if k == "batch_id":
                continue
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, dict):
                d = out.setdefault(k, {})
                for kk, vv in v.items():
                    if isinstance(vv, (int, float)) and not isinstance(vv, bool):
                        d[kk] = d.get(kk, 0) + vv
    return out


def parse_summary(logs: str | None) -> dict | None:
    """The job's summary from a run's stdout (``runs/get-output``'s ``logs``): the last line that is a
    JSON object with ``"lh360_job"``. None if there is none (the job died before printing)."""
    for line in reversed((logs or "").splitlines()):
        line = line.strip()
        if not (line.startswith("{") and SUMMARY_KEY in line):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and SUMMARY_KEY in obj:
            return obj
    return None


def _short_error(exc: BaseException, limit: int = 2000) -> str:
    text = str(exc) or type(exc).__name__
    m = re.search(re.escape(T.ExpectationFailed.MARKER) + r":[^\n]*", text)
    if m:
        return m.group(0)
    return text if len(text) <= limit else text[:limit] + " ..."


def _is_marked(exc: BaseException, markers: tuple[str, ...]) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(m in text for m in markers)


# --------------------------------------------------------------------------- Spark I/O


def _try_persist(df):
    try:  # serverless compute rejects persist(); it is only an optimisation
        return df.persist(), True
    except Exception:
        return df, False


def _ship_transforms() -> None:
    """foreachBatch functions run in a server-side Python worker on serverless / Spark Connect:
    pickle ``transforms`` by value so the worker does not need it on its sys.path."""
    try:
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(T)
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
                F.col("_metadata.file_size").alias(FILE_SIZE_COLUMN),
            )
        )

    def append_bronze(self, df, batch_id: int, files: list[str] | None = None) -> None:
        opts = bronze_writer_options(self.payload, batch_id, files)
        df.write.format("delta").mode("append").options(**opts).save(self.paths["bronze"])

    def register_bronze(self) -> None:
        if _delta_exists(self.spark, self.paths["bronze"]):
            self.spark.sql(create_external_table_sql(table_name(self.payload, "bronze"), self.paths["bronze"]))

    # refine
    def bronze_exists(self) -> bool:
        return _delta_exists(self.spark, self.paths["bronze"])

    def read_bronze_stream(self):
        """Bronze as a Delta streaming source: only the rows committed since the last run. An erasure's
        commit (`lh360 forget`: rows deleted) is skipped: it holds nothing to refine, and silver is erased too."""
        return self.spark.readStream.format("delta").option("skipChangeCommits", "true").load(self.paths["bronze"])

    def ensure_silver(self, columns: list[tuple[str, str]]) -> None:
        name, path = table_name(self.payload, "silver"), self.paths["silver"]
        if not _table_exists(self.spark, name):
            if _delta_exists(self.spark, path):  # data without a catalog entry: adopt it
                self.spark.sql(create_external_table_sql(name, path))
            else:
                part = T.silver_spec(self.spec).get("partition_by") or []
                self.spark.sql(create_external_table_sql(name, path, columns, list(part)))
        existing = {f.name.lower() for f in self.spark.table(name).schema.fields}
        missing = [(c, t) for c, t in columns if c.lower() not in existing]
        if missing:
            self.spark.sql(add_columns_sql(name, missing))

    def read_current(self):
        df = self.spark.table(table_name(self.payload, "silver"))
        return df.where("is_current") if "is_current" in df.columns else df

    def append_quarantine(self, df, batch_id: int) -> None:
        df.write.format("delta").mode("append").options(**quarantine_writer_options(self.payload, batch_id)).save(
            self.paths["quarantine"]
        )
        name = self.payload["tables"].get("quarantine")
        if name:
            self.spark.sql(create_external_table_sql(name, self.paths["quarantine"]))

    def merge(self, source_df, batch_id: int, columns: list[str]) -> dict[str, int | None]:
        view = _view_name(self.payload, "refine")
        source_df.createOrReplaceTempView(view)
        json_columns = [f.name for f in source_df.schema.fields if T.has_map(f.dataType)]
        sql = merge_sql(self.payload, columns, quote(view), json_columns)
        confs = merge_txn_confs(self.payload, batch_id)
        for k, v in confs.items():
            self.spark.conf.set(k, v)
        try:
            rows = self.spark.sql(sql).collect()
        finally:
            for k in confs:
                self.spark.conf.unset(k)
        metrics = rows[0].asDict() if rows else {}
        ins, upd = metrics.get("num_inserted_rows"), metrics.get("num_updated_rows")
        return {"inserted": ins, "updated": upd}

    # both
    def record_metrics(self, step: str, batch_id: int, counters: dict) -> None:
        from pyspark.sql import functions as F

        p = self.payload
        df = self.spark.createDataFrame(
            [(p["run_id"], step, p["table"], int(batch_id), json.dumps(counters, default=str))],
            "run_id string, step string, table_name string, batch_id bigint, counters string",
        ).withColumn("recorded_at", F.current_timestamp())
        opts = {"mergeSchema": "true", "txnAppId": txn_app_id(p, f"metrics-{step}"), "txnVersion": str(batch_id)}
        df.write.format("delta").mode("append").options(**opts).save(metrics_path(p))

    def read_metrics(self, step: str) -> list[dict]:
        if not _delta_exists(self.spark, metrics_path(self.payload)):
            return []
        from pyspark.sql import functions as F

        df = self.spark.read.format("delta").load(metrics_path(self.payload))
        rows = df.where((F.col("run_id") == self.payload["run_id"]) & (F.col("step") == step)).collect()
        return [json.loads(r["counters"]) for r in sorted(rows, key=lambda r: r["batch_id"])]


def ingest_batch(batch_df, batch_id: int, payload: dict, target) -> dict:
    """One Auto Loader micro-batch: stamp ``_batch_id``, append to bronze (idempotent), count."""
    from pyspark.sql import functions as F

    out = batch_df.withColumn("_batch_id", F.lit(int(batch_id)).cast("bigint"))
    out, cached = _try_persist(out)
    try:
        # one pass over the batch: rows, rescued rows, and each file with its size (Auto Loader gives a file
        # to one micro-batch only, so sizes add up)
        has_size = FILE_SIZE_COLUMN in out.columns
        file_cols = ["_source_file", FILE_SIZE_COLUMN] if has_size else ["_source_file"]
        aggs = [F.count(F.lit(1)).alias("rows"), F.collect_set(F.struct(*file_cols)).alias("files")]
        if RESCUED_DATA_COLUMN in out.columns:
            aggs.append(F.count(RESCUED_DATA_COLUMN).alias("rescued"))
        row = out.agg(*aggs).first()
        files = [f["_source_file"] for f in row["files"] if f["_source_file"] is not None]
        counters = {"batch_id": int(batch_id), "rows_in": int(row["rows"]), "files": len(files)}
        counters["rows_out"] = counters["rows_in"]
        if RESCUED_DATA_COLUMN in out.columns:
            counters["rescued"] = int(row["rescued"])
        data = out
        if has_size:
            counters["bytes"] = sum(int(f[FILE_SIZE_COLUMN] or 0) for f in row["files"])
            data = out.drop(FILE_SIZE_COLUMN)
        if counters["rows_in"]:
            target.append_bronze(data, batch_id, files)
        target.record_metrics("ingest", batch_id, counters)
        return counters
    finally:
        if cached:
            out.unpersist()


def refine_batch(batch_df, batch_id: int, payload: dict, target) -> dict:
    """One bronze micro-batch -> quarantine + silver MERGE. Raises ExpectationFailed before writing."""
    spec = payload["spec"]
    batch_df, cached = _try_persist(batch_df)
    try:
        source, quarantine, counters = T.refine_transform(batch_df, spec, pii_key(payload, batch_df.sparkSession))
        counters["batch_id"] = int(batch_id)
        columns = T.silver_schema_columns(source, spec)
        target.ensure_silver(columns)
        if counters["quarantined"]:
            target.append_quarantine(quarantine, batch_id)
        data_cols = [c for c, _ in columns if c not in T.SCD2_COLUMNS]
        if T.scd_type(spec) == 2:
            changes = T.scd2_changes(target.read_current(), source, spec)
            result = target.merge(changes, batch_id, data_cols)
            if result.get("inserted") is None:  # no MERGE metrics: count what was applied
                n = {
                    r[T.CHANGE_COLUMN]: r["n"]
                    for r in changes.groupBy(T.CHANGE_COLUMN).count().withColumnRenamed("count", "n").collect()
                }
                result = {"inserted": n.get("insert", 0), "updated": n.get("close", 0)}
        elif counters["kept"]:
            result = target.merge(source.select(*[T.col(c) for c in data_cols]), batch_id, data_cols)
        else:
            result = {"inserted": 0, "updated": 0}
        ins, upd = result.get("inserted"), result.get("updated")
        counters["inserted"], counters["updated"] = ins, upd
        counters["rows_out"] = None if ins is None and upd is None else int(ins or 0) + int(upd or 0)
        target.record_metrics("refine", batch_id, counters)
        return counters
    finally:
        if cached:
            batch_df.unpersist()


def _run_stream(start_query, step: str, allow_restart: bool) -> int:
    """Run an availableNow query to completion; restart it (at most MAX_SCHEMA_RESTARTS times) when it
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
            if allow_restart and restarts < MAX_SCHEMA_RESTARTS and _is_marked(e, SCHEMA_CHANGE_MARKERS[step]):
                restarts += 1
                print(
                    f"lh360: {step}: schema changed, restarting the stream ({restarts}/{MAX_SCHEMA_RESTARTS})",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            raise


def run_ingest(spark, payload: dict, target_factory=DeltaTarget) -> dict:
    """Landing -> bronze with Auto Loader (availableNow). ``target_factory(spark, payload)`` builds
    the Delta side (tests pass an in-memory one); it is also called inside foreachBatch."""
    target = target_factory(spark, payload)
    opts = autoloader_options(payload)
    _ship_transforms()

    def batch(df, batch_id):
        ingest_batch(df, batch_id, payload, target_factory(df.sparkSession, payload))

    def start():
        return (
            target.read_landing_stream(opts)
            .writeStream.queryName(f"lh360-ingest-{payload['table']}")
            .foreachBatch(batch)
            .option("checkpointLocation", checkpoint_location(payload, "bronze"))
            .trigger(availableNow=True)
            .start()
        )

    zero = {"rows_in": 0, "rows_out": 0, "files": 0, "bytes": 0, "rescued": 0, "batches": 0}
    try:
        restarts = _run_stream(start, "ingest", opts["cloudFiles.schemaEvolutionMode"] == "addNewColumns")
    except Exception as e:
        if _is_marked(e, EMPTY_LANDING_MARKERS):
            return {**zero, "note": "landing is empty: no file to infer a schema from yet"}
        raise
    target.register_bronze()
    per_batch = target.read_metrics("ingest")
    return {**zero, **sum_counters(per_batch), "batches": len(per_batch), "schema_restarts": restarts}


def run_refine(spark, payload: dict, target_factory=DeltaTarget) -> dict:
    """Bronze -> silver: a Delta stream (availableNow, own checkpoint) whose foreachBatch runs
    :func:`refine_batch`. A failed ``fail`` expectation stops it before that batch writes anything."""
    target = target_factory(spark, payload)
    zero = {"rows_in": 0, "rows_out": 0, "dropped": 0, "quarantined": 0, "warned": {}, "failed": {}, "batches": 0}
    if not target.bronze_exists():
        return {**zero, "note": "bronze does not exist yet: nothing to refine"}
    _ship_transforms()

    def batch(df, batch_id):
        refine_batch(df, batch_id, payload, target_factory(df.sparkSession, payload))

    def start():
        return (
            target.read_bronze_stream()
            .writeStream.queryName(f"lh360-refine-{payload['table']}")
            .foreachBatch(batch)
            .option("checkpointLocation", checkpoint_location(payload, "silver"))
            .trigger(availableNow=True)
            .start()
        )

    restarts = _run_stream(start, "refine", True)
    per_batch = target.read_metrics("refine")
    return {**zero, **sum_counters(per_batch), "batches": len(per_batch), "schema_restarts": restarts}


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
        spark.sql(gold_sql(payload, name))
        rows = spark.table(table_name(payload, "gold", name)).count()
        tables[name] = {"rows": rows, "seconds": round(time.monotonic() - started, 3)}
    return {"rows_out": sum(t["rows"] for t in tables.values()), "tables": tables}


RUNNERS = {"ingest": run_ingest, "refine": run_refine, "aggregate": run_aggregate}


def get_spark(payload: dict):
    from pyspark.sql import SparkSession

    # no builder options: on serverless (Spark Connect) static confs such as the app name cannot be set
    return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()


# --------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="job.py",
        description="lh360 Spark job: run one step of one table (Auto Loader ingest, refine MERGE, gold aggregate).",
        epilog="The last stdout line is a one-line JSON summary. Exit codes: 0 ok, 1 an expectation with action "
        "'fail' failed, 2 bad payload or spec, 3 any other error.",
    )
    p.add_argument("--step", required=True, choices=STEPS, help="the step to run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--payload", help="the payload as a JSON string")
    src.add_argument("--payload-file", help="a file holding the payload JSON")
    p.add_argument(
        "--explain", action="store_true", help="print the options and SQL the step would run, then exit (no Spark)"
    )
    return p


def main(argv: list[str] | None = None, spark=None) -> int:
    args = build_arg_parser().parse_args(argv)
    started = time.monotonic()
    summary: dict[str, Any] = {SUMMARY_KEY: SUMMARY_VERSION, "step": args.step, "table": None, "run_id": None}
    summary["started_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - DBR runs Python 3.10
    code = EXIT_OK
    try:
        payload = load_payload(args)
        summary.update(table=payload["table"], run_id=payload["run_id"])
        if args.explain:
            print(json.dumps(plan(payload), indent=2, default=str), flush=True)
            return EXIT_OK
        spark = spark or get_spark(payload)
        summary.update(RUNNERS[payload["step"]](spark, payload))
        summary.update(status="succeeded", error=None, error_kind=None)
    except (PayloadError, T.SpecError) as e:
        code = EXIT_BAD_PAYLOAD
        summary.update(status="failed", error_kind="bad_payload", error=str(e))
    except Exception as e:  # noqa: BLE001 - the job's one error boundary
        if isinstance(e, T.ExpectationFailed) or _is_marked(e, (T.ExpectationFailed.MARKER,)):
            code = EXIT_EXPECTATION_FAILED
            summary.update(status="failed", error_kind="expectation_failed", error=_short_error(e))
        else:
            code = EXIT_ERROR
            summary.update(status="failed", error_kind="error", error=f"{type(e).__name__}: {_short_error(e)}")
    summary["exit_code"] = code
    summary["seconds"] = round(time.monotonic() - started, 3)
    if code:
        print(f"lh360 {args.step} failed: {summary['error']}", file=sys.stderr, flush=True)
    print(json.dumps(summary, default=str, separators=(",", ":")), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
