"""kill -9 at random instants while ingesting, new files arriving between runs; then a clean run.

Every source record must be in bronze exactly once. The same scenario with an ingest that forgets what it
ingested must break that invariant, which shows the check can fail.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.ingest_support import bronze_rows, make_project, write_lines

FORGETFUL = (
    "import lh360.engines.local.ingest_state as m\n"
    "real = m.read_ingest_state\n"
    "m.read_ingest_state = lambda target, spec, dt=None: m.IngestState(real(target, spec, dt).committed, set())\n"
    "from lh360.cli import main\n"
    "main()\n"
)


def _spawn(root, broken: bool) -> subprocess.Popen:
    env = {**os.environ, "LH360_CONFIG": str(root / "configs" / "lh360.yaml")}
    cmd = [sys.executable, "-c", FORGETFUL] if broken else [sys.executable, "-m", "lh360"]
    return subprocess.Popen(
        [*cmd, "ingest", "eventos"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def crash_scenario(root, *, kills: int, broken: bool, seed: int = 7) -> tuple[int, list[int]]:
    make_project(root, max_files_per_batch=1)
    land = root / "landing" / "eventos"
    rng = random.Random(seed)
    next_id, n_files, killed = 0, 0, 0
    # calibrate on a first landing: how long a run takes here, so kills land before, during and after commits
    for _ in range(4):
        rows = [json.dumps({"id": next_id + k}) for k in range(100)]
        write_lines(land / f"{n_files:05d}.json", rows)
        next_id, n_files = next_id + len(rows), n_files + 1
    started = time.monotonic()
    assert _spawn(root, broken).wait(timeout=120) == 0
    span = max(time.monotonic() - started, 0.3) * 1.5
    attempts = 0
    while killed < kills and attempts < kills * 4:
        attempts += 1
        for _ in range(rng.randint(2, 5)):  # new files land between runs
            rows = [json.dumps({"id": next_id + k, "v": "x" * rng.randint(1, 200)}) for k in range(rng.randint(1, 300))]
            write_lines(land / f"{n_files:05d}.json", rows)
            next_id += len(rows)
            n_files += 1
        proc = _spawn(root, broken)
        time.sleep(rng.uniform(0.0, span))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    clean = _spawn(root, broken)
    assert clean.wait(timeout=120) == 0
    ids = [r["id"] for r in bronze_rows(root, columns="id")]
    return next_id, ids


def exactly_once(expected: int, ids: list[int]) -> bool:
    return len(ids) == expected and sorted(ids) == list(range(expected))


@pytest.mark.slow
def test_kill_9_at_random_instants_then_clean_run_is_exactly_once(tmp_path):
    expected, ids = crash_scenario(tmp_path, kills=22, broken=False)
    assert expected > 0
    assert len(ids) == expected, f"{len(ids) - expected:+d} rows"
    assert len(set(ids)) == expected
    assert exactly_once(expected, ids)


@pytest.mark.slow
def test_a_forgetful_ingest_fails_the_same_check(tmp_path):
    expected, ids = crash_scenario(tmp_path, kills=4, broken=True)
    assert not exactly_once(expected, ids)  # duplicates: the crash test above would have caught this
