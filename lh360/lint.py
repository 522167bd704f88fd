"""`lh360 lint`: load config and every spec, parse all their SQL and compile it for every dialect."""

from __future__ import annotations

from lh360.config import Project, load_project
from lh360.errors import ConfigError
from lh360.spec import Expression, Reconcile, TableSpec
from lh360.sql import SQLError, parse_expression, parse_query, to_sql
from lh360.types import parse_type, type_problems
from lh360.yamlio import SourceMap

COMPILE_DIALECTS = ("duckdb", "athena", "databricks")


def lint(config: str | None = None) -> tuple[Project | None, list[ConfigError]]:
    errors: list[ConfigError] = []
    try:
        project = load_project(config, collect=errors)
    except ConfigError as exc:
        return None, [exc]
    # checks that would mean different things on DuckDB and Athena: only where Athena may run them
    athena = any(t.athena is not None for t in project.config.targets.values())
    probe = TypeProbe()
    try:
        for spec in project.specs.values():
            errors += lint_spec_sql(spec, athena=athena, probe=probe)
    finally:
        probe.close()
    from lh360.deps import gold_order
    from lh360.pii import gold_problems

    errors += gold_problems(project)  # a gold query reading personal data hidden from gold (silver.pii)

    try:
        gold_order(project.specs)
    except ConfigError as exc:
        exc = _with_line(exc, project.source_of(exc.file))
        if not any(e.file == exc.file and e.field == exc.field for e in errors):  # a parse error already said it
            errors.append(exc)
    return project, errors


def _with_line(exc: ConfigError, source: SourceMap | None) -> ConfigError:
    if exc.line is None and source is not None and exc.field:
        path = [int(p) if p.isdigit() else p for p in exc.field.replace("[", ".").replace("]", "").split(".") if p]
        return ConfigError(exc.reason, file=exc.file, line=source.line(path), field=exc.field)
    return exc


class TypeProbe:
    """Asks DuckDB (the local engine) whether it can hold a type: `binary(10)`, `int(5)` or a struct with a
    field twice parse as Spark SQL but fail every ingest or promote. One locked, empty in-memory connection,
    opened on first use."""

    def __init__(self) -> None:
        self._con = None
        self._answers: dict[str, str | None] = {}

    def problem(self, duckdb_type: str) -> str | None:
        if duckdb_type not in self._answers:
            self._answers[duckdb_type] = self._ask(duckdb_type)
        return self._answers[duckdb_type]

    def _ask(self, duckdb_type: str) -> str | None:
        if self._con is None:
            from lh360.engines.local.duck import connect, lock_down

            self._con = connect()
            lock_down(self._con, [])
        try:
            self._con.execute(f"SELECT CAST(NULL AS {duckdb_type})").fetchall()
        except Exception as exc:
            text = str(exc).strip().splitlines()
            return text[0][:160] if text else type(exc).__name__
        return None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def lint_spec_sql(spec: TableSpec, *, athena: bool = False, probe: TypeProbe | None = None) -> list[ConfigError]:
    from sqlglot import exp  # heavy: off the `--help` path

    file = str(spec.file) if spec.file else None
    source: SourceMap | None = spec.source_map
    errors: list[ConfigError] = []
    types = None

    def line_of(path: list) -> int | None:
        return source.line(path) if source is not None else None

    def error(reason: str, path: list) -> None:
        errors.append(ConfigError(reason, file=file, line=line_of(path), field=_dotted(path)))

    for column, hint in spec.bronze.schema_hints.items():
        problem = probe.problem(parse_type(hint)) if probe is not None else None
        if problem:
            error(f"{hint!r} is not a type the local engine can hold ({problem})", ["bronze", "schema_hints", column])

    def check(text: str, path: list, parser) -> None:
        nonlocal types
        try:
            tree = parser(text)
            reasons = type_problems(tree)  # casts to types no engine can hold (decimal(3,5))
            if not reasons and probe is not None:
                reasons = [
                    f"cast to {cast.to.sql('spark')} cannot run ({problem})"
                    for cast in tree.find_all(exp.Cast)
                    if (problem := probe.problem(cast.to.sql("duckdb")))
                ]
            for reason in reasons:
                error(reason, path)
            for dialect in COMPILE_DIALECTS:
                to_sql(tree, dialect)
            if athena and path[0] == "checks":  # check rules and reconcile sides (lh360.portability)
                from lh360.portability import column_types, problems

                types = column_types(spec) if types is None else types
                for reason in problems(tree, types):
                    errors.append(
                        ConfigError(
                            f"means different things on DuckDB and Athena: {reason}",
                            file=file,
                            line=line_of(path),
                            field=_dotted(path),
                        )
                    )
        except SQLError as exc:
            errors.append(ConfigError(str(exc), file=file, line=line_of(path), field=_dotted(path)))
        except Exception as exc:  # sqlglot cannot generate it for some dialect
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            errors.append(ConfigError(f"does not compile: {msg}", file=file, line=line_of(path), field=_dotted(path)))

    if spec.silver:
        for col, expr in spec.silver.columns.items():
            check(expr, ["silver", "columns", col], parse_expression)
        for i, e in enumerate(spec.silver.expectations):
            check(e.rule, ["silver", "expectations", i, "rule"], parse_expression)
    for name, gold in spec.gold.items():
        check(gold.sql, ["gold", name, "sql"], parse_query)
    for rel, checks in spec.checks.items():
        for i, c in enumerate(checks):
            if isinstance(c, Expression):
                check(c.rule, ["checks", rel, i, "rule"], parse_expression)
            elif isinstance(c, Reconcile):
                check(c.left, ["checks", rel, i, "left"], parse_query)
                check(c.right, ["checks", rel, i, "right"], parse_query)
        if rel not in spec.relations():
            errors.append(
                ConfigError(
                    f"{rel} is not a table this spec defines ({', '.join(spec.relations())})",
                    file=file,
                    line=line_of(["checks", rel]),
                    field=f"checks.{rel}",
                )
            )
    return errors


def _dotted(path: list) -> str:
    from lh360.yamlio import dotted

    return dotted(path)
