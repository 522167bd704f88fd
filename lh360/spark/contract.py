"""The contract between the ops box and lh360's Spark job (stdlib only: the ops box imports it to build and
inspect payloads; the job imports it to read them). The payload's format, its validation, the names,
locations, options and SQL a step uses, what `--explain` shows, and the one-line JSON summary the job
prints last.

The payload (JSON, built by the ops box: lh360/engines/databricks/requests.py)::

    {"step": "refine", "table": "clientes", "run_id": "...", "catalog": "lakehouse360",
     "spec": {...the table spec as JSON...},
     "paths": {"landing": "s3://b/raw/clientes/", "bronze": "s3://lake/bronze/clientes",
               "silver": "s3://lake/silver/clientes", "quarantine": "s3://lake/quarantine/clientes",
               "state": "s3://lake/_lh360/state/clientes"},
     "gold": {"clientes_por_uf": {"sql": "<Databricks SQL, fully qualified>", "path": "s3://lake/gold/clientes_por_uf"}},
     "tables": {"quarantine": "lakehouse360.silver.clientes_quarantine"},   # optional registrations
     "state_generation": "g20261126t0900",                                  # optional, see txn_app_id()
     "recover": true,                    # the first run of a new generation (ingest: skip files bronze holds)
     "spec_hash": "<sha256 of spec.silver>",  # refine: recorded on silver when this run creates or rebuilds it
     "full_refresh": true}               # refine: rebuild silver and quarantine from all of bronze

A full refresh runs in a new checkpoint generation (the ops box starts it): the stream's first micro-batch is
then the whole of bronze's current snapshot (one batch: no file limit), and that batch REPLACES quarantine,
then silver, each in one commit (CREATE OR REPLACE TABLE ... AS SELECT), instead of merging; later
micro-batches of the same run, and the runs after it, merge as usual from where that snapshot ended, so no
bronze row is read twice or missed. Resumable: until the ops box has seen the run succeed, every refine of
that generation is sent with `full_refresh` again; a micro-batch 0 the checkpoint had not recorded (a crash
between the two replaces, or before the stream's commit) is then replayed over the same bronze range and
replaces both tables again, while a recorded one is never run twice.

A ``replay`` payload (`lh360 quarantine replay`) has the paths of silver, quarantine and state, the
quarantine's table name, ``recorded_rules`` (the expectations that read a column silver protects: quarantine
lacks its raw value, so refine's verdict in ``_failed_rules`` stands), and the refine stream's ``state_generation``, which the replay's app id follows
(``lh360-replay-<table>[-g<G>]``); runtime.run_replay says how its writes are exactly once.
"""

from __future__ import annotations

import json
import re
from typing import Any

if __package__:  # inside the lh360 package (the ops box, the tests)
    from lh360.spark import transforms as T
else:  # uploaded: the files sit side by side and job.py put their folder on sys.path
    import transforms as T  # type: ignore[no-redef]

SUMMARY_KEY = "lh360_job"
SUMMARY_VERSION = 1
STEPS = ("ingest", "refine", "aggregate", "replay")
SCHEMA_EVOLUTION_MODES = ("addNewColumns", "rescue", "failOnNewColumns", "none")
DEFAULT_MAX_FILES_PER_BATCH = 1000
MAX_SCHEMA_RESTARTS = 3
RESCUED_DATA_COLUMN = "_rescued_data"
FILE_SIZE_COLUMN = "_lh360_file_size"  # carried through a micro-batch to count its bytes; never written
GENERATION = re.compile(r"[A-Za-z0-9_-]{1,40}")
SPEC_HASH = re.compile(r"[0-9a-f]{64}")
SPEC_HASH_PROPERTY = "lh360.spec_hash"  # silver's table property: the hash of the spec its rows were built with
REFRESH_PROPERTY = "lh360.refresh"  # the checkpoint generation of the full refresh that last replaced a table
REPLAY_PROPERTY = "lh360.replay"  # silver's table property: the last quarantine replay whose merge finished
# a full refresh's first micro-batch must hold all of bronze's snapshot: no file limit (Delta's default is 1000)
FULL_REFRESH_MAX_FILES = 2**31 - 1
REQUIRED_PATHS = {
    "ingest": ("landing", "bronze", "state"),
    "refine": ("bronze", "silver", "quarantine", "state"),
    "replay": ("silver", "quarantine", "state"),
}
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
    if gen is not None and not (
        (isinstance(gen, int) and not isinstance(gen, bool) and gen >= 0)
        or (isinstance(gen, str) and GENERATION.fullmatch(gen))
    ):
        raise PayloadError("payload.state_generation: expected a non-negative integer or a name of [A-Za-z0-9_-]")
    if not isinstance(p.get("recover", False), bool):
        raise PayloadError("payload.recover: expected true or false")
    if not isinstance(p.get("full_refresh", False), bool):
        raise PayloadError("payload.full_refresh: expected true or false")
    if p.get("full_refresh") and p["step"] != "refine":
        raise PayloadError("payload.full_refresh: only the refine step rebuilds a table")
    if p.get("full_refresh") and p.get("state_generation") in (None, "", 0):
        raise PayloadError("payload.full_refresh: needs a new checkpoint generation (payload.state_generation)")
    digest = p.get("spec_hash")
    if digest is not None and not (isinstance(digest, str) and SPEC_HASH.fullmatch(digest)):
        raise PayloadError("payload.spec_hash: expected 64 lower-case hex digits (sha256)")
    try:
        if p["step"] == "ingest":
            autoloader_options(p)  # validates spec.bronze
        elif p["step"] in ("refine", "replay"):
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
    """Delta app id of a writer: ``lh360-<step>-<table>``; in checkpoint generation G (a new checkpoint:
    its batch ids restart at 0, and Delta would skip every append up to the last version it recorded for
    the old app id): ``...-gG``."""
    app = f"lh360-{step}-{payload['table']}"
    gen = payload.get("state_generation")
    return f"{app}-g{gen}" if gen not in (None, "", 0) else app


def state_path(payload: dict, *parts: str) -> str:
    return "/".join([payload["paths"]["state"].rstrip("/"), *parts])


def checkpoint_location(payload: dict, layer: str) -> str:
    """``<state>/checkpoint/<layer>``; a generation's own: ``<state>/checkpoint/<layer>-g<G>``."""
    gen = payload.get("state_generation")
    return state_path(payload, "checkpoint", f"{layer}-g{gen}" if gen not in (None, "", 0) else layer)


def metrics_path(payload: dict) -> str:
    """A small Delta table of per-batch counters (foreachBatch runs server-side on serverless
    compute, so counters travel through storage, not Python variables)."""
    return state_path(payload, "metrics")


def view_name(payload: dict, step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"lh360_{step}_{payload['table']}_source")


def create_external_table_sql(
    name: str,
    location: str,
    columns: list[tuple[str, str]] | None = None,
    partition_by: list[str] | None = None,
    properties: dict[str, str] | None = None,
) -> str:
    """``CREATE TABLE IF NOT EXISTS <name> [(cols)] USING DELTA [PARTITIONED BY] LOCATION '<path>'
    [TBLPROPERTIES]``. Without columns the location must already hold a Delta table (its schema is adopted)."""
    sql = f"CREATE TABLE IF NOT EXISTS {name}"
    if columns:
        sql += " (" + ", ".join(f"{quote(c)} {t}" for c, t in columns) + ")"
    sql += " USING DELTA"
    if columns and partition_by:
        sql += " PARTITIONED BY (" + ", ".join(quote(c) for c in partition_by) + ")"
    sql += f" LOCATION {sql_string(location)}"
    if properties:
        sql += " TBLPROPERTIES (" + ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in properties.items()) + ")"
    return sql


def silver_properties(payload: dict) -> dict[str, str]:
    """The table properties silver gets when a run creates or rebuilds it: the spec hash it is built with
    (a table property, not commit metadata: a MERGE cannot carry userMetadata on serverless, where the
    session conf that sets it is refused, and a property stays in every later snapshot)."""
    digest = payload.get("spec_hash")
    return {SPEC_HASH_PROPERTY: digest} if digest else {}


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


def bronze_reader_options(payload: dict) -> dict[str, str]:
    """The Delta streaming source options of refine. An erasure's commit (`lh360 forget`: rows deleted) is
    skipped: it holds nothing to refine, and silver is erased too. A full refresh lifts the file limit so
    that its first micro-batch is all of bronze (the batch that replaces silver)."""
    opts = {"skipChangeCommits": "true"}
    if payload.get("full_refresh"):
        opts["maxFilesPerTrigger"] = str(FULL_REFRESH_MAX_FILES)
    return opts


def refresh_properties(payload: dict, layer: str) -> dict[str, str]:
    """The table properties a full refresh's replace of silver or quarantine sets in its one commit: the
    checkpoint generation it ran in (`lh360.refresh`) and, for silver, the spec hash it was built with."""
    props = {REFRESH_PROPERTY: str(payload.get("state_generation"))}
    return props | (silver_properties(payload) if layer == "silver" else {})


def replace_table_sql(
    name: str,
    location: str,
    source: str,
    partition_by: list[str] | None = None,
    properties: dict[str, str] | None = None,
) -> str:
    """``CREATE OR REPLACE TABLE <name> USING DELTA [PARTITIONED BY] LOCATION '<path>' [TBLPROPERTIES] AS
    SELECT * FROM <source>``: data, schema, partitioning and properties replaced in one commit (readers see
    the old table or the new one), the table's identity and grants kept; as gold is replaced."""
    sql = f"CREATE OR REPLACE TABLE {name} USING DELTA"
    if partition_by:
        sql += " PARTITIONED BY (" + ", ".join(quote(c) for c in partition_by) + ")"
    sql += f" LOCATION {sql_string(location)}"
    if properties:
        sql += " TBLPROPERTIES (" + ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in properties.items()) + ")"
    return sql + f" AS SELECT * FROM {source}"


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
    *,
    ties: bool = True,
) -> str:
    """Update when the incoming version is later (transforms.py rule 4): a greater sequence, one over
    NULL, or (with ``ties``) the same sequence with other values (a later arrival); insert new keys.
    A quarantine replay merges without ``ties``: a replayed row's arrival order is unknown."""
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
    sets = ", ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns)
    cols = ", ".join(quote(c) for c in columns)
    vals = ", ".join(f"s.{quote(c)}" for c in columns)
    seq = quote(sequence_by)
    later = f"s.{seq} > t.{seq} OR (t.{seq} IS NULL AND s.{seq} IS NOT NULL)"
    if ties:
        later += f" OR (s.{seq} <=> t.{seq} AND NOT ({_same_values(columns, json_columns)}))"
    later = f"({later})"
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
    source = source or quote(view_name(payload, "refine"))
    if T.scd_type(spec) == 2:
        return scd2_merge_sql(target, source, columns, keys)
    return scd1_merge_sql(target, source, columns, keys, seq, json_columns)


def replay_merge_sql(
    payload: dict, columns: list[str], source: str, json_columns: tuple[str, ...] | list[str] = ()
) -> str:
    """The MERGE of a quarantine replay into ``<catalog>.silver.<table>`` from the temp view ``source``: as
    refine's, but an SCD1 row replaces silver's only when its sequence is strictly greater."""
    spec = payload["spec"]
    keys, seq = T.keys_and_sequence(spec)
    target = table_name(payload, "silver")
    if T.scd_type(spec) == 2:
        return scd2_merge_sql(target, source, columns, keys)
    return scd1_merge_sql(target, source, columns, keys, seq, json_columns, ties=False)


def replay_writer_options(payload: dict, run: int) -> dict[str, str]:
    """The overwrite of quarantine with replay ``run``'s marks: one commit with the app transaction
    (``lh360-replay-<table>``, run), which Delta skips when that transaction is already recorded."""
    return {"txnAppId": txn_app_id(payload, "replay"), "txnVersion": str(int(run))}


def set_properties_sql(name: str, properties: dict[str, str]) -> str:
    pairs = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in properties.items())
    return f"ALTER TABLE {name} SET TBLPROPERTIES ({pairs})"


def replayed_run(properties: dict[str, str]) -> int:
    """The last replay whose merge into silver finished (silver's `lh360.replay` property), -1 before any."""
    value = str(properties.get(REPLAY_PROPERTY) or "")
    return int(value) if value.isdigit() else -1


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
            stream_options=bronze_reader_options(payload),
            silver_properties=silver_properties(payload),
            trigger="availableNow",
        )
        if payload.get("full_refresh"):
            part = T.silver_spec(spec).get("partition_by") or []
            source = quote(view_name(payload, "replace"))
            qname = payload["tables"].get("quarantine")
            out["full_refresh"] = {
                "how": "the first micro-batch of the new checkpoint is all of bronze: it replaces quarantine, "
                "then silver, in one commit each; later micro-batches and runs merge from where it ended",
                "checkpoint": checkpoint_location(payload, "silver"),
                "quarantine_sql": replace_table_sql(
                    qname, payload["paths"]["quarantine"], source, None, refresh_properties(payload, "quarantine")
                )
                if qname
                else f"overwrite {payload['paths']['quarantine']} (overwriteSchema)",
                "silver_sql": replace_table_sql(
                    table_name(payload, "silver"),
                    payload["paths"]["silver"],
                    source,
                    list(part),
                    refresh_properties(payload, "silver"),
                ),
            }
    elif step == "replay":
        cols = [c for c, _ in T.silver_columns(payload["spec"])]
        out.update(
            quarantine_path=payload["paths"]["quarantine"],
            target=table_name(payload, "silver"),
            scd=T.scd_type(payload["spec"]),
            expectations=T.expectations(payload["spec"]),
            recorded_rules=list(payload.get("recorded_rules") or []),  # refine's verdict stands for these
            marks=[c for c, _ in T.REPLAY_MARKS],
            quarantine_writer_options=replay_writer_options(payload, 0) | {"txnVersion": "<replay number>"},
            merge_sql=replay_merge_sql(payload, cols, quote(view_name(payload, "replay"))) if cols else None,
            silver_properties={REPLAY_PROPERTY: "<replay number>"},
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


def short_error(exc: BaseException, limit: int = 2000) -> str:
    text = str(exc) or type(exc).__name__
    m = re.search(re.escape(T.ExpectationFailed.MARKER) + r":[^\n]*", text)
    if m:
        return m.group(0)
    return text if len(text) <= limit else text[:limit] + " ..."


def is_marked(exc: BaseException, markers: tuple[str, ...]) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(m in text for m in markers)
