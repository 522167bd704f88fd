"""`lh360 lint`: load config and every spec, parse all their SQL and compile it for every dialect."""

from __future__ import annotations

from lh360.config import Project, load_project
from lh360.errors import ConfigError
from lh360.spec import Expression, Reconcile, TableSpec
from lh360.sql import SQLError, parse_expression, parse_query, to_sql
from lh360.yamlio import _ROOTS, line_of

COMPILE_DIALECTS = ("duckdb", "athena", "databricks")


def lint(config: str | None = None) -> tuple[Project | None, list[ConfigError]]:
    errors: list[ConfigError] = []
    try:
        project = load_project(config, collect=errors)
    except ConfigError as exc:
        return None, [exc]
    # checks that would mean different things on DuckDB and Athena: only where Athena may run them
    athena = any(t.athena is not None for t in project.config.targets.values())
    for spec in project.specs.values():
        errors += lint_spec_sql(spec, athena=athena)
    from lh360.deps import gold_order

    try:
        gold_order(project.specs)
    except ConfigError as exc:
        exc = _with_line(exc)
        if not any(e.file == exc.file and e.field == exc.field for e in errors):  # a parse error already said it
            errors.append(exc)
    return project, errors


def _with_line(exc: ConfigError) -> ConfigError:
    if exc.line is None and exc.file and exc.field:
        path = [int(p) if p.isdigit() else p for p in exc.field.replace("[", ".").replace("]", "").split(".") if p]
        line = line_of(_ROOTS.get(exc.file), path)
        return ConfigError(exc.reason, file=exc.file, line=line, field=exc.field)
    return exc


def lint_spec_sql(spec: TableSpec, *, athena: bool = False) -> list[ConfigError]:
    file = str(spec.file) if spec.file else None
    root = _ROOTS.get(file) if file else None
    errors: list[ConfigError] = []
    types = None

    def check(text: str, path: list, parser) -> None:
        nonlocal types
        try:
            tree = parser(text)
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
                            line=line_of(root, path),
                            field=_dotted(path),
                        )
                    )
        except SQLError as exc:
            errors.append(ConfigError(str(exc), file=file, line=line_of(root, path), field=_dotted(path)))
        except Exception as exc:  # sqlglot cannot generate it for some dialect
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            errors.append(
                ConfigError(f"does not compile: {msg}", file=file, line=line_of(root, path), field=_dotted(path))
            )

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
                    line=line_of(root, ["checks", rel]),
                    field=f"checks.{rel}",
                )
            )
    return errors


def _dotted(path: list) -> str:
    from lh360.yamlio import dotted

    return dotted(path)
