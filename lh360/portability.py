r"""SQL that would mean different things on DuckDB (the local validator) and Athena (Trino).

The same check runs on DuckDB on a laptop and on Athena in prod; a rule whose answer depends on where it
runs is worse than no rule. sqlglot transpiles the syntax, not the semantics. Where one form means the same
on both engines — Spark's meaning, which is what spec SQL is written in — checks compile to it
(`portable`, for the DuckDB and Athena validators); what has no such form is rejected by `lh360 lint`
with the reason (`problems`). tests/aws/test_portability.py shows each case with its count on both.

Compiled to a portable form:

* `trim`/`ltrim`/`rtrim`: Spark strips spaces only, DuckDB also Unicode space separators (NBSP), Trino
  all whitespace (tabs, newlines): both get the space explicitly (`TRIM(' ' FROM x)`);
* a string cast to an integer: DuckDB rounds '123.5' to 124 and reads '1e3' or '0x1F', Trino refuses
  anything but digits, Spark truncates '123.5' to 123: both get Spark's parse (optional sign and
  surrounding whitespace, digits, a fraction that is dropped), as a regexp_extract and a TRY_CAST;
* `regexp_replace` replacements: Spark and Trino use Java's `$1` back-references and `\` escapes, DuckDB
  RE2's `\1`: DuckDB gets the replacement rewritten;
* `md5`, `sha1`, `sha2` of a string: Trino hashes varbinary only: Athena gets `to_utf8(x)`, and the hex
  text Spark returns;
* `avg`: Trino keeps a decimal average at the column's scale (5209.29 where the others give
  5209.2929…): Athena averages the value as a double, as DuckDB does;
* `timestampdiff` in seconds, minutes, hours or days: DuckDB's date_diff counts unit boundaries crossed
  (23:30 → 01:00 is 2 hours), Trino and Spark whole units elapsed (1): DuckDB gets `date_sub`, which
  counts whole units.

Already the same on both, so not reported: `/` (both compile Spark's fractional division), `datediff`
(both compare the dates).

Rejected (`problems`):

* timestampdiff/date_diff in weeks, months, quarters or years: whole calendar units have no common form;
* date_add / dateadd / timestampadd: DuckDB returns a TIMESTAMP where Trino returns a DATE;
* months_between (Athena lacks it), format_datetime, width_bucket, current_timezone(),
  input_file_name(), the "$path" column: one engine lacks them, or they mean engine-specific things;
* look-around and backreferences in regular expressions: Athena's Java regex supports them, DuckDB's RE2
  does not;
* a cast to an integer of a value whose type lh360 cannot tell (a string would be parsed differently);
* sha2 with 224 or 384 bits (Trino lacks them), and sha2 other than 256 bits on DuckDB.

`problems(tree, column_types)` takes a parsed sqlglot expression (spec SQL is parsed as Spark SQL), typed
with lh360.checks.typerules where the column types are known, and returns one reason per problem found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lh360.sql import SQLError, parse_expression, parse_query

_ABSENT = {
    "FORMAT_DATETIME": "format_datetime is Athena-only (DuckDB has no such function); use date_format",
    "WIDTH_BUCKET": "width_bucket is not the same function on DuckDB and Athena",
    "CURRENT_TIMEZONE": "current_timezone() is the session time zone: UTC on Athena, the machine's on DuckDB",
    "INPUT_FILE_NAME": "input_file_name() has no DuckDB or Athena equivalent over Delta tables",
    "MONTHS_BETWEEN": "months_between does not exist on Athena, and DuckDB's transpiled form approximates it",
}
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BACKREF = re.compile(r"(?<!\\)\\[1-9]")
# units whose length is fixed: whole units elapsed is one formula on every engine (DuckDB's date_sub)
FIXED_UNITS = ("MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY")
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")
# Spark's string → integer parse: surrounding whitespace, a sign, digits, and a fraction it drops
SPARK_INTEGER_TEXT = r"^\s*([+-]?[0-9]+)(\.[0-9]*)?\s*$"

DATE_DIFF_REASON = (
    "timestampdiff/date_diff in calendar units: DuckDB counts the unit boundaries crossed, Athena the whole "
    "units elapsed (Jan 31 → Feb 1 is 1 month on DuckDB, 0 on Athena); use seconds, minutes, hours or days, "
    "compare timestamps (`ts >= current_timestamp() - INTERVAL 26 HOURS`), or use a freshness check"
)
DATE_ADD_REASON = (
    "date_add/dateadd: DuckDB returns a TIMESTAMP where Athena returns a DATE; compare against timestamps "
    "(`ts >= current_timestamp() - INTERVAL 1 DAY`) or cast the result explicitly"
)
UNTYPED_CAST_REASON = (
    "a cast to an integer of a value whose type lh360 cannot tell: from a string, DuckDB rounds '123.5' to "
    "124 where Athena gives NULL (lh360 compiles a common form when it knows the value is a string); cast a "
    "string column explicitly, e.g. cast(cast(x as string) as int), or cast a number as decimal first"
)


def problems(tree: Any, column_types: Mapping[str, str] | None = None) -> list[str]:
    """Reasons `tree` would mean different things on DuckDB and Athena (empty when it is portable, or when
    lh360 compiles it to a portable form). With `column_types` the tree is typed first (lh360.checks.typerules)."""
    from sqlglot import exp

    from lh360.checks.typerules import annotate, node_class  # lh360.checks imports this module

    if column_types:
        try:
            tree = annotate(tree, column_types)
        except Exception:  # noqa: BLE001 - untyped, a cast of unknown type is reported as such
            pass
    out: list[str] = []

    def add(reason: str, node: Any) -> None:
        text = f"{reason} (in `{_snippet(node)}`)"
        if text not in out:
            out.append(text)

    for node in tree.walk():
        if isinstance(node, exp.TimestampDiff) or (
            isinstance(node, exp.Anonymous) and str(node.this).upper() in ("TIMESTAMPDIFF", "TIMESTAMP_DIFF")
        ):
            if _unit(node) not in FIXED_UNITS:
                add(DATE_DIFF_REASON, node)
        elif isinstance(node, (exp.DateAdd, exp.TsOrDsAdd, exp.TimestampAdd, exp.DatetimeAdd, exp.DateSub)):
            add(DATE_ADD_REASON, node)
        elif isinstance(node, exp.MonthsBetween):
            add(_ABSENT["MONTHS_BETWEEN"], node)
        elif isinstance(node, exp.WidthBucket):
            add(_ABSENT["WIDTH_BUCKET"], node)
        elif isinstance(node, exp.CurrentTimezone):
            add(_ABSENT["CURRENT_TIMEZONE"], node)
        elif isinstance(node, exp.Anonymous):
            name = str(node.this).upper()
            if name in ("DATE_ADD", "DATEADD", "TIMESTAMPADD", "TIMESTAMP_ADD"):
                add(DATE_ADD_REASON, node)
            elif _ABSENT.get(name):
                add(_ABSENT[name], node)
        elif isinstance(node, exp.Column) and node.name.lower() in ("$path", "$file_size", "$file_modified_time"):
            add(f'the "{node.name}" hidden column exists only on Athena', node)
        elif isinstance(node, exp.SHA2) and _bits(node) != 256:
            add(
                f"sha2 with {_bits(node)} bits: Athena has sha256 and sha512 only, DuckDB sha256 only; use "
                "sha2(x, 256)",
                node,
            )
        elif _integer_cast(node) and node_class(node.this) is None and not _string_literal(node.this):
            add(UNTYPED_CAST_REASON, node)
        if _is_regexp(node):
            pattern = node.args.get("expression")
            if isinstance(pattern, exp.Literal) and pattern.is_string:
                if _LOOKAROUND.search(pattern.this):
                    add(
                        "look-around in a regular expression: Athena (Java regex) supports it, DuckDB (RE2) rejects it",
                        node,
                    )
                elif _BACKREF.search(pattern.this):
                    add(
                        "a backreference in a regular expression: Athena (Java regex) supports it, DuckDB (RE2) "
                        "rejects it",
                        node,
                    )
    return out


# ---- portable forms -----------------------------------------------------------------------------------


def portable(tree: Any, dialect: str) -> Any:
    """`tree` (Spark SQL, typed by lh360.checks.typerules where types are known) rewritten so that `dialect`
    ("duckdb" or "athena") gives it Spark's meaning where sqlglot's transpile alone would not (see the
    module docstring). Other dialects: unchanged."""
    if dialect == "duckdb":
        return tree.transform(_duckdb_node)
    if dialect in ("athena", "trino"):
        return tree.transform(_athena_node)
    return tree


def _duckdb_node(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        return _trim_spaces(node)
    if _integer_cast(node) and _is_string(node.this):
        return _spark_integer_parse(node)
    if isinstance(node, exp.RegexpReplace):
        replacement = node.args.get("replacement")
        if isinstance(replacement, exp.Literal) and replacement.is_string:
            node.set("replacement", exp.Literal.string(java_to_re2_replacement(replacement.this)))
        return node
    if isinstance(node, exp.TimestampDiff) and _unit(node) in FIXED_UNITS:
        # DuckDB's date_sub(part, start, end): whole parts elapsed, as Trino's date_diff and Spark's timestampdiff
        return exp.Anonymous(
            this="DATE_SUB", expressions=[exp.Literal.string(_unit(node).lower()), node.expression, node.this]
        )
    return node


def _athena_node(node: Any) -> Any:
    from sqlglot import exp

    from lh360.checks.typerules import BINARY, FLOAT, node_class  # lh360.checks imports this module

    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        return _trim_spaces(node)
    if _integer_cast(node) and _is_string(node.this):
        return _spark_integer_parse(node)
    if isinstance(node, (exp.MD5, exp.SHA, exp.SHA2)) and node_class(node.this) != BINARY:
        node.set("this", exp.Encode(this=node.this, charset=exp.Literal.string("utf-8")))
        if isinstance(node, exp.SHA):  # sqlglot writes Trino's sha1 as is: varbinary, where Spark gives hex text
            return exp.Lower(this=exp.Hex(this=node))
        return node
    if isinstance(node, exp.Avg) and node_class(node.this) != FLOAT:
        node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE")))
        return node
    return node


def _trim_spaces(node: Any) -> Any:
    from sqlglot import exp

    return exp.Trim(this=node.this, expression=exp.Literal.string(" "), position=node.args.get("position"))


def _spark_integer_parse(node: Any) -> Any:
    from sqlglot import exp

    digits = exp.RegexpExtract(
        this=node.this, expression=exp.Literal.string(SPARK_INTEGER_TEXT), group=exp.Literal.number(1)
    )
    return exp.TryCast(this=digits, to=node.to.copy())


def java_to_re2_replacement(text: str) -> str:
    """A Java (Spark, Trino) regexp_replace replacement in RE2's (DuckDB's) syntax: `$n` → `\\n`, `\\x` → x,
    a literal backslash doubled."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\\\\" if nxt == "\\" else nxt)
            i += 2
        elif c == "$" and i + 1 < len(text) and text[i + 1].isdigit():
            out.append("\\" + text[i + 1])
            i += 2
        elif c == "\\":
            out.append("\\\\")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _integer_cast(node: Any) -> bool:
    from sqlglot import exp

    return isinstance(node, (exp.Cast, exp.TryCast)) and node.to is not None and node.to.this.name in INTEGER_TYPES


def _string_literal(node: Any) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Literal) and node.is_string


def _is_string(node: Any) -> bool:
    from lh360.checks.typerules import STRING, node_class  # lh360.checks imports this module

    return _string_literal(node) or node_class(node) == STRING


def _unit(node: Any) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "DAY").upper()


def _bits(node: Any) -> int:
    length = node.args.get("length")
    try:
        return int(length.name) if length is not None else 256
    except ValueError:
        return 0


def _is_regexp(node: Any) -> bool:
    from sqlglot import exp

    kinds = tuple(
        getattr(exp, k)
        for k in ("RegexpLike", "RegexpILike", "RegexpExtract", "RegexpExtractAll", "RegexpReplace", "RegexpSplit")
        if hasattr(exp, k)
    )
    return isinstance(node, kinds)


def _snippet(node: Any, limit: int = 80) -> str:
    text = node.sql(dialect="spark")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def spec_types(spec: Any, relation: str) -> dict[str, str] | None:
    """The column types a spec makes known for one of its relations, before any table exists: bronze's
    schema hints; silver's columns typed from their expressions over those hints (`cast(x as T)`,
    `lower(email)` is a string …). None for gold (its types come from the Delta log) or when nothing is
    known."""
    from lh360.checks.typerules import annotate, node_class  # lh360.checks imports this module

    layer = relation.split(".", 1)[0]
    hints = {k: v for k, v in getattr(spec.bronze, "schema_hints", {}).items()}
    if layer == "bronze":
        return hints or None
    if layer != "silver" or not spec.silver:
        return None
    out: dict[str, str] = {}
    for name, text in spec.silver.columns.items():
        try:
            typed = annotate(_typed_try_functions(parse_expression(text)), hints)
        except Exception:  # noqa: BLE001 - types only sharpen checks; lint reports bad SQL itself
            continue
        if node_class(typed) is not None:
            out[name] = typed.type.sql("spark")
    return out or None


# Spark's ANSI-safe conversions, which sqlglot parses as unknown functions: their result type is known
_TRY_FUNCTION_TYPES = {"try_to_timestamp": "TIMESTAMP", "try_to_date": "DATE"}


def _typed_try_functions(tree: Any) -> Any:
    """`try_to_timestamp(x)` as `try_cast(x AS TIMESTAMP)` (and `try_to_date`), so its type is known."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _TRY_FUNCTION_TYPES and node.expressions:
            to = exp.DataType.build(_TRY_FUNCTION_TYPES[str(node.this).lower()])
            return exp.TryCast(this=node.expressions[0].copy(), to=to)
        return node

    return tree.transform(rewrite)


def check_text(text: str, *, query: bool = False, types: Mapping[str, str] | None = None) -> list[str]:
    """Parse spec SQL (Spark) and return its portability problems; parse errors are lint's job, not ours."""
    try:
        tree = parse_query(text) if query else parse_expression(text)
    except SQLError:
        return []
    return problems(tree, types)
