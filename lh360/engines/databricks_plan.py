"""`lh360 plan -t <databricks target>`: the exact `jobs.submit` bodies and SQL a run would send. Offline:
it reads the specs and the local idempotency journal, and never calls the workspace."""

from __future__ import annotations

from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.engines.databricks import step_payload, submit_body
from lh360.engines.databricks_client import settings_of
from lh360.engines.databricks_runs import Journal
from lh360.plan import LAYER_ORDER, Plan, Step
from lh360.spec import TableSpec


def steps_for(project: Project, tables: list[str] | None, to: str) -> list[tuple[str, TableSpec, str | None]]:
    """(step, spec, gold name) in the order a run does them: ingest the named tables, then what
    `promote --to <to>` touches (the runner's own scope: silver first where needed, gold in dependency order)."""
    from lh360.engines.databricks import gold_owner
    from lh360.runner import promote_scope

    out: list[tuple[str, TableSpec, str | None]] = [("ingest", s, None) for s in project.select(tables)]
    if LAYER_ORDER[to] >= LAYER_ORDER["silver"]:
        scope = promote_scope(project, tables, to)
        out += [("refine", project.specs[t], None) for t in scope.silver]
        for rel in scope.gold if to == "gold" else []:
            spec, name = gold_owner(project, rel)
            out.append(("aggregate", spec, name))
    return out


def databricks_plan(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None = None,
    to: str = "gold",
    *,
    run_id: str | None = None,
    timeout: float | None = None,
) -> Plan:
    return Plan(
        target=target.name,
        engine=target.engine,
        steps=tuple(plan_steps(project, target, tables, to, run_id=run_id, timeout=timeout)),
    )


def plan_steps(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None = None,
    to: str = "gold",
    *,
    run_id: str | None = None,
    timeout: float | None = None,
) -> list[Step]:
    """The steps of a run to `to`: each with its jobs.submit body (or warehouse SQL), then the checks' SQL."""
    from lh360.engines.databricks import _seconds
    from lh360.plan import validate_steps
    from lh360.spark import job

    s = settings_of(target)
    timeout = _seconds(timeout if timeout is not None else s.timeout)
    journal = Journal(target)
    steps: list[Step] = []
    for step, spec, gold in steps_for(project, tables, to):
        name = gold or spec.table
        relation = f"gold.{gold}" if gold else f"{'bronze' if step == 'ingest' else 'silver'}.{spec.table}"
        entry, resumes = journal.peek(step, name, run_id)
        payload = step_payload(target, spec, step, entry.logical_id, gold)
        detail: dict[str, Any] = {"engine": "databricks", "logical_id": entry.logical_id}
        if step == "aggregate" and s.aggregate_on == "warehouse":
            statement = job.gold_sql(payload, gold)
            detail.update(on="warehouse", warehouse_id=s.warehouse_id, statements=[statement])
            steps.append(Step(step, spec.table, relation, detail, sql=statement))
            continue
        body = submit_body(target, spec, step, entry, timeout=timeout, gold_name=gold)
        job_plan = job.plan(job.parse_payload(payload, step))
        detail.update(
            run_name=body["run_name"],
            idempotency_token=entry.token,
            resumes_earlier_submission=resumes,
            jobs_submit=body,
            payload=payload,
            job=job_plan,
        )
        if step == "ingest":
            sql = job_plan.get("register_sql")
        elif step == "refine":
            sql = job_plan.get("merge_sql")
        else:
            sql = ";\n\n".join(g["sql"] for g in job_plan.get("gold", []))
        steps.append(Step(step, spec.table, relation, detail, sql=sql))
    if LAYER_ORDER[to] >= LAYER_ORDER["silver"]:
        steps += validate_steps(project, target, tables, to)
    return steps


def render_databricks_plan(out: Any, plan: Plan) -> None:
    import copy
    import json

    out.print(f"plan for target {plan.target} (engine databricks); nothing is sent", markup=False)
    for i, step in enumerate(plan.steps, 1):
        d = step.detail
        out.print(f"\n{i}. {step.kind} → {step.relation}", markup=False)
        if d.get("on") == "warehouse":
            out.print(f"   on SQL warehouse {d.get('warehouse_id')} (Statement Execution API)", markup=False)
        elif step.kind == "validate":
            out.print(f"   on {d.get('engine')}: {', '.join(d.get('checks') or [])}", markup=False)
        else:
            resumes = (
                " (resumes an earlier submission that never saw its end)" if d.get("resumes_earlier_submission") else ""
            )
            out.print(
                f"   jobs.submit  run_name {d['run_name']!r}  idempotency_token {d['idempotency_token']}{resumes}",
                markup=False,
            )
            body = copy.deepcopy(d["jobs_submit"])
            params = body["tasks"][0]["spark_python_task"]["parameters"]
            inline = "--payload" in params
            if inline:  # the payload is one long JSON string in the body (see --json): shown apart, indented
                params[params.index("--payload") + 1] = "<the payload below, as one line of JSON>"
            for line in json.dumps(body, indent=2, ensure_ascii=False).splitlines():
                out.print(f"     {line}", markup=False, highlight=False)
            if inline:
                out.print("   payload:", markup=False)
                for line in json.dumps(d["payload"], indent=2, ensure_ascii=False).splitlines():
                    out.print(f"     {line}", markup=False, highlight=False)
            opts = d["job"].get("reader_options")
            if opts:
                out.print("   Auto Loader options:", markup=False)
                for k, v in opts.items():
                    out.print(f"     {k} = {v}", markup=False, highlight=False)
        if step.sql:
            out.print("   SQL:", markup=False)
            for line in step.sql.strip().splitlines():
                out.print(f"     {line}", markup=False, highlight=False)


__all__ = ["databricks_plan", "plan_steps", "render_databricks_plan", "steps_for"]
