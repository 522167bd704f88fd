"""Cloud commands: `deploy`."""

from __future__ import annotations

from typing import Any

import typer

from lh360.cli import app, render, state
from lh360.durations import parse_timeout


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
    from lh360.deploy import deploy as run_deploy  # pydantic, yaml: off the --help path

    st = state(ctx)
    project, target = st.project(), st.resolved_target()
    seconds = parse_timeout(timeout)

    def show(action: Any) -> None:
        if not st.out.json:
            render.say(st.out, render.deploy_line(action))

    if not st.out.json:
        render.say(st.out, f"deploy to target {target.name}" + (" (dry run: nothing changes)" if dry_run else ""))
    report = run_deploy(project, target, dry_run=dry_run, on_action=show, timeout=seconds)
    refused = 2 if report.refused else 0  # a table Athena cannot read: a config error (the reason names it)
    if st.out.json:
        st.out.emit(report.as_dict())
        if refused:
            raise typer.Exit(refused)
        return
    if not report.actions:
        render.say(st.out, f"nothing to deploy for target {target.name} (engine {target.engine})")
        return
    counts = report.as_dict()["counts"]
    order = ("done", "todo", "ok", "deferred", "skipped")
    render.say(st.out, ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: (order + (k,)).index(k))))
    if refused:
        raise typer.Exit(refused)
