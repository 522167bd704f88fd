"""Landing → bronze on the local engine: Auto Loader's contract, checked on real DuckDB and delta-rs."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from deltalake import DeltaTable

from tests.ingest_support import bronze_rows, ingest, make_project, write_lines


def rec(i: int, **extra) -> str:
    return json.dumps({"id": i, "nome": f"cliente {i}", "renda": 1000.5 + i, "ativo": i % 2 == 0, **extra})


@pytest.fixture
def root(tmp_path):
    make_project(tmp_path)
    return tmp_path


def test_new_files_only_and_exactly_once(root):
    land = root / "landing" / "eventos"
    write_lines(land / "a.json", [rec(i) for i in range(3)], mtime=time.time() - 100)
    first = ingest(root)
    assert (first.files, first.rows) == (1, 3)
    assert ingest(root).files == 0  # a rerun costs nothing and adds nothing
    write_lines(land / "2025" / "b.json", [rec(i) for i in range(3, 5)])
    second = ingest(root)
    assert (second.files, second.rows) == (1, 2)
    rows = bronze_rows(root)
    assert sorted(r["id"] for r in rows) == [0, 1, 2, 3, 4]
    assert {r["_batch_id"] for r in rows} == {0, 1}
    assert {r["_source_file"] for r in rows} == {str(land / "a.json"), str(land / "2025" / "b.json")}
    assert all(r["_ingested_at"] is not None and r["_source_modified_at"] is not None for r in rows)
    assert all(r["_rescued_data"] is None for r in rows)


def test_one_commit_per_batch_honouring_max_files_per_batch(tmp_path):
    make_project(tmp_path, max_files_per_batch=2)
    land = tmp_path / "landing" / "eventos"
    for i in range(5):
        write_lines(land / f"f{i}.json", [rec(i)], mtime=1_700_000_000 + i)
    result = ingest(tmp_path)
    assert [b.files for b in result.batches] == [2, 2, 1]
    dt = DeltaTable(str(tmp_path / "lake" / "bronze" / "eventos"))
    assert dt.version() == 3  # the empty table at version 0, then one commit per batch: 1, 2, 3
    assert dt.transaction_version("lh360-ingest-eventos") == 2
    commits = [h for h in dt.history() if h.get("lh360.files")]
    assert sorted(f for h in commits for f in json.loads(h["lh360.files"])) == [f"f{i}.json" for i in range(5)]
    # oldest files first
    by_batch = {r["id"]: r["_batch_id"] for r in bronze_rows(tmp_path)}
    assert by_batch == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}


def test_gzip_and_json_array_files(root):
    land = root / "landing" / "eventos"
    land.mkdir(parents=True)
    (land / "a.json.gz").write_bytes(gzip.compress(("\n".join(rec(i) for i in range(3)) + "\n").encode()))
    (land / "b.json").write_text(json.dumps([json.loads(rec(10)), json.loads(rec(11))], indent=2))
    (land / "notes.txt").write_text("not a landing file")
    (land / ".uploading.json").write_text(rec(99))  # hidden: a writer's temp name
    (land / "_SUCCESS").write_text("")
    result = ingest(root)
    assert result.files == 2
    ids = sorted(r["id"] for r in bronze_rows(root))
    assert ids == [0, 1, 2, 10, 11]


def test_schema_inferred_then_hints_win(tmp_path):
    make_project(tmp_path, schema_hints={"renda": "decimal(18,2)", "id": "bigint"})
    write_lines(tmp_path / "landing" / "eventos" / "a.json", [rec(1), rec(2)])
    result = ingest(tmp_path)
    assert result.schema["renda"].startswith("DECIMAL(18")
    assert result.schema["id"] == "BIGINT"
    assert result.schema["ativo"] == "BOOLEAN"
    assert result.schema["nome"] == "VARCHAR"


def test_nested_objects_and_arrays_keep_their_shape(root):
    write_lines(
        root / "landing" / "eventos" / "a.json",
        [
            json.dumps(
                {
                    "id": 1,
                    "endereco": {"uf": "sp", "cidade": "São Paulo"},
                    "tags": ["pix", "app"],
                    "ts": "2025-11-24T08:15:02-03:00",
                }
            )
        ],
    )
    ingest(root)
    (row,) = bronze_rows(root)
    assert row["endereco"] == {"uf": "sp", "cidade": "São Paulo"}
    assert row["tags"] == ["pix", "app"]
    assert row["ts"] == "2025-11-24T08:15:02-03:00"  # timestamps stay text in bronze, as Auto Loader keeps them


def test_state_file_lost_is_rebuilt_from_the_delta_log(root):
    land = root / "landing" / "eventos"
    write_lines(land / "a.json", [rec(1)])
    ingest(root)
    for f in (root / "lake" / "_lh360" / "state").rglob("*.json.gz"):
        f.unlink()
    write_lines(land / "b.json", [rec(2)])
    result = ingest(root)
    assert result.files == 1
    assert sorted(r["id"] for r in bronze_rows(root)) == [1, 2]


def test_uncommitted_state_from_a_crash_is_ignored(root):
    """A state file for a batch that never committed must not hide its files."""
    import gzip as gz

    land = root / "landing" / "eventos"
    write_lines(land / "a.json", [rec(1)])
    ingest(root)
    write_lines(land / "b.json", [rec(2)])
    state = root / "lake" / "_lh360" / "state" / "eventos" / "ingest" / f"{1:012d}.json.gz"
    state.write_bytes(gz.compress(json.dumps({"batch_id": 1, "files": ["a.json", "b.json"]}).encode()))
    result = ingest(root)
    assert result.files == 1
    assert sorted(r["id"] for r in bronze_rows(root)) == [1, 2]


def test_state_file_overwritten_by_a_losing_racer_is_not_trusted(root):
    """Two machines race on batch 0: the loser wrote its state file after the winner's. Its file list must
    not hide a file the winning commit does not hold."""
    import gzip as gz

    land = root / "landing" / "eventos"
    write_lines(land / "a.json", [rec(1)])
    ingest(root)
    write_lines(land / "b.json", [rec(2)])
    state = root / "lake" / "_lh360" / "state" / "eventos" / "ingest" / f"{0:012d}.json.gz"
    state.write_bytes(
        gz.compress(json.dumps({"batch_id": 0, "nonce": "loser", "files": ["a.json", "b.json"]}).encode())
    )
    assert ingest(root).files == 1
    assert sorted(r["id"] for r in bronze_rows(root)) == [1, 2]
