"""When each maintenance task is due, for every lake table: the `maintenance:` policy and its record.

Every lake table gets the same four tasks: compaction, a checkpoint, log cleanup and VACUUM (their
mechanics are the engine's: `Engine.maintain`; the ledgers, which lh360 itself writes with delta-rs on every
target, are maintained by `lh360.engines.local.maintain`). The policy says how often each is due:

    maintenance:                      # in a target; a spec may override any field for its tables
      compact:     {every: 1d, target_size: 128MB}
      checkpoint:  {every: 1d}
      log_cleanup: {every: 1d, retain: 30d}
      vacuum:      {every: 1d, retain: 7d}    # under 7d only with allow_short_retention: true

`every: off` turns a task off. `lh360 run` performs what is due; `lh360 maintain` performs every task now.
When a task was last done is recorded per table (`<lake>/_lh360/state/<table>/maintenance.json`, and
`…/state/lh360.ledgers/maintenance.json` for the ledgers): a table seen for the first time has its clock
started, not its tasks run, so a new table's first runs stay as fast as before. The record is advisory: if
it is lost, the clocks start again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lh360.config import ResolvedTarget
from lh360.durations import format_duration
from lh360.engines.base import MISSING_TABLE, MaintainResult, MaintenanceWork
from lh360.engines.local.maintain import maintain_table
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.spec import SHORTEST_RETENTION, TableSpec
from lh360.storage import store_for

log = logging.getLogger("lh360.maintenance")

TASKS = ("compact", "checkpoint", "log_cleanup", "vacuum")
LEDGERS = "lh360.ledgers"  # the lock and record name of the ledgers (no spec can be named so: dots)
LEDGER_RELATIONS = ("lh360.runs", "lh360.checks")
DAY = timedelta(days=1)
DEFAULTS: dict[str, dict[str, Any]] = {
    "compact": {"every": DAY, "target_size": 128 * 1024**2},
    "checkpoint": {"every": DAY},
    "log_cleanup": {"every": DAY, "retain": timedelta(days=30)},  # Delta's delta.logRetentionDuration
    "vacuum": {"every": DAY, "retain": SHORTEST_RETENTION, "allow_short_retention": False},
}
# files no commit references are only deleted from a table no run writes without its lock when they are
# at least this old (a ledger append in flight has written its file and not yet committed it)
UNLOCKED_STRAY_AGE = 3600.0


@dataclass(frozen=True)
class Policy:
    """A resolved policy: each task's settings, `every` None when the task is off."""

    compact: dict[str, Any]
    checkpoint: dict[str, Any]
    log_cleanup: dict[str, Any]
    vacuum: dict[str, Any]

    def every(self, task: str) -> timedelta | None:
        return getattr(self, task)["every"]


def policy(target: ResolvedTarget, spec: TableSpec | None = None) -> Policy:
    """The target's policy with the spec's overrides, field by field, over lh360's defaults."""
    layers = [target.settings.maintenance, spec.maintenance if spec is not None else None]
    out: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        values = dict(DEFAULTS[task])
        for layer in layers:
            if layer is None:
                continue
            given = getattr(layer, task).model_dump(exclude_none=True)
            values.update(given)
        if values["every"] == "off":
            values["every"] = None
        out[task] = values
    return Policy(**out)


@dataclass(frozen=True)
class Overrides:
    """What `lh360 maintain` asks beyond the policy: which tasks (None: all), and retentions."""

    tasks: tuple[str, ...] | None = None
    retain: timedelta | None = None  # VACUUM
    log_retain: timedelta | None = None
    allow_short_retention: bool = False

    def check(self) -> None:
        unknown = [t for t in self.tasks or () if t not in TASKS]
        if unknown:
            raise UsageError(f"unknown maintenance task {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
        if self.retain is not None and self.retain < SHORTEST_RETENTION and not self.allow_short_retention:
            raise UsageError(
                f"--retain {_human(self.retain)} is shorter than 7 days: a run or reader still on an older version "
                "may lose its files (and time travel that far back is lost); pass --allow-short-retention if "
                "nothing reads or writes these tables while VACUUM runs"
            )


def work_for(pol: Policy, due: set[str], *, overrides: Overrides | None = None, locked: bool = True) -> MaintenanceWork:
    """The engine's work order for one table: the tasks in `due`, with the policy's (or the command's)
    settings. `locked`: whether every writer of the table takes the lock maintenance holds."""
    o = overrides or Overrides()
    retain = (o.retain if o.retain is not None else pol.vacuum["retain"]).total_seconds()
    log_retain = (o.log_retain if o.log_retain is not None else pol.log_cleanup["retain"]).total_seconds()
    return MaintenanceWork(
        compact="compact" in due,
        target_size=int(pol.compact["target_size"]),
        checkpoint="checkpoint" in due,
        log_cleanup="log_cleanup" in due,
        log_retain=log_retain,
        vacuum="vacuum" in due,
        vacuum_retain=retain,
        vacuum_full=locked or retain >= UNLOCKED_STRAY_AGE,
    )


def relations(spec: TableSpec) -> list[str]:
    """The lake tables of a spec, quarantine included: bronze, silver, quarantine, gold."""
    out = [f"bronze.{spec.table}"]
    if spec.silver is not None:
        out += [f"silver.{spec.table}", f"quarantine.{spec.table}"]
    return out + [f"gold.{g}" for g in spec.gold]


# ---- when each task was last done --------------------------------------------------------------------


@dataclass
class Record:
    """{relation: {task: epoch seconds}} of one spec's tables (or of the ledgers), as stored."""

    uri: str
    done: dict[str, dict[str, float]] = field(default_factory=dict)
    changed: bool = False

    def due(self, relation: str, pol: Policy, now: float) -> set[str]:
        """The tasks of `relation` due at `now`; a task seen for the first time starts its clock."""
        seen = self.done.setdefault(relation, {})
        out = set()
        for task in TASKS:
            every = pol.every(task)
            if every is None:
                continue
            if task not in seen:
                seen[task] = now
                self.changed = True
            elif now - seen[task] >= every.total_seconds():
                out.add(task)
        return out

    def mark(self, relation: str, tasks: list[str], now: float) -> None:
        if tasks:
            self.done.setdefault(relation, {}).update(dict.fromkeys(tasks, now))
            self.changed = True


def checked(result: MaintainResult) -> list[str]:
    """The tasks whose clock restarts: those performed, and those found needless (no small files to
    bin-pack) or left to the platform. A task skipped because the table does not exist yet stays due."""
    return [*result.done, *(task for task, why in result.skipped.items() if why != MISSING_TABLE)]


def record_uri(target: ResolvedTarget, name: str) -> str:
    return Lake(target.lake).state(name, "maintenance.json")


def load_record(target: ResolvedTarget, name: str) -> Record:
    uri = record_uri(target, name)
    try:
        doc = json.loads(store_for(uri, target.settings.aws).read_bytes(uri))
        done = doc.get("done") if isinstance(doc, dict) else None
        if isinstance(done, dict):
            return Record(uri, {str(r): {str(t): float(v) for t, v in d.items()} for r, d in done.items()})
    except Exception as exc:  # advisory: missing or unreadable means the clocks start again
        if not isinstance(exc, FileNotFoundError) and "NoSuchKey" not in f"{type(exc).__name__}{exc}":
            log.warning("maintenance record %s unreadable (%s): its clocks start again", uri, exc)
    return Record(uri)


def save_record(target: ResolvedTarget, record: Record) -> None:
    if not record.changed:
        return
    doc = {"version": 1, "done": record.done}
    try:
        store_for(record.uri, target.settings.aws).write_bytes(record.uri, json.dumps(doc, indent=1).encode())
        record.changed = False
    except Exception as exc:  # advisory: a lost record only makes a task due again
        log.warning("could not save the maintenance record %s: %s", record.uri, exc)


def maintain_ledger(target: ResolvedTarget, relation: str, work: MaintenanceWork) -> MaintainResult:
    """Maintenance of `lh360.runs` / `lh360.checks`: lh360 writes them with delta-rs on every target."""

    name = relation.split(".", 1)[1]
    uri = getattr(Lake(target.lake), name)
    return maintain_table(uri, target.settings.aws, relation, "*", work, engine="delta-rs")


def now() -> float:
    return time.time()


def _human(td: timedelta) -> str:
    return format_duration(td)
