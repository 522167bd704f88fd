"""What the local engine has taken into bronze: the exactly-once ingest state, and the landing files it
quarantined.

Each ingest batch is ONE Delta commit carrying an app transaction (`lh360-ingest-<table>`, version = batch
id), a second one whose version is the batch's nonce (`lh360-ingest-<table>.nonce`), and, in its commit
metadata, the files it holds with their size and mtime (`lh360.files`, `lh360.file_meta`). Before
committing batch N the ingest writes `state/<table>/ingest/N.json.gz`, the cumulative set of ingested files,
with that nonce. `read_ingest_state` trusts only the state file of the committed batch, and only when its
nonce is the one committed: a racing writer that lost the commit may have overwritten the file.

Why the nonce is an app transaction: maintenance must never cost exactly-once. App transactions live in the
table's snapshot, so checkpoints keep them and neither compaction (a later commit that is not the batch's)
nor log cleanup (the batch's commit file deleted) hides them. Bronze written before the nonce transaction
existed is checked against the nonce in the batch's commit file, found by reading back from the newest.

When the state file cannot be trusted (lost, or another batch's), the set is rebuilt from the Delta log;
if log cleanup removed early commits, from the `_source_file` column of bronze itself as well (every file
that gave a row; a file that gave none costs nothing if read again). The Delta table stays the source of
truth.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import open_table, reader, txn_version
from lh360.engines.base import IngestState
from lh360.layout import Lake, landing_prefix
from lh360.spec import TableSpec
from lh360.storage import FileInfo, is_s3, join, store_for

STATE_KEEP = 3  # state files kept besides the committed batch's (a crash may leave one for the next batch)

log = logging.getLogger("lh360.ingest")


def app_id(spec: TableSpec) -> str:
    return f"lh360-ingest-{spec.table}"


def nonce_app_id(spec: TableSpec) -> str:
    """The app transaction whose version is the nonce of the last committed batch (see the module doc)."""
    return f"lh360-ingest-{spec.table}.nonce"


def nonce_number(nonce: str) -> int | None:
    """A batch nonce (hex) as an app transaction version: its first 60 bits; None for a non-hex nonce."""
    try:
        return int(nonce[:15], 16)
    except (TypeError, ValueError):
        return None


# ---- what has been ingested ------------------------------------------------------------------------


def _state_uri(lake: Lake, spec: TableSpec, batch_id: int) -> str:
    return lake.state(spec.table, "ingest", f"{batch_id:012d}.json.gz")


def ingested_files(target: ResolvedTarget, spec: TableSpec, dt=None) -> tuple[int, set[str]]:
    """(last committed batch id or -1, relative paths of every landing file already in bronze)."""
    state = read_ingest_state(target, spec, dt)
    return state.committed, state.files


def read_ingest_state(target: ResolvedTarget, spec: TableSpec, dt=None) -> IngestState:
    """The ingest state of the committed batch: its state file when it belongs to that commit, else rebuilt
    from the Delta table. State files written before sizes and mtimes were recorded read as files only."""
    lake = Lake(target.lake)
    if dt is None:
        dt = open_table(lake.table("bronze", spec.table), target.settings.aws)
    committed = txn_version(dt, app_id(spec))
    if committed < 0:
        return IngestState(committed, set())
    store = store_for(target.lake, target.settings.aws)
    try:
        doc = json.loads(gzip.decompress(store.read_bytes(_state_uri(lake, spec, committed))))
        if doc.get("batch_id") == committed and _nonce_committed(target, spec, dt, committed, doc.get("nonce")):
            return IngestState(committed, set(doc["files"]), _meta_from(doc.get("meta")))
    except (FileNotFoundError, OSError, ValueError, KeyError):
        pass
    except Exception as exc:  # S3 NoSuchKey and friends: fall back to the table
        if "NoSuchKey" not in type(exc).__name__ and "404" not in str(exc) and "NoSuchKey" not in str(exc):
            raise
    files, meta = _files_from_table(target, spec, dt)
    return IngestState(committed, files, meta)


def _nonce_committed(target: ResolvedTarget, spec: TableSpec, dt, batch_id: int, nonce: Any) -> bool:
    """Whether `nonce` is the one the commit of `batch_id` (the last committed batch) carries."""
    if not isinstance(nonce, str):
        return False
    committed = txn_version(dt, nonce_app_id(spec))
    if committed >= 0:
        return committed == nonce_number(nonce)
    return nonce == _commit_nonce(target, spec, dt, batch_id)  # bronze from before the nonce transaction


def _meta_from(doc: Any) -> dict[str, tuple[int, float]]:
    """{rel: [size, mtime]} as stored → {rel: (size, mtime)}; anything else (an older state) → {}."""
    if not isinstance(doc, dict):
        return {}
    return {str(k): (int(v[0]), float(v[1])) for k, v in doc.items()}


def file_meta(files: list[FileInfo]) -> dict[str, list]:
    return {f.rel: [f.size, f.mtime] for f in files}


LEGACY_SCAN = 200  # commit files read back, at most, to find a legacy batch's commit


def _commit_nonce(target: ResolvedTarget, spec: TableSpec, dt, batch_id: int) -> str | None:
    """The nonce in the commit of `batch_id`, read from bronze's commit files, newest first (maintenance
    commits may follow it). Read with our store, not `dt.history()`, which is slower and holds the GIL while
    it waits on S3. None when that commit is not found (log cleanup removed it)."""
    store = store_for(target.lake, target.settings.aws)
    folder = join(Lake(target.lake).table("bronze", spec.table), "_delta_log")
    for version in range(dt.version(), max(dt.version() - LEGACY_SCAN, -1), -1):
        try:
            text = store.read_bytes(join(folder, f"{version:020d}.json")).decode("utf-8")
        except Exception:
            return None
        for line in text.splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info is None or "lh360.batch_id" not in info:
                continue
            if str(info.get("lh360.batch_id")) == str(batch_id):
                return info.get("lh360.nonce")
            return None  # another batch's commit: the one wanted is not after it
    return None


def _files_from_table(target: ResolvedTarget, spec: TableSpec, dt) -> tuple[set[str], dict[str, tuple[int, float]]]:
    """The ingested files as bronze records them: its log's commit metadata, and, when log cleanup removed
    early commits, the files bronze's rows came from."""
    files, meta, complete = _files_from_history(dt)
    if not complete:
        files |= _files_from_rows(target, spec, dt)
    return files, meta


def _files_from_history(dt) -> tuple[set[str], dict[str, tuple[int, float]], bool]:
    """(files, their size and mtime, whether the log still starts at version 0)."""
    files: set[str] = set()
    meta: dict[str, tuple[int, float]] = {}
    history = dt.history()
    for commit in reversed(history):  # oldest first: a later commit's size/mtime wins
        listed = commit.get("lh360.files")
        if listed:
            files.update(json.loads(listed))
        if commit.get("lh360.file_meta"):
            meta.update(_meta_from(json.loads(commit["lh360.file_meta"])))
    oldest = min((int(c.get("version", 0)) for c in history), default=0)
    return files, meta, oldest == 0


def _files_from_rows(target: ResolvedTarget, spec: TableSpec, dt) -> set[str]:
    """The landing files (relative to the table's prefix) named by bronze's `_source_file` column."""

    if "_source_file" not in dt.schema().to_arrow().names:
        return set()
    prefix = landing_prefix(target.landing, spec.source.path)
    prefix = prefix.rstrip("/") + "/" if is_s3(prefix) else str(prefix).rstrip(os.sep) + os.sep
    out: set[str] = set()
    for batch in reader(dt, ["_source_file"], where='"_source_file" IS NOT NULL'):
        for uri in set(batch.column(0).to_pylist()):
            if uri.startswith(prefix):
                out.add(uri[len(prefix) :].replace(os.sep, "/"))
    if not out and dt.version() >= 0:
        log.warning("%s: bronze's early commits are gone and its rows name no landing file here", spec.table)
    return out


def write_state(
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


def _read_json(target: ResolvedTarget, uri: str) -> Any:
    """A small JSON state file of the lake; {} when it does not exist (locally or on S3)."""
    store = store_for(target.lake, target.settings.aws)
    try:
        return json.loads(store.read_bytes(uri))
    except FileNotFoundError:
        return {}
    except Exception as exc:
        if "NoSuchKey" in f"{type(exc).__name__} {exc}" or "404" in str(exc):
            return {}
        raise


def _quarantine_uri(target: ResolvedTarget, spec: TableSpec) -> str:
    return Lake(target.lake).state(spec.table, "quarantine.json")


def load_quarantine(target: ResolvedTarget, spec: TableSpec) -> dict[str, dict[str, Any]]:
    """{rel: {size, mtime, error, at}} of the quarantined landing files ({} when there is none)."""
    try:
        doc = _read_json(target, _quarantine_uri(target, spec))
    except Exception as exc:
        # advisory: an unreadable record only means its files are tried (and quarantined) again
        log.warning("%s: quarantine record unreadable (%s); its files are tried again", spec.table, exc)
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return dict(files) if isinstance(files, dict) else {}


def save_quarantine(target: ResolvedTarget, spec: TableSpec, files: dict[str, dict[str, Any]]) -> None:
    store = store_for(target.lake, target.settings.aws)
    doc = {"version": QUARANTINE_VERSION, "files": dict(sorted(files.items()))}
    store.write_bytes(_quarantine_uri(target, spec), json.dumps(doc, indent=1).encode())


def ingest_state(target: ResolvedTarget, spec: TableSpec, dt=None) -> IngestState:
    """What the local engine holds of a table's landing zone: the ingested files (and their size and mtime
    then, or after lh360's own rewrite) and the quarantined ones (Engine.ingested)."""
    state = read_ingest_state(target, spec, dt)
    state.quarantined = load_quarantine(target, spec)
    state.meta.update({rel: m for rel, m in load_rewrites(target, spec).items() if rel in state.files})
    return state


# ---- landing files lh360 rewrote itself -------------------------------------------------------------------
# `lh360 forget` rewrites ingested landing files without a data subject's lines, under the same name. Their
# new size and mtime are recorded in <lake>/_lh360/state/<table>/rewrites.json and count as the ingested
# ones: such a file is lh360's own rewrite, neither new (ingest identifies files by path) nor a producer's
# rewrite to report. A later change of the file by anyone else is reported as usual.


def _rewrites_uri(target: ResolvedTarget, spec: TableSpec) -> str:
    return Lake(target.lake).state(spec.table, "rewrites.json")


def load_rewrites(target: ResolvedTarget, spec: TableSpec) -> dict[str, tuple[int, float]]:
    doc = _read_json(target, _rewrites_uri(target, spec))
    return _meta_from(doc.get("files") if isinstance(doc, dict) else None)


def record_rewrites(target: ResolvedTarget, spec: TableSpec, files: dict[str, tuple[int, float]]) -> None:
    """Record landing files lh360 rewrote (rel → new size, mtime)."""
    merged = {**load_rewrites(target, spec), **files}
    doc = {"files": {rel: list(m) for rel, m in sorted(merged.items())}}
    store_for(target.lake, target.settings.aws).write_bytes(_rewrites_uri(target, spec), json.dumps(doc).encode())
