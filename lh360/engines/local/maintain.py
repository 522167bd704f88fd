"""Maintenance of one Delta table with delta-rs: compaction, a checkpoint, log cleanup, VACUUM.

The tasks run in that order, each only when `MaintenanceWork` asks for it:

1. compaction (`optimize.compact`): small files bin-packed toward `target_size`, one commit that changes no
   row (`dataChange: false`);
2. VACUUM: data files that no version within the retention needs are deleted, and (`vacuum_full`) files no
   commit references at all, older than the retention (what a killed writer left);
3. a checkpoint of the newest version (the whole snapshot in one Parquet file, app transactions included);
4. log cleanup: commit and checkpoint files older than the retention and older than the checkpoint before
   that one are deleted, so opening the table reads a checkpoint and the few commits after it.

What lh360 keeps in commits survives all four. Ingest's exactly-once state and the numbers of silver's
watermark live in app transactions, which checkpoints keep. The rest (silver's watermark with bronze's
table id and the spec hash, quarantine's pin, gold's sources) lives in commit metadata: every maintenance
commit carries the metadata of the table's newest lh360 commit forward, and log cleanup never deletes the
newest commit that holds it. The log cleanup is lh360's own (delta-rs' `cleanup_metadata` takes its
retention from a table property that only a commit can change, and knows nothing of that commit).

Maintenance rewrites files, so it runs under the table's lock: delta-rs detects a merge that conflicts with
a compaction, but an overwrite on a snapshot older than a compaction commits and keeps the compacted rows.
A process killed at any point leaves the table readable: a compaction or VACUUM commits atomically (files
written before the commit are unreferenced, removed by a later VACUUM), a checkpoint is written before
`_last_checkpoint` points to it, and log files are deleted oldest first, leaving the two newest checkpoints
and every commit after the older one.
"""

from __future__ import annotations

import math
import re
import time

from lh360.config import AwsSettings
from lh360.delta import open_table
from lh360.engines.base import MISSING_TABLE, MaintainResult, MaintenanceWork
from lh360.errors import EngineError, LH360Error, LockBusy, first_line
from lh360.storage import join, store_for

# the steps whose commit metadata is the table's state (refine: silver's watermark; quarantine: its pin;
# aggregate: gold's sources; maintain and replay: a copy carried forward)
STATE_STEPS = ("refine", "quarantine", "aggregate", "maintain", "replay")
# per-commit figures, not state: not carried
NOT_CARRIED = ("lh360.step", "lh360.rows_in", "lh360.quarantined", "lh360.create_nonce", "lh360.replayed")
_LOG_FILE = re.compile(r"^(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet|checkpoint\.[^/]+\.(json|parquet))$")


def maintain_table(
    uri: str, aws: AwsSettings | None, relation: str, table: str, work: MaintenanceWork, *, engine: str = "local"
) -> MaintainResult:
    """Run the tasks of `work` on the Delta table at `uri` (see the module docstring)."""
    from deltalake.exceptions import CommitFailedError

    started = time.monotonic()
    result = MaintainResult(relation=relation, table=table, engine=engine)
    dt = open_table(uri, aws)
    if dt is None:
        result.skipped = dict.fromkeys(work.tasks(), MISSING_TABLE)
        return result
    result.version_before = dt.version()
    result.files_before, result.bytes_before = active_files(dt)
    state_version, carried = carried_state(dt)
    try:
        if work.compact:
            dt, committed = _compact(uri, aws, dt, work, carried, result)
            state_version = committed if committed is not None and carried else state_version
        if work.vacuum:
            dt, committed = _vacuum(uri, aws, dt, work, carried, result)
            state_version = committed if committed is not None and carried else state_version
        if work.checkpoint:
            dt.create_checkpoint()
            result.checkpoint_version = dt.version()
            result.done.append("checkpoint")
        if work.log_cleanup:
            keep_from = state_version if state_version is not None else dt.version()
            result.logs_removed = clean_log(uri, aws, keep_from, work.log_retain)
            result.done.append("log_cleanup")
    except CommitFailedError as exc:
        raise LockBusy(
            f"{relation}: another writer committed during maintenance ({first_line(exc)}); try again"
        ) from None
    except LH360Error:
        raise
    except Exception as exc:
        raise EngineError(f"{relation}: maintenance failed: {first_line(exc)}") from None
    result.version_after = dt.version()
    result.files_after, result.bytes_after = active_files(dt)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _props(carried: dict[str, str], relation: str):
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={**carried, "lh360.step": "maintain", "lh360.relation": relation})


def _compact(uri, aws, dt, work: MaintenanceWork, carried, result: MaintainResult):
    """Bin-pack small files; (table after, the version committed or None)."""
    before = dt.version()
    metrics = dt.optimize.compact(target_size=work.target_size, commit_properties=_props(carried, result.relation))
    result.compacted_files = int(metrics.get("numFilesRemoved", 0))
    result.compacted_into = int(metrics.get("numFilesAdded", 0))
    dt = open_table(uri, aws)
    if dt.version() == before:
        result.skipped["compact"] = "no small files to bin-pack"
        return dt, None
    result.done.append("compact")
    return dt, dt.version()


def _vacuum(uri, aws, dt, work: MaintenanceWork, carried, result: MaintainResult):
    """Delete the data files no version within the retention needs; (table after, last version committed)."""
    before = dt.version()
    hours = math.ceil(work.vacuum_retain / 3600)  # delta-rs counts whole hours: round toward keeping more
    deleted = dt.vacuum(
        retention_hours=hours,
        dry_run=False,
        enforce_retention_duration=hours >= 168,
        full=work.vacuum_full,
        commit_properties=_props(carried, result.relation),
    )
    result.vacuumed_files = len(deleted)
    result.done.append("vacuum")
    dt = open_table(uri, aws)
    return dt, (dt.version() if dt.version() != before else None)


def active_files(dt) -> tuple[int, int]:
    """(data files, bytes) of the table's current version."""
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0 or "size_bytes" not in actions.schema.names:
        return actions.num_rows, 0
    return actions.num_rows, int(sum(v or 0 for v in actions.column("size_bytes").to_pylist()))


def carried_state(dt) -> tuple[int | None, dict[str, str]]:
    """(version, lh360 metadata) of the table's newest commit that holds lh360 state; (None, {}) when no
    commit in its log does (bronze and the ledgers keep none there)."""
    for commit in _newest_first(dt):
        if commit.get("lh360.step") in STATE_STEPS:
            meta = {k: str(v) for k, v in commit.items() if k.startswith("lh360.") and k not in NOT_CARRIED}
            version = commit.get("version")
            return (int(version) if version is not None else None), meta
    return None, {}


def _newest_first(dt, first: int = 20):
    """Commit infos newest first: a few, then the rest (the one wanted is nearly always recent)."""
    head = dt.history(first)
    yield from head
    if len(head) >= first:
        yield from dt.history()[first:]


def clean_log(uri: str, aws: AwsSettings | None, keep_from: int, retain_seconds: float) -> int:
    """Delete the log files older than `retain_seconds` of the versions before both `keep_from` and the
    second newest checkpoint, oldest first; how many were deleted. Keeping the checkpoint before the newest:
    a process that listed the log just before the newest was written opens the table from that one."""
    store = store_for(uri, aws)
    files = []
    for f in _listing(store, join(uri, "_delta_log")):
        m = _LOG_FILE.match(f.rel)
        if m:
            files.append((int(m.group(1)), m.group(2).startswith("checkpoint"), f))
    checkpoints = sorted({version for version, is_checkpoint, _ in files if is_checkpoint})
    if len(checkpoints) < 2:
        return 0
    boundary = min(checkpoints[-2], keep_from)
    cutoff = time.time() - retain_seconds
    doomed = sorted((version, f.uri) for version, _, f in files if version < boundary and f.mtime <= cutoff)
    for _, file in doomed:
        store.delete(file)
    return len(doomed)


def _listing(store, folder: str, attempts: int = 3) -> list:
    """The log folder's files; listed again when a writer's temporary file vanished while it was listed."""
    for attempt in range(attempts):
        try:
            return list(store.list(folder))
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
    return []
