"""Checkpoint generations of the job's streams (ingest: landing → bronze; refine: bronze → silver).

Each stream keeps its progress in a checkpoint under `<lake>/_lh360/state/<table>/checkpoint/`, and makes
its writes idempotent with Delta app transactions: app id `lh360-<step>-<table>`, version = the micro-batch
id. If a checkpoint is lost (deleted, recreated: the usual Databricks remedy for a stuck stream), its batch
ids restart at 0 and Delta skips every append whose version is not above the last one it recorded for that
app id: the run would succeed, report 0 rows, and its checkpoint would mark the files as done. Their data
would be lost without a word.

So before it submits a step, lh360 looks at the lake: a table (bronze for ingest, silver for refine) that
holds data while the current generation's checkpoint does not exist is refused (exit 3) with the way out.
`--new-checkpoint [--generation NAME]` starts a new generation G: checkpoint `<layer>-gG`, app ids
`…-gG` (so Delta skips nothing), recorded in `<state>/generation-<layer>.json` for the runs after it. Its
first ingest run leaves out the files bronze already holds (each file still lands once); its first refine
merges bronze's current version into silver again (a version silver already has changes nothing).

`promote --to silver --full-refresh` starts a new generation of the refine stream too, marked
`"full_refresh": "pending"`: its first micro-batch (all of bronze) replaces silver and quarantine
(lh360/spark/contract.py). Until lh360 has seen a run of that generation succeed (the mark turns "done"),
every refine of it is sent as a full refresh again, so one interrupted between the two replaces is finished
by the next run; a batch the stream has recorded is never replayed, so a needless resend changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from lh360.config import ResolvedTarget
from lh360.errors import EngineError, UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import join, store_for

log = logging.getLogger("lh360.databricks")

LAYER_OF_STEP = {"ingest": "bronze", "refine": "silver"}
NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def marker(target: ResolvedTarget, table: str, layer: str) -> str:
    return Lake(target.lake).state(table, f"generation-{layer}.json")


def checkpoint(target: ResolvedTarget, table: str, layer: str, generation: str | None) -> str:
    """The stream's checkpoint folder (lh360/spark/job.py's checkpoint_location)."""
    return Lake(target.lake).state(table, "checkpoint", f"{layer}-g{generation}" if generation else layer)


def current(target: ResolvedTarget, table: str, layer: str) -> str | None:
    """The generation the table's stream is in (None: the first, unnamed one)."""
    doc = read_marker(target, table, layer)
    return None if doc is None else str(doc["generation"])


def read_marker(target: ResolvedTarget, table: str, layer: str) -> dict | None:
    """The generation record ({"generation", "previous", "started_at"[, "full_refresh"]}), None before any."""
    uri = marker(target, table, layer)
    store = store_for(uri, target.settings.aws)
    try:
        if not store.exists(uri):
            return None
        doc = json.loads(store.read_bytes(uri))
        doc["generation"] = str(doc["generation"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{uri} is damaged ({exc}): restore it, or start a new generation") from None
    return doc


def refresh_pending(target: ResolvedTarget, table: str) -> str | None:
    """The refine generation whose full refresh no run has been seen to finish yet, if any."""
    doc = read_marker(target, table, "silver")
    return doc["generation"] if doc and doc.get("full_refresh") == "pending" else None


def start(
    target: ResolvedTarget, table: str, layer: str, name: str, previous: str | None, *, full_refresh: bool = False
) -> str:
    """Record a new generation (minted from the time when `name` is empty) and return its name;
    `full_refresh`: its first run rebuilds the table (marked pending until a run is seen to succeed)."""
    name = name or datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    if not NAME.fullmatch(name):
        raise UsageError(f"--generation {name!r}: use 1 to 40 letters, digits, '-' or '_'")
    if name == previous:
        raise UsageError(f"--generation {name!r} is the current generation of {table}'s {layer} checkpoint")
    doc = {"generation": name, "previous": previous, "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if full_refresh:
        doc["full_refresh"] = "pending"
    _write(target, table, layer, doc)
    log.info("new checkpoint generation", extra={"fields": {"table": table, "layer": layer, **doc}})
    return name


def refresh_done(target: ResolvedTarget, table: str, generation: str) -> None:
    """A run of `generation` succeeded: its full refresh is complete (if it is still the current one)."""
    doc = read_marker(target, table, "silver")
    if doc and doc["generation"] == generation and doc.get("full_refresh") == "pending":
        _write(target, table, "silver", {**doc, "full_refresh": "done"})


def _write(target: ResolvedTarget, table: str, layer: str, doc: dict) -> None:
    uri = marker(target, table, layer)
    store_for(uri, target.settings.aws).write_bytes(uri, json.dumps(doc).encode())


def lost(target: ResolvedTarget, spec: TableSpec, step: str, generation: str | None) -> str | None:
    """The checkpoint folder if it is missing while the table it feeds holds data; None when all is well
    (or when the lake cannot be looked at: the check then says so in the log and lets the run go)."""
    layer = LAYER_OF_STEP[step]
    folder = checkpoint(target, spec.table, layer, generation)
    table = Lake(target.lake).table(layer, spec.table)
    try:
        store = store_for(folder, target.settings.aws)
        if store.exists(join(folder, "metadata")):
            return None
        holds_data = next(iter(store.list(join(table, "_delta_log"))), None) is not None
    except Exception as exc:  # noqa: BLE001 - no rights on the lake from this box: the job still runs
        log.warning("could not check the checkpoint %s: %s", folder, str(exc).splitlines()[0] if str(exc) else exc)
        return None
    return folder if holds_data else None


def lost_error(target: ResolvedTarget, spec: TableSpec, step: str, folder: str) -> EngineError:
    layer = LAYER_OF_STEP[step]
    command = "ingest" if step == "ingest" else "promote --to silver"
    after = (
        "the files bronze already holds are left out of its first run"
        if step == "ingest"
        else "its first run merges bronze's current version into silver again; versions silver already has "
        "change nothing (rows without a key and quarantined rows of that version may be added a second time)"
    )
    return EngineError(
        f"{step} {spec.table}: the checkpoint {folder} is gone, but {layer} already holds data. Run on with a "
        f"new checkpoint under the same name and Delta would skip its batches as ones it has seen (their ids "
        f"restart at 0): their rows would be lost. Restore the checkpoint, or start a new generation: "
        f"lh360 -t {target.name} {command} {spec.table} --new-checkpoint ({after})"
    )
