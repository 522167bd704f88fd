"""Two promotes of one table that race without a shared lock (two machines, a lock folder deleted) never
both commit: the loser exits 75 and nothing of its run is visible, in silver or in quarantine.

The in-process tests interleave deterministically: run B stops at a chosen point, run A runs whole, then B
goes on. The subprocess test is the review's case: the lock folder deleted under a running promote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from lh360.errors import LockBusy
from tests.conftest import REPO, read_table


def spec(scd: int = 1) -> dict:
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "silver": {
            "keys": ["id"],
            "sequence_by": "ts",
            "scd": scd,
            "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
            "expectations": [{"name": "not_bad", "rule": "v <> 'bad'", "action": "quarantine"}],
        },
    }


def rows(ids, v: str = "ok", day: int = 1) -> list[dict]:
    return [{"id": i, "v": "bad" if i % 10 == 0 else v, "ts": f"2025-01-{day:02d}T00:00:00Z"} for i in ids]


def ingest(p) -> None:
    from lh360.engines.local.ingest import ingest as run

    run(p.target(), p.load().specs["ev"])


def refine(p):
    from lh360.engines.local.refine import refine as run

    return run(p.target(), p.load().specs["ev"])


def before(monkeypatch, name: str, action, when=lambda *a, **k: True) -> None:
    """Run `action` once, just before the first call of refine's `name` for which `when` holds."""
    from lh360.engines.local import refine as mod

    real = getattr(mod, name)
    done = []

    def hooked(*args, **kwargs):
        if not done and when(*args, **kwargs):
            done.append(True)
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, name, hooked)


def snapshot(p) -> tuple[list, list]:
    silver = [(r["id"], r["v"]) for r in read_table(p.root, "silver.ev", order_by="id")]
    quarantine = sorted(r["id"] for r in read_table(p.root, "quarantine.ev"))
    return silver, quarantine


@pytest.mark.parametrize("scd", [1, 2])
def test_two_first_promotes_racing_one_exits_75(project, monkeypatch, scd):
    """Silver and quarantine do not exist yet: the review found every row twice (first writes were plain
    appends that delta-rs rebased onto the winner's commit)."""
    p = project(spec(scd))
    p.write_landing("ev", "a.json", rows(range(1, 41)))
    ingest(p)
    results = []
    before(monkeypatch, "_count", lambda: results.append(refine(p)))  # A runs whole while B has read
    with pytest.raises(LockBusy, match="nothing of this run is visible"):
        refine(p)
    assert results and results[0].inserted == 36
    silver, quarantine = snapshot(p)
    assert [i for i, _ in silver] == [i for i in range(1, 41) if i % 10] and quarantine == [10, 20, 30, 40]
    monkeypatch.undo()
    assert refine(p).noop  # the winner's watermark stands; nothing to redo


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_two_promotes_racing_on_existing_tables_one_exits_75(project, monkeypatch, scd):
    p = project(spec(scd))
    p.write_landing("ev", "a.json", rows(range(1, 21)))
    ingest(p)
    refine(p)
    p.write_landing("ev", "b.json", rows(range(15, 41), "new", 2))
    ingest(p)
    results = []
    before(monkeypatch, "_count", lambda: results.append(refine(p)))
    with pytest.raises(LockBusy):
        refine(p)
    silver, quarantine = snapshot(p)
    assert quarantine == [10, 20, 20, 30, 40]  # 20 came twice (once per batch); nothing of the loser
    current = dict(silver) if scd == 1 else {i: v for i, v in silver if v == "new" or i < 15}
    assert all(current[i] == "new" for i in range(15, 41) if i % 10)


@pytest.mark.slow
def test_a_loser_that_read_more_of_bronze_leaves_no_quarantine_rows(project, monkeypatch):
    """A's batch has nothing to quarantine, B read one more batch that has: B still loses at quarantine
    (A committed to it too), so its rows never show up there for the next run to quarantine again."""
    p = project(spec())
    p.write_landing("ev", "a.json", rows(range(1, 10)))
    ingest(p)
    refine(p)
    p.write_landing("ev", "b.json", rows(range(11, 20)))  # nothing to quarantine
    ingest(p)

    def a_then_a_new_batch():
        refine(p)  # A
        p.write_landing("ev", "c.json", rows(range(20, 31)))  # 20 and 30 will be quarantined
        ingest(p)

    bronze = str(p.lake / "bronze" / "ev")
    before(monkeypatch, "open_table", a_then_a_new_batch, when=lambda uri, *a, **k: str(uri) == bronze)
    with pytest.raises(LockBusy):
        refine(p)  # B: read silver before A committed, bronze after the new batch
    monkeypatch.undo()
    assert snapshot(p)[1] == []
    refine(p)  # the next run quarantines them, once
    silver, quarantine = snapshot(p)
    assert quarantine == [20, 30] and [i for i, _ in silver] == [i for i in range(1, 31) if i % 10]


RACER = """
import os, sys, time
from lh360.engines.local import refine as mod
real = mod._count
def gated(*args, **kwargs):
    # after reading bronze, before any write: tell the test, then wait until both racers are here
    open(os.path.join(os.environ["BARRIER"], str(os.getpid())), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(os.environ["BARRIER"])) < 2 and time.time() < deadline:
        time.sleep(0.02)
    return real(*args, **kwargs)
mod._count = gated
sys.argv = ["lh360", *sys.argv[1:]]
from lh360.cli import main
main()
"""


@pytest.mark.slow
def test_lock_folder_deleted_under_a_running_promote(project, tmp_path):
    """The review's local case: A holds the flock, its lock folder is deleted (a tmp cleaner), B takes a
    new lock. Both reach their writes together; one exits 75, silver and quarantine are exact."""
    p = project(spec())
    p.write_landing("ev", "a.json", rows(range(1, 2001)))
    ingest(p)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BARRIER": str(barrier)}

    def start():
        return subprocess.Popen(
            [sys.executable, "-c", RACER, "promote", "ev", "--to", "silver", "--json"],
            cwd=p.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    a = start()
    deadline = time.time() + 60
    while not os.listdir(barrier) and time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(barrier), a.communicate()
    shutil.rmtree(p.lake / "_lh360" / "locks")
    b = start()
    done = [(proc.wait(timeout=120), *proc.communicate()) for proc in (a, b)]
    assert sorted(code for code, _, _ in done) == [0, 75], done
    loser = next(err for code, _, err in done if code == 75)
    assert "nothing of this run is visible" in loser
    winner = json.loads(next(out for code, out, _ in done if code == 0))
    assert winner["refine"][0]["inserted"] == 1800
    silver, quarantine = snapshot(p)
    assert len(silver) == len({i for i, _ in silver}) == 1800 and len(quarantine) == 200


def _create_racer(path: str, barrier, results) -> None:
    import pyarrow as pa

    from lh360.engines.local.refine import _create

    barrier.wait()
    try:
        _create(path, None, pa.schema([("id", pa.int64())]), None, "silver")
        results.put("created")
    except LockBusy:
        results.put("busy")


@pytest.mark.slow
def test_two_creates_racing_for_version_0_one_is_refused(tmp_path):
    """delta-rs rebases a create that loses the race for version 0 onto the winner's (both calls return):
    the create's nonce must be in version 0, else the run is refused before it writes a row."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # not fork: delta-rs runs a thread pool
    outcomes = []
    for i in range(5):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        racers = [ctx.Process(target=_create_racer, args=(str(tmp_path / f"t{i}"), barrier, results)) for _ in "ab"]
        for r in racers:
            r.start()
        for r in racers:
            r.join(60)
        outcomes.append(sorted(results.get(timeout=10) for _ in racers))
    assert all(o == ["busy", "created"] for o in outcomes), outcomes
