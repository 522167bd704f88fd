"""Idempotency tokens for `jobs.submit`: a retried cron never starts a step twice; the next run is a new one.

The rule. A token is `lh360-` + the first 40 hex digits of
sha256("<target>|<catalog>|<lake>|<step>|<table>|<logical id>"), 46 characters (Databricks allows 64).
The *logical id* of a run is

* `--run-id ID` when given (an orchestrator's run id, or `$(date +%F)` for once a day): exactly one
  Databricks run per (target, step, table, ID), on any machine, forever (Databricks' own rule);
* otherwise `<epoch>.<n>` from a small journal on the ops box: `n` is the step's submission counter
  and `epoch` a random id minted when the journal is first created (so a lost journal never
  replays old tokens). Before submitting, lh360 records "submitted n"; when it sees the run end it
  records "finished n". A process that dies in between (crash, reboot, kill -9, `--detach`) leaves
  "submitted": the next invocation reuses n, so the same token, and Databricks answers with the run
  already started instead of a second one; lh360 then waits for that run. If that run had already ended
  while nobody watched, its outcome is reported and a fresh logical run (n+1) is submitted.

"finished" is recorded only once the run was SEEN in a terminal state. A run lh360 asked to cancel that had
not ended yet stays "submitted" with `cancel_requested`: the next invocation waits for it to end before it
starts a new one (two streams on one checkpoint never run at once).

Ownership. Every submission also carries a *submitter* id, `<epoch>.<n>` of this ops box's journal, in its
run name (`lh360 ingest clientes [3f9a2c1b0d11.7]`). Databricks answers a repeated token with the run the
FIRST submitter created, so comparing the run's submitter with the journal's says whether this box
started the run (and may cancel it) or attached to a run another box or invocation started, never by
comparing clocks.

The journal lives in `$XDG_STATE_HOME/lh360/databricks/<key>/` (default ~/.local/state), one file per
step and table, written atomically; steps of one table are serialized by the table lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lh360.config import ResolvedTarget

TOKEN_PREFIX = "lh360-"
TOKEN_HEX = 40


def idempotency_token(target: ResolvedTarget, step: str, table: str, logical_id: str) -> str:
    s = target.settings.databricks
    catalog = s.catalog if s else ""
    key = "|".join((target.name, catalog, target.lake, step, table, logical_id))
    token = TOKEN_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:TOKEN_HEX]
    assert len(token) <= 64
    return token


def state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "lh360" / "databricks"


@dataclass
class Entry:
    seq: int
    logical_id: str
    token: str
    status: str  # submitted | finished
    run_id: int | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None
    submitter: str | None = None  # <epoch>.<seq> of the journal that made the submission (run name)
    cancel_requested: bool = False  # lh360 asked Databricks to cancel the run and has not seen it end


def run_name(step: str, name: str, submitter: str | None) -> str:
    """The run's name: what it does, and who submitted it (the submitter id decides ownership)."""
    return f"lh360 {step} {name}" + (f" [{submitter}]" if submitter else "")


def submitter_of(run_name_text: str | None) -> str | None:
    """The submitter id in a run name made by run_name(), or None."""
    m = re.search(r" \[([^\[\]]+)\]$", run_name_text or "")
    return m.group(1) if m else None


class Journal:
    """Per target: the last submission of each (step, table)."""

    def __init__(self, target: ResolvedTarget, root: Path | None = None) -> None:
        self.target = target
        s = target.settings.databricks
        key = hashlib.sha256(f"{target.name}|{s.catalog if s else ''}|{target.lake}".encode()).hexdigest()[:16]
        self.dir = (root or state_home()) / f"{_safe(target.name)}-{key}"

    # ---- files ------------------------------------------------------------------------------------

    def _path(self, step: str, table: str) -> Path:
        return self.dir / f"{_safe(step)}--{_safe(table)}.json"

    @property
    def epoch(self) -> str:
        path = self.dir / "epoch"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        self.dir.mkdir(parents=True, exist_ok=True)
        value = uuid.uuid4().hex[:12]
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another process won: use its epoch
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    def load(self, step: str, table: str) -> Entry | None:
        try:
            data = json.loads(self._path(step, table).read_text())
            return Entry(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # a damaged journal costs at most one duplicate run, never a wrong token reuse

    def save(self, step: str, table: str, entry: Entry) -> None:
        path = self._path(step, table)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(entry), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---- the rule -----------------------------------------------------------------------------------

    def next_entry(self, step: str, table: str, run_id: str | None = None) -> tuple[Entry, bool]:
        """The submission to make now and whether it resumes one that never saw its end."""
        last = self.load(step, table)
        if last is not None and last.status == "submitted" and (run_id is None or last.logical_id == run_id):
            return last, True
        seq = (last.seq + 1) if last else 1
        submitter = f"{self.epoch}.{seq}"
        logical = run_id if run_id is not None else submitter
        token = idempotency_token(self.target, step, table, logical)
        return Entry(seq, logical, token, "submitted", submitter=submitter), False

    def peek(self, step: str, table: str, run_id: str | None = None) -> tuple[Entry, bool]:
        """Like next_entry, without creating anything on disk (for `lh360 plan`)."""
        last = self.load(step, table)
        if last is not None and last.status == "submitted" and (run_id is None or last.logical_id == run_id):
            return last, True
        seq = (last.seq + 1) if last else 1
        epoch_file = self.dir / "epoch"
        epoch = epoch_file.read_text().strip() if epoch_file.exists() else None
        submitter = f"{epoch}.{seq}" if epoch else "<new>"
        if run_id is not None:
            return Entry(
                seq, run_id, idempotency_token(self.target, step, table, run_id), "planned", submitter=submitter
            ), False
        if epoch is None:
            return Entry(seq, "<new>", "<minted at the first submit>", "planned", submitter=submitter), False
        return Entry(
            seq, submitter, idempotency_token(self.target, step, table, submitter), "planned", submitter=submitter
        ), False

    def submitted(self, step: str, table: str, entry: Entry) -> None:
        entry.status = "submitted"
        entry.submitted_at = entry.submitted_at or _now()
        self.save(step, table, entry)

    def finished(self, step: str, table: str, entry: Entry, outcome: str) -> None:
        """The run was seen in a terminal state (never call it before)."""
        entry.status, entry.outcome, entry.finished_at = "finished", outcome, _now()
        entry.cancel_requested = False
        self.save(step, table, entry)

    def cancel_requested(self, step: str, table: str, entry: Entry) -> None:
        """lh360 asked Databricks to cancel the run; it stays "submitted" until it is seen ending."""
        entry.status, entry.cancel_requested = "submitted", True
        self.save(step, table, entry)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
