"""The run ledger: one row per step with its outcome, concurrent appends from separate processes, reading."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lh360.errors import CheckFailed, LockBusy
from lh360.ledger import Ledger
from tests.conftest import REPO

WRITER = """
import sys
sys.path.insert(0, {repo!r})
from lh360.config import load_project
from lh360.ledger import Ledger
ledger = Ledger(load_project({config!r}).target())
for i in range(5):
    with ledger.step("t", "silver.t", "refine") as rec:
        rec.rows_in = i
"""


def test_steps_record_status_error_and_exit_code(project):
    p = project({"table": "t", "source": {"path": "t/"}})
    ledger = Ledger(p.target())
    with ledger.step("t", "silver.t", "refine") as rec:
        rec.rows_in, rec.rows_out, rec.version_after = 10, 8, 3
        rec.source_versions = {"bronze.t": 4}
    with pytest.raises(CheckFailed), ledger.step("t", "silver.t", "refine"):
        raise CheckFailed("expectation with action fail failed: x (1 row)")
    with pytest.raises(LockBusy), ledger.step("t", "bronze.t", "ingest"):
        raise LockBusy("t: another lh360 run holds the lock")
    rows = Ledger(p.target()).history("t")
    assert [(r["step"], r["status"], r["exit_code"]) for r in rows] == [
        ("ingest", "busy", 75),
        ("refine", "failed", 1),
        ("refine", "ok", 0),
    ]
    ok = rows[-1]
    assert (ok["rows_in"], ok["rows_out"], ok["version_after"], ok["source_versions"]) == (10, 8, 3, '{"bronze.t": 4}')
    assert ok["run_id"] == ledger.run_id and ok["ended_at"] >= ok["started_at"] and ok["host"] and ok["pid"]
    assert "fail failed" in rows[1]["error"]
    assert Ledger(p.target()).last_runs()["bronze.t"]["status"] == "busy"
    assert Ledger(p.target()).history("nothing") == []


@pytest.mark.slow
def test_concurrent_processes_append_without_losing_rows(project):
    p = project({"table": "t", "source": {"path": "t/"}})
    code = WRITER.format(repo=str(REPO), config=str(p.config))
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    rows = Ledger(p.target()).history(limit=100)
    assert len(rows) == 15 and len({r["run_id"] for r in rows}) == 3
