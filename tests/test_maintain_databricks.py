"""Maintenance on a `databricks` target: what bronze holds survives Databricks' own log cleanup, and
`maintain` runs OPTIMIZE / VACUUM as SQL statements on the warehouse."""

from __future__ import annotations

import glob
import os

from tests.test_maintain_exactly_once import squeeze


def commit_like_the_job(uri: str, batch_id: int, paths: list[str]) -> None:
    import pyarrow as pa
    from deltalake import CommitProperties, Transaction, write_deltalake

    from lh360.spark.job import bronze_commit_metadata

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
