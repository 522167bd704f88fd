"""A Databricks run, read: its life-cycle and result states, and the typed step result built from the job's
own counters (the last-line JSON summary of lh360/spark/job.py). What the job does not report stays 0/None."""

from __future__ import annotations

from typing import Any

from lh360.engines.base import AggregateResult, IngestBatch, IngestResult, RefineResult, RemoteRun, StepResult

TERMINAL_LIFE_CYCLE = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
ENGINE = "databricks"


def _value(enum: Any) -> str | None:
    return None if enum is None else getattr(enum, "value", str(enum))


def life_cycle(run: Any) -> str:
    return _value(getattr(run.state, "life_cycle_state", None)) or "PENDING"


def result_state(run: Any) -> str | None:
    return _value(getattr(run.state, "result_state", None)) if run.state else None


def describe_state(run: Any) -> str:
    lc, rs = life_cycle(run), result_state(run)
    return f"{lc}/{rs}" if rs and lc in TERMINAL_LIFE_CYCLE else lc


def is_terminal(run: Any) -> bool:
    return life_cycle(run) in TERMINAL_LIFE_CYCLE


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
    return AggregateResult(
        relation=relation, table=table, engine=ENGINE, rows_out=n("rows_out"), seconds=seconds, run=run
    )


def job_counters(summary: dict[str, Any]) -> dict[str, Any]:
    """The job's summary without its envelope (job version, step, table, run id)."""
    return {k: v for k, v in summary.items() if k not in ("lh360_job", "step", "table", "run_id")}
