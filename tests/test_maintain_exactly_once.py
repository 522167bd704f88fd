"""Maintenance never costs exactly-once: after compaction, checkpoints and log cleanup with zero retention,
ingest takes nothing twice and misses nothing, and promote reads each bronze row once."""

from __future__ import annotations

import glob
import os

import pytest

from tests.conftest import read_table


def spec() -> dict:
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "bronze": {"max_files_per_batch": 2},
        "silver": {
            "keys": ["id"],
            "sequence_by": "ts",
            "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
            "expectations": [{"name": "not_bad", "rule": "v <> 'bad'", "action": "quarantine"}],
        },
        "gold": {"ev_count": {"sql": "SELECT count(*) AS n FROM silver.ev"}},
    }


def rec(i: int, v: str = "ok") -> dict:
    return {"id": i, "v": v, "ts": f"2025-01-01T00:00:{i % 60:02d}Z"}


def squeeze(uri: str) -> None:
    """What the harshest maintenance does to a table, with delta-rs alone: compact, checkpoint, and delete
    every log file before the checkpoint (log cleanup with zero retention)."""
    from deltalake import DeltaTable

    dt = DeltaTable(uri)
    dt.optimize.compact()
    dt = DeltaTable(uri)
    dt.create_checkpoint()
    for path in glob.glob(os.path.join(uri, "_delta_log", "*")):
        name = os.path.basename(path)
        if name[:20].isdigit() and int(name[:20]) < dt.version():
            os.remove(path)


def landed(p, n0: int, n: int, bad: set[int] = frozenset()) -> None:
    for i in range(n0, n0 + n):
        p.write_landing("ev", f"{i:04d}.json", [rec(i, "bad" if i in bad else "ok")])


@pytest.mark.slow
@pytest.mark.parametrize("layers", [("bronze",), ("bronze", "silver", "quarantine")])
def test_ingest_and_promote_after_compaction_checkpoint_and_log_cleanup_are_exactly_once(project, layers):
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.refine import refine

    p = project(spec())
    target = p.target()
    s = p.load().specs["ev"]
    landed(p, 0, 5, bad={3})
    assert ingest(target, s).files == 5  # three batches (two files each at most)
    refine(target, s)
    for layer in layers:
        squeeze(str(p.lake / layer / "ev"))
    # nothing new: nothing ingested, nothing promoted
    again = ingest(target, s)
    assert (again.files, again.rows) == (0, 0)
    assert refine(target, s).noop
    # new files: exactly those
    landed(p, 5, 3, bad={6})
    assert ingest(target, s).files == 3
    r = refine(target, s)
    assert (r.rows_in, r.quarantined) == (3, 1)
    ids = sorted(x["id"] for x in read_table(p.root, "bronze.ev"))
    assert ids == list(range(8))
    assert sorted(x["id"] for x in read_table(p.root, "silver.ev")) == [0, 1, 2, 4, 5, 7]
    assert sorted(x["id"] for x in read_table(p.root, "quarantine.ev")) == [3, 6]
    for layer in layers:
        squeeze(str(p.lake / layer / "ev"))
    assert ingest(target, s).files == 0 and refine(target, s).noop


def test_a_run_killed_between_its_quarantine_and_silver_commits_finishes_after_log_cleanup(project, monkeypatch):
    """The rerun reads bronze up to the version quarantine pinned, even once the commit that pinned it is
    gone: the pin is also in quarantine's app transactions, which the checkpoint keeps."""
    from lh360.engines.local import refine as refine_mod
    from lh360.engines.local.ingest import ingest

    p = project(spec())
    target = p.target()
    s = p.load().specs["ev"]
    landed(p, 0, 2, bad={1})
    ingest(target, s)
    refine_mod.refine(target, s)
    landed(p, 2, 2, bad={3})
    ingest(target, s)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(refine_mod, "_merge", killed)
        with pytest.raises(KeyboardInterrupt):
            refine_mod.refine(target, s)
    landed(p, 4, 1)  # more bronze after the pin: the rerun must not take it in the pinned run
    ingest(target, s)
    for _ in range(2):  # twice: the pinned commit itself is compacted away and its log file deleted
        squeeze(str(p.lake / "quarantine" / "ev"))
    r = refine_mod.refine(target, s)
    assert r.quarantine_replayed and r.rows_in == 2
    assert refine_mod.refine(target, s).rows_in == 1
    assert sorted(x["id"] for x in read_table(p.root, "silver.ev")) == [0, 2, 4]
    assert sorted(x["id"] for x in read_table(p.root, "quarantine.ev")) == [1, 3]


@pytest.mark.slow
def test_silver_whose_log_lost_every_record_of_its_watermark_is_refused_not_read_again(project):
    """Silver from before the watermark's app transactions, squeezed by another tool: refine cannot know
    which bronze rows it read, so it says to rebuild instead of reading bronze again."""
    from deltalake import DeltaTable

    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.refine import refine, watermark_app_id
    from lh360.errors import EngineError

    p = project(spec())
    target = p.target()
    s = p.load().specs["ev"]
    landed(p, 0, 3)
    ingest(target, s)
    refine(target, s)
    landed(p, 3, 2)
    ingest(target, s)
    refine(target, s)
    uri = str(p.lake / "silver" / "ev")
    # what an older lh360 left: no watermark transactions (drop them from the log files)
    for path in glob.glob(os.path.join(uri, "_delta_log", "*.json")):
        lines = open(path).read().splitlines()
        keep = [x for x in lines if watermark_app_id(s, "bronze") not in x]
        open(path, "w").write("\n".join(keep) + "\n")
    assert DeltaTable(uri).transaction_version(watermark_app_id(s, "bronze_version")) is None
    squeeze(uri)
    landed(p, 5, 1)
    ingest(target, s)
    with pytest.raises(EngineError, match="--full-refresh"):
        refine(target, s)
    assert refine(target, s, full_refresh=True).rows_in == 6


def test_a_lost_state_file_after_log_cleanup_is_rebuilt_from_bronze_rows(project):
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.ingest_state import read_ingest_state

    p = project(spec())
    target = p.target()
    s = p.load().specs["ev"]
    landed(p, 0, 5)
    p.write_landing("ev", "empty.json", [])
    ingest(target, s)
    squeeze(str(p.lake / "bronze" / "ev"))
    for f in (p.lake / "_lh360" / "state" / "ev" / "ingest").glob("*.json.gz"):
        f.unlink()
    state = read_ingest_state(target, s)
    assert {f"{i:04d}.json" for i in range(5)} <= state.files
    landed(p, 5, 1)
    r = ingest(target, s)
    assert r.rows == 1  # at most the empty file is read again, which adds nothing
    assert sorted(x["id"] for x in read_table(p.root, "bronze.ev")) == list(range(6))


def test_bronze_from_before_the_nonce_transaction_is_checked_against_its_batch_commit(project):
    """Older bronze carries the nonce only in its commit: it is found behind maintenance commits too."""
    from deltalake import DeltaTable

    from lh360.engines.local import ingest_state
    from lh360.engines.local.ingest import ingest

    p = project(spec())
    target = p.target()
    s = p.load().specs["ev"]
    landed(p, 0, 3)
    ingest(target, s)
    uri = str(p.lake / "bronze" / "ev")
    for path in glob.glob(os.path.join(uri, "_delta_log", "*.json")):
        lines = open(path).read().splitlines()
        open(path, "w").write("\n".join(x for x in lines if ingest_state.nonce_app_id(s) not in x) + "\n")
    DeltaTable(uri).optimize.compact()
    calls = []
    real = ingest_state._files_from_table
    ingest_state._files_from_table = lambda *a: calls.append(a) or real(*a)
    try:
        state = ingest_state.read_ingest_state(target, s)
    finally:
        ingest_state._files_from_table = real
    assert calls == [] and state.files == {f"{i:04d}.json" for i in range(3)}
