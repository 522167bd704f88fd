"""One run per table: a second ingest exits 75 at once, waits with --wait-lock, and a dead holder frees it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lh360.lock import lock_dir, table_lock
from tests.ingest_support import bronze_rows, cli, make_project, write_lines


def project(tmp_path):
    make_project(tmp_path)
    write_lines(tmp_path / "landing" / "eventos" / "a.json", [json.dumps({"id": 1})])
    return tmp_path


def test_second_run_exits_75_at_once(tmp_path):
    root = project(tmp_path)
    with table_lock(str(root / "lake"), "eventos"):
        started = time.monotonic()
        proc = cli(root, "ingest", "eventos")
        assert proc.returncode == 75, proc.stderr
        assert time.monotonic() - started < 10
        assert "holds the lock" in proc.stderr and "--wait-lock" in proc.stderr
        assert proc.stderr.count("\n") == 1  # one line, no traceback
    assert not (root / "lake" / "bronze" / "eventos").exists()  # the loser wrote nothing


@pytest.mark.slow
def test_wait_lock_waits_for_the_holder(tmp_path):
    root = project(tmp_path)
    held = threading.Event()

    def hold():
        with table_lock(str(root / "lake"), "eventos"):
            held.set()
            time.sleep(1.5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    proc = cli(root, "ingest", "eventos", "--wait-lock", "30")
    t.join()
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in bronze_rows(root)] == [1]


@pytest.mark.slow
def test_a_killed_holder_never_keeps_the_lock(tmp_path):
    root = project(tmp_path)
    code = (
        "import sys, time; from lh360.lock import table_lock\n"
        f"with table_lock({str(root / 'lake')!r}, 'eventos'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert cli(root, "ingest", "eventos").returncode == 75
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert cli(root, "ingest", "eventos").returncode == 0
    assert (lock_dir(str(root / "lake")) / "eventos.lock").exists()  # the file stays; the lock does not
