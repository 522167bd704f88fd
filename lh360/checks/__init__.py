"""Data checks: specs → one fused SQL query per table and dialect → results, on DuckDB, Athena or DBSQL.

Public API (engine runners only implement `QueryRunner` from `lh360.engines.base`):

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
        failed, 3 if a check could not run, else 0. Literals are typed to their columns' types (the
        runner's `column_types(layer, name)` if it has one, else the Delta log, else the spec:
        checks/typerules.py); a fused query that fails is re-run check by check, so only the checks that
        cannot run are errors. Optional runner hooks: `exists`, `column_types`, `unique_alone`.

    runner_for(project, target, engine=None) -> QueryRunner
        The validator of a target (`--engine` overrides `target.settings.validator`): "duckdb" →
        `lh360.engines.local.query.DuckDBRunner`; "athena" → `lh360.engines.athena.query.make_runner(project, target)`;
        "databricks-sql" → `lh360.engines.databricks.statements.make_runner(project, target)`.

    validate(project, target, tables=None, layer=None, *, engine=None, ledger=None) -> ValidationReport
        runner_for + run_validation + the quality ledger (previous row counts in, results out).
"""

from __future__ import annotations

from typing import Any

from lh360.checks.compile import CompiledCheck, CompiledChecks, compile_relation
from lh360.checks.validate import CheckResult, ValidationReport, run_validation
from lh360.engines import VALIDATORS, choices
from lh360.engines.base import QueryResult, QueryRunner
from lh360.errors import EngineError, LH360Error, UsageError, first_line

__all__ = [
    "CheckResult",
    "CompiledCheck",
    "CompiledChecks",
    "ValidationReport",
    "compile_relation",
    "run_validation",
    "run_query",
    "runner_for",
    "validate",
]


def runner_for(project: Any, target: Any, engine: str | None = None) -> QueryRunner:
    """The query engine that runs `target`'s checks: `engine` (--engine) or the target's validator, looked
    up in lh360.engines.VALIDATORS."""

    name = engine or target.settings.validator
    if name not in VALIDATORS:
        raise UsageError(f"--engine must be one of {choices(VALIDATORS)}, not {name!r}")
    return VALIDATORS[name].load()(project, target)


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


def run_query(project: Any, target: Any, sql: str, engine: str | None = None) -> QueryResult:
    """`lh360 sql`: one ad-hoc statement on the target's query engine (or `engine`), every spec's tables
    attached where the engine needs it; an engine error is an EngineError with its first line."""

    runner = runner_for(project, target, engine)
    try:
        attach = getattr(runner, "attach_project", None)
        if attach is not None:
            attach(project.specs.values())
        try:
            return runner.query(sql)
        except LH360Error:
            raise  # already says what failed, with its exit code (Athena: FAILED 3, timeout 4)
        except Exception as exc:
            raise EngineError(f"query failed: {first_line(exc)}") from None
    finally:
        runner.close()
