"""Maintenance on a `databricks` target: what bronze holds survives Databricks' own log cleanup, and
`maintain` runs OPTIMIZE / VACUUM as SQL statements on the warehouse."""

from __future__ import annotations

import glob
import json
import os

from tests.fakes.databricks_workspace import SqlError
from tests.test_maintain_exactly_once import squeeze

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root


def commit_like_the_job(uri: str, batch_id: int, paths: list[str]) -> None:
    import pyarrow as pa
    from deltalake import CommitProperties, Transaction, write_deltalake

    from lh360.spark.contract import bronze_commit_metadata

    data = pa.table({"id": list(range(len(paths))), "_source_file": paths, "_batch_id": [batch_id] * len(paths)})
    write_deltalake(
        uri,
        data,
        mode="append",
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id="lh360-ingest-ev", version=batch_id)],
            custom_metadata={"userMetadata": bronze_commit_metadata(batch_id, paths)},
        ),
    )


def test_the_landing_state_survives_log_cleanup_the_cache_never_saw(project):
    """Databricks cleans a log by itself (delta.logRetentionDuration): commits the cache never read are
    gone, and their files are named by bronze's `_source_file` instead of showing as pending."""
    from lh360.engines.databricks.landing_state import CACHE_NAME, ingested

    p = project({"table": "ev", "source": {"path": "ev/"}})
    target, s = p.target(), p.load().specs["ev"]
    uri = str(p.lake / "bronze" / "ev")
    prefix = str(p.landing / "ev")
    for batch in range(4):
        commit_like_the_job(uri, batch, [f"{prefix}/{batch}-{i}.json" for i in range(2)])
    assert len(ingested(target, s).files) == 8  # the cache now holds them
    commit_like_the_job(uri, 4, [f"{prefix}/4-0.json"])
    squeeze(uri)  # compaction, checkpoint, every older log file deleted: commit 4 never read
    state = ingested(target, s)
    assert state.files == {f"{b}-{i}.json" for b in range(4) for i in range(2)} | {"4-0.json"}
    assert state.warnings == []
    # the cache lost as well
    for f in glob.glob(str(p.lake / "_lh360" / "state" / "ev" / CACHE_NAME)):
        os.remove(f)
    assert len(ingested(target, s).files) == 9


def test_maintain_runs_optimize_and_vacuum_on_the_warehouse_and_leaves_log_work_to_databricks(
    fake_ws, project_root, capsys
):
    from lh360.cli import run

    seen: list[str] = []

    def handler(statement: str, params):
        seen.append(statement)
        if statement.startswith("DESCRIBE DETAIL") and "gold" in statement:
            raise SqlError("[TABLE_OR_VIEW_NOT_FOUND] The table cannot be found.", "BAD_REQUEST")
        if statement.startswith("DESCRIBE DETAIL"):
            files = 40 if len([s for s in seen if s.startswith("DESCRIBE DETAIL")]) % 2 else 3
            return [("numFiles", "LONG"), ("sizeInBytes", "LONG")], [[files, 1000]]
        if statement.startswith("DESCRIBE HISTORY"):
            return [("version", "LONG")], [[12]]
        if statement.startswith("OPTIMIZE"):
            return [("path", "STRING"), ("metrics", "STRING")], [
                ["s3://x", '{"numFilesAdded": 1, "numFilesRemoved": 37}']
            ]
        if statement.startswith("VACUUM"):
            return [("path", "STRING")], [["s3://x/a.parquet"], ["s3://x/b.parquet"]]
        raise AssertionError(statement)

    fake_ws.sql_handler = handler
    code = run(
        ["--config", str(project_root / "configs" / "lh360.yaml"), "-t", "prod", "maintain", "clientes", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    results = {r["relation"]: r for r in json.loads(out)["maintenance"]}
    assert set(results) == {"bronze.clientes", "silver.clientes", "quarantine.clientes"}  # gold not built yet
    silver = results["silver.clientes"]
    assert silver["done"] == ["compact", "vacuum"] and silver["compacted_files"] == 37
    assert silver["files_before"] == 40 and silver["files_after"] == 3 and silver["vacuumed_files"] == 2
    assert set(silver["skipped"]) == {"checkpoint", "log_cleanup"} and silver["statements"]
    assert "OPTIMIZE `lakehouse360`.`silver`.`clientes`" in seen
    assert "VACUUM `lakehouse360`.`silver`.`clientes_quarantine` RETAIN 168 HOURS" in seen
    # the ledgers are lh360's own Delta tables on every target (none written yet here: nothing to do)
    assert not any("_lh360" in s for s in seen)


def test_maintain_on_databricks_needs_a_warehouse(fake_ws, tmp_path, capsys):
    from lh360.cli import run
    from tests.databricks_support import make_project

    root = tmp_path / "nowh"
    root.mkdir()
    make_project(root, databricks={"warehouse_id": None})
    code = run(["--config", str(root / "configs" / "lh360.yaml"), "-t", "prod", "maintain", "clientes"])
    assert code == 2 and "warehouse_id" in capsys.readouterr().err
