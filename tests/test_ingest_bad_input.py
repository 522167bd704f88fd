"""A corpus of bad landing input: every input line becomes exactly one bronze row, and nothing is lost."""

from __future__ import annotations

import json

import pytest

from tests.ingest_support import bronze_rows, ingest, make_project, rescued, write_lines

GOOD = [json.dumps({"id": i, "nome": f"n{i}", "renda": 10.5, "ativo": True, "end": {"uf": "SP"}}) for i in range(5)]
HUGE = json.dumps({"id": 900, "nome": "x" * 3_000_000, "renda": 1.0, "ativo": False})


def corpus(land, first_only: bool = False):
    files = {
        # a first file fixes the schema: id BIGINT, nome VARCHAR, renda DOUBLE, ativo BOOLEAN, end STRUCT
        "00_good.json": GOOD,
        "01_malformed.json": ['{"id": 100, "nome": "ok"}', '{"id": 101, "nome": oops}', "not json at all", "[1, 2, 3]"],
        "02_types.json": [
            '{"id": "12a", "nome": "string id"}',
            '{"id": 103, "renda": "abc"}',
            '{"id": 104.5, "ativo": "sim"}',
            '{"id": 105, "end": "not an object"}',
        ],
        "03_unknown.json": ['{"id": 200, "campo_legado": "x", "outro": {"a": [1, 2]}}'],
        "04_empty.json": [],
        "05_bom.json": ["\ufeff" + json.dumps({"id": 300, "nome": "com BOM"}), json.dumps({"id": 301})],
        "06_truncated.json": [json.dumps({"id": 400}), '{"id": 401, "nome": "cut he'],
        "07_huge.json": [HUGE, json.dumps({"id": 901})],
        "08_crlf.json": [
            json.dumps({"id": 500}) + "\r",
            "  " + json.dumps({"id": 501}) + "  \r",
            "\t" + json.dumps({"id": 502}),
        ],
        "09_latin1.json": [json.dumps({"id": 600}).encode(), b'{"id": 601, "nome": "Jo\xe3o"}'],
        # every column present: values that a cast would convert (rounding 104.5, reading "7") still mismatch
        "10_types_complete.json": [
            '{"id": 104.5, "nome": "n", "renda": 1.0, "ativo": true, "end": {"uf": "SP"}}',
            '{"id": "7", "nome": "n", "renda": 1.0, "ativo": true, "end": {"uf": "SP"}}',
            '{"id": 8, "nome": "n", "renda": "2.5", "ativo": 1, "end": {"uf": "SP"}}',
            '{"id": 9, "nome": 123, "renda": 2, "ativo": "true", "end": {"uf": "SP"}}',
            '{"id": 10, "nome": "n", "renda": true, "ativo": false, "end": "SP"}',
        ],
    }
    for i, (name, lines) in enumerate(files.items()):
        if first_only != (i == 0):
            continue
        # 06's cut line ends with a newline: a file whose last line never ends is quarantined as a file instead
        # (test_landing_edges), and taken, cut line as a corrupt record, once a newline is appended
        write_lines(land / name, lines, mtime=1_700_000_000 + i)
    return files


def test_every_line_is_a_row_and_every_bad_piece_is_findable(tmp_path):
    make_project(tmp_path, schema_evolution="rescue")
    # the first batch (one good file) fixes the schema, as Auto Loader infers it from its first batch
    corpus(tmp_path / "landing" / "eventos", first_only=True)
    first = ingest(tmp_path)
    files = corpus(tmp_path / "landing" / "eventos")
    result = ingest(tmp_path)
    expected_lines = sum(len(v) for v in files.values())
    rows = bronze_rows(tmp_path)
    assert len(rows) == expected_lines == first.rows + result.rows
    by_line = {}
    for r in rows:
        data = rescued(r)
        if data:
            assert data["_file_path"] == r["_source_file"]  # every rescued piece names its file…
            assert isinstance(data["_line"], int)  # …and its line
            by_line[(r["_source_file"].rsplit("/", 1)[1], data["_line"])] = (r, data)

    def at(name, line):
        return by_line[(name, line)]

    # malformed lines: verbatim, with file and line
    assert at("01_malformed.json", 2)[1]["_corrupt_record"] == '{"id": 101, "nome": oops}'
    assert at("01_malformed.json", 3)[1]["_corrupt_record"] == "not json at all"
    assert at("01_malformed.json", 4)[1]["_corrupt_record"] == "[1, 2, 3]"  # JSON, but not an object
    assert at("06_truncated.json", 2)[1]["_corrupt_record"] == '{"id": 401, "nome": "cut he'
    latin = at("09_latin1.json", 2)[1]["_corrupt_record"]
    assert latin.startswith('{"id": 601') and "\\xe3" in latin  # not UTF-8: kept, escaped
    # wrong types: the value moves to _rescued_data, the column is null
    row, data = at("02_types.json", 1)
    assert row["id"] is None and data["id"] == "12a"
    row, data = at("02_types.json", 2)
    assert row["id"] == 103 and row["renda"] is None and data["renda"] == "abc"
    row, data = at("02_types.json", 3)
    assert row["id"] is None and data["id"] == 104.5 and data["ativo"] == "sim"
    row, data = at("02_types.json", 4)
    assert row["end"] is None and data["end"] == "not an object"
    row, data = at("10_types_complete.json", 1)
    assert row["id"] is None and data["id"] == 104.5 and row["nome"] == "n"
    row, data = at("10_types_complete.json", 2)
    assert row["id"] is None and data["id"] == "7"
    row, data = at("10_types_complete.json", 3)
    assert row["id"] == 8 and row["renda"] is None and row["ativo"] is None
    assert data["renda"] == "2.5" and data["ativo"] == 1
    row, data = at("10_types_complete.json", 4)
    assert row["nome"] == "123" and row["renda"] == 2.0 and row["ativo"] is None and data["ativo"] == "true"
    assert "nome" not in data and "renda" not in data  # text takes any value; an integer is a number
    row, data = at("10_types_complete.json", 5)
    assert row["renda"] is None and row["ativo"] is False and row["end"] is None
    assert data["renda"] is True and data["end"] == "SP"
    # unknown fields (rescue mode): kept whole, nested values included
    row, data = at("03_unknown.json", 1)
    assert row["id"] == 200 and data["campo_legado"] == "x" and data["outro"] == {"a": [1, 2]}
    # the clean rows of odd files are plain rows
    ids = {r["id"] for r in rows if r["id"] is not None}
    assert {0, 1, 2, 3, 4, 100, 300, 301, 400, 900, 901, 500, 501, 502, 600} <= ids
    huge = next(r for r in rows if r["id"] == 900)
    assert len(huge["nome"]) == 3_000_000
    assert result.malformed == 5


def test_utf8_bom_first_line_is_a_normal_row(tmp_path):
    make_project(tmp_path)
    write_lines(tmp_path / "landing" / "eventos" / "a.json", ["\ufeff" + json.dumps({"id": 1, "nome": "a"})])
    ingest(tmp_path)
    (row,) = bronze_rows(tmp_path)
    assert row["id"] == 1 and row["_rescued_data"] is None


SCHEMAS = {
    # the corpus's good lines hold exactly these: they take the fast path
    "regular": {"id": "BIGINT", "nome": "VARCHAR", "renda": "DOUBLE", "ativo": "BOOLEAN", "end": "STRUCT(uf VARCHAR)"},
    # every line lacks `quando` and `tags`: none takes it
    "wider": {
        "id": "BIGINT",
        "nome": "VARCHAR",
        "renda": "DOUBLE",
        "ativo": "BOOLEAN",
        "end": "STRUCT(uf VARCHAR)",
        "quando": "DATE",
        "tags": "VARCHAR[]",
    },
}


@pytest.mark.parametrize("schema_name", list(SCHEMAS))
def test_fast_and_lenient_queries_give_the_same_rows(tmp_path, schema_name):
    """The one-parse fast path and the query used when a batch's sample has irregular lines (every line
    through the slow path) must agree row for row on the whole corpus."""
    from datetime import UTC, datetime

    import duckdb

    from lh360.engines.local import batch_query
    from lh360.engines.local import lines as lines_mod
    from lh360.storage import FileInfo

    land = tmp_path / "landing"
    corpus(land, first_only=True)
    lines_by_file = corpus(land)
    paths = sorted(land.iterdir())
    files = [FileInfo(str(p), p.name, p.stat().st_size, 1_700_000_000.0) for p in paths]
    schema = SCHEMAS[schema_name]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    con = duckdb.connect()
    results = []
    for fast_path in (True, False):
        sql = batch_query.batch_sql(schema, files, 3, now, fast_path=fast_path)
        rows = []
        for chunk in lines_mod.chunks(paths):
            cur = con.cursor()
            cur.register("__lines", chunk)
            rows += cur.execute(f"SELECT * FROM ({sql})").fetchall()
            cur.close()
        results.append(sorted(rows, key=repr))
    assert len(results[0]) == sum(len(v) for v in lines_by_file.values())
    assert results[0] == results[1]
    # which query a batch gets: the corpus has irregular lines → lenient; the good file alone → fast unless
    # the schema has columns its lines lack
    assert not batch_query.fast_path_fits(con, schema, paths)
    assert batch_query.fast_path_fits(con, schema, paths[:1]) == (schema_name == "regular")
