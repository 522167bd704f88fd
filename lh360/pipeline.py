"""The whole job for cron: landing check → ingest → promote to gold → validate, stopping at the first failure.

`run_pipeline` never raises an lh360 error: it returns a summary whose `exit_code` is the failing step's
(DESIGN.md's codes), so `lh360 run --json` can print ONE document that says what happened and why.
Every step is also a row in the run ledger under the same run id.
"""

from __future__ import annotations

from typing import Any

from lh360.config import Project, ResolvedTarget


def run_pipeline(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None,
    *,
    out: Any,
    wait_lock: float = 0,
    demo: bool = False,
    engine: str | None = None,
) -> dict[str, Any]:
    from lh360.errors import CheckFailed, LH360Error
    from lh360.ledger import Ledger
    from lh360.runner import promote, promote_scope, run_ingest, run_validate, table_locks

    ledger = Ledger(target)
    specs = project.select(tables)
    names = [s.table for s in specs]
    summary: dict[str, Any] = {
        "target": target.name,
        "run_id": ledger.run_id,
        "tables": names,
        "ok": True,
        "exit_code": 0,
        "failed_step": None,
        "error": None,
    }
    step = "landing"
    try:
        scope = promote_scope(project, names if tables else None, "gold")
        with table_locks(target, {*names, *scope.tables}, wait=wait_lock, run_id=ledger.run_id):
            step = "landing"
            summary["landing"] = _landing(target, specs, ledger, out)
            breached = [r for r in summary["landing"] if r["status"] == "breach"]
            if breached:
                problems = "; ".join(f"{r['table']}: {', '.join(r['problems'])}" for r in breached)
                raise CheckFailed(f"landing SLA breached: {problems}")
            step = "ingest"
            ingested = run_ingest(project, target, names, out=out, ledger=ledger, locked=True)
            summary["ingest"] = [r.as_dict() for r in ingested]
            if out is not None and not out.json:
                from lh360.report import render_ingest

                render_ingest(out, ingested)
            step = "promote"
            promoted = promote(project, target, names if tables else None, "gold", out=out, ledger=ledger, locked=True)
            summary["refine"] = [r.as_dict() for r in promoted["refine"]]
            summary["aggregate"] = [r.as_dict() for r in promoted["aggregate"]]
            step = "validate"
            report = run_validate(project, target, names if tables else None, engine=engine, ledger=ledger)
            summary["validate"] = report.as_dict()
            if out is not None and not out.json:
                from lh360.report import render_validation

                render_validation(out, report)
            if report.exit_code:
                summary.update(
                    ok=False, exit_code=report.exit_code, failed_step="validate", error=_validation_error(report)
                )
    except LH360Error as exc:
        summary.update(ok=False, exit_code=exc.exit_code, failed_step=step, error=exc.message)
        if exc.detail:
            summary["error_detail"] = exc.detail
    summary["steps"] = [_step_row(r) for r in ledger.written]
    return summary


def _landing(target: ResolvedTarget, specs: list, ledger: Any, out: Any) -> list[dict[str, Any]]:
    from lh360.landing import check_landing

    reports = []
    for spec in specs:
        with ledger.step(spec.table, f"landing.{spec.table}", "landing") as rec:
            r = check_landing(target, spec)
            rec.rows_in = r.pending_files
            rec.detail = {
                "files": r.files,
                "pending_files": r.pending_files,
                "pending_bytes": r.pending_bytes,
                "newest_age_s": r.newest_age_s,
                "problems": r.problems,
            }
            if r.breached:
                rec.status = "breach"
            reports.append(r.as_dict())
        if out is not None and not out.json:
            state = "SLA BREACH: " + "; ".join(r.problems) if r.breached else "ok"
            out.print(
                f"landing {spec.table}: {r.pending_files} new file(s) of {r.files}; {state}",
                markup=False,
                highlight=False,
            )
    return reports


def _validation_error(report: Any) -> str:
    bad = [r for r in report.results if r.status in ("fail", "error")]
    names = ", ".join(f"{r.relation}.{r.check}" for r in bad[:5]) + (" …" if len(bad) > 5 else "")
    if report.exit_code == 1:
        return f"{report.count('fail')} check(s) failed: {names}"
    return f"{report.count('error')} check(s) could not run: {names}"


def _step_row(row: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "table",
        "relation",
        "step",
        "status",
        "seconds",
        "rows_in",
        "rows_out",
        "rows_rescued",
        "rows_quarantined",
        "rows_dropped",
        "version_before",
        "version_after",
        "exit_code",
        "error",
    )
    return {k: row.get(k) for k in keep}
