"""Trino's type rules, applied to a check before Athena sees it.

Spark (what specs are written in) and DuckDB convert between strings and numbers, dates or booleans
wherever a comparison needs it; Trino (Athena) does not: "Trino will not convert between character and
numeric types". `id IN ('1', '2')` on a bigint column, `d >= '2025-01-01'` on a date, `length(id)` on a
bigint are errors on Athena — and one such check in a table's fused query would fail every check of the
table. So, knowing the relation's column types (the Delta log, Glue, or what the spec says):

* literals are typed to the column they are compared with: `'1'` against a bigint becomes `1`, a date
  string against a date becomes `CAST('2025-01-01' AS DATE)` — what Spark means, written so that every
  engine reads it the same way (accepted_values, range and relationships go through the same rules);
* a number or date given to a string function, or matched with LIKE, is cast to a string explicitly, as
  Spark does implicitly (integers, decimals, dates and booleans only: their text is the same everywhere);
* what cannot be made right is a `problem`: a value that is not of the column's type (`'abc'` for a
  bigint), two columns Trino cannot compare, arithmetic on strings. `lh360 lint` reports problems; at
  validate the check runs as written, and a fused query that fails is re-run check by check (validate.py).

Types are given as text, in any of the names lh360 meets: Delta's (`long`, `timestamp_ntz`), Spark's and
Hive's (`bigint`, `string`, `decimal(18,2)`), DuckDB's (`VARCHAR`, `TIMESTAMP WITH TIME ZONE`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

STRING, INTEGER, DECIMAL, FLOAT, BOOLEAN, DATE, TIMESTAMP, BINARY, COMPLEX = (
    "string",
    "integer",
    "decimal",
    "float",
    "boolean",
    "date",
    "timestamp",
    "binary",
    "complex",
)
NUMERIC = {INTEGER, DECIMAL, FLOAT}

_CLASSES = {
    STRING: ("string", "varchar", "char", "text", "bpchar", "character"),
    INTEGER: (
        "long",
        "bigint",
        "integer",
        "int",
        "short",
        "smallint",
        "byte",
        "tinyint",
        "hugeint",
        "int64",
        "int32",
        "int16",
        "int8",
        "ubigint",
        "uinteger",
        "usmallint",
        "utinyint",
        "uhugeint",
    ),
    DECIMAL: ("decimal", "numeric", "dec"),
    FLOAT: ("float", "double", "real", "float4", "float8"),
    BOOLEAN: ("boolean", "bool"),
    DATE: ("date",),
    TIMESTAMP: (
        "timestamp",
        "timestamp_ntz",
        "timestamp_ltz",
        "timestamptz",
        "datetime",
        "timestamp_ns",
        "timestamp_ms",
        "timestamp_s",
    ),
    BINARY: ("binary", "varbinary", "blob", "bytea"),
    COMPLEX: ("struct", "array", "map", "row", "list", "union", "variant"),
}
_BY_NAME = {name: cls for cls, names in _CLASSES.items() for name in names}
# the Spark type each class is written as when lh360 builds SQL (and annotates it with sqlglot)
_SPARK = {STRING: "string", BOOLEAN: "boolean", DATE: "date", TIMESTAMP: "timestamp", BINARY: "binary", FLOAT: "double"}
_INT_SPARK = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}

_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SNIPPET = 80


class TypeProblem(ValueError):
    """A check Trino would refuse, in words (lint reports it with the check's file and line)."""


def type_class(type_text: Any) -> str | None:
    """The class of a type (string, integer, decimal, float, boolean, date, timestamp, binary, complex), or
    None when the type is unknown. A Delta schema's nested type (a dict) is complex."""
    if isinstance(type_text, dict):
        return COMPLEX
    if not isinstance(type_text, str) or not type_text.strip():
        return None
    base = re.split(r"[\s(<\[]", type_text.strip().lower(), maxsplit=1)[0]
    return _BY_NAME.get(base)


def spark_type(type_text: Any) -> str | None:
    """The type as Spark SQL text sqlglot parses (None for complex or unknown types)."""
    cls = type_class(type_text)
    if cls is None or cls == COMPLEX:
        return None
    text = type_text.strip().lower()
    if cls == INTEGER:
        return _INT_SPARK.get(text, text if text in ("bigint", "int", "smallint", "tinyint") else "bigint")
    if cls == DECIMAL:
        m = re.search(r"\((\d+)\s*,\s*(\d+)\)", text)
        return f"decimal({m.group(1)},{m.group(2)})" if m else "decimal(38,18)"
    if cls == FLOAT and text in ("float", "real", "float4"):
        return "float"
    return _SPARK[cls]


def comparable(a: str | None, b: str | None) -> bool:
    """Whether Trino compares values of these classes (unknown classes: assume it does)."""
    if a is None or b is None or a == b:
        return True
    return (a in NUMERIC and b in NUMERIC) or {a, b} == {DATE, TIMESTAMP}


# ---- literals -----------------------------------------------------------------------------------------


def typed_literal(value: Any, type_text: Any, shown: str | None = None) -> Any:
    """`value` (from YAML or a SQL literal) as a literal of the column's type; TypeProblem if it is not one.
    An unknown or nested type leaves the value as it is. `shown`: the value as the user wrote it."""
    cls = type_class(type_text)
    shown = shown or f"{value!r}"
    if cls is None or cls == COMPLEX:
        return literal(value)
    if cls == STRING:
        if isinstance(value, bool):
            return literal("true" if value else "false")
        if isinstance(value, (datetime, date)):
            return literal(value.isoformat())
        return literal(str(value))
    if cls in NUMERIC:
        return _number(value, cls, type_text, shown)
    if cls == BOOLEAN:
        if isinstance(value, bool):
            return literal(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return literal(value.strip().lower() == "true")
        raise TypeProblem(f"{shown} is not a boolean (true or false)")
    if cls == DATE:
        return _cast(_date_text(value, shown), "DATE")
    if cls == TIMESTAMP:
        return _cast(_timestamp_text(value, shown), "TIMESTAMP")
    raise TypeProblem(f"{shown} cannot be compared with a {cls} column")


def literal(value: Any) -> Any:
    """A SQL literal for a Python value (what lh360.checks.sqlast.literal gives; here so that this module
    imports nothing of the checks that import it)."""
    from sqlglot import exp

    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _number(value: Any, cls: str, type_text: Any, shown: str) -> Any:
    from sqlglot import exp

    what = "an integer" if cls == INTEGER else "a number"
    if isinstance(value, bool):
        raise TypeProblem(f"{shown} is not {what} ({type_text})")
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if cls == INTEGER and not value.is_integer():
            raise TypeProblem(f"{shown} is not {what} ({type_text})")
        return exp.Literal.number(int(value) if cls == INTEGER else repr(value))
    text = str(value).strip()
    pattern = _INTEGER_TEXT if cls == INTEGER else _NUMBER_TEXT
    if not pattern.fullmatch(text):
        raise TypeProblem(f"{shown} is not {what} ({type_text})")
    if cls == DECIMAL and "e" in text.lower():
        try:
            text = format(Decimal(text), "f")
        except InvalidOperation:
            raise TypeProblem(f"{shown} is not {what} ({type_text})") from None
    return exp.Literal.number(text.lstrip("+"))


def _cast(text: str, type_name: str) -> Any:
    from sqlglot import exp

    return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build(type_name))


def _date_text(value: Any, shown: str) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise TypeProblem(f"{shown} is not a date (YYYY-MM-DD)") from None


def _timestamp_text(value: Any, shown: str) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise TypeProblem(f"{shown} is not a timestamp (ISO 8601, e.g. 2025-06-01 12:00:00)") from None
    if moment.tzinfo is not None:  # an instant: in UTC, the zone every lh360 session runs in
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def literal_value(node: Any) -> tuple[bool, Any]:
    """(True, its Python value) for a SQL literal (a string, a number, a signed number, TRUE/FALSE)."""
    from sqlglot import exp

    if isinstance(node, exp.Boolean):
        return True, node.this
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return True, "-" + node.this.this
    if isinstance(node, exp.Literal):
        return True, node.this
    return False, None


# ---- rules --------------------------------------------------------------------------------------------

_TABLE = "__lh360_rel"


def annotate(tree: Any, types: Mapping[str, Any]) -> Any:
    """A copy of `tree` (an expression over one relation's columns) with sqlglot types on every node: each
    unqualified column typed from `types`. Returns the annotated expression (struct fields, qualified or
    unknown columns are UNKNOWN)."""
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types

    schema = {k: t for k, v in types.items() if (t := spark_type(v)) is not None}
    select = exp.select(exp.alias_(tree.copy(), "__lh360_x")).from_(_TABLE)
    for column in select.find_all(exp.Column):
        if not column.table and column.name in schema:
            column.set("table", exp.to_identifier(_TABLE))
    annotate_types(select, schema={_TABLE: schema}, dialect="spark")
    for column in select.find_all(exp.Column):
        if column.table == _TABLE:
            column.set("table", None)
    return select.selects[0].this


def node_class(node: Any) -> str | None:
    t = getattr(node, "type", None)
    if t is None or t.this.name in ("UNKNOWN", "NULL"):
        return None
    return type_class(t.sql("spark"))


_COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ")
_ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Mod", "IntDiv")
# functions whose arguments Trino wants as varchar, where Spark casts a number or a date itself
_STRING_ARGS = {
    **dict.fromkeys(
        (
            "Length",
            "Lower",
            "Upper",
            "Initcap",
            "Substring",
            "Trim",
            "Left",
            "Right",
            "StrPosition",
            "MD5",
            "SHA",
            "SHA2",
            "RegexpLike",
            "RegexpExtract",
            "RegexpReplace",
            "Reverse",
            "Pad",
        ),
        ("this",),
    ),
    "Concat": ("expressions",),
    "ConcatWs": ("expressions",),
    "DPipe": ("this", "expression"),
}
# their text is the same on Spark, DuckDB and Trino, so an explicit cast keeps the meaning
_CASTS_TO_STRING = {INTEGER, DECIMAL, DATE, BOOLEAN}


def type_rule(tree: Any, types: Mapping[str, Any] | None) -> tuple[Any, list[str]]:
    """(the rule with its literals typed and Spark's implicit casts made explicit, the problems Trino would
    refuse). Without types the rule is returned as it is."""
    if not types:
        return tree, []
    from sqlglot import exp

    try:
        typed = annotate(tree, types)
    except Exception:  # noqa: BLE001 - sqlglot cannot type it: the rule runs as written, as it did untyped
        return tree, []
    problems: list[str] = []

    def problem(reason: str, node: Any) -> None:
        text = f"{reason} (in `{_snippet(node)}`)"
        if text not in problems:
            problems.append(text)

    def retype(lit: Any, other: Any, node: Any, *, numbers_only: bool = False) -> bool:
        """Type a literal compared with `other` to other's type; False when it is not of that type."""
        ok, value = literal_value(lit)
        if not ok:
            return True
        cls, target = node_class(lit), node_class(other)
        if target is None or target == COMPLEX or (cls is not None and comparable(cls, target)):
            return True
        if not _typed_by_data(other):
            return True  # its type may itself come from a literal (coalesce(id, '0')): leave it as written
        if numbers_only and target not in NUMERIC:
            return True
        try:
            new = typed_literal(value, other.type.sql("spark"), lit.sql("spark"))
        except TypeProblem as exc:
            problem(f"{exc}: Athena (Trino) will not compare it with one", node)
            return False
        new.type = other.type
        lit.replace(new)
        return True

    for node in list(typed.walk()):
        name = type(node).__name__
        if name in _COMPARISONS or name in _ARITHMETIC:
            arithmetic = name in _ARITHMETIC
            ok = retype(node.this, node.expression, node, numbers_only=arithmetic)
            ok = retype(node.expression, node.this, node, numbers_only=arithmetic) and ok
            if ok:
                _mismatch(node, node.this, node.expression, problem, arithmetic=arithmetic)
        elif isinstance(node, exp.In) and not node.args.get("query"):
            for i in range(len(node.expressions)):
                if retype(node.expressions[i], node.this, node):
                    _mismatch(node, node.this, node.expressions[i], problem)
        elif isinstance(node, exp.Between):
            for bound in ("low", "high"):
                if retype(node.args[bound], node.this, node):
                    _mismatch(node, node.this, node.args[bound], problem)
        elif isinstance(node, (exp.Like, exp.ILike)):
            _stringify(node, "this", problem)
        elif name in _STRING_ARGS:
            for key in _STRING_ARGS[name]:
                _stringify(node, key, problem)
    return typed, problems


def _typed_by_data(node: Any) -> bool:
    """Whether a node's type is the data's (a column, a cast, a function of them), not one sqlglot inferred
    from literals mixed in (coalesce, if, case, greatest …)."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _typed_by_data(node.this)
    if isinstance(node, (exp.Column, exp.Dot, exp.Cast, exp.TryCast, exp.Literal, exp.Boolean)):
        return True
    if isinstance(node, (exp.Coalesce, exp.If, exp.Case, exp.Nullif, exp.Greatest, exp.Least)):
        return False
    if isinstance(node, exp.Binary):
        return _typed_by_data(node.this) and _typed_by_data(node.expression)
    return isinstance(node, exp.Func)


def _mismatch(node: Any, a: Any, b: Any, problem: Any, *, arithmetic: bool = False) -> None:
    ca, cb = node_class(a), node_class(b)
    if ca is None or cb is None:
        return
    if arithmetic:
        if STRING in (ca, cb) or BOOLEAN in (ca, cb):
            problem(f"Athena (Trino) has no arithmetic between {ca} and {cb}", node)
        return
    if COMPLEX not in (ca, cb) and not comparable(ca, cb):
        problem(f"Athena (Trino) cannot compare {ca} with {cb}; cast one side explicitly", node)


def _stringify(node: Any, key: str, problem: Any) -> None:
    from sqlglot import exp

    value = node.args.get(key)
    for arg in value if isinstance(value, list) else [value]:
        if arg is None:
            continue
        cls = node_class(arg)
        if cls is None or cls in (STRING, BINARY):
            continue
        if cls in _CASTS_TO_STRING and not isinstance(arg, exp.Literal):
            arg.replace(exp.Cast(this=arg.copy(), to=exp.DataType.build("STRING")))
        elif not isinstance(arg, exp.Literal):
            problem(f"Athena (Trino) wants a string here, not a {cls}; cast it explicitly", node)


def _snippet(node: Any) -> str:
    text = node.sql(dialect="spark")
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"
