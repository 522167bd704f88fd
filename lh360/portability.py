"""SQL that would mean different things on DuckDB (the local validator) and Athena (Trino).

The same check runs on DuckDB on a laptop and on Athena in prod; a rule whose answer depends on where it
runs is worse than no rule. sqlglot transpiles the syntax, not the semantics, so these are rejected by
`lh360 lint` with the reason instead of being silently transpiled (NOTES.md, "DuckDB / sqlglot"):

* integer / integer: Trino truncates (7 / 2 = 3), DuckDB and Spark give 3.5;
* date_diff / datediff / timestampdiff: DuckDB counts unit boundaries crossed, Trino whole units elapsed;
* date_add / dateadd / timestampadd: DuckDB returns a TIMESTAMP where Trino returns a DATE;
* months_between: Athena lacks it (DuckDB's transpiled form approximates);
* format_datetime, width_bucket, current_timezone(), input_file_name(), the "$path" column: one engine
  lacks them, or they mean engine-specific things;
* look-around and backreferences in regular expressions: Athena's Java regex supports them, DuckDB's RE2
  does not.

`problems(tree, column_types)` takes a parsed sqlglot expression (spec SQL is parsed as Spark SQL) and
returns one reason per problem found; `column_types` (name → SQL type) lets it see integer columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

INTEGER_TYPES = {"TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT", "LONG", "SHORT", "BYTE", "HUGEINT", "UBIGINT"}
_INTEGER_FUNCS = {
    "COUNT",
    "LENGTH",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "SIZE",
    "CARDINALITY",
    "ARRAY_SIZE",
    "YEAR",
    "MONTH",
    "DAY",
    "DAYOFMONTH",
    "HOUR",
    "MINUTE",
    "SECOND",
    "QUARTER",
    "WEEK",
    "DAYOFWEEK",
    "DAYOFYEAR",
    "INSTR",
    "LOCATE",
    "ROW_NUMBER",
    "RANK",
    "DENSE_RANK",
    "NTILE",
}
_ABSENT = {
    "FORMAT_DATETIME": "format_datetime is Athena-only (DuckDB has no such function); use date_format",
    "WIDTH_BUCKET": "width_bucket is not the same function on DuckDB and Athena",
    "CURRENT_TIMEZONE": "current_timezone() is the session time zone: UTC on Athena, the machine's on DuckDB",
    "INPUT_FILE_NAME": "input_file_name() has no DuckDB or Athena equivalent over Delta tables",
    "MONTHS_BETWEEN": "months_between does not exist on Athena, and DuckDB's transpiled form approximates it",
    "DATE_DIFF": None,
    "DATEDIFF": None,
    "DATE_ADD": None,
    "DATEADD": None,
}
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BACKREF = re.compile(r"(?<!\\)\\[1-9]")

DATE_DIFF_REASON = (
    "date_diff/datediff/timestampdiff: DuckDB counts the unit boundaries crossed, Athena the whole units "
    "elapsed (23:00 → 01:00 is 1 day on DuckDB, 0 on Athena); compare timestamps instead, e.g. "
    "`ts >= current_timestamp() - INTERVAL 26 HOURS`, or use a freshness check"
)
DATE_ADD_REASON = (
    "date_add/dateadd: DuckDB returns a TIMESTAMP where Athena returns a DATE; compare against timestamps "
    "(`ts >= current_timestamp() - INTERVAL 1 DAY`) or cast the result explicitly"
)


def problems(tree: Any, column_types: Mapping[str, str] | None = None) -> list[str]:
    """Reasons `tree` would mean different things on DuckDB and Athena (empty when it is portable)."""
    from sqlglot import exp

    types = {k.lower(): v.upper() for k, v in (column_types or {}).items()}
    out: list[str] = []

    def add(reason: str, node: Any) -> None:
        text = f"{reason} (in `{_snippet(node)}`)"
        if text not in out:
            out.append(text)

    for node in tree.walk():
        if isinstance(node, exp.Div) and _is_integer(node.this, types) and _is_integer(node.expression, types):
            add(
                "integer / integer: Athena (Trino) truncates (7 / 2 = 3) where DuckDB and Spark give 3.5; write "
                "CAST(x AS DOUBLE) / y for a fraction, or x div y for the whole part",
                node,
            )
        elif isinstance(node, (exp.DateDiff, exp.TimestampDiff, exp.DatetimeDiff, exp.TsOrDsDiff)):
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
            if name in ("DATE_DIFF", "DATEDIFF", "TIMESTAMPDIFF", "TIMESTAMP_DIFF"):
                add(DATE_DIFF_REASON, node)
            elif name in ("DATE_ADD", "DATEADD", "TIMESTAMPADD", "TIMESTAMP_ADD"):
                add(DATE_ADD_REASON, node)
            elif _ABSENT.get(name):
                add(_ABSENT[name], node)
        elif isinstance(node, exp.Column) and node.name.lower() in ("$path", "$file_size", "$file_modified_time"):
            add(f'the "{node.name}" hidden column exists only on Athena', node)
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


def _is_regexp(node: Any) -> bool:
    from sqlglot import exp

    kinds = tuple(
        getattr(exp, k)
        for k in ("RegexpLike", "RegexpILike", "RegexpExtract", "RegexpExtractAll", "RegexpReplace", "RegexpSplit")
        if hasattr(exp, k)
    )
    return isinstance(node, kinds)


def _is_integer(node: Any, types: Mapping[str, str]) -> bool:
    """True when `node` is integer-typed as far as can be told without a schema (or with `types`)."""
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal):
        return not node.is_string and re.fullmatch(r"\d+", node.this) is not None
    if isinstance(node, exp.Neg):
        return _is_integer(node.this, types)
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.to.this.name in INTEGER_TYPES if node.to is not None else False
    if isinstance(node, exp.Column):
        t = types.get(node.name.lower())
        return t is not None and t.split("(")[0].strip() in INTEGER_TYPES
    if isinstance(node, exp.Count):
        return True
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        return _is_integer(node.this, types) and _is_integer(node.expression, types)
    if isinstance(node, exp.Func):
        name = (node.sql_name() if not isinstance(node, exp.Anonymous) else str(node.this)).upper()
        return name in _INTEGER_FUNCS
    return False


def _snippet(node: Any, limit: int = 80) -> str:
    text = node.sql(dialect="spark")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def column_types(spec: Any) -> dict[str, str]:
    """Column types a spec makes known: silver columns written as `cast(x as T)`, and bronze schema hints."""
    from lh360.sql import SQLError, parse_expression

    out = {k: v.upper() for k, v in getattr(spec.bronze, "schema_hints", {}).items()}
    if spec.silver:
        from sqlglot import exp

        for name, text in spec.silver.columns.items():
            try:
                tree = parse_expression(text)
            except SQLError:
                continue
            if isinstance(tree, (exp.Cast, exp.TryCast)) and tree.to is not None:
                out[name] = tree.to.this.name
    return out


def check_text(text: str, *, query: bool = False, types: Mapping[str, str] | None = None) -> list[str]:
    """Parse spec SQL (Spark) and return its portability problems; parse errors are lint's job, not ours."""
    from lh360.sql import SQLError, parse_expression, parse_query

    try:
        tree = parse_query(text) if query else parse_expression(text)
    except SQLError:
        return []
    return problems(tree, types)
