"""Data checks: specs → one fused SQL query per table and dialect → results, on DuckDB, Athena or DBSQL.

Public API (engine runners only implement `QueryRunner` from `lh360.checks.base`):

    compile_relation(spec, relation, runner_or_dialect, table_name=None) -> CompiledChecks
        The checks `spec` declares for `relation` ("silver.clientes"), compiled from one sqlglot AST for
        the runner's dialect (or a dialect name: "duckdb", "athena", "databricks"), every identifier
        quoted. `CompiledChecks.aggregate_sql` is the ONE query computing every single-table aggregate;
        each `CompiledCheck` names its columns there (`aliases`), or carries its own `sql`
        (relationships, reconcile) and a `sample_sql` for failing rows (run only on failure).

    run_validation(project, target, runner, tables=None, layer=None, *, previous=None, now=None)
        -> ValidationReport
        Runs the compiled checks through `runner` and judges them: each `CheckResult` has the check,
        observed value, threshold, status (pass | warn | fail | error), severity, Delta version read,
        query id and sample failing rows. `ValidationReport.exit_code`: 1 if an error-severity check
        failed, 3 if a check could not run, else 0.

    runner_for(project, target, engine=None) -> QueryRunner
        The validator of a target (`--engine` overrides `target.settings.validator`): "duckdb" →
        `lh360.checks.duckdb.DuckDBRunner`; "athena" → `lh360.checks.athena.make_runner(project, target)`;
        "databricks-sql" → `lh360.checks.databricks_sql.make_runner(project, target)`.

    validate(project, target, tables=None, layer=None, *, engine=None, ledger=None) -> ValidationReport
        runner_for + run_validation + the quality ledger (previous row counts in, results out).
"""

from __future__ import annotations

from typing import Any

from lh360.checks.compile import CompiledCheck, CompiledChecks, compile_relation
from lh360.checks.validate import CheckResult, ValidationReport, run_validation

__all__ = [
    "CheckResult",
    "CompiledCheck",
    "CompiledChecks",
    "ValidationReport",
    "compile_relation",
    "run_validation",
    "runner_for",
    "validate",
]

ENGINES = ("duckdb", "athena", "databricks-sql")


def runner_for(project: Any, target: Any, engine: str | None = None):
    from lh360.errors import UsageError

    engine = engine or target.settings.validator
    if engine == "duckdb":
        from lh360.checks.duckdb import DuckDBRunner

        return DuckDBRunner(target)
    if engine == "athena":
        from lh360.checks import athena  # type: ignore[attr-defined]

        return athena.make_runner(project, target)
    if engine == "databricks-sql":
        from lh360.checks import databricks_sql  # type: ignore[attr-defined]

        return databricks_sql.make_runner(project, target)
    raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")


def validate(
    project: Any,
    target: Any,
    tables: list[str] | None = None,
    layer: str | None = None,
    *,
    engine: str | None = None,
    ledger: Any = None,
    runner: Any = None,
) -> ValidationReport:
    """Validate on the target's validator; previous row counts come from, and results go to, `ledger`."""
    own = runner is None
    runner = runner or runner_for(project, target, engine)
    try:
        previous = ledger.previous_observations() if ledger is not None else None
        report = run_validation(project, target, runner, tables, layer, previous=previous)
    finally:
        if own:
            runner.close()
    if ledger is not None:
        ledger.record_checks(report.results, engine=report.dialect)
    return report
