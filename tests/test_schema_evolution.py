"""The four schema_evolution modes on a landing zone where a column appears mid-way.

Auto Loader's outcomes (Databricks docs, "schema evolution modes"):
- addNewColumns: the stream fails once with the new column, and on restart it is added. The local engine
  adds it and carries on in the same run (no failed run to restart): same table, one step fewer.
- rescue: the schema never changes; new columns go to _rescued_data; the stream never fails.
- failOnNewColumns: the stream fails and does not restart until the schema is updated (here: the column
  is added to schema_hints) or the file is removed.
- none: the schema does not evolve and the stream does not fail; new columns are ignored, and kept in the
  rescued column when one is set. lh360 always sets `_rescued_data`, so they are kept there, as in rescue.
"""

from __future__ import annotations

import json

import pytest
import yaml

from lh360.errors import SchemaChangeError
from tests.ingest_support import bronze_rows, cli, ingest, make_project, rescued, write_lines


def zone(tmp_path, mode: str):
    make_project(tmp_path, schema_evolution=mode, max_files_per_batch=1)
    land = tmp_path / "landing" / "eventos"
    write_lines(land / "a.json", [json.dumps({"id": 1, "nome": "a"})], mtime=1_700_000_000)
    write_lines(land / "b.json", [json.dumps({"id": 2, "nome": "b", "email": "b@x.com"})], mtime=1_700_000_100)
    write_lines(land / "c.json", [json.dumps({"id": 3, "nome": "c", "email": "c@x.com"})], mtime=1_700_000_200)


def columns(tmp_path):
    return [k for k in bronze_rows(tmp_path)[0] if not k.startswith("_")]


def test_add_new_columns_evolves_and_continues(tmp_path):
    zone(tmp_path, "addNewColumns")
    result = ingest(tmp_path)
    assert [b.files for b in result.batches] == [1, 1, 1]
    assert result.batches[1].new_columns == ["email"]
    rows = {r["id"]: r for r in bronze_rows(tmp_path)}
    assert columns(tmp_path) == ["id", "nome", "email"]
    assert rows[1]["email"] is None and rows[2]["email"] == "b@x.com" and rows[3]["email"] == "c@x.com"
    assert all(r["_rescued_data"] is None for r in rows.values())


@pytest.mark.parametrize("mode", ["rescue", "none"])
def test_rescue_and_none_keep_the_schema_and_rescue_the_column(tmp_path, mode):
    zone(tmp_path, mode)
    result = ingest(tmp_path)
    assert result.files == 3
    assert columns(tmp_path) == ["id", "nome"]
    rows = {r["id"]: r for r in bronze_rows(tmp_path)}
    assert rescued(rows[2])["email"] == "b@x.com" and rescued(rows[3])["email"] == "c@x.com"
    assert rows[1]["_rescued_data"] is None


@pytest.mark.slow
def test_fail_on_new_columns_stops_until_the_schema_is_updated(tmp_path):
    zone(tmp_path, "failOnNewColumns")
    with pytest.raises(SchemaChangeError, match="new columns email"):
        ingest(tmp_path)
    assert [r["id"] for r in bronze_rows(tmp_path)] == [1]  # batch 0 committed, b.json not
    # the CLI says so with exit 3 and one line, and keeps failing on rerun
    proc = cli(tmp_path, "ingest", "eventos")
    assert proc.returncode == 3, proc.stderr
    assert "new columns email" in proc.stderr and "Traceback" not in proc.stderr
    # update the schema (schema_hints) → the next run takes the column and goes on
    spec_path = tmp_path / "configs" / "tables" / "eventos.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["bronze"]["schema_hints"] = {"email": "string"}
    spec_path.write_text(yaml.safe_dump(spec))
    result = ingest(tmp_path)
    assert result.files == 2
    rows = {r["id"]: r for r in bronze_rows(tmp_path)}
    assert rows[2]["email"] == "b@x.com" and rows[3]["email"] == "c@x.com"


def test_new_column_beyond_the_inference_sample_is_not_lost(tmp_path):
    """Inference reads a sample; a column first seen later in the same batch still lands (addNewColumns)."""
    make_project(tmp_path)
    lines = [json.dumps({"id": i}) for i in range(25_000)] + [json.dumps({"id": 25_000, "raro": True})]
    write_lines(tmp_path / "landing" / "eventos" / "a.json", lines)
    ingest(tmp_path)
    rows = bronze_rows(tmp_path, where="raro IS NOT NULL")
    assert [(r["id"], r["raro"]) for r in rows] == [(25_000, True)]


@pytest.mark.slow
def test_new_column_found_after_the_table_was_created_in_the_first_batch(tmp_path):
    """The new field sits far past the first Arrow batch, so the first batch's attempt has already created
    the empty bronze table when it stops; the restart must append to that table, not fail on it."""
    make_project(tmp_path)
    lines = [json.dumps({"id": i}) for i in range(300_000)] + [json.dumps({"id": 300_000, "raro": "x"})]
    write_lines(tmp_path / "landing" / "eventos" / "a.json", lines)
    result = ingest(tmp_path)
    assert result.rows == 300_001
    assert [(r["id"], r["raro"]) for r in bronze_rows(tmp_path, where="raro IS NOT NULL")] == [(300_000, "x")]
