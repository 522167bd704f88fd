"""Landing → bronze on the local engine, with Auto Loader's contract.

Exactly once: each batch is ONE Delta commit carrying an app transaction (`lh360-ingest-<table>`,
version = batch id) and, in its commit metadata, the files it holds. Before committing batch N we write
`state/<table>/ingest/N.json.gz`, the cumulative set of ingested files. On start we read the table's
committed transaction version C and trust only state file C: a crash before the commit leaves a state file
N > C that is ignored and overwritten; a crash after it leaves nothing to redo. If state file C is lost, it
is rebuilt from the commit metadata in the Delta history, so the Delta log stays the source of truth.

Reading and writing: pyarrow splits the landing files into numbered lines (lines.py); one DuckDB query
parses each line into the stored schema and writes the batch's Parquet files itself (bronze_files.py),
which delta-rs then commits. A value that does not fit its column (type mismatch) and a field the schema
does not know go to `_rescued_data` as JSON, with the file and line; a line that is not a JSON object is
kept verbatim in `_rescued_data._corrupt_record`.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, commit_properties, open_table, txn_version
from lh360.engines.local import bronze_files
from lh360.engines.local import lines as lines_mod
from lh360.engines.local.batch_query import META_COLUMNS, META_TYPES, batch_sql, fast_path_fits, lit
from lh360.engines.local.infer import infer_schema
from lh360.errors import EngineError, LockBusy, SchemaChangeError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import FileInfo, delta_storage_options, join, store_for, to_delta_uri
from lh360.types import parse_type

STATE_KEEP = 3

Progress = Callable[..., None]


@dataclass
class BatchResult:
    batch_id: int
    files: int
    bytes: int
    rows: int = 0
    rescued: int = 0
    malformed: int = 0
    new_columns: list[str] = field(default_factory=list)
    version: int | None = None
    seconds: float = 0.0
    fast_path: bool = True  # False: the batch's sample had lines the one-parse path would reject (batch_sql)


@dataclass
class IngestResult:
    table: str
    pending_files: int = 0
    batches: list[BatchResult] = field(default_factory=list)
    schema: dict[str, str] = field(default_factory=dict)
    version: int | None = None

    @property
    def files(self) -> int:
        return sum(b.files for b in self.batches)

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def rescued(self) -> int:
        return sum(b.rescued for b in self.batches)

    @property
    def malformed(self) -> int:
        return sum(b.malformed for b in self.batches)

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self.batches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "files": self.files,
            "bytes": self.bytes,
            "rows": self.rows,
            "rescued": self.rescued,
            "malformed": self.malformed,
            "batches": [b.__dict__ for b in self.batches],
            "bronze_version": self.version,
            "new_columns": [c for b in self.batches for c in b.new_columns],
        }


def app_id(spec: TableSpec) -> str:
    return f"lh360-ingest-{spec.table}"


# ---- what has been ingested ------------------------------------------------------------------------


def _state_uri(lake: Lake, spec: TableSpec, batch_id: int) -> str:
    return lake.state(spec.table, "ingest", f"{batch_id:012d}.json.gz")


def ingested_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> tuple[int, set[str]]:
    """(last committed batch id or -1, relative paths of every landing file already in bronze)."""
    lake = Lake(target.lake)
    if dt is None:
        dt = open_table(lake.table("bronze", spec.table), target.settings.aws)
    committed = txn_version(dt, app_id(spec))
    if committed < 0:
        return committed, set()
    store = store_for(target.lake, target.settings.aws)
    try:
        doc = json.loads(gzip.decompress(store.read_bytes(_state_uri(lake, spec, committed))))
        # the nonce ties the file to THE commit of this batch: a racing writer that lost the commit may have
        # overwritten the state file of the same batch id with its own file list
        if doc.get("batch_id") == committed and doc.get("nonce") == _commit_nonce(target, spec, dt, committed):
            return committed, set(doc["files"])
    except (FileNotFoundError, OSError, ValueError, KeyError):
        pass
    except Exception as exc:  # S3 NoSuchKey and friends: fall back to the log
        if "NoSuchKey" not in type(exc).__name__ and "404" not in str(exc) and "NoSuchKey" not in str(exc):
            raise
    return committed, _files_from_history(dt)


def _commit_nonce(target: ResolvedTarget, spec: TableSpec, dt, batch_id: int) -> str | None:
    """The nonce in the commit of `batch_id`, read from the table's last commit file (bronze is append-only:
    the last commit is the last batch). Read with our store, not `dt.history()`, which is slower and holds
    the GIL while it waits on S3. None when the last commit is not that batch's."""
    store = store_for(target.lake, target.settings.aws)
    log = join(Lake(target.lake).table("bronze", spec.table), "_delta_log", f"{dt.version():020d}.json")
    try:
        text = store.read_bytes(log).decode("utf-8")
    except Exception:
        return None
    for line in text.splitlines():
        info = json.loads(line).get("commitInfo") if line.strip() else None
        if info is not None and str(info.get("lh360.batch_id")) == str(batch_id):
            return info.get("lh360.nonce")
    return None


def _files_from_history(dt) -> set[str]:
    files: set[str] = set()
    for commit in dt.history():
        listed = commit.get("lh360.files")
        if listed:
            files.update(json.loads(listed))
    return files


def _write_state(target: ResolvedTarget, spec: TableSpec, batch_id: int, files: set[str], nonce: str) -> None:
    lake = Lake(target.lake)
    store = store_for(target.lake, target.settings.aws)
    doc = {"batch_id": batch_id, "nonce": nonce, "files": sorted(files)}
    store.write_bytes(_state_uri(lake, spec, batch_id), gzip.compress(json.dumps(doc).encode(), compresslevel=1))
    old = batch_id - STATE_KEEP
    if old >= 0:
        try:
            store.delete(_state_uri(lake, spec, old))
        except Exception:
            pass  # pruning is housekeeping, never a reason to fail a batch


def landing_prefix(target: ResolvedTarget, spec: TableSpec) -> str:
    return join(target.landing, spec.source.path)


def list_landing(
    target: ResolvedTarget, spec: TableSpec, done: set[str] | None = None, committed: int = -1
) -> list[FileInfo]:
    """The table's landing files. Given the ingest state (`done`, `committed`), an S3 listing may start
    after the listing watermark (lh360.listing): every file not in `done` is still returned, except a late
    upload that sorts below the watermark, which the next full listing (at most LH360_FULL_LISTING_INTERVAL
    later) returns. Without the state: every file, as before."""
    from lh360.listing import list_table

    return list_table(target, spec, done, committed).files


def pending_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> list[FileInfo]:
    """Landing files not yet in bronze, oldest first (modification time, then path)."""
    committed, done = ingested_files(target, spec, dt)
    listed = list_landing(target, spec, done, committed)
    return sorted((f for f in listed if f.rel not in done), key=lambda f: (f.mtime, f.rel))


# ---- landing files as local NDJSON ---------------------------------------------------------------


@dataclass
class _Prepared:
    info: FileInfo
    local: Path


def _prepare(files: list[FileInfo], target: ResolvedTarget, tmp: Path) -> list[_Prepared]:
    """Local NDJSON files for DuckDB: downloads from S3, gunzips, and turns JSON-array files into NDJSON."""
    store = store_for(target.landing, target.settings.aws)

    def one(i_info: tuple[int, FileInfo]) -> _Prepared:
        i, info = i_info
        path = store.local_copy(info.uri, tmp)
        if info.rel.lower().endswith(".gz"):
            out = tmp / f"{i}.ndjson"
            with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            path = out
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):
            path = _array_to_ndjson(path, tmp / f"{i}.array.ndjson")
        return _Prepared(info, path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, enumerate(files)))


def _array_to_ndjson(src: Path, dst: Path) -> Path:
    """A JSON-array file → one element per line (line N = element N). If it does not parse as a whole,
    it is read as NDJSON so its bad lines are kept as corrupt records."""
    try:
        items = json.loads(src.read_bytes().decode("utf-8-sig"))
    except ValueError:
        return src
    if not isinstance(items, list):
        return src
    with open(dst, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
    return dst


class _NewColumns(Exception):
    """The batch's rows carry fields the schema lacks (addNewColumns: evolve and restart; failOnNewColumns: stop)."""


def _new_columns(con, paths: list[Path], schema: dict[str, str]) -> dict[str, str]:
    """The fields rows carry beyond `schema`, typed by a full scan of the batch (rare: only on change)."""
    return {k: v for k, v in infer_schema(con, paths, sample_lines=None, sample_files=None).items() if k not in schema}


# ---- the step --------------------------------------------------------------------------------------


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
    committed, done = ingested_files(target, spec, dt)
    pending = sorted(
        (f for f in list_landing(target, spec, done, committed) if f.rel not in done), key=lambda f: (f.mtime, f.rel)
    )
    result = IngestResult(table=spec.table, pending_files=len(pending))
    size = spec.bronze.max_files_per_batch
    chunks = [pending[i : i + size] for i in range(0, len(pending), size)][:max_batches]
    if progress:
        progress("start", table=spec.table, files=len(pending), bytes=sum(f.size for f in pending), batches=len(chunks))
    con = duckdb.connect(config={"preserve_insertion_order": "false"})
    con.execute("SET enable_progress_bar = false")
    try:
        for chunk in chunks:
            batch = _ingest_batch(con, target, spec, dt, committed + 1, chunk, done)
            dt = open_table(bronze_uri, target.settings.aws)
            committed = batch.batch_id
            done |= {f.rel for f in chunk}
            batch.version = dt.version()
            result.batches.append(batch)
            if progress:
                progress("batch", table=spec.table, batch=batch)
        if dt is not None:
            result.version = dt.version()
            result.schema = _data_schema(con, dt)
    finally:
        con.close()
    return result


def _ingest_batch(
    con, target: ResolvedTarget, spec: TableSpec, dt, batch_id: int, chunk: list[FileInfo], done: set[str]
) -> BatchResult:
    """Read one batch of files and append it to bronze in ONE commit carrying (app id, batch id)."""
    started = time.monotonic()
    batch = BatchResult(batch_id=batch_id, files=len(chunk), bytes=sum(f.size for f in chunk))
    hints = {k: parse_type(v) for k, v in spec.bronze.schema_hints.items()}
    mode = spec.bronze.schema_evolution
    existed = dt is not None
    with tempfile.TemporaryDirectory(prefix="lh360-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        prepared = _prepare(chunk, target, tmp)
        if dt is None:
            schema = {**infer_schema(con, [p.local for p in prepared]), **hints}
            new_cols: list[str] = []
        else:
            # a column added to schema_hints joins the schema (how failOnNewColumns is unblocked)
            schema = _data_schema(con, dt)
            new_cols = [k for k in hints if k not in schema]
            schema.update({k: hints[k] for k in new_cols})
        # at most two restarts: Auto Loader stops once on new columns and restarts with them
        for _restart in range(3):
            try:
                counters = _write_batch(con, target, spec, dt, batch_id, schema, prepared, done, tmp)
                break
            except _NewColumns:
                extra = _new_columns(con, [p.local for p in prepared], schema)
                if not extra:
                    raise EngineError(
                        f"{spec.table}: rows carry fields that could not be typed; set schema_hints"
                    ) from None
                if mode == "failOnNewColumns":
                    files = ", ".join(p.info.rel for p in prepared[:5])
                    raise SchemaChangeError(
                        f"{spec.table}: new columns {', '.join(sorted(extra))} in batch {batch_id} (files {files}…); "
                        "schema_evolution is failOnNewColumns: add them to schema_hints or change the mode, then rerun"
                    ) from None
                # addNewColumns: restart the batch in-process with the new columns (nothing was committed)
                schema = {**schema, **extra}
                new_cols = [*new_cols, *extra]
        else:
            raise EngineError(f"{spec.table}: schema kept changing within batch {batch_id}")
    batch.new_columns = list(new_cols) if existed else []
    batch.rows, batch.rescued, batch.malformed = counters["rows"], counters["rescued"], counters["malformed"]
    batch.fast_path = bool(counters["fast_path"])
    batch.seconds = round(time.monotonic() - started, 3)
    return batch


def _write_batch(
    con,
    target: ResolvedTarget,
    spec: TableSpec,
    dt,
    batch_id: int,
    schema: dict[str, str],
    prepared: list[_Prepared],
    done: set[str],
    tmp: Path,
) -> dict[str, int]:
    """DuckDB writes the batch's Parquet files; delta-rs commits them in ONE commit with (app id, batch id)."""
    from deltalake.exceptions import CommitFailedError

    bronze_uri = Lake(target.lake).table("bronze", spec.table)
    fast_path = fast_path_fits(con, schema, [p.local for p in prepared])
    sql = batch_sql(schema, [p.info for p in prepared], batch_id, datetime.now(UTC), fast_path=fast_path)
    out_schema = _empty_schema(con, sql)
    folder = bronze_files.staging_folder(bronze_uri, tmp)
    try:
        staged = _copy_lines(con, sql, [p.local for p in prepared], folder)
        watch = spec.bronze.schema_evolution in ("addNewColumns", "failOnNewColumns")
        counters = {**_count(con, staged, schema, watch=watch), "fast_path": fast_path}
        storage_options = delta_storage_options(bronze_uri, target.settings.aws)
        if dt is None:
            dt = _create_bronze(bronze_uri, out_schema, storage_options, spec)
        # the state file first: if we die before the commit below, it names a batch that never committed
        nonce = uuid.uuid4().hex
        _write_state(target, spec, batch_id, done | {p.info.rel for p in prepared}, nonce)
        metadata = {
            "lh360.step": "ingest",
            "lh360.table": spec.table,
            "lh360.batch_id": str(batch_id),
            "lh360.files": json.dumps(sorted(p.info.rel for p in prepared)),
            "lh360.nonce": nonce,
        }
        props = commit_properties(app_id(spec), batch_id, metadata)
        try:
            # on the snapshot `committed` was read from: a racing writer's commit of this batch id then
            # conflicts with ours (its app transaction) instead of being silently followed by a duplicate
            if set(out_schema.names) - set(arrow_schema(dt).names):
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


def _copy_lines(con, sql: str, paths: list[Path], folder: Path) -> list:
    """The batch SQL over every line of `paths`, streamed in chunks, written by DuckDB under `folder`."""
    lines, close = lines_mod.reader(paths)
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
    count malformed lines and, when the mode watches for them, fields the schema lacks."""
    rows = sum(f.rows for f in staged)
    rescued = sum(f.rows - (f.null_count("_rescued_data") or 0) for f in staged)
    counters = {"rows": rows, "rescued": rescued, "malformed": 0}
    if not rescued:
        return counters
    files = "[" + ", ".join(lit(str(f.path)) for f in staged) + "]"
    ours = "[" + ", ".join(lit(n) for n in [*schema, *META_COLUMNS, "_file_path", "_line", "_corrupt_record"]) + "]"
    malformed, unknown = con.execute(
        f"""SELECT count_if(json_exists(_rescued_data, '$._corrupt_record')),
             count_if(len(list_filter(json_keys(_rescued_data), lambda k: NOT list_contains({ours}::VARCHAR[], k))) > 0)
           FROM read_parquet({files}) WHERE _rescued_data IS NOT NULL"""
    ).fetchall()[0]
    if watch and unknown:
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
    rebase the loser's first batch onto version 1 and land it twice."""
    import pyarrow as pa
    from deltalake import DeltaTable

    try:
        return DeltaTable.create(
            to_delta_uri(uri),
            pa.schema(_delta_fields(schema)),
            mode="error",
            name=f"bronze_{spec.table}",
            configuration={"delta.appendOnly": "true"},
            storage_options=storage_options,
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


def _data_schema(con, dt) -> dict[str, str]:
    """The bronze table's source columns (not the metadata ones) as DuckDB types."""
    import pyarrow as pa

    empty = pa.schema(arrow_schema(dt)).empty_table()
    con.register("__bronze_schema", empty)
    try:
        rows = con.execute("DESCRIBE SELECT * FROM __bronze_schema").fetchall()
    finally:
        con.unregister("__bronze_schema")
    return {name: type_ for name, type_, *_ in rows if name not in META_TYPES}
