"""Cloud commands: `deploy`. The Databricks options of `ingest`/`promote`/`run` live in
lh360.cli._databricks_options (re-exported here)."""

from __future__ import annotations

from typing import Any

import typer

from lh360.cli import app, state
from lh360.cli._databricks_options import DETACH, RUN_ID, TIMEOUT, engine_options, render_runs

__all__ = ["DETACH", "RUN_ID", "TIMEOUT", "deploy", "engine_options", "render_runs"]


@app.command()
def deploy(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="List what deploy would do; change nothing."),
    timeout: str = typer.Option(
        None, "--timeout", metavar="DURATION", help="Give up on a DDL statement after this long (exit 4)."
    ),
) -> None:
    """Prepare a cloud target: upload the Spark job (only when its content changed), create the catalog's
    bronze/silver/gold schemas and register the external tables. Idempotent: a second deploy changes nothing.

    Example:  lh360 -t prod deploy --dry-run   |   lh360 -t prod deploy
    """
    from lh360.deploy import deploy as run_deploy

    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    seconds = None
    if timeout:
        from lh360.engines.databricks import _seconds

        seconds = _seconds(timeout)

    def show(action: Any) -> None:
        if st.out.json:
            return
        sql = f"  [{action.sql}]" if action.sql and action.status in ("todo", "done") else ""
        st.out.print(
            f"{action.status:>8}  {action.kind:<15} {action.object}  {action.reason}{sql}",
            markup=False,
            highlight=False,
        )

    if not st.out.json:
        st.out.print(
            f"deploy to target {target.name}" + (" (dry run: nothing changes)" if dry_run else ""), markup=False
        )
    report = run_deploy(project, target, dry_run=dry_run, on_action=show, timeout=seconds)
    if st.out.json:
        st.out.emit(report.as_dict())
        return
    if not report.actions:
        st.out.print(f"nothing to deploy for target {target.name} (engine {target.engine})", markup=False)
        return
    counts = report.as_dict()["counts"]
    order = ("done", "todo", "ok", "deferred", "skipped")
    st.out.print(
        ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: (order + (k,)).index(k))), markup=False
    )
