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

import gzip
import json
import logging
import re
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
from lh360.engines.local.batch_query import META_TYPES, RESERVED, batch_sql, fast_path_fits, is_reserved, lit
from lh360.engines.local.infer import evolve, infer_schema
from lh360.errors import EngineError, LockBusy, SchemaChangeError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import FileInfo, delta_storage_options, is_s3, join, store_for, to_delta_uri
from lh360.types import parse_type

STATE_KEEP = 3

log = logging.getLogger("lh360.ingest")

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
    settling: list[dict[str, Any]] = field(default_factory=list)  # written too recently: the next run takes them
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # quarantined by this run
    still_quarantined: list[dict[str, Any]] = field(default_factory=list)  # quarantined before, unchanged: skipped
    rewritten: list[dict[str, Any]] = field(default_factory=list)  # ingested, then rewritten: not ingested again
    symlinks: list[dict[str, Any]] = field(default_factory=list)  # not followed
    future_mtime: list[dict[str, Any]] = field(default_factory=list)  # mtimes in the future
    vanished: list[str] = field(default_factory=list)  # deleted between listing and reading
    warnings: list[str] = field(default_factory=list)

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
            "settling": self.settling,
            "quarantined": self.quarantined,
            "still_quarantined": self.still_quarantined,
            "rewritten": self.rewritten,
            "symlinks": self.symlinks,
            "future_mtime": self.future_mtime,
            "vanished": self.vanished,
            "warnings": self.warnings,
        }


def app_id(spec: TableSpec) -> str:
    return f"lh360-ingest-{spec.table}"


# ---- what has been ingested ------------------------------------------------------------------------


@dataclass
class IngestState:
    """What bronze holds: the last committed batch (-1: none), the relative paths of the ingested files and,
    for files ingested since lh360 recorded them, their (size, mtime) then (to report a rewritten file)."""

    committed: int = -1
    files: set[str] = field(default_factory=set)
    meta: dict[str, tuple[int, float]] = field(default_factory=dict)


def _state_uri(lake: Lake, spec: TableSpec, batch_id: int) -> str:
    return lake.state(spec.table, "ingest", f"{batch_id:012d}.json.gz")


def ingested_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> tuple[int, set[str]]:
    """(last committed batch id or -1, relative paths of every landing file already in bronze)."""
    state = read_ingest_state(target, spec, dt)
    return state.committed, state.files


def read_ingest_state(target: ResolvedTarget, spec: TableSpec, dt=None) -> IngestState:
    """The ingest state of the committed batch: its state file when it belongs to that commit, else rebuilt
    from the Delta log. State files written before sizes and mtimes were recorded read as files only."""
    lake = Lake(target.lake)
    if dt is None:
        dt = open_table(lake.table("bronze", spec.table), target.settings.aws)
    committed = txn_version(dt, app_id(spec))
    if committed < 0:
        return IngestState(committed)
    store = store_for(target.lake, target.settings.aws)
    try:
        doc = json.loads(gzip.decompress(store.read_bytes(_state_uri(lake, spec, committed))))
        # the nonce ties the file to THE commit of this batch: a racing writer that lost the commit may have
        # overwritten the state file of the same batch id with its own file list
        if doc.get("batch_id") == committed and doc.get("nonce") == _commit_nonce(target, spec, dt, committed):
            return IngestState(committed, set(doc["files"]), _meta_from(doc.get("meta")))
    except (FileNotFoundError, OSError, ValueError, KeyError):
        pass
    except Exception as exc:  # S3 NoSuchKey and friends: fall back to the log
        if "NoSuchKey" not in type(exc).__name__ and "404" not in str(exc) and "NoSuchKey" not in str(exc):
            raise
    files, meta = _files_from_history(dt)
    return IngestState(committed, files, meta)


def _meta_from(doc: Any) -> dict[str, tuple[int, float]]:
    """{rel: [size, mtime]} as stored → {rel: (size, mtime)}; anything else (an older state) → {}."""
    if not isinstance(doc, dict):
        return {}
    return {str(k): (int(v[0]), float(v[1])) for k, v in doc.items()}


def _file_meta(files: list[FileInfo]) -> dict[str, list]:
    return {f.rel: [f.size, f.mtime] for f in files}


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


def _files_from_history(dt) -> tuple[set[str], dict[str, tuple[int, float]]]:
    files: set[str] = set()
    meta: dict[str, tuple[int, float]] = {}
    for commit in reversed(dt.history()):  # oldest first: a later commit's size/mtime wins
        listed = commit.get("lh360.files")
        if listed:
            files.update(json.loads(listed))
        if commit.get("lh360.file_meta"):
            meta.update(_meta_from(json.loads(commit["lh360.file_meta"])))
    return files, meta


def _write_state(
    target: ResolvedTarget,
    spec: TableSpec,
    batch_id: int,
    files: set[str],
    nonce: str,
    meta: dict[str, tuple[int, float]] | None = None,
) -> None:
    lake = Lake(target.lake)
    store = store_for(target.lake, target.settings.aws)
    doc = {
        "batch_id": batch_id,
        "nonce": nonce,
        "files": sorted(files),
        "meta": {rel: list(m) for rel, m in (meta or {}).items()},
    }
    store.write_bytes(_state_uri(lake, spec, batch_id), gzip.compress(json.dumps(doc).encode(), compresslevel=1))
    old = batch_id - STATE_KEEP
    if old >= 0:
        try:
            store.delete(_state_uri(lake, spec, old))
        except Exception:
            pass  # pruning is housekeeping, never a reason to fail a batch


# ---- quarantined landing files -----------------------------------------------------------------------
# A file that cannot be read as a whole (not gzip, a truncated gzip, a last line that never ended, no read
# permission) is quarantined as a FILE: recorded in <lake>/_lh360/state/<table>/quarantine.json with its
# size, mtime and error, reported by `ingest` and `landing`, and skipped while it stays as it is, so the
# batch's good files land and the bad one is neither retried on every run nor forgotten. It is tried again
# as soon as its size or mtime changes: fix or replace the file (or `touch` it) and the next ingest reads
# it. The record is advisory bookkeeping beside the exactly-once state: if it is lost, the file is simply
# tried (and quarantined) again; it never holds a file that is in bronze.

QUARANTINE_VERSION = 1


def _quarantine_uri(target: ResolvedTarget, spec: TableSpec) -> str:
    return Lake(target.lake).state(spec.table, "quarantine.json")


def load_quarantine(target: ResolvedTarget, spec: TableSpec) -> dict[str, dict[str, Any]]:
    """{rel: {size, mtime, error, at}} of the quarantined landing files ({} when there is none)."""
    store = store_for(target.lake, target.settings.aws)
    try:
        doc = json.loads(store.read_bytes(_quarantine_uri(target, spec)))
    except FileNotFoundError:
        return {}
    except Exception as exc:
        if "NoSuchKey" in f"{type(exc).__name__} {exc}" or "404" in str(exc):
            return {}
        # advisory: an unreadable record only means its files are tried (and quarantined) again
        log.warning("%s: quarantine record unreadable (%s); its files are tried again", spec.table, exc)
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return dict(files) if isinstance(files, dict) else {}


def save_quarantine(target: ResolvedTarget, spec: TableSpec, files: dict[str, dict[str, Any]]) -> None:
    store = store_for(target.lake, target.settings.aws)
    doc = {"version": QUARANTINE_VERSION, "files": dict(sorted(files.items()))}
    store.write_bytes(_quarantine_uri(target, spec), json.dumps(doc, indent=1).encode())


def still_quarantined(entry: dict[str, Any] | None, f: FileInfo) -> bool:
    """Whether the file is as it was when quarantined (a changed file is tried again)."""
    return entry is not None and entry.get("size") == f.size and entry.get("mtime") == f.mtime


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


@dataclass
class Candidates:
    """The landing files of a table as the next ingest sees them."""

    state: IngestState
    listing: Any  # lh360.listing.Listing
    ready: list[FileInfo]  # pending, settled, not quarantined: what an ingest takes, oldest first
    settling: list[dict[str, Any]]  # pending but written too recently (local landing zones)
    quarantined: list[dict[str, Any]]  # quarantined and unchanged since: skipped
    retried: list[str]  # quarantined before, changed since: tried again
    rewritten: list[dict[str, Any]]  # ingested before, size or mtime changed since: reported, not re-ingested
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)


def landing_candidates(
    target: ResolvedTarget, spec: TableSpec, dt=None, *, now: float | None = None, full_listing: bool | None = None
) -> Candidates:
    """List the table's landing zone against its ingest state: what is ready, settling, quarantined or
    rewritten."""
    from lh360.listing import list_table, split_settled

    now = time.time() if now is None else now
    state = read_ingest_state(target, spec, dt)
    listing = list_table(target, spec, state.files, state.committed, now=now, full=full_listing)
    quarantine = load_quarantine(target, spec)
    pending, quarantined, retried = [], [], []
    for f in listing.files:
        if f.rel in state.files:
            continue
        entry = quarantine.get(f.rel)
        if still_quarantined(entry, f):
            quarantined.append({"file": f.rel, "error": entry.get("error"), "since": entry.get("at")})
            continue
        if entry is not None:
            retried.append(f.rel)
        pending.append(f)
    ready, settling = split_settled(listing, pending, spec.landing.settle.total_seconds(), now)
    ready.sort(key=lambda f: (f.mtime, f.rel))
    return Candidates(
        state, listing, ready, settling, quarantined, retried, rewritten_files(listing.files, state), quarantine
    )


def rewritten_files(listed: list[FileInfo], state: IngestState) -> list[dict[str, Any]]:
    """Ingested files whose size or mtime changed since: files are identified by their path, and a rewrite
    under an ingested name is not ingested again (as Auto Loader with cloudFiles.allowOverwrites=false),
    but it is reported, never silently ignored."""
    out = []
    for f in listed:
        before = state.meta.get(f.rel)
        if before is not None and (before[0] != f.size or before[1] != f.mtime):
            out.append(
                {
                    "file": f.rel,
                    "ingested_size": before[0],
                    "size": f.size,
                    "ingested_mtime": before[1],
                    "mtime": f.mtime,
                }
            )
    return out


def pending_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> list[FileInfo]:
    """Landing files the next ingest takes, oldest first (modification time, then path): not yet in
    bronze, settled, and not quarantined as they are."""
    return landing_candidates(target, spec, dt).ready


# ---- landing files as local NDJSON ---------------------------------------------------------------


@dataclass
class _Prepared:
    info: FileInfo
    local: Path
    limit: int | None = None  # read this many bytes of `local` (the size that was checked), None: all


@dataclass
class _Problem:
    info: FileInfo
    kind: str  # quarantine | settling | vanished
    error: str


class _FileProblem(Exception):
    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind, self.error = kind, error


def _prepare(
    files: list[FileInfo], target: ResolvedTarget, tmp: Path, *, links_inside: str | None = None
) -> tuple[list[_Prepared], list[_Problem]]:
    """Local NDJSON files for DuckDB: downloads from S3, gunzips, and turns JSON-array files into NDJSON.
    A file that cannot be read whole comes back as a _Problem instead (see the quarantine section)."""
    store = store_for(target.landing, target.settings.aws)
    s3 = is_s3(target.landing)

    def one(i_info: tuple[int, FileInfo]) -> _Prepared | _Problem:
        i, info = i_info
        try:
            return _prepare_one(i, info, store, tmp, s3=s3, links_inside=links_inside)
        except _FileProblem as p:
            return _Problem(info, p.kind, p.error)

    with ThreadPoolExecutor(max_workers=8) as pool:
        out = list(pool.map(one, enumerate(files)))
    return [p for p in out if isinstance(p, _Prepared)], [p for p in out if isinstance(p, _Problem)]


def _prepare_one(i: int, info: FileInfo, store, tmp: Path, *, s3: bool, links_inside: str | None) -> _Prepared:
    limit: int | None = None
    if s3:
        path = _download(store, info, tmp)
    else:
        path = Path(info.uri)
        _recheck(info, links_inside)
        limit = info.size
    if info.rel.lower().endswith(".gz"):
        path = _gunzip(path, tmp / f"{i}.ndjson", limit)
        limit = None
    try:
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise _FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"["):
        array = _array_to_ndjson(path, tmp / f"{i}.array.ndjson", limit)
        if array is not None:
            return _Prepared(info, array)
    if not info.rel.lower().endswith(".gz"):
        _check_complete(path, limit)
    return _Prepared(info, path, limit)


def _download(store, info: FileInfo, tmp: Path) -> Path:
    """The S3 object as a local file; a vanished object is skipped, one we may not read is quarantined."""
    try:
        return store.local_copy(info.uri, tmp)
    except Exception as exc:
        text = f"{type(exc).__name__} {exc}"
        if "NoSuchKey" in text or "404" in text or "Not Found" in text:
            raise _FileProblem("vanished", "deleted after it was listed") from None
        if "AccessDenied" in text or "403" in text or "Forbidden" in text:
            raise _FileProblem("quarantine", f"cannot read: {str(exc).splitlines()[0][:200]}") from None
        raise


def _recheck(info: FileInfo, links_inside: str | None) -> None:
    """Right before reading a local file: it is still what the listing saw (same size and mtime, still not
    a symlink unless allowed), so that a file written since is left to settle instead of read half-way."""
    import os

    try:
        st = os.stat(info.uri)
        link = os.path.islink(info.uri)
    except FileNotFoundError:
        raise _FileProblem("vanished", "deleted after it was listed") from None
    except OSError as exc:
        raise _FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    if link and (links_inside is None or not _inside(info.uri, links_inside)):
        raise _FileProblem("settling", "replaced by a symlink after it was listed")
    if st.st_size != info.size or st.st_mtime != info.mtime:
        raise _FileProblem("settling", "changed after it was listed (still being written?)")


def _inside(uri: str, root: str) -> bool:
    import os

    from lh360.storage import is_within

    return is_within(os.path.realpath(uri), root)


GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(src: Path, dst: Path, limit: int | None) -> Path:
    """Decompress a whole gzip stream (of the first `limit` bytes of `src`). A file that is not gzip, or
    whose stream ends early or is corrupt, cannot be read whole: quarantined."""
    import zlib

    try:
        with open(src, "rb") as raw:
            if raw.read(2) != GZIP_MAGIC:
                raise _FileProblem("quarantine", "not a gzip file (a .gz name without the gzip header)")
            raw.seek(0)
            data = raw if limit is None else _Limited(raw, limit)
            with gzip.open(data, "rb") as stream, open(dst, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
    except EOFError:
        raise _FileProblem("quarantine", "truncated gzip: the compressed stream ends early") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise _FileProblem("quarantine", f"corrupt gzip: {exc}") from None
    except PermissionError as exc:
        raise _FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    return dst


class _Limited:
    """A read-only file object over the first `limit` bytes of `fh` (for gzip.open)."""

    def __init__(self, fh, limit: int) -> None:
        self.fh, self.left = fh, limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.fh.read(n)
        self.left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def _check_complete(path: Path, limit: int | None) -> None:
    """An NDJSON file is complete when it ends with a newline, or when its last line is a whole JSON value
    (a producer that writes no final newline), or when the whole file is one JSON document. Otherwise its
    last line was cut (a writer that died, or is still writing after a pause longer than landing.settle):
    the file is quarantined until it changes, rather than ingested with the rest of that line lost."""
    import os

    size = os.path.getsize(path) if limit is None else limit
    if size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        last = _last_line(fh, size)
    if _whole_json(last.strip().lstrip(b"\xef\xbb\xbf")):
        return
    with open(path, "rb") as fh:
        whole = fh.read(size)
    if _whole_json(whole.strip().lstrip(b"\xef\xbb\xbf")):
        return
    raise _FileProblem(
        "quarantine", "incomplete: the last line has no newline and is not a whole JSON value (a cut write)"
    )


def _last_line(fh, size: int, block: int = 1 << 16) -> bytes:
    """The bytes after the last newline among the first `size` bytes of `fh`."""
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        tail = fh.read(end - start) + tail
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return tail[cut + 1 :]
        end = start
    return tail


def _whole_json(data: bytes) -> bool:
    """Whether `data` is exactly one JSON object or array (nesting of any depth)."""
    if not data or data[:1] not in (b"{", b"["):
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    end = _value_end(text, 0)
    return end is not None and not text[end:].strip()


_WS = re.compile(r"[ \t\n\r]*")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^"\[\]{}]+', re.DOTALL)


def _value_end(text: str, start: int) -> int | None:
    """The index just past the JSON value starting at `start`, or None if none parses there. Python's
    parser is used where it can (C speed); a value nested deeper than its recursion limit is matched by
    brackets instead (DuckDB parses it later, whatever its depth)."""
    try:
        return _DECODER.raw_decode(text, start)[1]
    except RecursionError:
        return _bracket_end(text, start)
    except ValueError:
        return None


def _bracket_end(text: str, start: int) -> int | None:
    depth = 0
    for m in _TOKEN.finditer(text, start):
        tok = m.group()
        if tok in ("[", "{"):
            depth += 1
        elif tok in ("]", "}"):
            depth -= 1
            if depth == 0:
                return m.end()
        elif depth == 0:
            return None
    return None


_DECODER = json.JSONDecoder()


def _array_to_ndjson(src: Path, dst: Path, limit: int | None = None) -> Path | None:
    """A JSON-array file → one element per line (line N = element N), each element's text as the producer
    wrote it (numbers keep their digits; line breaks between tokens become spaces). None if the file is not
    one whole array: it is then read as NDJSON, so its bad lines are kept as corrupt records."""
    with open(src, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    elements = _array_elements(text)
    if elements is None:
        return None
    with open(dst, "w", encoding="utf-8") as out:
        for element in elements:
            out.write(element.replace("\r", " ").replace("\n", " ") + "\n")
    return dst


def _array_elements(text: str) -> list[str] | None:
    """The raw text of each element of the one JSON array in `text`, or None."""
    i = _WS.match(text, 0).end()
    if text[i : i + 1] != "[":
        return None
    i = _WS.match(text, i + 1).end()
    out: list[str] = []
    if text[i : i + 1] == "]":
        return out if not text[i + 1 :].strip() else None
    while True:
        end = _value_end(text, i)
        if end is None:
            return None
        out.append(text[i:end])
        i = _WS.match(text, end).end()
        sep = text[i : i + 1]
        if sep == "]":
            return out if not text[i + 1 :].strip() else None
        if sep != ",":
            return None
        i = _WS.match(text, i + 1).end()


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
    found = landing_candidates(target, spec, dt)
    committed, done, meta = found.state.committed, found.state.files, found.state.meta
    pending = found.ready
    result = IngestResult(table=spec.table, pending_files=len(pending))
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
            result.batches.append(batch)
            if progress:
                progress("batch", table=spec.table, batch=batch)
        if dt is not None:
            result.version = dt.version()
            result.schema = _data_schema(con, dt)
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
) -> tuple[BatchResult | None, list[FileInfo]]:
    """Read one batch of files and append it to bronze in ONE commit carrying (app id, batch id). Files that
    cannot be read whole are left out of it (quarantined, or left to settle); (None, []) when none is left."""
    started = time.monotonic()
    hints = {k: parse_type(v) for k, v in spec.bronze.schema_hints.items()}
    mode = spec.bronze.schema_evolution
    existed = dt is not None
    with tempfile.TemporaryDirectory(prefix="lh360-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        prepared, problems = _prepare(chunk, target, tmp, links_inside=links_inside)
        _record_problems(target, spec, problems, done, result)
        if not prepared:
            return None, []
        taken = [p.info for p in prepared]
        batch = BatchResult(batch_id=batch_id, files=len(taken), bytes=sum(f.size for f in taken))
        if dt is None:
            schema = {**infer_schema(con, [p.local for p in prepared]), **hints}
            new_cols: list[str] = []
        else:
            # a column added to schema_hints joins the schema (how failOnNewColumns is unblocked)
            schema = _data_schema(con, dt)
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
    target: ResolvedTarget, spec: TableSpec, problems: list[_Problem], done: _Done, result: IngestResult
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


def _new_columns(con, prepared: list[_Prepared], schema: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(columns to add or widen, their paths: `email`, `endereco.complemento`) for the fields rows carry
    beyond `schema`, typed by a full scan of the batch (rare: only on change)."""
    inferred = infer_schema(
        con, [p.local for p in prepared], sample_lines=None, sample_files=None, limits=_limits(prepared)
    )
    return evolve(schema, inferred)


def _limits(prepared: list[_Prepared]) -> list[int | None]:
    return [p.limit for p in prepared]


def _write_batch(
    con,
    target: ResolvedTarget,
    spec: TableSpec,
    dt,
    batch_id: int,
    schema: dict[str, str],
    prepared: list[_Prepared],
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
        batch_meta = _file_meta([p.info for p in prepared])
        _write_state(
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
        props = commit_properties(app_id(spec), batch_id, metadata)
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
