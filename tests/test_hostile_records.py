"""Hostile records: each line becomes a row (rescued or corrupt), nothing is dropped, no line stops a table.

Covers source fields named like lh360's columns, new fields inside structs, exact decimals and verbatim
rescued numbers, and keys that are empty, repeated, differ only in case, or nest dozens of levels deep.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lh360.errors import SchemaChangeError
from tests.ingest_support import bronze_rows, ingest, make_project, rescued, write_lines


def spec(mode: str = "addNewColumns", **bronze):
    return {
        "table": "eventos",
        "source": {"path": "eventos/"},
        "landing": {"settle": 0},
        "bronze": {"schema_evolution": mode, **bronze},
    }


def land(root, name: str, lines: list[str], mtime: float) -> None:
    write_lines(root / "landing" / "eventos" / name, lines, mtime=mtime)


def by_id(root) -> dict:
    return {r["id"]: r for r in bronze_rows(root)}


# ---- 1.1: fields named like lh360's columns -----------------------------------------------------------

PRODUCER = {
    "_source_file": "FROM-PRODUCER",
    "_batch_id": 77,
    "_rescued_data": "keep me",
    "_ingested_at": "2020-01-01",
    "_source_modified_at": "yesterday",
    "_line": 7,
    "_file_path": "x",
    "_corrupt_record": "not corrupt",
    "_Batch_ID": 1e2,
}


@pytest.mark.parametrize("first_batch", [True, False], ids=["first-batch", "later-batch"])
def test_fields_named_like_lh360_columns_are_kept_in_rescued_data(tmp_path, first_batch):
    make_project(tmp_path, spec())
    if not first_batch:
        land(tmp_path, "0.json", [json.dumps({"id": 1, "v": "a"})], 1_700_000_000)
        ingest(tmp_path)
    line = json.dumps({"id": 2, "v": "b", **PRODUCER}).replace("100.0", "1e2")
    land(tmp_path, "1.json", [line], 1_700_000_100)
    result = ingest(tmp_path)
    row = by_id(tmp_path)[2]
    data = rescued(row)
    assert data["_source_fields"] == {**PRODUCER, "_Batch_ID": 100}
    assert '"_Batch_ID":1e2' in row["_rescued_data"]  # the producer's number, as written
    assert data["_file_path"] == row["_source_file"] and data["_line"] == 1  # lh360's own, not overwritten
    assert row["_source_file"].endswith("1.json") and row["_batch_id"] == (0 if first_batch else 1)
    columns = [c for c in row if not c.startswith("_")]
    assert columns == ["id", "v"] and result.rescued == 1


# ---- 1.2: new fields inside a struct --------------------------------------------------------------------

NESTED = {"id": 2, "addr": {"city": "B", "zip": "01001-000", "geo": {"lat": -23.5}}}


def nested_zone(root, mode: str) -> None:
    make_project(root, spec(mode))
    land(root, "1.json", [json.dumps({"id": 1, "addr": {"city": "A", "geo": {"alt": 5}}})], 1_700_000_000)
    ingest(root)
    land(
        root,
        "2.json",
        [json.dumps({**NESTED, "addr": {**NESTED["addr"], "geo": {"alt": 7, "lat": -23.5}}})],
        1_700_000_100,
    )


def test_new_struct_fields_evolve_the_struct_under_add_new_columns(tmp_path):
    nested_zone(tmp_path, "addNewColumns")
    result = ingest(tmp_path)
    assert sorted(result.batches[0].new_columns) == ["addr.geo.lat", "addr.zip"]
    rows = by_id(tmp_path)
    assert rows[2]["addr"] == {"city": "B", "geo": {"alt": 7, "lat": -23.5}, "zip": "01001-000"}
    assert rows[1]["addr"] == {"city": "A", "geo": {"alt": 5, "lat": None}, "zip": None}
    assert rows[2]["_rescued_data"] is None


@pytest.mark.parametrize("mode", ["rescue", "none"])
def test_new_struct_fields_are_rescued_with_their_path(tmp_path, mode):
    nested_zone(tmp_path, mode)
    ingest(tmp_path)
    row = by_id(tmp_path)[2]
    assert row["addr"] == {"city": "B", "geo": {"alt": 7}}
    assert rescued(row)["addr"] == {"zip": "01001-000", "geo": {"lat": -23.5}}


def test_new_struct_fields_stop_fail_on_new_columns(tmp_path):
    nested_zone(tmp_path, "failOnNewColumns")
    with pytest.raises(SchemaChangeError, match="addr.zip"):
        ingest(tmp_path)


# ---- 2.1: decimals are exact; rescued numbers are the producer's text --------------------------------


@pytest.mark.parametrize("lines_per_file", [1, 50], ids=["slow-path", "fast-path"])
def test_decimals_are_parsed_from_their_digits(tmp_path, lines_per_file):
    make_project(tmp_path, spec(schema_hints={"id": "bigint", "renda": "decimal(18,2)", "p": "decimal(38,20)"}))
    values = [
        ("1234567890123456.78", "0.12345678901234567890"),
        ("9999999999999999.99", "1e-20"),
        ("3567.74", "2.5"),
        ("1.005", "0"),  # rounds half up at the column's scale, as Spark does
    ]
    filler = [json.dumps({"id": 100 + i, "renda": 1.5, "p": 0.5}) for i in range(lines_per_file - 1)]
    lines = [f'{{"id":{i},"renda":{r},"p":{p}}}' for i, (r, p) in enumerate(values)]
    land(tmp_path, "a.json", [*filler, *lines, '{"id":9,"renda":99999999999999999.99,"p":1}', '{"id":1e2}'], 1.7e9)
    ingest(tmp_path)
    rows = by_id(tmp_path)
    assert rows[0]["renda"] == Decimal("1234567890123456.78") and rows[0]["p"] == Decimal("0.12345678901234567890")
    assert rows[1]["renda"] == Decimal("9999999999999999.99") and rows[1]["_rescued_data"] is None
    assert rows[1]["p"] == Decimal("1E-20")
    assert rows[2]["renda"] == Decimal("3567.74") and rows[3]["renda"] == Decimal("1.01")
    # too large for decimal(18,2): rescued, as written
    assert rows[9]["renda"] is None and '"renda":99999999999999999.99' in rows[9]["_rescued_data"]
    (cut,) = [r for r in rows.values() if r["id"] is None]
    assert '"id":1e2' in cut["_rescued_data"]  # not 100.0


def test_a_rescued_unknown_number_keeps_its_digits(tmp_path):
    make_project(tmp_path, spec("rescue"))
    land(tmp_path, "0.json", ['{"id":1}'], 1.7e9)
    ingest(tmp_path)
    land(tmp_path, "1.json", ['{"id":2,"valor":1.50,"big":123456789012345678901234567890,"e":-2.5E+3}'], 1.7e9 + 1)
    ingest(tmp_path)
    text = by_id(tmp_path)[2]["_rescued_data"]
    assert '"valor":1.50' in text and '"big":123456789012345678901234567890' in text and '"e":-2.5E+3' in text


# ---- 4.1: no hostile line stops a table -----------------------------------------------------------------

HOSTILE = {
    "empty_key.json": '{"id":2,"":1}',
    "line_key.json": '{"id":3,"_line":7}',
    "filepath_key.json": '{"id":4,"_file_path":"x","_corrupt_record":"y"}',
    "dup_unknown.json": '{"id":5,"extra":1,"extra":2}',
    "dup_known.json": '{"id":6,"id":60,"v":"a"}',
    "dup_nested.json": '{"id":12,"s":{"a":1,"a":2}}',
    "case_clash.json": '{"id":7,"V":"upper"}',
    "deep.json": '{"id":8,"n":' + '{"a":' * 100 + "1" + "}" * 100 + "}",
    "deep_known.json": '{"id":11,"s":' + '{"a":' * 70 + "1" + "}" * 70 + "}",
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["addNewColumns", "rescue", "failOnNewColumns", "first-batch"])
def test_hostile_lines_become_rows_and_the_good_file_lands(tmp_path, mode):
    make_project(tmp_path, spec("addNewColumns" if mode == "first-batch" else mode))
    if mode != "first-batch":
        land(tmp_path, "0.json", ['{"id":1,"v":"a","s":{"a":1}}'], 1.7e9)
        ingest(tmp_path)
    for i, (name, line) in enumerate(HOSTILE.items()):
        land(tmp_path, name, [line], 1.7e9 + 10 + i)
    land(tmp_path, "good.json", ['{"id":99,"v":"good"}'], 1.7e9 + 100)
    if mode == "failOnNewColumns":
        with pytest.raises(SchemaChangeError, match="new columns n"):  # a real new column still stops it
            ingest(tmp_path)
        (tmp_path / "landing" / "eventos" / "deep.json").unlink()
    result = ingest(tmp_path)
    assert result.quarantined == []
    rows = bronze_rows(tmp_path)
    assert len(rows) == len(HOSTILE) + 1 - (mode == "failOnNewColumns") + (mode != "first-batch")
    by_file = {r["_source_file"].rsplit("/", 1)[1]: r for r in rows}
    assert by_file["good.json"]["id"] == 99
    data = {name: rescued(r) for name, r in by_file.items()}
    assert data["empty_key.json"][""] == 1 and by_file["empty_key.json"]["id"] == 2
    assert data["line_key.json"]["_source_fields"] == {"_line": 7} and data["line_key.json"]["_line"] == 1
    assert data["filepath_key.json"]["_source_fields"] == {"_file_path": "x", "_corrupt_record": "y"}
    for name in ("dup_unknown.json", "dup_known.json", "dup_nested.json"):  # which value? kept verbatim
        assert data[name]["_corrupt_record"] == HOSTILE[name]
    columns = [c for c in rows[0] if not c.startswith("_")]
    if mode == "first-batch":  # the first spelling seen is the column, the other one is rescued
        assert columns.count("V") + columns.count("v") == 1 and by_file["case_clash.json"]["id"] == 7
        good, clash = by_file["good.json"], by_file["case_clash.json"]
        assert (good.get("v") or rescued(good)["v"]) == "good" and (clash.get("V") or rescued(clash)["V"]) == "upper"
    else:
        assert data["case_clash.json"]["V"] == "upper" and by_file["case_clash.json"]["id"] == 7
        assert "V" not in columns
    if mode != "failOnNewColumns":
        assert by_file["deep.json"]["id"] == 8
    assert by_file["deep_known.json"]["id"] == 11
    assert "" not in columns


def test_keys_differing_only_in_case_in_a_first_batch_keep_the_first_as_column(tmp_path):
    make_project(tmp_path, spec())
    land(tmp_path, "a.json", ['{"id":1,"v":"lower","s":{"x":1,"X":2}}', '{"id":2,"V":"upper"}'], 1.7e9)
    ingest(tmp_path)
    rows = by_id(tmp_path)
    assert (
        rows[1]["v"] == "lower"
        and rows[2]["v"] is None
        and rescued(rows[2])
        == {
            "V": "upper",
            "_file_path": rows[2]["_source_file"],
            "_line": 2,
        }
    )
    assert rows[1]["s"] == {"x": 1} and rescued(rows[1])["s"] == {"X": 2}
