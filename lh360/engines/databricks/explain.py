"""`lh360 plan -t <databricks target>`: the exact `jobs.submit` bodies (and their bytes on the wire) and SQL a
run would send. Offline: it reads the specs and the local idempotency journal, and never calls the workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lh360.config import Project
from lh360.engines.base import Explanation, PlannedStep
from lh360.engines.databricks import checkpoints
from lh360.engines.databricks.requests import SUBMIT_PATH, gold_owner, step_payload, submit_body, wire
from lh360.spec import spec_hash

if TYPE_CHECKING:
    from lh360.engines.databricks.engine import DatabricksEngine


def explain(engine: DatabricksEngine, project: Project, step: PlannedStep, inspect: bool = True) -> Explanation:
    """One step's jobs.submit body (payload, compute, idempotency token) and the SQL the job would run, or
    the statement for the SQL warehouse (`aggregate_on: warehouse`)."""
    from lh360.spark import contract  # the stdlib-only half of the job: payload parsing and SQL builders

    s = engine.settings
    spec = project.specs[step.table]
    gold = gold_owner(project, step.relation)[1] if step.kind == "aggregate" else None
    name = gold or spec.table
    entry, resumes = engine.journal.peek(step.kind, name, engine.run_id)
    stream = _stream(engine, spec, step.kind) if inspect else {}
    payload = step_payload(engine.target, spec, step.kind, entry.logical_id, gold, stream)
    detail: dict[str, Any] = {"engine": "databricks", "logical_id": entry.logical_id}
    if step.kind == "aggregate" and s.aggregate_on == "warehouse":
        assert gold is not None  # an aggregate step names its gold table
        statement = contract.gold_sql(payload, gold)
        detail.update(on="warehouse", warehouse_id=s.warehouse_id, statements=[statement])
        return Explanation(detail, statement)
    body = submit_body(engine.target, spec, step.kind, entry, timeout=engine.timeout, gold_name=gold, stream=stream)
    job_plan = contract.plan(contract.parse_payload(payload, step.kind))
    on_the_wire = wire(body)
    detail.update(
        run_name=body["run_name"],
        idempotency_token=entry.token,
        resumes_earlier_submission=resumes,
        jobs_submit=body,
        # the exact bytes lh360 posts (it sends them itself: no SDK round trip between here and the service)
        wire=f"POST {SUBMIT_PATH}",
        wire_body=on_the_wire.decode("ascii"),
        wire_bytes=len(on_the_wire),
        payload=payload,
        job=job_plan,
    )
    if step.kind == "refine" and inspect and not payload.get("full_refresh"):
        preview = _full_refresh_preview(engine, spec, payload)
        if preview:
            detail["full_refresh_job"] = preview
    if step.kind == "ingest":
        sql = job_plan.get("register_sql")
    elif step.kind == "refine":
        sql = job_plan.get("merge_sql")
    else:
        sql = ";\n\n".join(g["sql"] for g in job_plan.get("gold", []))
    return Explanation(detail, sql)


def _stream(engine: DatabricksEngine, spec, step: str) -> dict:
    """The checkpoint generation the step's stream runs in (read from the lake; nothing when it cannot be); a
    refine's spec hash, and `full_refresh` while its generation's full refresh is pending (as run_step sends)."""

    if step not in checkpoints.LAYER_OF_STEP:
        return {}
    out: dict[str, Any] = {}
    try:
        generation = checkpoints.current(engine.target, spec.table, checkpoints.LAYER_OF_STEP[step])
        if generation:
            out["state_generation"] = generation
        if step == "refine":
            out["spec_hash"] = spec_hash(spec)
            if generation and checkpoints.refresh_pending(engine.target, spec.table) == generation:
                out["full_refresh"] = True
    except Exception:  # noqa: BLE001 - a plan shows what it can
        return out
    return out


def _full_refresh_preview(engine: DatabricksEngine, spec, payload: dict) -> dict | None:
    """When silver was built with another version of its spec: what `promote --full-refresh` would have the
    job do (its generation is minted when it runs: shown as `new`)."""
    from lh360.spark import contract

    drift = engine.spec_drift(spec)
    if drift is None or not drift.due:
        return None
    refresh = {**payload, "full_refresh": True, "state_generation": "new"}
    refresh.pop("recover", None)
    command = f"lh360 -t {engine.target.name} promote {spec.table} --to silver --full-refresh"
    return {"command": command, **contract.plan(contract.parse_payload(refresh, "refine"))["full_refresh"]}
