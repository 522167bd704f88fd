"""Landing → bronze on the local engine, with Auto Loader's contract.

Exactly once: each batch is ONE Delta commit carrying an app transaction (`lh360-ingest-<table>`,
version = batch id) and, in its commit metadata, the files it holds. Before committing batch N we write
`state/<table>/ingest/N.json.gz`, the cumulative set of ingested files. On start we read the table's
committed transaction version C and trust only state file C: a crash before the commit leaves a state file
N > C that is ignored and overwritten; a crash after it leaves nothing to redo. If state file C is lost, it
is rebuilt from the commit metadata in the Delta history, so the Delta log stays the source of truth.
Both also hold each ingested file's size and mtime (`lh360.file_meta`; older states lack them), which is how
a file rewritten under an ingested name is reported rather than ignored: it is never ingested again.

What a batch takes: files not yet ingested, settled (a local file unchanged for `landing.settle`, re-checked
right before it is read), not quarantined as they are, and readable whole. A file that is not (a bad or
truncated gzip, a last line that never ended) is quarantined as a file (see "quarantined landing files")
and the batch goes on without it.

Reading and writing: pyarrow splits the landing files into numbered lines (lines.py); one DuckDB query
parses each line into the stored schema and writes the batch's Parquet files itself (bronze_files.py),
which delta-rs then commits. A value that does not fit its column (type mismatch) and a field the schema
does not know go to `_rescued_data` as JSON, with the file and line; a line that is not a JSON object is
kept verbatim in `_rescued_data._corrupt_record`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, commit_properties, open_table
from lh360.engines.base import IngestBatch, IngestResult
from lh360.engines.local import bronze_files
from lh360.engines.local import lines as lines_mod
from lh360.engines.local.batch_query import META_TYPES, RESERVED, batch_sql, fast_path_fits, is_reserved
from lh360.engines.local.infer import evolve, infer_schema
from lh360.engines.local.ingest_state import (
    app_id,
    file_meta,
    ingest_state,
    nonce_app_id,
    nonce_number,
    save_quarantine,
    write_state,
)
from lh360.engines.local.landing_files import Prepared, Problem, prepare
from lh360.errors import EngineError, LockBusy, SchemaChangeError
from lh360.layout import Lake
from lh360.listing import Candidates, landing_candidates
from lh360.spec import TableSpec
from lh360.sql import quote_literal as lit
from lh360.storage import FileInfo, delta_storage_options, to_delta_uri
from lh360.types import parse_type

log = logging.getLogger("lh360.ingest")

Progress = Callable[..., None]


def pending_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> list[FileInfo]:
    """Landing files the next ingest takes, oldest first (modification time, then path): not yet in
    bronze, settled, and not quarantined as they are."""
    return landing_candidates(target, spec, ingest_state(target, spec, dt)).ready


def ingest(
    target: ResolvedTarget,
    spec: TableSpec,
    *,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> IngestResult:
    """Ingest every pending landing file of `spec` into bronze, in batches of `max_files_per_batch`."""
    import duckdb

    bronze_uri = Lake(target.lake).table("bronze", spec.table)
    dt = open_table(bronze_uri, target.settings.aws)
    found = landing_candidates(target, spec, ingest_state(target, spec, dt))
    committed, done, meta = found.state.committed, found.state.files, found.state.meta
    pending = found.ready
    result = IngestResult(table=spec.table, engine="local", pending_files=len(pending))
    _report_landing(result, found)
    size = spec.bronze.max_files_per_batch
    chunks = [pending[i : i + size] for i in range(0, len(pending), size)][:max_batches]
    if progress:
        progress("start", table=spec.table, files=len(pending), bytes=sum(f.size for f in pending), batches=len(chunks))
    quarantine = found.quarantine
    links_inside = target.landing if spec.landing.symlinks == "inside" else None
    con = duckdb.connect(config={"preserve_insertion_order": "false"})
    con.execute("SET enable_progress_bar = false")
    try:
        for chunk in chunks:
            batch, taken = _ingest_batch(
                con, target, spec, dt, committed + 1, chunk, _Done(done, meta, quarantine), result, links_inside
            )
            if batch is None:  # every file of the chunk was skipped: nothing to commit
                continue
            dt = open_table(bronze_uri, target.settings.aws)
            committed = batch.batch_id
            done |= {f.rel for f in taken}
            meta.update({f.rel: (f.size, f.mtime) for f in taken})
            batch.version = dt.version()
            result.add(batch)
            if progress:
                progress("batch", table=spec.table, batch=batch)
        if dt is not None:
            result.bronze_version = dt.version()
            result.schema = data_schema(con, dt)
    finally:
        con.close()
    for text in result.warnings:
        log.warning("%s: %s", spec.table, text)
    return result


@dataclass
class _Done:
    """The ingest state a batch builds on: ingested files, their (size, mtime), the quarantine record."""

    files: set[str]
    meta: dict[str, tuple[int, float]]
    quarantine: dict[str, dict[str, Any]]


def _report_landing(result: IngestResult, found: Candidates) -> None:
    """What the ingest leaves aside, into the result (and, as warnings, on stderr)."""
    result.settling = found.settling
    result.still_quarantined = found.quarantined
    result.rewritten = found.rewritten
    result.symlinks = [link.as_dict() for link in found.listing.links]
    result.future_mtime = found.listing.future
    if found.rewritten:
        result.warnings.append(
            f"{len(found.rewritten)} ingested landing file(s) were rewritten since (size or mtime changed), e.g. "
            f"{found.rewritten[0]['file']}: files are identified by their path, so the new content is NOT "
            "ingested; land it under a new name"
        )
    if found.quarantined:
        q = found.quarantined[0]
        result.warnings.append(
            f"{len(found.quarantined)} quarantined landing file(s) skipped until they change, e.g. {q['file']}: {q['error']}"
        )
    if result.symlinks:
        result.warnings.append(
            f"{len(result.symlinks)} symlink(s) in the landing zone not followed, e.g. {result.symlinks[0]['file']}"
        )
    if found.listing.future:
        result.warnings.append(
            f"{len(found.listing.future)} landing file(s) dated in the future (clock skew?), e.g. "
            f"{found.listing.future[0]['file']}: counted as landed when first seen"
        )


def _ingest_batch(
    con,
    target: ResolvedTarget,
    spec: TableSpec,
    dt,
    batch_id: int,
    chunk: list[FileInfo],
    done: _Done,
    result: IngestResult,
    links_inside: str | None = None,
) -> tuple[IngestBatch | None, list[FileInfo]]:
    """Read one batch of files and append it to bronze in ONE commit carrying (app id, batch id). Files that
    cannot be read whole are left out of it (quarantined, or left to settle); (None, []) when none is left."""
    started = time.monotonic()
    hints = {k: parse_type(v) for k, v in spec.bronze.schema_hints.items()}
    mode = spec.bronze.schema_evolution
    existed = dt is not None
    with tempfile.TemporaryDirectory(prefix="lh360-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        prepared, problems = prepare(chunk, target, tmp, links_inside=links_inside)
        _record_problems(target, spec, problems, done, result)
        if not prepared:
            return None, []
        taken = [p.info for p in prepared]
        batch = IngestBatch(batch_id=batch_id, files=len(taken), bytes=sum(f.size for f in taken))
        if dt is None:
            schema = {**infer_schema(con, [p.local for p in prepared]), **hints}
            new_cols: list[str] = []
        else:
            # a column added to schema_hints joins the schema (how failOnNewColumns is unblocked)
            schema = data_schema(con, dt)
            new_cols = [k for k in hints if k not in schema]
            schema.update({k: hints[k] for k in new_cols})
        # at most two restarts: Auto Loader stops once on new columns and restarts with them
        watch = mode in ("addNewColumns", "failOnNewColumns")
        for _restart in range(3):
            try:
                counters = _write_batch(con, target, spec, dt, batch_id, schema, prepared, done, tmp, watch=watch)
                break
            except _NewColumns:
                extra, paths = _new_columns(con, prepared, schema)
                if not extra:  # nothing that can be a column (a name differing only in case…): stays rescued
                    watch = False
                    continue
                if mode == "failOnNewColumns":
                    files = ", ".join(p.info.rel for p in prepared[:5])
                    raise SchemaChangeError(
                        f"{spec.table}: new columns {', '.join(sorted(paths))} in batch {batch_id} (files {files}…); "
                        "schema_evolution is failOnNewColumns: add them to schema_hints or change the mode, then rerun"
                    ) from None
                # addNewColumns: restart the batch in-process with the new columns (nothing was committed)
                schema = {**schema, **extra}
                new_cols = [*new_cols, *paths]
        else:
            raise EngineError(f"{spec.table}: schema kept changing within batch {batch_id}")
    batch.new_columns = list(new_cols) if existed else []
    batch.rows, batch.rescued, batch.malformed = counters["rows"], counters["rescued"], counters["malformed"]
    batch.fast_path = bool(counters["fast_path"])
    batch.seconds = round(time.monotonic() - started, 3)
    return batch, taken


def _record_problems(
    target: ResolvedTarget, spec: TableSpec, problems: list[Problem], done: _Done, result: IngestResult
) -> None:
    """Files left out of a batch: quarantined ones are recorded (before the batch commits, so a crash
    cannot lose the record), the others reported and tried again by the next run."""
    if not problems:
        return
    now = round(time.time(), 3)
    quarantined = [p for p in problems if p.kind == "quarantine"]
    for p in quarantined:
        done.quarantine[p.info.rel] = {"size": p.info.size, "mtime": p.info.mtime, "error": p.error, "at": now}
        result.quarantined.append({"file": p.info.rel, "error": p.error})
    if quarantined:
        # a file ingested since it was quarantined (it changed) leaves the record
        save_quarantine(target, spec, {k: v for k, v in done.quarantine.items() if k not in done.files})
        result.warnings.append(
            f"quarantined {len(quarantined)} landing file(s) that cannot be read whole, e.g. "
            f"{quarantined[0].info.rel}: {quarantined[0].error}; they are skipped until they change"
        )
    for p in problems:
        if p.kind == "settling":
            result.settling.append({"file": p.info.rel, "reason": p.error})
        elif p.kind == "vanished":
            result.vanished.append(p.info.rel)


class _NewColumns(Exception):
    """The batch's rows carry fields the schema lacks (addNewColumns: evolve and restart; failOnNewColumns: stop)."""


def _new_columns(con, prepared: list[Prepared], schema: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(columns to add or widen, their paths: `email`, `endereco.complemento`) for the fields rows carry
    beyond `schema`, typed by a full scan of the batch (rare: only on change)."""
    inferred = infer_schema(
        con, [p.local for p in prepared], sample_lines=None, sample_files=None, limits=_limits(prepared)
    )
    return evolve(schema, inferred)


def _limits(prepared: list[Prepared]) -> list[int | None]:
    return [p.limit for p in prepared]


def _write_batch(
    con,
    target: ResolvedTarget,
    spec: TableSpec,
    dt,
    batch_id: int,
    schema: dict[str, str],
    prepared: list[Prepared],
    done: _Done,
    tmp: Path,
    *,
    watch: bool = False,
) -> dict[str, int]:
    """DuckDB writes the batch's Parquet files; delta-rs commits them in ONE commit with (app id, batch id).
    `watch`: stop (_NewColumns) when rows carry fields the schema could take."""
    from deltalake.exceptions import CommitFailedError

    bronze_uri = Lake(target.lake).table("bronze", spec.table)
    paths, limits = [p.local for p in prepared], _limits(prepared)
    fast_path = fast_path_fits(con, schema, paths)
    sql = batch_sql(schema, [p.info for p in prepared], batch_id, datetime.now(UTC), fast_path=fast_path)
    out_schema = _empty_schema(con, sql)
    folder = bronze_files.staging_folder(bronze_uri, tmp)
    try:
        staged = _copy_lines(con, sql, paths, folder, limits)
        counters = {**_count(con, staged, schema, watch=watch), "fast_path": fast_path}
        storage_options = delta_storage_options(bronze_uri, target.settings.aws)
        if dt is None:
            dt = _create_bronze(bronze_uri, out_schema, storage_options, spec)
        # the state file first: if we die before the commit below, it names a batch that never committed
        nonce = uuid.uuid4().hex
        batch_meta = file_meta([p.info for p in prepared])
        write_state(
            target,
            spec,
            batch_id,
            done.files | {p.info.rel for p in prepared},
            nonce,
            {**done.meta, **{k: (v[0], v[1]) for k, v in batch_meta.items()}},
        )
        metadata = {
            "lh360.step": "ingest",
            "lh360.table": spec.table,
            "lh360.batch_id": str(batch_id),
            "lh360.files": json.dumps(sorted(p.info.rel for p in prepared)),
            "lh360.file_meta": json.dumps(batch_meta, sort_keys=True),
            "lh360.nonce": nonce,
        }
        number = nonce_number(nonce)  # lh360's nonces are hex: never None here
        nonce_txn = {nonce_app_id(spec): number} if number is not None else None  # survives compaction
        props = commit_properties(app_id(spec), batch_id, metadata, nonce_txn)
        try:
            # on the snapshot `committed` was read from: a racing writer's commit of this batch id then
            # conflicts with ours (its app transaction) instead of being silently followed by a duplicate
            if _schema_grows(out_schema, arrow_schema(dt)):
                _append_with_new_columns(con, dt, staged, out_schema, storage_options, props)
            else:
                bronze_files.publish(staged, bronze_uri, target.settings.aws)
                dt.create_write_transaction(
                    bronze_files.add_actions(staged, out_schema),
                    mode="append",
                    schema=dt.schema(),
                    commit_properties=props,
                )
        except CommitFailedError as exc:
            raise LockBusy(f"{spec.table}: another writer committed to bronze first ({exc}); try again") from None
    finally:
        bronze_files.discard(folder)
    return counters


def _schema_grows(batch_schema, table_schema) -> bool:
    """Whether the batch's columns go beyond the table's: a new column, or a struct with new fields."""
    table = {f.name: f.type for f in table_schema}
    return any(f.name not in table or _fields_grow(f.type, table[f.name]) for f in batch_schema)


def _fields_grow(batch_type, table_type) -> bool:
    """Whether a struct (at any depth, lists of structs included) has a field the table's lacks."""
    import pyarrow as pa

    if pa.types.is_struct(batch_type) and pa.types.is_struct(table_type):
        known = {table_type.field(i).name: table_type.field(i).type for i in range(table_type.num_fields)}
        return any(
            f.name not in known or _fields_grow(f.type, known[f.name])
            for f in (batch_type.field(i) for i in range(batch_type.num_fields))
        )
    if pa.types.is_list(batch_type) or pa.types.is_large_list(batch_type):
        if pa.types.is_list(table_type) or pa.types.is_large_list(table_type):
            return _fields_grow(batch_type.value_type, table_type.value_type)
    return False


def _copy_lines(con, sql: str, paths: list[Path], folder: Path, limits: list[int | None] | None = None) -> list:
    """The batch SQL over every line of `paths` (the first `limits[i]` bytes of each), streamed in chunks,
    written by DuckDB under `folder`."""
    lines, close = lines_mod.reader(paths, limits)
    cur = con.cursor()  # its own cursor: a failed COPY must not leave `con` busy
    try:
        cur.register("__lines", lines)
        return bronze_files.copy(cur, sql, folder)
    finally:
        cur.close()
        close()


def _count(con, staged: list, schema: dict[str, str], *, watch: bool) -> dict[str, int]:
    """Rows, rescued rows and malformed lines of the staged files. DuckDB counted the rows and the null
    `_rescued_data`; only when some row was rescued are those rows read back (one column, few rows) to
    count malformed lines and, when the mode watches for them, fields the schema lacks: new top-level
    fields that can be columns, and fields rescued inside a struct column."""
    rows = sum(f.rows for f in staged)
    rescued = sum(f.rows - (f.null_count("_rescued_data") or 0) for f in staged)
    counters = {"rows": rows, "rescued": rescued, "malformed": 0}
    if not rescued:
        return counters
    files = "[" + ", ".join(lit(str(f.path)) for f in staged) + "]"
    ours = "[" + ", ".join(lit(n) for n in [*schema, *RESERVED]) + "]::VARCHAR[]"
    structs = [n for n in schema if schema[n].upper().startswith("STRUCT")]
    struct_list = "[" + ", ".join(lit(n) for n in structs) + "]::VARCHAR[]"
    malformed, unknown, nested = con.execute(
        f"""SELECT count_if(json_exists(_rescued_data, '$._corrupt_record')),
             list_distinct(flatten(list(list_filter(json_keys(_rescued_data), lambda k: NOT list_contains({ours}, k))))),
             list_distinct(flatten(list(list_filter(json_keys(_rescued_data), lambda k: list_contains({struct_list}, k)
               AND json_type(_rescued_data, '/' || k) = 'OBJECT'))))
           FROM read_parquet({files}) WHERE _rescued_data IS NOT NULL"""
    ).fetchall()[0]
    taken = {n.lower() for n in schema}
    new = [k for k in unknown or [] if k and not is_reserved(k) and k.lower() not in taken]
    if watch and (new or nested):
        raise _NewColumns()
    counters["malformed"] = int(malformed)
    return counters


def _delta_fields(schema) -> list:
    """Arrow fields as Delta stores them: Delta knows one instant type, timestamp[us, UTC] (DuckDB names
    its zone Etc/UTC)."""
    import pyarrow as pa

    return [
        pa.field(f.name, pa.timestamp("us", "UTC"), f.nullable) if pa.types.is_timestamp(f.type) and f.type.tz else f
        for f in schema
    ]


def _append_with_new_columns(con, dt, staged: list, schema, storage_options, props) -> None:
    """A batch that adds columns: delta-rs appends the staged rows with a schema merge, so the new columns
    and the rows land in the batch's one commit (committing DuckDB's files cannot change the schema)."""
    from deltalake import write_deltalake

    cur = con.cursor()
    try:
        if staged:
            files = "[" + ", ".join(lit(str(f.path)) for f in staged) + "]"
            data = cur.sql(f"SELECT * FROM read_parquet({files})").to_arrow_reader(131_072)
        else:
            data = schema.empty_table()
        write_deltalake(
            dt, data, mode="append", schema_mode="merge", storage_options=storage_options, commit_properties=props
        )
    finally:
        cur.close()


def _create_bronze(uri: str, schema, storage_options: dict[str, str] | None, spec: TableSpec):
    """Create the empty bronze table in its own commit (version 0). Two writers racing to create it: the
    loser's create fails (LockBusy, exit 75). Appending straight to a missing table would let delta-rs
    rebase the loser's first batch onto version 1 and land it twice; and a create itself is rebased onto
    version 1 unless it may not retry its commit (max_commit_retries=0: measured, 40 of 40 races leave one
    commit)."""
    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable

    try:
        return DeltaTable.create(
            to_delta_uri(uri),
            pa.schema(_delta_fields(schema)),
            mode="error",
            name=f"bronze_{spec.table}",
            configuration={"delta.appendOnly": "true"},
            storage_options=storage_options,
            commit_properties=CommitProperties(max_commit_retries=0),
        )
    except Exception as exc:
        if "exist" in str(exc).lower() or "version 0" in str(exc).lower() or "CommitFailed" in type(exc).__name__:
            raise LockBusy(f"{spec.table}: another writer created bronze first; try again") from None
        raise


def _empty_schema(con, sql: str):
    cur = con.cursor()
    cur.register("__lines", lines_mod.empty())
    schema = cur.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema
    cur.close()
    return schema


def data_schema(con, dt) -> dict[str, str]:
    """The bronze table's source columns (not the metadata ones) as DuckDB types."""
    import pyarrow as pa

    empty = pa.schema(arrow_schema(dt)).empty_table()
    con.register("__bronze_schema", empty)
    try:
        rows = con.execute("DESCRIBE SELECT * FROM __bronze_schema").fetchall()
    finally:
        con.unregister("__bronze_schema")
    return {name: type_ for name, type_, *_ in rows if name not in META_TYPES}
