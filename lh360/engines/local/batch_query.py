"""The batch query: numbered landing lines → bronze rows, in one DuckDB SELECT (see `batch_sql`).

Its input is `__lines`, the chunks of lines.py (fi, _line, line0); its output, the bronze columns in
order: the data columns of the schema, then the metadata columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lh360.engines.local import lines as lines_mod
from lh360.engines.local.duck_types import parse_type_tree
from lh360.sql import quote_ident as q
from lh360.sql import quote_literal as lit
from lh360.storage import FileInfo
from lh360.types import top_kind

META_COLUMNS = ("_source_file", "_source_modified_at", "_ingested_at", "_batch_id", "_rescued_data")
META_TYPES = {
    "_source_file": "VARCHAR",
    "_source_modified_at": "TIMESTAMP WITH TIME ZONE",
    "_ingested_at": "TIMESTAMP WITH TIME ZONE",
    "_batch_id": "BIGINT",
    "_rescued_data": "VARCHAR",
    # the row's line in `_source_file` (1-based; a JSON-array file: its element): the last tie-breaker of
    # refine's "latest arrival wins" (lh360.engines.local.refine). A source field named `_line` is reserved
    # (RESCUE_KEYS) and kept in `_rescued_data._source_fields`.
    "_line": "BIGINT",
}
RESCUE_KEYS = ("_file_path", "_line", "_corrupt_record")  # lh360's own keys inside `_rescued_data`
# Source fields named like lh360's columns or rescue keys (in any case) are never columns and never dropped
# or overwritten: `_rescued_data` keeps them, as the producer wrote them, under this key.
SOURCE_FIELDS = "_source_fields"
RESERVED = (*META_COLUMNS, *RESCUE_KEYS, SOURCE_FIELDS)
_RESERVED_LOWER = tuple(sorted({n.lower() for n in RESERVED}))
_NUMBER_KINDS = ("int", "number", "decimal")


def is_reserved(name: str) -> bool:
    """Whether a source field has a name lh360 uses itself (compared without case, as Delta and Spark do)."""
    return name.lower() in _RESERVED_LOWER


# blank lines are skipped (cheap test first, in a CASE so that only short lines are trimmed: an OR evaluated
# trim on every line, a quarter of a second per GB); CR of CRLF dropped from the text (`j`, the same line typed
# JSON, keeps it: CR is JSON whitespace)
LINES = """
c AS (
  SELECT fi, _line, line0 AS j,
    CASE WHEN ends_with(line0, chr(13)) THEN rtrim(line0::VARCHAR, chr(13)) ELSE line0::VARCHAR END AS line
  FROM __lines WHERE CASE WHEN strlen(line0) > 8 THEN true ELSE trim(line0, ' ' || chr(9) || chr(13)) <> '' END
)"""


def _checked(kind: str, v: str, t: str, type_: str) -> str:
    """Dates, timestamps, objects and arrays (slow path): a raw JSON value `v` of JSON type `t` → the
    column value, NULL when the JSON type does not fit."""
    if kind in ("date", "timestamp"):
        return f"CASE WHEN {t} = 'VARCHAR' THEN TRY_CAST(json_extract_string({v}, '$') AS {type_}) END"
    if kind == "object":
        return f"CASE WHEN {t} = 'OBJECT' THEN TRY_CAST({v} AS {type_}) END"
    return f"CASE WHEN {t} = 'ARRAY' THEN TRY_CAST({v} AS {type_}) END"


# Scalar kinds a cast would convert too freely for Auto Loader's contract ("7" → 7, 104.5 → 105, 1 → true):
# both paths read them as raw JSON text and convert only a JSON value of the right kind. Text columns take
# any JSON value (a string as itself, anything else as its JSON text, as Spark does for StringType).
_STRICT_KINDS = ("int", "number", "decimal", "bool")


def _strict_value(kind: str, raw: str, type_: str) -> str:
    """The column value from its raw JSON text (strict kinds only); NULL when the JSON kind does not fit.

    A decimal is taken from this text only where it is exact: DuckDB hands a JSON number over as the
    shortest text of the nearest double, which is the producer's value at the column's scale as long as it
    has no more decimals than the scale and at most 15 digits (a double holds 15.9). Other numbers (more
    digits, an exponent) make the line take the slow path, which parses the producer's digits exactly."""
    text = f"{raw}::VARCHAR"
    if kind == "bool":
        return f"CASE {text} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if kind == "int":  # a JSON integer: no fraction, no exponent (a string keeps its quotes and fails the cast)
        return (
            f"CASE WHEN contains({text}, '.') OR contains({text}, 'e') OR contains({text}, 'E') THEN NULL "
            f"ELSE TRY_CAST({text} AS {type_}) END"
        )
    if kind == "decimal":
        scale = _scale(type_)
        dot = f"strpos({text}, '.')"
        exact = (
            f"NOT contains({text}, 'e') AND NOT contains({text}, 'E') AND CASE WHEN {dot} > 0 "
            f"THEN {dot} - 1 + {scale} <= 15 AND strlen({text}) - {dot} <= {scale} ELSE strlen({text}) + {scale} <= 15 END"
        )
        return f"CASE WHEN {exact} THEN TRY_CAST({text} AS {type_}) END"
    return f"TRY_CAST({text} AS {type_})"  # number: any JSON number


def _scale(type_: str) -> int:
    inside = type_[type_.index("(") + 1 : type_.rindex(")")] if "(" in type_ else ""
    parts = [x.strip() for x in inside.split(",")]
    return int(parts[1]) if len(parts) == 2 else 3  # DuckDB's DECIMAL without arguments is DECIMAL(18,3)


def _pointer(key_sql: str) -> str:
    """SQL: the JSON pointer of a top-level key (RFC 6901: an empty key is "/"; `~`, `/` escaped). Not a
    `$."…"` path, which DuckDB cannot write for an empty key."""
    return f"('/' || replace(replace({key_sql}, '~', '~0'), '/', '~1'))"


def _pointer_text(path: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def _as_written(text_sql: str, key_regex_sql: str) -> str:
    """SQL: the JSON text of a top-level member's value, with a number as the producer wrote it (`1e2`,
    `9999999999999999.99`), not as DuckDB re-prints it through a double. The digits are found in the line
    next to the key and used only when they are the same number."""
    found = (
        f"list_filter(regexp_extract_all(line, '\"' || {key_regex_sql} || '\"\\s*:\\s*(-?[0-9][0-9.eE+-]*)', 1), "
        f"lambda x: TRY_CAST(x AS DOUBLE) = TRY_CAST({text_sql} AS DOUBLE))[1]"
    )
    return f"CASE WHEN regexp_matches({text_sql}, '^-?[0-9]') THEN coalesce({found}, {text_sql}) ELSE {text_sql} END"


def _member_text(key_sql: str) -> str:
    """SQL: the JSON text of the top-level member `key_sql` of `line`, numbers as written."""
    norm = f"json_extract(line, {_pointer(key_sql)})::VARCHAR"
    return _as_written(norm, f"regexp_escape({key_sql})")


def _struct_nodes(type_: str) -> list[tuple[list[str], list[str]]]:
    """(path under the column, field names) of every struct in a STRUCT column type (not inside lists)."""
    out: list[tuple[list[str], list[str]]] = []

    def walk(tree, path: list[str]) -> None:
        if tree[0] != "struct":
            return
        out.append((path, [n for n, _ in tree[1]]))
        for name, sub in tree[1]:
            walk(sub, [*path, name])

    walk(parse_type_tree(type_), [])
    return out


@dataclass
class _Nested:
    """SQL for a STRUCT column's fields on a slow line (a fast line matched the struct exactly)."""

    keys: list[tuple[str, str]]  # (column, expression): the keys of each struct node, NULL if not an object
    dup: str  # a key repeats inside the struct
    unknown: str  # some node has a key the schema lacks (cheap: no lambda)
    layers: list[list[tuple[str, str]]]  # the rescued JSON per node, deepest first (see _nested_parts)
    root: str  # the column holding the column's rescued JSON, or NULL


def _repeats(keys: str, known: str, n_known: int) -> str:
    """SQL: whether the list of keys `keys` holds a key twice. Hashing the list costs more than the parse
    that made it; for a schema of usual width, counting the known keys present is cheaper: every key is
    known and present once, or unknown (those few are hashed)."""
    if n_known > 64:
        return f"list_unique({keys}) <> len({keys})"
    present = f"len(list_filter({known}, lambda c: list_contains({keys}, c)))"
    unknown = f"len(list_distinct(list_filter({keys}, lambda k: NOT list_contains({known}, k))))"
    return f"len({keys}) <> {present} + {unknown}"


def _nested_parts(name: str, type_: str) -> _Nested:
    """For a STRUCT column: its keys per struct node, "a key repeats", "a key is unknown", and the JSON of the
    fields the schema lacks, by path ({"zip": …, "geo": {"lat": …}}, or NULL). That JSON is one column per
    struct node, computed deepest first, one query layer per depth: a node refers to its children by column
    name (written as one expression, DuckDB's binder grows exponentially with the depth)."""
    nodes = _struct_nodes(type_)
    raw = f"r.{q(name)}"
    index = {tuple(path): i for i, (path, _) in enumerate(nodes)}

    def nk(i: int) -> str:
        return q(f"nk#{name}#{i}")

    def column(i: int) -> str:
        return q(f"nt#{name}#{i}")

    def known(i: int) -> str:
        return "[" + ", ".join(lit(f) for f in nodes[i][1]) + "]::VARCHAR[]"

    keys = [
        (nk(i), f"CASE WHEN keys IS NOT NULL THEN json_keys({raw}, {lit(_pointer_text(path))}) END")
        for i, (path, _) in enumerate(nodes)
    ]
    dup = " OR ".join(f"coalesce({_repeats(nk(i), known(i), len(nodes[i][1]))}, false)" for i in range(len(nodes)))
    unknown = " OR ".join(f"NOT coalesce(list_has_all({known(i)}, {nk(i)}), true)" for i in range(len(nodes)))
    flag = q(f"nu#{name}")

    def own(i: int) -> str:  # "k":value,… of the node's own fields the schema lacks, or NULL
        return (
            f"nullif(array_to_string(list_transform(list_filter(coalesce({nk(i)}, []), "
            f"lambda k: NOT list_contains({known(i)}, k)), lambda k: to_json(k) || ':' || "
            f"json_extract({raw}, {lit(_pointer_text(nodes[i][0]))} || {_pointer('k')})::VARCHAR), ','), '')"
        )

    layers: dict[int, list[tuple[str, str]]] = {}
    for i, (path, fields) in enumerate(nodes):
        children = [
            f"to_json({lit(f)}::VARCHAR) || ':' || {column(index[(*path, f)])}" for f in fields if (*path, f) in index
        ]
        parts = f"concat_ws(',', {', '.join([own(i), *children])})"
        expr = f"CASE WHEN {flag} THEN '{{' || nullif({parts}, '') || '}}' END"
        layers.setdefault(len(path), []).append((column(i), expr))
    return _Nested(
        keys, dup, f"coalesce({unknown}, false)", [layers[d] for d in sorted(layers, reverse=True)], column(0)
    )


def _fast_parts(schema: dict[str, str]) -> tuple[str, str, str]:
    """The fast path's cast of `j`, the strict-kind values it yields (`f#<column>`) and the condition
    under which a line took it."""
    kinds = {n: top_kind(schema[n]) for n in schema}
    strict = [n for n in schema if kinds[n] in _STRICT_KINDS]
    fast_type = "STRUCT(" + ", ".join(f"{q(n)} {'JSON' if n in strict else schema[n]}" for n in schema) + ")"
    fast = f"TRY(CAST(j AS {fast_type}))"
    fast_sel = "".join(f", {_strict_value(kinds[n], 's.' + q(n), schema[n])} AS {q('f#' + n)}" for n in strict)
    fits = " AND ".join(f"(s.{q(n)} IS NULL OR {q('f#' + n)} IS NOT NULL)" for n in strict) or "true"
    return fast, fast_sel, f"s IS NOT NULL AND {fits}"


def fast_path_fits(con, schema: dict[str, str], paths: list[Path]) -> bool:
    """Whether every line of a sample of the batch takes the fast path. A line that does not costs the
    fast path an exception (TRY then redoes its vector of 2,048 lines one by one): when lines missing a
    field or carrying an extra one are common, that made ingest five times slower than reading the whole
    batch with the slow path's query, which never raises per line."""
    if not schema:
        return False
    sample = lines_mod.sample(paths)
    if not sample.num_rows:
        return True
    fast, fast_sel, took_fast = _fast_parts(schema)
    cur = con.cursor()
    try:
        cur.register("__lines", sample)
        total, fast_lines = cur.execute(
            f"WITH {LINES.strip()}, ps AS (SELECT *, {fast} AS s FROM c), po AS (SELECT *{fast_sel} FROM ps) "
            f"SELECT count(*), count_if({took_fast}) FROM po"
        ).fetchall()[0]
    finally:
        cur.close()
    return total == fast_lines


def batch_sql(
    schema: dict[str, str], files: list[FileInfo], batch_id: int, ingested_at: datetime, *, fast_path: bool = True
) -> str:
    """One SELECT over numbered lines (`__lines`) → bronze rows (data columns, then metadata).

    One pass, two paths. The fast path casts a line once to the table's STRUCT (numbers and booleans as
    raw JSON, converted only when their JSON kind fits); the cast fails unless the line is one JSON object
    holding every column once, values that fit, and no other field, which is most lines. The other lines
    (missing or unknown fields, values that do not fit, malformed lines) take the slow path, computed for
    them only (CASE evaluates a branch for the rows that take it): `json_keys` finds their fields, the line
    is parsed into raw JSON values, each is checked against its column's type and rescued when it does not
    fit. A line is a record when it is one JSON object with each key once (at the top and inside the
    table's structs): it starts with `{` and parses; TRY turns a parse error into NULL. Anything else is a
    corrupt record, kept verbatim.

    `_rescued_data` holds, by name: fields the schema lacks (an empty name, a name differing from a column
    only in case), values that do not fit their column, and for a struct column the fields it lacks, by
    path; under `_source_fields`, fields named like lh360's own columns; then `_file_path` and `_line`. It
    is assembled as text, so that a top-level number keeps the producer's digits.
    """
    names = list(schema)
    known = "[" + ", ".join(lit(n) for n in names) + "]::VARCHAR[]"
    reserved = "[" + ", ".join(lit(n) for n in _RESERVED_LOWER) + "]::VARCHAR[]"
    uris = "[" + ", ".join(lit(f.uri) for f in files) + "]"
    mtimes = "[" + ", ".join(f"to_timestamp({f.mtime!r})" for f in files) + "]"
    member = _member_text("k")
    unknown_entries = f"list_transform(unk, lambda k: {{'k': k, 'v': {member}}})"
    source_fields = (
        f"CASE WHEN len(res) > 0 THEN [{{'k': {lit(SOURCE_FIELDS)}, 'v': '{{' || "
        f"array_to_string(list_transform(res, lambda k: to_json(k) || ':' || {member}), ',') || '}}'}}] ELSE [] END"
    )
    where = "[{'k': '_file_path', 'v': to_json(uri)::VARCHAR}, {'k': '_line', 'v': _line::VARCHAR}]"
    kinds = {n: top_kind(schema[n]) for n in names}
    strict = [n for n in names if kinds[n] in _STRICT_KINDS]
    checked = [n for n in names if kinds[n] not in _STRICT_KINDS and kinds[n] != "text"]
    decimals = [n for n in strict if kinds[n] == "decimal"]
    structs = [n for n in names if schema[n].upper().startswith("STRUCT")]

    def raw_type(n: str) -> str:
        return "VARCHAR" if kinds[n] == "text" else "JSON"

    nested = {n: _nested_parts(n, schema[n]) for n in structs}
    nested_sel = "".join(f", {expr} AS {col}" for n in structs for col, expr in nested[n].keys)
    nested_flags = "".join(f", {nested[n].unknown} AS {q('nu#' + n)}" for n in structs)
    nested_dup = " OR ".join(f"({nested[n].dup})" for n in structs) or "false"
    depth = max((len(nested[n].layers) for n in structs), default=0)
    nested_layers = f"pu AS (SELECT *{nested_flags} FROM pn),\n"
    for level in range(depth):  # deepest first, aligned at the root: the last layer of every column is its root
        cols_sql = "".join(
            f", {expr} AS {col}"
            for n in structs
            if level >= depth - len(nested[n].layers)
            for col, expr in nested[n].layers[level - depth + len(nested[n].layers)]
        )
        nested_layers += f"pn{level} AS (SELECT *{cols_sql} FROM {'pu' if level == 0 else f'pn{level - 1}'}),\n"
    nested_from = f"pn{depth - 1}" if depth else "pu"
    nested_entries = [
        f"CASE WHEN {nested[n].root} IS NOT NULL THEN [{{'k': {lit(n)}, 'v': {nested[n].root}}}] ELSE [] END"
        for n in structs
    ]
    if names:
        if fast_path:
            fast, fast_sel, took_fast = _fast_parts(schema)
        else:
            fast, fast_sel, took_fast = "NULL::STRUCT(x INTEGER)", "", "false"
        raw_struct = json.dumps({n: raw_type(n) for n in names})
        raw = f"CASE WHEN keys IS NOT NULL THEN json_transform(line, {lit(raw_struct)}) END"
        types_sel = "".join(f", json_type(r.{q(n)}) AS {q('t#' + n)}" for n in checked)
        values = {n: f"r.{q(n)}" for n in names if kinds[n] == "text"}
        values.update({n: _strict_value(kinds[n], "r." + q(n), schema[n]) for n in strict if n not in decimals})
        # decimals: exact from DuckDB's text where that is exact (_strict_value), else the producer's digits
        # parsed again, for that line only (a JSON-to-DECIMAL transform reads them exactly)
        values.update({n: _slow_decimal(n, schema[n]) for n in decimals})
        values.update({n: _checked(kinds[n], "r." + q(n), q("t#" + n), schema[n]) for n in checked})
        values_sel = "".join(f", {values[n]} AS {q('v#' + n)}" for n in names)
        mismatch = [f"(r.{q(n)} IS NOT NULL AND {q('v#' + n)} IS NULL)" for n in strict]
        mismatch += [
            f"({q('t#' + n)} IS NOT NULL AND {q('t#' + n)} <> 'NULL' AND {q('v#' + n)} IS NULL)" for n in checked
        ]
        bad = dict(zip([*strict, *checked], mismatch))

        def rescued_value(n: str) -> str:
            text = f"r.{q(n)}::VARCHAR"
            return _as_written(text, f"regexp_escape({lit(n)})") if kinds[n] in _NUMBER_KINDS else text

        entries = [f"CASE WHEN {bad[n]} THEN [{{'k': {lit(n)}, 'v': {rescued_value(n)}}}] ELSE [] END" for n in bad]
        any_mismatch = f"(NOT fast AND ({' OR '.join(mismatch)}))" if mismatch else "false"
        if fast_path:
            cols = "".join(
                f"CASE WHEN fast THEN {q('f#' + n) if n in strict else 's.' + q(n)} ELSE {q('v#' + n)} END AS {q(n)}, "
                for n in names
            )
        else:
            cols = "".join(f"{q('v#' + n)} AS {q(n)}, " for n in names)
    else:  # no columns yet (nothing could be inferred): json_keys is the parse that decides
        fast, raw, fast_sel, took_fast = "NULL::STRUCT(x INTEGER)", "NULL::STRUCT(x INTEGER)", "", "false"
        types_sel = values_sel = cols = ""
        entries, any_mismatch = [], "false"
    parts = ", ".join([unknown_entries, source_fields, *entries, *nested_entries, where])
    rescued = f"'{{' || array_to_string(list_transform(list_concat({parts}), lambda e: to_json(e.k)::VARCHAR || ':' || e.v), ',') || '}}'"
    any_nested = " OR ".join(f"{nested[n].root} IS NOT NULL" for n in structs) or "false"
    # `keys` is computed for slow lines only (NULL on a fast line, or a line that is not an object); a key
    # repeated at the top makes the line a corrupt record (which value would be the field's?)
    # fields the schema lacks: usually none, so the split below filters an empty list; a line repeating a
    # key is a corrupt record (its keys, hence its values, become NULL)
    top_dup = f"coalesce({_repeats('keys', known, len(names))}, false)"
    other = f"CASE WHEN keys IS NOT NULL THEN list_filter(keys, lambda k: NOT list_contains({known}, k)) ELSE [] END"
    unk = f"list_filter(other, lambda k: NOT list_contains({reserved}, lower(k)))"
    res = f"list_filter(other, lambda k: list_contains({reserved}, lower(k)))"
    return f"""
WITH {LINES.strip()},
ps AS (SELECT *, {fast} AS s FROM c),
po AS (SELECT *{fast_sel} FROM ps),
pf AS (SELECT *, {took_fast} AS fast FROM po),
pj AS (
  SELECT *, CASE WHEN fast THEN NULL WHEN starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{{') THEN TRY(json_keys(line)) END AS keys
  FROM pf
),
po2 AS (SELECT * REPLACE (CASE WHEN NOT ({top_dup}) THEN keys END AS keys) FROM (SELECT *, {other} AS other FROM pj)),
pk AS (
  SELECT *, {unk} AS unk, {res} AS res, {raw} AS r, {uris}[fi + 1] AS uri, {mtimes}[fi + 1] AS mtime
  FROM po2
),
pn AS (SELECT *{nested_sel} FROM pk),
{nested_layers}pl AS (
  SELECT * REPLACE (CASE WHEN NOT ({nested_dup}) THEN r END AS r), fast OR (keys IS NOT NULL AND NOT ({nested_dup})) AS ok
  FROM {nested_from}
),
pt AS (SELECT *{types_sel} FROM pl),
pv AS (SELECT *{values_sel} FROM pt)
SELECT {cols}uri AS _source_file, mtime AS _source_modified_at,
  {lit(ingested_at.isoformat())}::TIMESTAMPTZ AS _ingested_at, {batch_id}::BIGINT AS _batch_id,
  CASE
    WHEN NOT ok THEN json_object('_corrupt_record', line, '_file_path', uri, '_line', _line)
    WHEN len(unk) > 0 OR len(res) > 0 OR {any_mismatch} OR ({any_nested}) THEN {rescued}
  END AS _rescued_data,
  _line::BIGINT AS _line
FROM pv
"""


def _slow_decimal(name: str, type_: str) -> str:
    """SQL: a decimal column's value on a slow line: NULL unless the raw JSON value is a number."""
    text = f"r.{q(name)}::VARCHAR"
    quick = _strict_value("decimal", f"r.{q(name)}", type_)
    exact = f"struct_extract(json_transform(line, {lit(json.dumps({name: type_}))}), {lit(name)})"
    number = f"left({text}, 1) IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"
    return f"CASE WHEN {number} THEN coalesce({quick}, {exact}) END"
