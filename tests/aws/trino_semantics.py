"""Trino's type rules and meanings, for the Athena double that runs Athena SQL on DuckDB.

A transpile to DuckDB keeps the syntax, not Trino's rules; these put them back, so that what the double
answers is what Athena would (each rule from Trino's documentation or source, written apart from lh360's
own compiler on purpose: a test of lh360 must not ask lh360 what Athena says):

* refusals (`refusal`), Trino's analyzer errors: comparing character with numeric, date or boolean types
  ("Trino will not convert between character and numeric types"), IN lists of another type, arithmetic
  and LIKE on strings of the wrong type, md5/sha1/sha256/sha512 of a varchar (they take varbinary), string
  functions of numbers;
* meanings (`to_duckdb`): trim/ltrim/rtrim strip all whitespace (airlift SliceUtf8.trim: Java's
  whitespace, not the non-breaking spaces); a varchar cast to an integer type parses with
  Integer.parseInt/Long.parseLong (digits and a sign only: '123.4' and ' 12' fail, TRY_CAST gives NULL);
  regexp_replace replacements use Java's `$1` and `\\` (DuckDB's RE2 wants `\\1`); avg of a decimal(p, s)
  is a decimal(p, s); date_diff counts whole units elapsed (DuckDB's date_diff counts boundaries, its
  date_sub whole units); sha1 returns varbinary (DuckDB's sha1 returns hex text);
* the session runs in UTC (`connect`), as Athena's does.
"""

from __future__ import annotations

from typing import Any

# airlift SliceUtf8's whitespace: Java's Character.isWhitespace, which excludes the no-break spaces
JAVA_WHITESPACE = "".join(
    chr(c) for c in [*range(9, 14), *range(28, 33), 0x1680, *range(0x2000, 0x2007), *range(0x2008, 0x200B)]
) + "".join(chr(c) for c in (0x2028, 0x2029, 0x205F, 0x3000))
_INTEGERS = ("TINYINT", "SMALLINT", "INT", "BIGINT")
_HASHES = {"MD5Digest": "md5", "MD5": "md5", "SHA": "sha1", "SHA2Digest": "sha256", "SHA2": "sha256"}
_STRING_FUNCS = (
    "Length",
    "Lower",
    "Upper",
    "Trim",
    "Substring",
    "StrPosition",
    "RegexpLike",
    "RegexpExtract",
    "RegexpReplace",
    "Reverse",
    "Pad",
    "Left",
    "Right",
)


def connect():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # Athena's session zone
    return con


def trino_type(t: Any) -> str:
    """An arrow type as Athena types a Delta column (Delta timestamps are timestamp(3) with time zone)."""
    import pyarrow as pa

    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int16(t):
        return "SMALLINT"
    if pa.types.is_int8(t):
        return "TINYINT"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "REAL"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "VARBINARY"
    return "UNKNOWN"


def annotate(tree: Any, schemas: dict[str, Any]) -> Any:
    """`tree` (Athena SQL) with types on its nodes: each column of a single-table SELECT, or qualified by a
    table alias, typed from `schemas` (table name as in the tree → arrow schema)."""
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types

    tables = {}
    for table in tree.find_all(exp.Table):
        if table.name in schemas:
            tables[table.alias_or_name] = table.name
    schema = {name: {f.name: trino_type(f.type) for f in schemas[name]} for name in set(tables.values())}
    for select in tree.find_all(exp.Select):
        sources = [t for t in select.args.get("from_", exp.From()).find_all(exp.Table) if t.name in schemas]
        own = sources[0] if len(sources) == 1 and not select.args.get("joins") else None
        for column in select.find_all(exp.Column):
            if column.table:
                continue
            if own is not None and column.name in schema[own.name] and column.find_ancestor(exp.Select) is select:
                column.set("table", exp.to_identifier(own.alias_or_name))
    aliases = {alias: schema[name] for alias, name in tables.items()}
    annotate_types(tree, schema={**schema, **aliases}, dialect="trino")
    return tree


def _cls(node: Any) -> str | None:
    from sqlglot import exp

    t = getattr(node, "type", None)
    if t is None:
        return None
    dt = exp.DataType.Type
    if t.this in exp.DataType.TEXT_TYPES:
        return "varchar"
    if t.this in exp.DataType.NUMERIC_TYPES:
        return "number"
    if t.this in (dt.DATE, dt.DATE32):
        return "date"
    if t.this in exp.DataType.TEMPORAL_TYPES:
        return "timestamp"
    if t.this == dt.BOOLEAN:
        return "boolean"
    if t.this in (dt.VARBINARY, dt.BINARY, dt.BLOB):
        return "varbinary"
    return None


def _comparable(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b or {a, b} == {"date", "timestamp"}


def _name(node: Any) -> str:
    return node.type.sql("trino").lower() if getattr(node, "type", None) is not None else "unknown"


def refusal(tree: Any) -> str | None:
    """The error Trino's analyzer would raise for the (annotated) query, or None."""
    from sqlglot import exp

    comparisons = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
    arithmetic = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
    for node in tree.walk():
        if isinstance(node, comparisons) and not _comparable(_cls(node.this), _cls(node.expression)):
            return (
                f"TYPE_MISMATCH: Cannot apply operator: {_name(node.this)} {node.key.upper()} {_name(node.expression)}"
            )
        if isinstance(node, exp.In) and any(not _comparable(_cls(node.this), _cls(i)) for i in node.expressions):
            return f"TYPE_MISMATCH: IN value and list items must be the same type: {_name(node.this)}"
        if isinstance(node, exp.Between) and not all(
            _comparable(_cls(node.this), _cls(node.args[b])) for b in ("low", "high")
        ):
            return f"TYPE_MISMATCH: Cannot check if {_name(node.this)} is BETWEEN other types"
        if isinstance(node, arithmetic) and "varchar" in (_cls(node.this), _cls(node.expression)):
            return f"TYPE_MISMATCH: Cannot apply operator: {_name(node.this)} {node.key} {_name(node.expression)}"
        if isinstance(node, exp.Like) and _cls(node.this) not in (None, "varchar"):
            return (
                f"TYPE_MISMATCH: Left side of LIKE expression must evaluate to a varchar (actual: {_name(node.this)})"
            )
        if type(node).__name__ in _HASHES and _cls(node.this) == "varchar":
            name = _HASHES[type(node).__name__]
            return (
                f"FUNCTION_NOT_FOUND: Unexpected parameters (varchar) for function {name}. Expected: {name}(varbinary)"
            )
        if type(node).__name__ in _STRING_FUNCS and _cls(node.this) not in (None, "varchar"):
            return f"FUNCTION_NOT_FOUND: Unexpected parameters ({_name(node.this)}) for function {node.key}"
        if isinstance(node, (exp.Concat, exp.DPipe)):
            parts = node.expressions if isinstance(node, exp.Concat) else [node.this, node.expression]
            if any(_cls(p) not in (None, "varchar") for p in parts):
                return "FUNCTION_NOT_FOUND: Unexpected parameters for function concat: varchar expected"
    return None


def java_replacement_to_re2(text: str) -> str:
    """Java's Matcher.appendReplacement syntax ($1, \\x) in RE2's (\\1, \\\\)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append("\\\\" if text[i + 1] == "\\" else text[i + 1])
            i += 2
        elif text[i] == "$" and i + 1 < len(text) and text[i + 1].isdigit():
            out.append("\\" + text[i + 1])
            i += 2
        else:
            out.append("\\\\" if text[i] == "\\" else text[i])
            i += 1
    return "".join(out)


def _trino_meaning(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        return exp.Trim(
            this=node.this, expression=exp.Literal.string(JAVA_WHITESPACE), position=node.args.get("position")
        )
    if isinstance(node, (exp.Cast, exp.TryCast)) and node.to.this.name in _INTEGERS and _cls(node.this) == "varchar":
        digits = exp.func("REGEXP_FULL_MATCH", node.this.copy(), exp.Literal.string("[+-]?[0-9]+"))
        parsed = exp.TryCast(this=node.this.copy(), to=node.to.copy())
        otherwise = (
            None if isinstance(node, exp.TryCast) else exp.func("ERROR", exp.Literal.string("INVALID_CAST_ARGUMENT"))
        )
        return exp.Case(ifs=[exp.If(this=digits, true=parsed)], default=otherwise)
    if isinstance(node, exp.RegexpReplace):
        replacement = node.args.get("replacement")
        if isinstance(replacement, exp.Literal) and replacement.is_string:
            node.set("replacement", exp.Literal.string(java_replacement_to_re2(replacement.this)))
        return node
    if isinstance(node, exp.Window) and _decimal_avg(node.this):
        return exp.Cast(this=node.copy(), to=node.this.this.type.copy())
    if _decimal_avg(node) and not isinstance(node.parent, exp.Window):
        return exp.Cast(this=node.copy(), to=node.this.type.copy())
    if isinstance(node, exp.DateDiff) and node.args.get("unit") is not None:
        unit = node.args["unit"].name.lower()
        return exp.Anonymous(this="DATE_SUB", expressions=[exp.Literal.string(unit), node.expression, node.this])
    if isinstance(node, exp.SHA):  # Trino's sha1 is varbinary; DuckDB's sha1 is hex text
        return exp.Unhex(this=node.copy())
    return node


def _decimal_avg(node: Any) -> bool:
    from sqlglot import exp

    return (
        isinstance(node, exp.Avg)
        and node.this.type is not None
        and node.this.type.this == exp.DataType.Type.DECIMAL
        and not isinstance(node.parent, exp.Cast)  # already ours
    )


def to_duckdb(tree: Any) -> str:
    """The (annotated) Athena query as DuckDB SQL with Trino's meaning."""
    return tree.transform(_trino_meaning).sql(dialect="duckdb")


def run(con: Any, tree: Any, schemas: dict[str, Any]):
    """Run an Athena query (sqlglot tree over tables registered on `con` under the names in `schemas`) as
    Athena would: refused where Trino refuses it, else with Trino's meaning. A DuckDB cursor."""
    tree = annotate(tree, schemas)
    error = refusal(tree)
    if error:
        raise TrinoRefusal(error)
    return con.execute(to_duckdb(tree))


class TrinoRefusal(Exception):
    pass
