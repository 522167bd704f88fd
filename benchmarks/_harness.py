"""Shared benchmark plumbing: run a command in a fresh process, measure wall time and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"

_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode; dt = time.perf_counter() - t\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'{rc} {dt} {peak}', file=sys.stderr)\n"
)


def measure(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, quiet: bool = True
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `cmd` run alone in a fresh child process."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE,
        text=True,
    )
    rc, seconds, peak_kib = proc.stderr.strip().splitlines()[-1].split()
    if int(rc) != 0:
        raise SystemExit(f"benchmark command failed ({rc}): {' '.join(cmd)}\n{proc.stderr}")
    return float(seconds), int(peak_kib) / 1024


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def report(name: str, figures: dict) -> None:
    print(json.dumps({"benchmark": name, **figures}, indent=2))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
