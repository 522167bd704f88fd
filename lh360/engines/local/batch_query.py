"""The batch query: numbered landing lines → bronze rows, in one DuckDB SELECT (see `batch_sql`).

Its input is `__lines`, the chunks of lines.py (fi, _line, line0); its output, the bronze columns in
order: the data columns of the schema, then the metadata columns.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from lh360.engines.local import lines as lines_mod
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
    # refine's "latest arrival wins" (lh360.engines.local.refine). Not in META_COLUMNS (the names `known`
    # treats as lh360's): a source field named `_line` stays an unknown field, as it was.
    "_line": "BIGINT",
}


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
    """The column value from its raw JSON text (strict kinds only); NULL when the JSON kind does not fit."""
    text = f"{raw}::VARCHAR"
    if kind == "bool":
        return f"CASE {text} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if kind == "int":  # a JSON integer: no fraction, no exponent (a string keeps its quotes and fails the cast)
        return (
            f"CASE WHEN contains({text}, '.') OR contains({text}, 'e') OR contains({text}, 'E') THEN NULL "
            f"ELSE TRY_CAST({text} AS {type_}) END"
        )
    return f"TRY_CAST({text} AS {type_})"  # number, decimal: any JSON number


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
    fit. A line is a record when it is one JSON object: it starts with `{` and parses; TRY turns a parse
    error into NULL.
    """
    names = list(schema)
    known = "[" + ", ".join(lit(n) for n in [*names, *META_COLUMNS]) + "]::VARCHAR[]"
    uris = "[" + ", ".join(lit(f.uri) for f in files) + "]"
    mtimes = "[" + ", ".join(f"to_timestamp({f.mtime!r})" for f in files) + "]"
    unknown_entries = (
        "list_transform(unk, lambda k: {'k': k, 'v': json_extract(line, '$.\"' || replace(k, '\"', '\\\"') || '\"')})"
    )
    where = "[{'k': '_file_path', 'v': to_json(uri)}, {'k': '_line', 'v': to_json(_line)}]"
    kinds = {n: top_kind(schema[n]) for n in names}
    strict = [n for n in names if kinds[n] in _STRICT_KINDS]
    checked = [n for n in names if kinds[n] not in _STRICT_KINDS and kinds[n] != "text"]

    def raw_type(n: str) -> str:
        return "VARCHAR" if kinds[n] == "text" else "JSON"

    if names:
        if fast_path:
            fast, fast_sel, took_fast = _fast_parts(schema)
        else:
            fast, fast_sel, took_fast = "NULL::STRUCT(x INTEGER)", "", "false"
        raw_struct = json.dumps({n: raw_type(n) for n in names})
        raw = f"CASE WHEN keys IS NOT NULL THEN json_transform(line, {lit(raw_struct)}) END"
        types_sel = "".join(f", json_type(r.{q(n)}) AS {q('t#' + n)}" for n in checked)
        values = {n: f"r.{q(n)}" for n in names if kinds[n] == "text"}
        values.update({n: _strict_value(kinds[n], "r." + q(n), schema[n]) for n in strict})
        values.update({n: _checked(kinds[n], "r." + q(n), q("t#" + n), schema[n]) for n in checked})
        values_sel = "".join(f", {values[n]} AS {q('v#' + n)}" for n in names)
        mismatch = [f"(r.{q(n)} IS NOT NULL AND {q('v#' + n)} IS NULL)" for n in strict]
        mismatch += [
            f"({q('t#' + n)} IS NOT NULL AND {q('t#' + n)} <> 'NULL' AND {q('v#' + n)} IS NULL)" for n in checked
        ]
        bad = dict(zip([*strict, *checked], mismatch))
        entries = [f"CASE WHEN {bad[n]} THEN [{{'k': {lit(n)}, 'v': r.{q(n)}::JSON}}] ELSE [] END" for n in bad]
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
    parts = ", ".join([unknown_entries, *entries, where])
    rescued = f"to_json(map_from_entries(list_transform(list_concat({parts}), lambda e: (e.k, e.v))))"
    # `keys` is computed for slow lines only (NULL on a fast line, or a line that is not an object)
    unk = f"CASE WHEN keys IS NOT NULL THEN list_filter(keys, lambda k: NOT list_contains({known}, k)) ELSE [] END"
    return f"""
WITH {LINES.strip()},
ps AS (SELECT *, {fast} AS s FROM c),
po AS (SELECT *{fast_sel} FROM ps),
pf AS (SELECT *, {took_fast} AS fast FROM po),
pj AS (
  SELECT *, CASE WHEN fast THEN NULL WHEN starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{{') THEN TRY(json_keys(line)) END AS keys
  FROM pf
),
pl AS (SELECT *, fast OR keys IS NOT NULL AS ok FROM pj),
pk AS (
  SELECT *, {unk} AS unk, {raw} AS r, {uris}[fi + 1] AS uri, {mtimes}[fi + 1] AS mtime
  FROM pl
),
pt AS (SELECT *{types_sel} FROM pk),
pv AS (SELECT *{values_sel} FROM pt)
SELECT {cols}uri AS _source_file, mtime AS _source_modified_at,
  {lit(ingested_at.isoformat())}::TIMESTAMPTZ AS _ingested_at, {batch_id}::BIGINT AS _batch_id,
  CASE
    WHEN NOT ok THEN json_object('_corrupt_record', line, '_file_path', uri, '_line', _line)
    WHEN len(unk) > 0 OR {any_mismatch} THEN {rescued}
  END AS _rescued_data,
  _line::BIGINT AS _line
FROM pv
"""
