"""`lh360 lint`: load config and every spec, parse all their SQL and compile it for every dialect; and warn
about what runs but may fail later (`lint_warnings`).

Where a target validates on Athena, lint also rejects checks that would mean different things on DuckDB and
Athena (lh360.portability) or that Athena (Trino) would refuse for their types (lh360.checks.typerules):
each relation's column types come from its Delta log when the table exists — on the target given with
`--target`, or on the default target when its lake is a local folder (no network call unless asked) — and
otherwise from what the spec says (bronze schema hints, silver's columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lh360 import engines
from lh360.checks.compile import type_problems as check_type_problems
from lh360.checks.validate import delta_types
from lh360.config import Project, load_project
from lh360.deps import gold_order
from lh360.engines.local.duck import connect, lock_down
from lh360.errors import ConfigError, first_line
from lh360.pii import gold_problems
from lh360.portability import problems, spec_types
from lh360.spec import Expression, Reconcile, TableSpec
from lh360.sql import SQLError, parse_expression, parse_query, to_sql
from lh360.storage import is_s3
from lh360.types import parse_type, type_problems
from lh360.yamlio import SourceMap, dotted

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

COMPILE_DIALECTS = ("duckdb", "athena", "databricks")


def lint(config: str | None = None, target: str | None = None) -> tuple[Project | None, list[ConfigError]]:
    errors: list[ConfigError] = []
    try:
        project = load_project(config, collect=errors)
    except ConfigError as exc:
        return None, [exc]
    # checks that would mean different things on DuckDB and Athena: only where Athena may run them
    athena = any(t.athena is not None for t in project.config.targets.values())
    types_of = relation_types(project, target) if athena else None
    probe = TypeProbe()
    try:
        for spec in project.specs.values():
            errors += lint_spec_sql(spec, athena=athena, probe=probe, types_of=types_of)
    finally:
        probe.close()

    errors += gold_problems(project)  # a gold query reading personal data hidden from gold (silver.pii)

    try:
        gold_order(project.specs)
    except ConfigError as exc:
        exc = _with_line(exc, project.source_of(exc.file))
        if not any(e.file == exc.file and e.field == exc.field for e in errors):  # a parse error already said it
            errors.append(exc)
    return project, errors


def relation_types(project: Project, target: str | None = None) -> Callable[[str], Mapping[str, Any] | None]:
    """relation → its column types, read once each: the Delta log of `target` (or of the default target when
    its lake is local), else the spec's (lh360.portability.spec_types)."""

    resolved = None
    try:
        resolved = project.target(target)
    except ConfigError:
        pass  # no usable target: types come from the specs
    if resolved is not None and target is None and is_s3(resolved.lake):
        resolved = None  # lint does not reach out to S3 unless asked with --target
    known: dict[str, Mapping[str, Any] | None] = {}

    def types_of(relation: str) -> Mapping[str, Any] | None:
        if relation not in known:
            layer, name = relation.split(".", 1)
            types = delta_types(resolved, layer, name) if resolved is not None else None
            spec = _spec_of(project, layer, name)
            known[relation] = types or (spec_types(spec, relation) if spec is not None else None)
        return known[relation]

    return types_of


def _spec_of(project: Project, layer: str, name: str) -> TableSpec | None:
    if layer == "gold":
        return next((s for s in project.specs.values() if name in s.gold), None)
    return project.specs.get(name)


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
        self._con: DuckDBPyConnection | None = None
        self._answers: dict[str, str | None] = {}

    def problem(self, duckdb_type: str) -> str | None:
        if duckdb_type not in self._answers:
            self._answers[duckdb_type] = self._ask(duckdb_type)
        return self._answers[duckdb_type]

    def _ask(self, duckdb_type: str) -> str | None:
        if self._con is None:
            self._con = connect()
            lock_down(self._con, [])
        try:
            self._con.execute(f"SELECT CAST(NULL AS {duckdb_type})").fetchall()
        except Exception as exc:
            return first_line(exc, 160)
        return None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def lint_spec_sql(
    spec: TableSpec,
    *,
    athena: bool = False,
    probe: TypeProbe | None = None,
    types_of: Callable[[str], Mapping[str, Any] | None] | None = None,
) -> list[ConfigError]:
    from sqlglot import exp  # heavy: off the `--help` path

    file = str(spec.file) if spec.file else None
    source: SourceMap | None = spec.source_map
    errors: list[ConfigError] = []
    if types_of is None:

        def types_of(relation: str) -> Mapping[str, Any] | None:
            return spec_types(spec, relation)

    def line_of(path: list) -> int | None:
        return source.line(path) if source is not None else None

    def error(reason: str, path: list) -> None:
        errors.append(ConfigError(reason, file=file, line=line_of(path), field=_dotted(path)))

    for column, hint in spec.bronze.schema_hints.items():
        problem = probe.problem(parse_type(hint)) if probe is not None else None
        if problem:
            error(f"{hint!r} is not a type the local engine can hold ({problem})", ["bronze", "schema_hints", column])

    def check(text: str, path: list, parser) -> None:
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
                types = types_of(path[1]) if parser is parse_expression else None
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
        if athena and rel in spec.relations():
            errors += _type_problems(spec, rel, checks, types_of, error_at=line_of, file=file)
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


def _type_problems(
    spec: TableSpec, relation: str, checks: list, types_of: Callable, *, error_at: Callable, file: str | None
) -> list[ConfigError]:
    """What Athena (Trino) would refuse in the checks of one relation, for the column types known."""
    out = []
    for i, c in enumerate(checks):
        try:
            found = check_type_problems(c, relation, types_of)
        except SQLError:
            continue  # a rule that does not parse: reported above
        for field, reason in found:
            name, _, index = field.rstrip("]").partition("[")
            path = ["checks", relation, i, name, *([int(index)] if index else [])]
            out.append(ConfigError(reason, file=file, line=error_at(path), field=_dotted(path)))
    return out


def _dotted(path: list) -> str:
    return dotted(path)


# ---- warnings: what compiles and runs, but may fail one day -------------------------------------------

STRING_TYPES = {"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "STRING"}


def lint_warnings(project: Project) -> list[ConfigError]:
    """Silver `columns` and expectation rules with casts that fail under ANSI mode, when a target runs spec
    SQL in it (Databricks: serverless and Spark 4 have ANSI on). There one value that does not parse stops
    the whole refine batch; `try_cast` / `try_to_timestamp` give NULL instead (what the local engine does),
    which an expectation can then catch. A cast of a column whose `schema_hints` type is the cast's own is
    safe and not reported."""
    if not any(engines.ENGINES[t.engine].ansi_sql for t in project.config.targets.values()):
        return []
    out: list[ConfigError] = []
    for spec in project.specs.values():
        if spec.silver is None:
            continue
        file = str(spec.file) if spec.file else None
        source = spec.source_map
        hints = {k.lower(): _type_key(v) for k, v in spec.bronze.schema_hints.items()}
        texts: list[tuple[list[str | int], str]] = [
            (["silver", "columns", c], e) for c, e in spec.silver.columns.items()
        ]
        texts += [(["silver", "expectations", i, "rule"], e.rule) for i, e in enumerate(spec.silver.expectations)]
        for path, text in texts:
            try:
                tree = parse_expression(text)
            except SQLError:
                continue  # lint reports it as an error
            for reason in ansi_failures(tree, hints):
                line = source.line(path) if source is not None else None
                out.append(ConfigError(reason, file=file, line=line, field=_dotted(path)))
    return out


def ansi_failures(tree, hints: dict[str, str]) -> list[str]:
    """The casts of one expression that fail under ANSI mode on a value that does not parse."""
    from sqlglot import exp

    out = []
    for node in tree.find_all(exp.Cast, exp.StrToTime, exp.TsOrDsToDate):
        if isinstance(node, exp.Cast) and node.args.get("safe"):
            continue  # try_cast
        if isinstance(node, exp.Cast) and node.to.this.name in STRING_TYPES:
            continue  # anything casts to a string
        operand = node.this
        if isinstance(operand, exp.Literal) or (isinstance(operand, exp.Null)):
            continue
        if isinstance(operand, exp.Column) and isinstance(node, exp.Cast):
            if hints.get(operand.name.lower()) == _type_key(node.to.sql("spark")):
                continue  # bronze already holds that type
        arg = operand.sql("spark")
        if isinstance(node, exp.Cast):
            target = node.to.sql("spark")
            timestamp = node.to.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ)
            what = f"{'to_timestamp / ' if timestamp else ''}cast of {arg} to {target}"
            fix = f"try_to_timestamp({arg})" if timestamp else f"try_cast({arg} AS {target})"
        elif isinstance(node, exp.TsOrDsToDate):
            what, fix = f"to_date({arg})", f"try_cast({arg} AS DATE)"
        else:
            what, fix = f"to_timestamp of {arg} with a format", f"try_to_timestamp({arg}, <format>)"
        out.append(
            f"under ANSI mode (Databricks serverless, Spark 4) the {what} fails the whole batch on one value "
            f"that does not parse; write {fix} to get NULL instead (an expectation can then catch it)"
        )
    return out


def _type_key(spark_type: str) -> str:
    return "".join(str(spark_type).lower().split())
