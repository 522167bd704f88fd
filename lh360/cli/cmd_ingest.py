"""Landing and bronze commands: plan, landing, ingest."""

from __future__ import annotations

import typer

from lh360.cli import app, state
from lh360.cli._databricks_options import DETACH, RUN_ID, TIMEOUT
from lh360.cli._output import ago, human_bytes

TABLES = typer.Argument(None, help="Table names (default: all specs).", show_default=False)


@app.command()
def plan(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    to: str = typer.Option("gold", "--to", help="Plan up to this layer: bronze, silver or gold."),
) -> None:
    """Show what a run would do (new landing files, schema changes, the steps and their SQL); writes nothing.

    Example:  lh360 plan clientes --to silver
    """
    from lh360.errors import UsageError
    from lh360.plan import LAYER_ORDER, build_plan

    if to not in LAYER_ORDER:
        raise UsageError(f"--to must be bronze, silver or gold, not {to!r}")
    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    p = build_plan(project, target, tables, to=to)
    if st.out.json:
        st.out.emit(p.as_dict())
        return
    if target.engine == "databricks":  # the exact jobs.submit bodies and SQL it would send
        from lh360.engines.databricks_plan import render_databricks_plan

        render_databricks_plan(st.out, p)
        return
    from lh360.report import render_plan

    render_plan(st.out, p)


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
    least every LH360_FULL_LISTING_INTERVAL (24h) or on --full-listing.

    Example:  lh360 landing clientes --json
    """
    from lh360.landing import check_landing

    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    reports = [check_landing(target, spec, full_listing=full_listing or None) for spec in project.select(tables)]
    breached = [r for r in reports if r.breached]
    if st.out.json:
        st.out.emit({"target": target.name, "ok": not breached, "tables": [r.as_dict() for r in reports]})
    else:
        from rich.table import Table

        t = Table(title=f"landing on target {target.name}", title_justify="left")
        for col in ("table", "files", "pending", "pending bytes", "newest", "age / SLA", "status"):
            t.add_column(col)
        for r in reports:
            age = "-" if r.newest_age_s is None else ago(r.newest_age_s)
            sla = ago(r.max_age_s) if r.max_age_s else "none"
            t.add_row(
                r.table,
                str(r.files),
                str(r.pending_files),
                human_bytes(r.pending_bytes),
                r.newest_file or "-",
                f"{age} / {sla}",
                "BREACH" if r.breached else "ok",
            )
        st.out.print(t)
        for r in reports:
            for problem in r.problems:
                st.out.print(f"{r.table}: SLA breach: {problem}")
            for rel in r.empty_files:
                st.out.print(f"{r.table}: empty file {rel}")
            for bad in r.unreadable:
                where = f"{bad['file']}:{bad['line']}" if bad.get("line") else bad["file"]
                st.out.print(f"{r.table}: unreadable {where}: {bad['error']}")
            for up in r.uploading:
                st.out.print(f"{r.table}: upload in progress {up['file']} (started {ago(up['age_s'])} ago)")
            for late in r.late_files:
                st.out.print(f"{r.table}: landed below the listing watermark: {late}")
            _print_left_aside(st.out, r)
            lst = r.listing
            if lst and lst.get("requests"):
                after = f" after {lst['start_after']}" if lst.get("start_after") else ""
                st.out.print(
                    f"{r.table}: {lst['mode']} listing{after} ({lst['reason']}): "
                    f"{lst['requests']} request(s), {lst['objects']} object(s)",
                    markup=False,
                    highlight=False,
                )
    if breached:
        raise typer.Exit(1)


def _print_left_aside(out, r) -> None:
    """Landing files the ingest does not take now: settling, quarantined, rewritten, symlinks, future mtimes."""

    def say(text: str) -> None:
        out.print(f"{r.table}: {text}", markup=False, highlight=False)

    for w in r.settling:
        say(f"settling {w['file']} (changed {ago(w['age_s'])} ago; taken once unchanged for {ago(w['settle_s'])})")
    for q in r.quarantined:
        say(f"quarantined {q['file']}: {q['error']} (skipped until the file changes)")
    for rw in r.rewritten:
        say(f"rewritten after ingest {rw['file']} (size {rw['ingested_size']} -> {rw['size']}): not ingested again")
    for link in r.symlinks:
        say(f"symlink not followed {link['file']} -> {link['target']}: {link['reason']}")
    for fut in r.future_mtime:
        say(
            f"modification time in the future {fut['file']} ({ago(fut['ahead_s'])} ahead): counted as landed when first seen"
        )


@app.command()
def ingest(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(None, help="Tables to ingest.", show_default=False),
    all_: bool = typer.Option(False, "--all", help="Ingest every table."),
    wait_lock: float = typer.Option(
        0, "--wait-lock", metavar="SECONDS", help="Wait this long for a table's lock (default: exit 75 at once)."
    ),
    timeout: str = TIMEOUT,
    detach: bool = DETACH,
    run_id: str = RUN_ID,
) -> None:
    """Landing → bronze: ingest new landing files exactly once (Auto Loader semantics).

    Example:  lh360 ingest clientes   |   lh360 ingest --all --wait-lock 600   |   lh360 -t prod ingest clientes --timeout 1h
    """
    from lh360.cli._databricks_options import engine_options
    from lh360.errors import UsageError
    from lh360.runner import run_ingest

    if not tables and not all_:
        raise UsageError("name the tables to ingest, or pass --all")
    if tables and all_:
        raise UsageError("pass table names or --all, not both")
    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    options = engine_options(st, timeout=timeout, detach=detach, run_id=run_id)
    results = run_ingest(project, target, tables or None, wait_lock=wait_lock, out=st.out, **options)
    if st.out.json:
        st.out.emit({"target": target.name, "ok": True, "tables": [r.as_dict() for r in results]})
        return
    if target.engine == "databricks":
        from lh360.cli._databricks_options import render_runs

        render_runs(st.out, results, "ingest")
        return
    from lh360.report import render_ingest

    render_ingest(st.out, results)
