"""kill -9 at random instants of `lh360 promote --to gold` (silver merges, quarantine appends, gold
replacements), then a clean run: silver, gold and quarantine equal those of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, read_table

ROUNDS = 3
ROWS = 6000


def spec() -> dict:
    return {
        "table": "contas",
        "source": {"path": "contas/"},
        "bronze": {"schema_hints": {"id": "bigint", "saldo": "decimal(18,2)"}},
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "columns": {
                "id": "cast(id as bigint)",
                "grupo": "upper(grupo)",
                "saldo": "saldo",
                "updated_at": "to_timestamp(updated_at)",
            },
            "expectations": [{"name": "saldo_positivo", "rule": "saldo >= 0", "action": "quarantine"}],
            "partition_by": ["grupo"],
        },
        "gold": {
            "por_grupo": {
                "sql": "SELECT grupo, count(*) AS contas, sum(saldo) AS total FROM silver.contas GROUP BY grupo"
            },
            "resumo": {"sql": "SELECT count(*) AS grupos, sum(total) AS total FROM gold.por_grupo"},
        },
    }


def batch(rnd: int) -> list[dict]:
    rng = random.Random(rnd)
    out = []
    for i in range(ROWS):
        key = rng.randrange(ROWS * 2)
        # distinct (key, sequence) pairs: ties would make "all at once" and "incremental" legitimately differ
        ts = f"2025-01-{rnd + 1:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        out.append({"id": key, "grupo": f"g{key % 7}", "saldo": round(rng.uniform(-50, 1000), 2), "updated_at": ts})
    return out


def promote(root, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lh360", "promote", "--to", "gold"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def snapshot(root):
    q = read_table(root, "quarantine.contas", order_by="id, updated_at, _batch_id")
    return (
        read_table(root, "silver.contas", order_by="id"),
        read_table(root, "gold.por_grupo", order_by="grupo"),
        read_table(root, "gold.resumo"),
        # the two projects live in different folders: compare file names, not paths
        [
            {
                **{k: v for k, v in r.items() if k != "_quarantined_at"},
                "_source_file": os.path.basename(r["_source_file"]),
            }
            for r in q
        ],
    )


@pytest.mark.slow
def test_kill_9_during_promote_then_clean_run_equals_uninterrupted(project, run_cli):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LH360_CONFIG", None)
    ref = project(spec(), name="ref")
    crash = project(spec(), name="crash")
    rng = random.Random(2024)
    kills = 0
    for rnd in range(ROUNDS):
        for p in (ref, crash):
            p.write_landing("contas", f"b{rnd}.json", batch(rnd))
            code, _, err = run_cli("ingest", "contas", cwd=p.root)
            assert code == 0, err
        code, _, err = run_cli("promote", "--to", "gold", cwd=ref.root)
        assert code == 0, err
        for _ in range(5):  # a few deaths at random instants, each followed by another attempt
            proc = promote(crash.root, env)
            time.sleep(rng.uniform(0.2, 1.5))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        code, _, err = run_cli("promote", "--to", "gold", cwd=crash.root)
        assert code == 0, err
        assert snapshot(crash.root) == snapshot(ref.root), f"round {rnd}"
    assert kills >= ROUNDS  # the test killed runs mid-flight, not only finished ones
