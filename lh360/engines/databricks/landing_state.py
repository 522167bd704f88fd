"""Which landing files are already in bronze on a `databricks` target.

The Spark job appends each Auto Loader micro-batch to bronze in one Delta commit whose `userMetadata` names
the micro-batch's files (`{"lh360.step": "ingest", "lh360.batch_id": N, "lh360.files": [paths]}`, see
`bronze_commit_metadata` in lh360/spark/job.py). The ops box reads those commits from bronze's
`_delta_log` (plain JSON files, no Spark needed) and keeps what it learned in a small cache,
`<lake>/_lh360/state/<table>/ingest-log.json.gz` = {"table_id", "version": V, "files": [...]}, so each check
reads only the commits after V. The cache is derived from the log alone and keyed by bronze's table id:
losing it, two processes writing it, or bronze created anew cost one re-read, never a wrong answer.

`committed` is bronze's Delta version: it only grows while bronze lives (the listing watermark keys on it,
lh360.listing). If log cleanup removed commits the cache never saw (the cache is lost, or no check ran for
longer than the log's retention), their files are named by bronze's rows instead (`_source_file`): every
file that gave a row (Auto Loader still ingests each file once: its checkpoint, not this record, decides).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from urllib.parse import unquote

from lh360.config import ResolvedTarget
from lh360.delta import open_table, reader
from lh360.engines.base import IngestState
from lh360.layout import Lake, landing_prefix
from lh360.spec import TableSpec
from lh360.storage import join, store_for

log = logging.getLogger("lh360.databricks")

CACHE_NAME = "ingest-log.json.gz"
_COMMIT = re.compile(r"(\d{20})\.json")


def relative(path: str, prefix: str) -> str | None:
    """A file path the job recorded (`_metadata.file_path`, URL-encoded by Spark) relative to the table's
    landing prefix, or None when it lies elsewhere."""
    path, prefix = unquote(path), prefix.rstrip("/") + "/"
    for p in (path, path.replace("s3a://", "s3://", 1), path.replace("dbfs:", "", 1)):
        if p.startswith(prefix):
            return p[len(prefix) :]
    return None


def ingested(target: ResolvedTarget, spec: TableSpec) -> IngestState:
    lake = Lake(target.lake)
    bronze_uri = lake.table("bronze", spec.table)
    dt = open_table(bronze_uri, target.settings.aws)
    if dt is None:
        return IngestState(-1, set())
    latest, table_id = dt.version(), dt.metadata().id
    store = store_for(target.lake, target.settings.aws)
    cache_uri = lake.state(spec.table, CACHE_NAME)
    seen, files = _load_cache(store, cache_uri, table_id)
    if seen > latest:
        seen, files = -1, set()  # the cache is ahead of the table: not this table's history
    log_dir = join(bronze_uri, "_delta_log")
    # commit files sort by version: list only those after the cached one (S3: StartAfter)
    start_after = f"{seen:020d}.json" if seen >= 0 else None
    unread = sorted(
        (int(m.group(1)), f.uri)
        for f in store.list(log_dir, start_after=start_after)
        if (m := _COMMIT.fullmatch(f.rel)) is not None and seen < int(m.group(1)) <= latest
    )
    warnings: list[str] = []
    prefix = landing_prefix(target.landing, spec.source.path)
    first = unread[0][0] if unread else None
    if (first is None and seen < latest) or (first is not None and first > seen + 1):
        files |= _files_from_rows(dt, prefix, warnings)  # log cleanup removed commits never read
    for _version, uri in unread:
        files.update(_commit_files(store.read_bytes(uri), prefix))
    if unread or seen < latest:
        doc = {"table_id": table_id, "version": latest, "files": sorted(files)}
        try:
            store.write_bytes(cache_uri, gzip.compress(json.dumps(doc).encode()))
        except Exception as exc:  # noqa: BLE001 - a cache; the log is the truth
            log.warning("could not save %s: %s", cache_uri, exc)
    return IngestState(latest, files, warnings=warnings)


def _files_from_rows(dt, prefix: str, warnings: list[str]) -> set[str]:
    """The landing files bronze's rows came from (`_source_file`), relative to the table's prefix."""

    if "_source_file" not in dt.schema().to_arrow().names:
        warnings.append("bronze's early commits are gone (log cleanup) and it has no _source_file column")
        return set()
    out: set[str] = set()
    for batch in reader(dt, ["_source_file"], where='"_source_file" IS NOT NULL'):
        out.update(r for p in set(batch.column(0).to_pylist()) if (r := relative(str(p), prefix)) is not None)
    return out


def _load_cache(store, uri: str, table_id: str) -> tuple[int, set[str]]:
    """(version read up to, files) of the cache, or (-1, empty) when missing, unreadable or another table's
    (bronze deleted and created again has a new table id)."""
    try:
        doc = json.loads(gzip.decompress(store.read_bytes(uri)))
        if doc.get("table_id") != table_id:
            return -1, set()
        return int(doc["version"]), set(doc["files"])
    except Exception:  # noqa: BLE001 - missing or unreadable: rebuild from the log
        return -1, set()


def _commit_files(commit: bytes, prefix: str) -> set[str]:
    """The landing files an lh360 ingest commit names (its commitInfo.userMetadata)."""
    out: set[str] = set()
    for line in commit.decode("utf-8").splitlines():
        if not line.strip():
            continue
        info = json.loads(line).get("commitInfo")
        meta = info.get("userMetadata") if info else None
        if not meta:
            continue
        try:
            doc = json.loads(meta)
        except ValueError:
            continue
        if not isinstance(doc, dict) or doc.get("lh360.step") != "ingest":
            continue
        for path in doc.get("lh360.files") or []:
            rel = relative(str(path), prefix)
            if rel is not None:
                out.add(rel)
    return out
