"""Landing and bronze commands: plan, landing, ingest."""

from __future__ import annotations

import sys

import typer

from lh360.cli import app, render, state
from lh360.cli.cmd_pipeline import selected
from lh360.cli.options import (
    DETACH,
    GENERATION,
    NEW_CHECKPOINT,
    RUN_ID,
    TABLES,
    TIMEOUT,
    WAIT_LOCK,
    PlanFormat,
    PlanLayer,
    engine_options,
)


@app.command()
def plan(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    to: PlanLayer = typer.Option(PlanLayer.gold, "--to", help="Plan up to this layer."),
    fmt: PlanFormat = typer.Option(
        PlanFormat.text, "--format", help="text, json (as --json) or mermaid (the lineage and steps as a graph)."
    ),
    run_id: str = RUN_ID,
) -> None:
    """Show what a run would do (new landing files, schema changes, the steps, the exact requests and SQL);
    writes nothing and sends nothing. `--format mermaid` draws the lineage and the planned steps as a Mermaid
    graph for pull requests and wikis (from the specs: the lake is not read).

    Example:  lh360 plan clientes --to silver   |   lh360 -t prod plan --json   |   lh360 plan --format mermaid
    """
    st = state(ctx)
    lh = st.lakehouse(engine_options(run_id=run_id))
    mermaid = fmt is PlanFormat.mermaid and not st.out.json
    p = lh.plan(tables or None, to.value, inspect=not mermaid)
    if st.out.json or fmt is PlanFormat.json:
        st.out.emit(p.as_dict())
    elif mermaid:
        from lh360.site.graph import lineage  # pydantic, yaml: off the --help path

        sys.stdout.write(render.plan_mermaid(p, lineage(lh.project)))
    else:
        render.render_plan(st.out, p)


@app.command()
def landing(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    full_listing: bool = typer.Option(
        False, "--full-listing", help="List the whole S3 prefix, not just after the listing watermark."
    ),
) -> None:
    """Check landing zones: pending files and bytes, newest file age against the SLA, empty or unreadable files.

    Exit 1 when a table breaches its SLA (landing.max_age / landing.min_files): alert on it from cron.
    On S3 the listing starts after the last ingested key where keys arrive in order, with a full listing at
    least every aws.full_listing_interval (24h) or on --full-listing.

    Example:  lh360 landing clientes --json
    """
    st = state(ctx)
    lh = st.lakehouse()
    reports = lh.landing(tables or None, full_listing=full_listing or None)
    breached = [r for r in reports if r.breached]
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": not breached, "tables": [r.as_dict() for r in reports]})
    else:
        render.render_landing(st.out, lh.target.name, reports)
    if breached:
        raise typer.Exit(1)


@app.command()
def ingest(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(None, help="Tables to ingest.", show_default=False),
    all_: bool = typer.Option(False, "--all", help="Ingest every table."),
    wait_lock: float = WAIT_LOCK,
    timeout: str = TIMEOUT,
    detach: bool = DETACH,
    run_id: str = RUN_ID,
    new_checkpoint: bool = NEW_CHECKPOINT,
    generation: str = GENERATION,
) -> None:
    """Landing → bronze: ingest new landing files exactly once (Auto Loader semantics).

    Example:  lh360 ingest clientes   |   lh360 ingest --all --wait-lock 600   |   lh360 -t prod ingest clientes --timeout 1h
    """

    st = state(ctx)
    names = selected(tables, all_, "ingest")
    lh = st.lakehouse(engine_options(timeout, detach, run_id, new_checkpoint, generation), wait_lock=wait_lock)
    results = lh.ingest(names)
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": True, "tables": [r.as_dict() for r in results]})
        return
    render.render_ingest(st.out, results)
