"""The Parquet files of an ingest batch: DuckDB writes them, delta-rs commits them with their counts."""

from __future__ import annotations

import json
import os
import time

from tests.ingest_support import bronze_rows, ingest, make_project, write_lines


def _add_actions(root):
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(str(root / "lake" / "bronze" / "eventos"))
    return dt, pa.table(dt.get_add_actions(flatten=True)).to_pylist()


def test_files_carry_row_counts_null_counts_and_integer_bounds(tmp_path):
    make_project(tmp_path)
    land = tmp_path / "landing" / "eventos"
    write_lines(land / "a.json", [json.dumps({"id": i, "nome": None if i % 3 else f"n{i}"}) for i in range(1, 31)])
    write_lines(land / "b.json", ['{"id": 100, "nome": "x"}', "not json"])
    ingest(tmp_path)
    _, actions = _add_actions(tmp_path)
    assert sum(a["num_records"] for a in actions) == 32 == len(bronze_rows(tmp_path))
    log = tmp_path / "lake" / "bronze" / "eventos" / "_delta_log" / f"{1:020d}.json"  # v0: the empty table
    adds = [json.loads(line)["add"] for line in log.read_text().splitlines() if '"add"' in line]
    stats = json.loads(adds[0]["stats"])
    assert stats["numRecords"] == 32
    assert stats["nullCount"]["nome"] == 21  # 20 nulls in a.json + the corrupt line
    assert stats["nullCount"]["_rescued_data"] == 31
    assert stats["minValues"]["id"] == 1 and stats["maxValues"]["id"] == 100
    assert stats["minValues"]["_batch_id"] == stats["maxValues"]["_batch_id"] == 0
    assert "nome" not in stats["minValues"]  # no string bounds: a wrong one would hide rows
    # the files sit at the table root, under names no other writer uses
    assert all("/" not in a["path"] and a["path"].startswith("part-") for a in adds)


def test_inventory_counts_rows_from_the_add_actions(tmp_path):
    from lh360.inventory import table_stats

    make_project(tmp_path)
    write_lines(tmp_path / "landing" / "eventos" / "a.json", [json.dumps({"id": i}) for i in range(7)])
    ingest(tmp_path)
    assert table_stats(str(tmp_path / "lake" / "bronze" / "eventos"), None)["rows"] == 7


def test_staging_leftovers_of_a_killed_run_are_swept_and_never_read(tmp_path):
    make_project(tmp_path)
    land = tmp_path / "landing" / "eventos"
    write_lines(land / "a.json", ['{"id": 1}'])
    ingest(tmp_path)
    table = tmp_path / "lake" / "bronze" / "eventos"
    assert not (table / "_lh360_tmp").exists()  # a clean run leaves nothing staged
    # a run killed while DuckDB wrote: a staging folder with a Parquet file in it
    stale = table / "_lh360_tmp" / "killed"
    stale.mkdir(parents=True)
    (stale / "part-x.parquet").write_bytes(b"PAR1 not really")
    recent = table / "_lh360_tmp" / "running"
    recent.mkdir()
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    write_lines(land / "b.json", ['{"id": 2}'])
    ingest(tmp_path)
    assert not stale.exists() and recent.exists()  # only what is old enough to be dead is swept
    assert sorted(r["id"] for r in bronze_rows(tmp_path)) == [1, 2]


def test_an_empty_batch_still_commits_its_files(tmp_path):
    make_project(tmp_path)
    land = tmp_path / "landing" / "eventos"
    write_lines(land / "a.json", ['{"id": 1}'])
    ingest(tmp_path)
    write_lines(land / "empty.json", [])
    result = ingest(tmp_path)
    assert result.files == 1 and result.rows == 0
    assert ingest(tmp_path).files == 0  # remembered as ingested
    _, actions = _add_actions(tmp_path)
    assert len(actions) == 1  # no zero-row file was added


def test_hostile_field_names_are_columns_with_stats(tmp_path):
    make_project(tmp_path)
    names = ["select", "a b", "já", 'quo"te', "it's", "x.y"]
    land = tmp_path / "landing" / "eventos"
    write_lines(land / "a.json", [json.dumps({**{n: i for n in names}, "id": i}) for i in range(5)])
    ingest(tmp_path)  # the first batch types every column BIGINT
    write_lines(land / "b.json", [json.dumps({**{n: "text" for n in names}, "id": 9})])  # wrong kind for all
    ingest(tmp_path)
    rows = sorted(bronze_rows(tmp_path), key=lambda r: r["id"])
    assert [r["select"] for r in rows] == [0, 1, 2, 3, 4, None]
    assert [r['quo"te'] for r in rows[:5]] == [0, 1, 2, 3, 4]
    assert json.loads(rows[5]["_rescued_data"])["it's"] == "text"
    logs = tmp_path / "lake" / "bronze" / "eventos" / "_delta_log"

    def stats(version: int) -> dict:
        text = (logs / f"{version:020d}.json").read_text()
        (add,) = [json.loads(line)["add"] for line in text.splitlines() if '"add"' in line]
        return json.loads(add["stats"])

    assert stats(1)["maxValues"]['quo"te'] == 4 and stats(1)["nullCount"]["x.y"] == 0
    assert stats(2)["nullCount"]["x.y"] == 1 and stats(2)["nullCount"]["it's"] == 1
