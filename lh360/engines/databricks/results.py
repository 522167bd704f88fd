"""A Databricks run, read: its life-cycle and result states, and the typed step result built from the job's
own counters (the last-line JSON summary of lh360/spark/job.py). What the job does not report stays 0/None.

Runs are read as the raw JSON of `runs/get`, not through the SDK's dataclasses: those turn a state they do
not know into None, and a state nobody expected must be seen and logged as it is, never read as PENDING.
The run's `status` (RunLifecycleStateV2State: QUEUED, PENDING, RUNNING, TERMINATING, TERMINATED, BLOCKED,
WAITING) comes first; the deprecated `state` (RunLifeCycleState) is the fallback, and the source of the
finer result of an ended run when it is there (TIMEDOUT).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lh360.engines.base import (
    AggregateResult,
    IngestBatch,
    IngestResult,
    RefineResult,
    RemoteRun,
    ReplayResult,
    StepResult,
)

log = logging.getLogger("lh360.databricks")

ENGINE = "databricks"
V2_ACTIVE = {"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING"}
V2_TERMINAL = {"TERMINATED"}
V1_ACTIVE = {"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY"}
V1_TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
TERMINAL_LIFE_CYCLE = V1_TERMINAL  # the life cycles an ended run shows (RemoteRun.state)
# status.termination_details.code → the result lh360 reports (RunResultState's words)
_RESULT_OF_CODE = {
    "SUCCESS": "SUCCESS",
    "USER_CANCELED": "CANCELED",
    "CANCELED": "CANCELED",
    "SKIPPED": "SKIPPED",
    "DISABLED": "SKIPPED",
    "MAX_CONCURRENT_RUNS_EXCEEDED": "MAXIMUM_CONCURRENT_RUNS_REACHED",
    "WORKSPACE_RUN_LIMIT_EXCEEDED": "MAXIMUM_CONCURRENT_RUNS_REACHED",
    "MAX_JOB_QUEUE_SIZE_EXCEEDED": "MAXIMUM_CONCURRENT_RUNS_REACHED",
}
_logged_unknown: set[str] = set()


@dataclass(frozen=True)
class RunView:
    """One answer of `runs/get` (its raw JSON)."""

    raw: dict[str, Any]

    # ---- plain fields ----------------------------------------------------------------------------

    @property
    def run_id(self) -> int:
        return int(self.raw["run_id"])

    @property
    def run_page_url(self) -> str | None:
        return self.raw.get("run_page_url")

    @property
    def run_name(self) -> str | None:
        return self.raw.get("run_name")

    @property
    def task_run_id(self) -> int:
        """The run id of its (only) task: get-output answers for task runs, not for their parent."""
        tasks = self.raw.get("tasks") or []
        return int(tasks[0]["run_id"]) if tasks and tasks[0].get("run_id") else self.run_id

    def _v1(self) -> dict[str, Any]:
        return self.raw.get("state") or {}

    def _v2(self) -> dict[str, Any]:
        return self.raw.get("status") or {}

    @property
    def state_message(self) -> str:
        details = self._v2().get("termination_details") or {}
        return (details.get("message") or self._v1().get("state_message") or "").strip()

    # ---- life cycle ------------------------------------------------------------------------------

    def life_cycle(self) -> str:
        """The life cycle as lh360 shows it: QUEUED, PENDING, RUNNING, BLOCKED, WAITING_FOR_RETRY, TERMINATING,
        TERMINATED, INTERNAL_ERROR, SKIPPED, or the raw name of a state lh360 does not know."""
        v2, v1 = self._v2().get("state"), self._v1().get("life_cycle_state")
        if v2 in V2_ACTIVE:
            return "WAITING_FOR_RETRY" if v2 == "WAITING" else v2
        if v2 in V2_TERMINAL:
            if v1 in V1_TERMINAL:
                return v1
            code = (self._v2().get("termination_details") or {}).get("code")
            kind = (self._v2().get("termination_details") or {}).get("type")
            if kind == "INTERNAL_ERROR" or code == "INTERNAL_ERROR":
                return "INTERNAL_ERROR"
            return "SKIPPED" if code in ("SKIPPED", "DISABLED") else "TERMINATED"
        if v1 in V1_ACTIVE or v1 in V1_TERMINAL:
            if v2 is not None:
                self._unknown(f"status.state {v2!r} (state.life_cycle_state {v1!r} used)")
            return v1
        self._unknown(f"status.state {v2!r}, state.life_cycle_state {v1!r}")
        return str(v2 or v1 or "UNKNOWN")

    def is_terminal(self) -> bool:
        return self.life_cycle() in V1_TERMINAL

    def known(self) -> bool:
        """Whether lh360 knows the run's life cycle (an unknown one is waited on, up to the timeout)."""
        lc = self.life_cycle()
        return lc in V1_ACTIVE or lc in V1_TERMINAL

    def result_state(self) -> str | None:
        """How an ended run ended: SUCCESS, FAILED, TIMEDOUT, CANCELED, SKIPPED, ...; None while it runs."""
        if not self.is_terminal():
            return None
        v1 = self._v1().get("result_state")
        details = self._v2().get("termination_details") or {}
        code = details.get("code")
        if code is None:
            return v1
        if code == "SUCCESS":
            return "SUCCESS"
        if v1 in ("TIMEDOUT", "CANCELED", "FAILED", "SKIPPED", "EXCLUDED", "MAXIMUM_CONCURRENT_RUNS_REACHED"):
            return v1  # the finer word: a run past its timeout_seconds is CANCELED in status, TIMEDOUT here
        return _RESULT_OF_CODE.get(code, "FAILED")

    def termination_code(self) -> str | None:
        return (self._v2().get("termination_details") or {}).get("code")

    def queue_reason(self) -> str | None:
        q = self._v2().get("queue_details") or {}
        return q.get("code") or q.get("message")

    def describe(self) -> str:
        """One word (or two) for messages and the journal: QUEUED (ACTIVE_RUNS_LIMIT_REACHED),
        TERMINATED/SUCCESS, RUNNING ..."""
        lc, rs = self.life_cycle(), self.result_state()
        if rs and lc in V1_TERMINAL:
            return f"{lc}/{rs}"
        if lc == "QUEUED" and self.queue_reason():
            return f"QUEUED ({self.queue_reason()})"
        return lc

    def _unknown(self, what: str) -> None:
        key = f"{self.raw.get('run_id')}:{what}"
        if key not in _logged_unknown:  # once per run and value, not at every poll
            _logged_unknown.add(key)
            log.warning(
                "run %s is in a state lh360 does not know: %s; waiting for it like a running one (up to the timeout)",
                self.raw.get("run_id"),
                what,
                extra={"fields": {"run_id": self.raw.get("run_id"), "status": self._v2(), "state": self._v1()}},
            )


def succeeded(run: RemoteRun) -> bool:
    return run.detached or run.result_state == "SUCCESS"


def step_result(step: str, table: str, relation: str, run: RemoteRun, seconds: float) -> StepResult:
    """The engine-neutral result of one step, from the run and the counters its job reported."""
    job = run.job

    def n(key: str) -> int:
        v = job.get(key)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

    seconds = round(seconds, 3)
    if step == "ingest":
        return IngestResult(
            table=table, engine=ENGINE, files=n("files"), bytes=n("bytes"), rows=n("rows_in"),
            rescued=n("rescued"), malformed=n("malformed"), new_columns=list(job.get("new_columns") or []),
            batches=[IngestBatch(batch_id=i) for i in range(n("batches"))], seconds=seconds, run=run,
        )  # fmt: skip
    if step == "refine":
        return RefineResult(
            table=table, engine=ENGINE, rows_in=n("rows_in"), kept=n("kept"), rows_out=n("rows_out"),
            inserted=n("inserted"), updated=n("updated"), closed=n("closed"), quarantined=n("quarantined"),
            dropped=n("dropped"), warned=dict(job.get("warned") or {}), rule_failures=dict(job.get("failed") or {}),
            noop=not run.detached and "rows_in" in job and n("rows_in") == 0, seconds=seconds, run=run,
        )  # fmt: skip
    if step == "replay":
        return replay_result(table, run, seconds)
    return AggregateResult(
        relation=relation, table=table, engine=ENGINE, rows_out=n("rows_out"), seconds=seconds, run=run
    )


def replay_result(table: str, run: RemoteRun, seconds: float) -> ReplayResult:
    """A quarantine replay as the job's summary reports it (lh360/spark/runtime.py run_replay)."""
    job = run.job

    def n(key: str) -> int:
        v = job.get(key)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

    def version(key: str) -> int | None:
        v = job.get(key)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    return ReplayResult(
        table=table, engine=ENGINE, replay_run=version("replay_run"), resumed=job.get("resumed") is True,
        evaluated=n("evaluated"), passed=n("passed"), dropped=n("dropped"),
        still_quarantined=n("still_quarantined"), inserted=n("inserted"), updated=n("updated"), stale=n("stale"),
        quarantine_version=version("quarantine_version"), silver_version=version("silver_version"),
        seconds=seconds, run=run,
    )  # fmt: skip


def job_counters(summary: dict[str, Any]) -> dict[str, Any]:
    """The job's summary without its envelope (job version, step, table, run id)."""
    return {k: v for k, v in summary.items() if k not in ("lh360_job", "step", "table", "run_id")}
