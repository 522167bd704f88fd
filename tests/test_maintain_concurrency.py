"""Maintenance next to the pipeline: a `maintain` process running while other processes ingest and promote
loses nothing and breaks neither; `kill -9` during maintain leaves every table readable and correct."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, read_table
from tests.test_maintain_exactly_once import landed, spec

SHORT = ("--retain", "0", "--allow-short-retention", "--log-retain", "0")


def lh360(root, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LH360_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "lh360", *args],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finished(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def expected(n: int, bad: set[int]) -> dict:
    good = [i for i in range(n) if i not in bad]
    return {
        "bronze": list(range(n)),
        "silver": good,
        "quarantine": sorted(b for b in bad if b < n),
        "gold": [{"n": len(good)}],
    }


def actual(p) -> dict:
    return {
        "bronze": [r["id"] for r in read_table(p.root, "bronze.ev", order_by="id")],
        "silver": [r["id"] for r in read_table(p.root, "silver.ev", order_by="id")],
        "quarantine": [r["id"] for r in read_table(p.root, "quarantine.ev", order_by="id")],
        "gold": read_table(p.root, "gold.ev_count"),
    }


@pytest.mark.slow
def test_maintain_next_to_ingest_and_promote_loses_nothing_and_breaks_neither(project, run_cli):
    p = project(spec())
    bad = {3, 8}
    landed(p, 0, 2, bad=bad)
    assert run_cli("run", "ev", cwd=p.root)[0] == 0
    failures: list[str] = []

    def pipeline() -> None:
        for i in range(2, 12):
            landed(p, i, 1, bad=bad)
            for args in (("ingest", "ev"), ("promote", "ev", "--to", "gold")):
                code, err = finished(lh360(p.root, *args, "--wait-lock", "120"))
                if code:
                    failures.append(f"{args}: {code} {err}")

    def maintenance() -> None:
        for _ in range(6):
            code, err = finished(lh360(p.root, "maintain", *SHORT, "--wait-lock", "120"))
            if code:
                failures.append(f"maintain: {code} {err}")

    threads = [threading.Thread(target=pipeline), threading.Thread(target=maintenance)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert failures == []
    assert actual(p) == expected(12, bad)
    # the ledger kept every step: 10 ingests and 10 promotes (refine + aggregate) besides the first run
    code, out, err = run_cli("history", "ev", "-n", "500", "--json", cwd=p.root)
    import json

    steps = [r["step"] for r in json.loads(out)["runs"]]
    assert steps.count("ingest") == 11 and steps.count("refine") == 11 and steps.count("aggregate") == 11


@pytest.mark.slow
def test_kill_9_during_maintain_leaves_every_table_readable_and_correct(project, run_cli):
    """Maintenance killed at random instants: every table reads, with the same rows, after each kill; then
    the pipeline goes on exactly once."""
    p = project(spec())
    bad = {4, 11}
    rng = random.Random(13)
    n = 0
    for _ in range(5):
        for _ in range(3):  # small files to compact, replaced gold versions to vacuum, commits to clean
            landed(p, n, 1, bad=bad)
            n += 1
            assert run_cli("run", "ev", cwd=p.root)[0] == 0, n
        want = expected(n, bad)
        for _ in range(3):
            proc = lh360(p.root, "maintain", *SHORT)
            time.sleep(rng.uniform(0.8, 3.0))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            assert actual(p) == want
    assert run_cli("maintain", *SHORT, cwd=p.root)[0] == 0
    assert actual(p) == expected(n, bad)
    for i in range(n, n + 2):
        landed(p, i, 1, bad=bad)
        assert run_cli("run", "ev", cwd=p.root)[0] == 0
    assert actual(p) == expected(n + 2, bad)
