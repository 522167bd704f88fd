"""The table lock of an S3 lake lives in the lake (an object created with a conditional put, with an owner
and a lease), so two machines, or cron and a login shell with different TMPDIR / XDG_RUNTIME_DIR, exclude
each other; a holder that died stops blocking once its lease ran out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from awstest import cli, eventos_spec, json_out, make_project, ndjson, put

from lh360.errors import LockBusy
from lh360.lock import table_lock

LAKE = "s3://lake/lh"
KEY = "lh/_lh360/locks/eventos.lock"


def lock_doc(s3) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket="lake", Key=KEY)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def machine(tmp_path, name: str) -> dict[str, str]:
    """The environment of another 'machine': its own TMPDIR and XDG_RUNTIME_DIR."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    return {"TMPDIR": str(home), "XDG_RUNTIME_DIR": str(home)}


def test_the_lock_is_an_object_in_the_lake_with_its_owner(s3, monkeypatch, tmp_path):
    with table_lock(LAKE, "eventos", run_id="run-1"):
        doc = lock_doc(s3)
        assert doc["owner"]["pid"] == os.getpid() and doc["owner"]["run_id"] == "run-1"
        assert doc["owner"]["host"] and doc["lease_seconds"] == 60 and doc["expires_at"]
        # a second holder, whatever its TMPDIR, is refused at once and told who holds it
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
        with pytest.raises(LockBusy, match=r"holds the lock \(host .*pid \d+, run run-1, lease until .*--wait-lock"):
            with table_lock(LAKE, "eventos"):
                pass
    assert lock_doc(s3) is None  # released
    with table_lock(LAKE, "eventos"):  # and free again
        pass


def test_a_run_on_another_machine_exits_75_and_writes_nothing(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    put(s3, "raw/eventos/a.json", ndjson({"id": 1}))
    with table_lock(LAKE, "eventos"):
        proc = cli(tmp_path, "ingest", "eventos", env=machine(tmp_path, "other"))
    assert proc.returncode == 75 and "holds the lock" in proc.stderr, proc.stderr
    assert not s3.list_objects_v2(Bucket="lake", Prefix="lh/bronze/").get("Contents")
    assert cli(tmp_path, "ingest", "eventos", env=machine(tmp_path, "other")).returncode == 0


def test_a_stale_lock_is_broken_a_live_one_never(s3, monkeypatch):
    monkeypatch.setenv("LH360_LOCK_LEASE", "2")
    dead = {"owner": {"host": "gone", "pid": 1, "run_id": "r0", "lock_id": "x"}, "lease_seconds": 2}
    s3.put_object(Bucket="lake", Key=KEY, Body=json.dumps(dead).encode())
    with pytest.raises(LockBusy, match="host gone"):  # its lease has not run out yet
        with table_lock(LAKE, "eventos"):
            pass
    time.sleep(4.2)  # lease + one second of timestamp granularity
    with table_lock(LAKE, "eventos", run_id="r1"):
        assert lock_doc(s3)["owner"]["run_id"] == "r1"
        # held and renewed by its heartbeat: never stale while its holder lives
        renewed = lock_doc(s3)["renewed_at"]
        for _ in range(3):
            time.sleep(2)
            with pytest.raises(LockBusy):
                with table_lock(LAKE, "eventos"):
                    pass
        assert lock_doc(s3)["renewed_at"] != renewed
    assert lock_doc(s3) is None


def test_wait_lock_waits_for_the_holder_on_another_machine(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    put(s3, "raw/eventos/a.json", ndjson({"id": 1}))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from lh360.lock import table_lock\n"
            f"with table_lock({LAKE!r}, 'eventos'):\n    print('held', flush=True); time.sleep(3)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **machine(tmp_path, "a")},
    )
    assert holder.stdout.readline().strip() == "held"
    proc = cli(tmp_path, "--json", "ingest", "eventos", "--wait-lock", "60", env=machine(tmp_path, "b"))
    holder.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json_out(proc)["tables"][0]["files"] == 1


# a promote that pauses after reading bronze (holding its lock), so that the second one surely meets it
SLOW = """
import sys, time
from lh360.engines.local import refine as mod
real = mod._count
def slow(*args, **kwargs):
    time.sleep(4)
    return real(*args, **kwargs)
mod._count = slow
sys.argv = ["lh360", *sys.argv[1:]]
from lh360.cli import main
main()
"""


def test_two_promotes_on_two_machines_the_second_exits_75_and_silver_is_exact(s3, tmp_path):
    """The review's case on S3: two promotes with different XDG_RUNTIME_DIRs both exited 0 with every row
    twice in silver. Now the second sees the first's lock in the lake."""
    spec = eventos_spec(
        silver={
            "keys": ["id"],
            "sequence_by": "id",
            "columns": {"id": "cast(id as bigint)", "v": "v"},
            "expectations": [{"name": "v_ok", "rule": "v <> 'bad'", "action": "quarantine"}],
        }
    )
    make_project(tmp_path, [spec])
    for f in range(4):
        rows = ({"id": i, "v": "bad" if i % 100 == 0 else "x" * 40} for i in range(f * 20_000, (f + 1) * 20_000))
        put(s3, f"raw/eventos/{f}.json", ndjson(*rows))
    assert cli(tmp_path, "ingest", "eventos").returncode == 0
    env = {**os.environ, "LH360_CONFIG": str(tmp_path / "configs" / "lh360.yaml")}

    def promote(name: str, code: str = "import sys; sys.argv[0] = 'lh360'; from lh360.cli import main; main()"):
        return subprocess.Popen(
            [sys.executable, "-c", code, "--json", "promote", "eventos", "--to", "silver"],
            cwd=tmp_path,
            env={**env, **machine(tmp_path, name)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = promote("a", SLOW)  # holds the lock a few seconds longer than its work takes
    deadline = time.time() + 60
    while lock_doc(s3) is None and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = promote("b")
    b_out, b_err = second.communicate(timeout=120)
    a_out, a_err = first.communicate(timeout=180)
    assert first.returncode == 0, a_err
    assert second.returncode == 75 and "holds the lock" in b_err, (second.returncode, b_err)
    assert json.loads(a_out)["refine"][0]["inserted"] == 79_200
    proc = cli(
        tmp_path,
        "--json",
        "sql",
        "--engine",
        "duckdb",
        "SELECT (SELECT count(*) FROM silver.eventos), (SELECT count(DISTINCT id) FROM silver.eventos), "
        "(SELECT count(*) FROM quarantine.eventos)",
    )
    assert json_out(proc)["rows"] == [[79_200, 79_200, 800]]
    assert lock_doc(s3) is None
