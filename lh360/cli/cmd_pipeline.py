"""Pipeline commands: promote, validate, run, history, sql."""

from __future__ import annotations

import sys

import typer

from lh360.cli import app, state
from lh360.cli._databricks_options import RUN_ID, TIMEOUT

TABLES = typer.Argument(None, help="Table names (default: all specs).", show_default=False)
WAIT_LOCK = typer.Option(
    0, "--wait-lock", metavar="SECONDS", help="Wait this long for a table's lock (default: exit 75 at once)."
)


@app.command()
def promote(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    to: str = typer.Option(
        ..., "--to", help="silver (bronze → silver) or gold (silver first where needed, then gold)."
    ),
    wait_lock: float = WAIT_LOCK,
    timeout: str = TIMEOUT,
    run_id: str = RUN_ID,
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
    from lh360.errors import UsageError
    from lh360.runner import promote as run_promote

    if to not in ("silver", "gold"):
        raise UsageError(f"--to must be silver or gold, not {to!r}")
    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    from lh360.cli._databricks_options import engine_context

    with engine_context(st, timeout=timeout, run_id=run_id):
        promoted = run_promote(
            project, target, tables or None, to, wait_lock=wait_lock, out=st.out, full_refresh=full_refresh
        )
    if st.out.json:
        st.out.emit(
            {
                "target": target.name,
                "ok": True,
                "refine": [r.as_dict() for r in promoted["refine"]],
                "aggregate": [r.as_dict() for r in promoted["aggregate"]],
            }
        )
        return
    from lh360.report import render_promote

    render_promote(st.out, promoted)


@app.command()
def validate(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    layer: str = typer.Option(None, "--layer", help="Only this layer's checks: silver or gold."),
    fmt: str = typer.Option("table", "--format", help="table, json or junit (JUnit XML on stdout)."),
    engine: str = typer.Option(
        None, "--engine", help="duckdb, athena or databricks-sql (default: the target's validator)."
    ),
) -> None:
    """Run the checks (all aggregate checks of a table in one query) and record them in the quality ledger.

    Exit 1 if a check of severity `error` fails; warnings are shown and exit 0; exit 3 if a check could not run.

    Example:  lh360 validate clientes --layer silver --format junit > lh360-checks.xml
    """
    from lh360.errors import UsageError
    from lh360.runner import run_validate

    if fmt not in ("table", "json", "junit"):
        raise UsageError(f"--format must be table, json or junit, not {fmt!r}")
    if layer is not None and layer not in ("bronze", "silver", "gold"):
        raise UsageError(f"--layer must be bronze, silver or gold, not {layer!r}")
    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    report = run_validate(project, target, tables or None, layer, engine=engine)
    if st.out.json or fmt == "json":
        st.out.emit(report.as_dict())
    elif fmt == "junit":
        from lh360.report import junit_xml

        sys.stdout.write(junit_xml(report))
    else:
        from lh360.report import render_validation

        render_validation(st.out, report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command()
def run(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(None, help="Tables to run.", show_default=False),
    all_: bool = typer.Option(False, "--all", help="Run every table."),
    wait_lock: float = WAIT_LOCK,
    engine: str = typer.Option(
        None, "--engine", help="Validator: duckdb, athena or databricks-sql (default: the target's)."
    ),
    timeout: str = TIMEOUT,
    run_id: str = RUN_ID,
) -> None:
    """landing check → ingest → promote to gold → validate: the one line for cron.

    Stops at the first failing step and exits with its code: 1 data check or landing SLA, 2 config,
    3 engine error, 75 another run holds a table's lock (try later). Every step goes to the run ledger.

    Example:  lh360 run --all --json --log-format json
    """
    from lh360.errors import UsageError
    from lh360.pipeline import run_pipeline

    if not tables and not all_:
        raise UsageError("name the tables to run, or pass --all")
    if tables and all_:
        raise UsageError("pass table names or --all, not both")
    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    from lh360.cli._databricks_options import engine_context

    with engine_context(st, timeout=timeout, run_id=run_id):
        summary = run_pipeline(project, target, tables or None, out=st.out, wait_lock=wait_lock, engine=engine)
    _finish(st, summary)


def _finish(st, summary: dict) -> None:
    if st.out.json:
        st.out.emit(summary)
    code = summary.get("exit_code", 0)
    if code:
        st.out.error(f"{summary.get('failed_step')}: {summary.get('error')}", summary.get("error_detail"))
        raise typer.Exit(code)
    if not st.out.json:
        st.out.print(f"run {summary['run_id']}: ok", markup=False, highlight=False)


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
    from lh360.ledger import Ledger

    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    if table is not None:
        project.select([table])  # an unknown table is a usage error
    ledger = Ledger(target)
    rows = ledger.history(table, limit=limit)
    check_rows = ledger.check_history(sorted({r["run_id"] for r in rows})) if checks else []
    if st.out.json:
        doc = {"target": target.name, "runs": rows}
        if checks:
            doc["checks"] = check_rows
        st.out.emit(doc)
        return
    from lh360.report import render_history, render_rows

    render_history(st.out, rows)
    if checks:
        cols = ["checked_at", "run_id", "relation", "check", "severity", "status", "observed", "message"]
        render_rows(st.out, cols, [tuple(r.get(c) for c in cols) for r in check_rows], title="check results")


@app.command()
def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="The SQL (DuckDB SQL on a local target)."),
    limit: int = typer.Option(100, "--limit", "-n", min=0, help="Rows to show (0 = all)."),
    engine: str = typer.Option(
        None, "--engine", help="duckdb, athena or databricks-sql (default: the target's validator)."
    ),
) -> None:
    """An ad-hoc query on the target's query engine; bronze.x, silver.x, gold.x, quarantine.x, lh360.runs work.

    Example:  lh360 sql "SELECT uf, count(*) FROM silver.clientes GROUP BY uf ORDER BY 2 DESC"
    """
    from lh360.checks import runner_for
    from lh360.errors import EngineError, LH360Error

    st = state(ctx)
    project = st.project()
    target = st.resolved_target()
    runner = runner_for(project, target, engine)
    try:
        if hasattr(runner, "attach_project"):
            runner.attach_project(project.specs.values())
        try:
            res = runner.query(query)
        except LH360Error:
            raise  # already says what failed, with its exit code (Athena: FAILED 3, timeout 4)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise EngineError(f"query failed: {text[0] if text else type(exc).__name__}") from None
    finally:
        runner.close()
    rows = res.rows if not limit else res.rows[:limit]
    if st.out.json:
        from lh360.checks.validate import jsonable

        st.out.emit(
            {
                "target": target.name,
                "columns": res.columns,
                "rows": [jsonable(list(r)) for r in rows],
                "row_count": len(res.rows),
                "truncated": len(rows) < len(res.rows),
                "query_id": res.query_id,
            }
        )
        return
    from lh360.report import render_rows

    render_rows(st.out, res.columns, rows)
    if len(rows) < len(res.rows):
        st.out.print(f"{len(rows)} of {len(res.rows)} rows shown (--limit 0 for all)", markup=False, highlight=False)
