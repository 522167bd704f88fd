"""Pipeline commands: promote, validate, run, history, sql."""

from __future__ import annotations

import sys

import typer

from lh360.cli import app, render, state
from lh360.cli.options import (
    GENERATION,
    NEW_CHECKPOINT,
    RUN_ID,
    TABLES,
    TIMEOUT,
    VALIDATOR,
    WAIT_LOCK,
    PlanLayer,
    PromoteLayer,
    ReportFormat,
    Validator,
    engine_options,
    value,
)
from lh360.errors import UsageError
from lh360.jsonable import jsonable


def selected(tables: list[str] | None, all_: bool, verb: str) -> list[str] | None:
    """The tables named, or None for --all; naming none or both is a usage error."""

    if not tables and not all_:
        raise UsageError(f"name the tables to {verb}, or pass --all")
    if tables and all_:
        raise UsageError("pass table names or --all, not both")
    return tables or None


@app.command()
def promote(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    to: PromoteLayer = typer.Option(..., "--to", help="silver (bronze → silver) or gold (silver first, then gold)."),
    wait_lock: float = WAIT_LOCK,
    timeout: str = TIMEOUT,
    run_id: str = RUN_ID,
    new_checkpoint: bool = NEW_CHECKPOINT,
    generation: str = GENERATION,
    full_refresh: bool = typer.Option(
        False,
        "--full-refresh",
        help="Rebuild silver from all of bronze (and gold from silver), each replaced in one commit; "
        "quarantine is recomputed. After a change to columns, expectations, keys or SCD, or a rebuilt bronze.",
    ),
) -> None:
    """bronze → silver (expectations, dedupe, merge) and silver → gold (recompute, atomic replace).

    Silver reads only the bronze rows committed since its last run; replaying a batch changes nothing.
    Exit 1 when an expectation with action `fail` fails (nothing is written). Exit 3 when bronze was
    rebuilt since silver last read it: rerun with --full-refresh.

    Example:  lh360 promote clientes --to gold
    """
    st = state(ctx)
    options = engine_options(timeout, run_id=run_id, new_checkpoint=new_checkpoint, generation=generation)
    lh = st.lakehouse(options, wait_lock=wait_lock)
    promotion = lh.promote(tables or None, to.value, full_refresh=full_refresh)
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": True, **promotion.as_dict()})
        return
    render.render_promote(st.out, promotion)


@app.command()
def validate(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    layer: PlanLayer = typer.Option(None, "--layer", help="Only this layer's checks."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="How to print the results."),
    engine: Validator = VALIDATOR,
) -> None:
    """Run the checks (all aggregate checks of a table in one query) and record them in the quality ledger.

    Exit 1 if a check of severity `error` fails; warnings are shown and exit 0; exit 3 if a check could not run.

    Example:  lh360 validate clientes --layer silver --format junit > lh360-checks.xml
    """
    st = state(ctx)
    report = st.lakehouse().validate(tables or None, value(layer), validator=value(engine))
    if st.out.json or fmt is ReportFormat.json:
        st.out.emit(report.as_dict())
    elif fmt is ReportFormat.junit:
        sys.stdout.write(render.junit_xml(report))
    else:
        render.render_validation(st.out, report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command()
def run(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(None, help="Tables to run.", show_default=False),
    all_: bool = typer.Option(False, "--all", help="Run every table."),
    wait_lock: float = WAIT_LOCK,
    engine: Validator = VALIDATOR,
    timeout: str = TIMEOUT,
    run_id: str = RUN_ID,
) -> None:
    """landing check → ingest → promote to gold → validate: the one line for cron.

    Stops at the first failing step and exits with its code: 1 data check or landing SLA, 2 config,
    3 engine error, 75 another run holds a table's lock (try later). Every step goes to the run ledger.

    Example:  lh360 run --all --json --log-format json
    """
    st = state(ctx)
    names = selected(tables, all_, "run")
    lh = st.lakehouse(engine_options(timeout, run_id=run_id), wait_lock=wait_lock)
    summary = lh.run(names, validator=value(engine))
    if st.out.json:
        st.out.emit(summary.as_dict())
    else:
        render.render_run_summary(st.out, summary)
    finish(st, summary)


def finish(st, summary) -> None:
    """Exit with the run's code, saying which step failed and why."""
    if summary.exit_code:
        st.out.error(f"{summary.failed_step}: {summary.error}", summary.error_detail)
        raise typer.Exit(summary.exit_code)
    if not st.out.json:
        render.say(st.out, f"run {summary.run_id}: ok")


@app.command()
def history(
    ctx: typer.Context,
    table: str = typer.Argument(None, help="Only this table's runs.", show_default=False),
    limit: int = typer.Option(30, "--limit", "-n", min=1, help="How many step rows to show."),
    checks: bool = typer.Option(False, "--checks", help="Also show the check results of the runs listed."),
) -> None:
    """Past runs from the run ledger (`<lake>/_lh360/runs`), newest first: every step, its rows and versions.

    Example:  lh360 history clientes -n 10 --checks
    """
    st = state(ctx)
    lh = st.lakehouse()
    if table is not None:
        lh.project.select([table])  # an unknown table is a usage error
    rows = lh.ledger.history(table, limit=limit)
    check_rows = lh.ledger.check_history(sorted({r["run_id"] for r in rows})) if checks else []
    if st.out.json:
        doc = {"target": lh.target.name, "runs": rows}
        if checks:
            doc["checks"] = check_rows
        st.out.emit(doc)
        return
    render.render_history(st.out, rows)
    if checks:
        cols = ["checked_at", "run_id", "relation", "check", "severity", "status", "observed", "message"]
        render.render_rows(st.out, cols, [tuple(r.get(c) for c in cols) for r in check_rows], title="check results")


@app.command()
def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="The SQL (DuckDB SQL on a local target)."),
    limit: int = typer.Option(100, "--limit", "-n", min=0, help="Rows to show (0 = all)."),
    engine: Validator = VALIDATOR,
) -> None:
    """An ad-hoc query on the target's query engine; bronze.x, silver.x, gold.x, quarantine.x, lh360.runs work.

    Example:  lh360 sql "SELECT uf, count(*) FROM silver.clientes GROUP BY uf ORDER BY 2 DESC"
    """
    from lh360.checks import run_query  # pydantic, yaml: off the --help path

    st = state(ctx)
    lh = st.lakehouse()
    res = run_query(lh.project, lh.target, query, value(engine))
    rows = res.rows if not limit else res.rows[:limit]
    if st.out.json:
        st.out.emit(
            {
                "target": lh.target.name,
                "columns": res.columns,
                "rows": [jsonable(list(r)) for r in rows],
                "row_count": len(res.rows),
                "truncated": len(rows) < len(res.rows),
                "query_id": res.query_id,
            }
        )
        return
    render.render_rows(st.out, res.columns, rows)
    if len(rows) < len(res.rows):
        render.say(st.out, f"{len(rows)} of {len(res.rows)} rows shown (--limit 0 for all)")
