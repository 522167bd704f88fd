"""The local engine with landing and lake on S3 (the moto server): the same results as on local folders,
exactly once under kill -9, and two writers on one table from two machines with the lake's table lock
bypassed (so only Delta's conditional-put commit decides): the loser exits 75 and nothing is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from awstest import cli, eventos_spec, json_out, make_project, ndjson, put, upload_tree


def _rows(root, sql: str, target: str) -> list[list]:
    proc = cli(root, "--json", "-t", target, "sql", "--engine", "duckdb", "-n", "0", sql)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json_out(proc)["rows"]


def test_pipeline_on_s3_gives_the_same_tables_as_on_local_folders(s3, tmp_path):
    from lh360.demo.generator import write_landing

    make_project(tmp_path, clientes=True)
    write_landing(
        tmp_path / "landing" / "clientes", rows=500, files=5, seed=3, start=datetime.now(UTC) - timedelta(hours=20)
    )
    upload_tree(s3, tmp_path / "landing" / "clientes", "landing", "raw/clientes")
    for target in ("local", "s3"):
        for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"]):
            proc = cli(tmp_path, "--json", "-t", target, *args)
            assert proc.returncode == 0, f"{target} {args}: {proc.stderr}"
    queries = [
        "SELECT count(*), count(_rescued_data), count(DISTINCT _source_file) FROM bronze.clientes",
        "SELECT id, cpf, nome, email, uf, renda_mensal, ativo, updated_at FROM silver.clientes ORDER BY id",
        "SELECT * FROM gold.clientes_por_uf ORDER BY uf",
        "SELECT * FROM gold.clientes_por_segmento ORDER BY segmento, canal_origem",
        "SELECT count(*) FROM quarantine.clientes",
    ]
    for q in queries:
        local, remote = _rows(tmp_path, q, "local"), _rows(tmp_path, q, "s3")
        assert local == remote and local, q
    # a second run on S3 finds nothing new and changes nothing
    proc = cli(tmp_path, "--json", "-t", "s3", "ingest", "clientes")
    assert json_out(proc)["tables"][0]["files"] == 0


def _spawn(root, extra_env: dict[str, str] | None = None, code: str | None = None, *args: str) -> subprocess.Popen:
    # a killed run holds the lake's table lock until its lease runs out: keep leases short here
    env = {**os.environ, "LH360_CONFIG": str(root / "configs" / "lh360.yaml"), "LH360_LOCK_LEASE": "2"}
    env.update(extra_env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "lh360"]
    return subprocess.Popen(
        [*cmd, "ingest", "eventos", *args], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _ids(root) -> list[int]:
    return [r[0] for r in _rows(root, "SELECT id FROM bronze.eventos", "s3")]


def test_kill_9_while_ingesting_from_s3_then_a_clean_run_is_exactly_once(s3, tmp_path):
    make_project(tmp_path, [eventos_spec(bronze={"max_files_per_batch": 1})])
    rng = random.Random(5)
    next_id = n_files = killed = 0

    def land(k: int) -> None:
        nonlocal next_id, n_files
        for _ in range(k):
            rows = [{"id": next_id + i, "v": "x" * rng.randint(1, 100)} for i in range(rng.randint(1, 200))]
            put(s3, f"raw/eventos/2025/06/{n_files // 50 + 1:02d}/{n_files:05d}.json", ndjson(*rows))
            next_id, n_files = next_id + len(rows), n_files + 1

    land(3)
    started = time.monotonic()
    first = _spawn(tmp_path)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    span = max(time.monotonic() - started, 0.5) * 1.5
    attempts = 0
    while killed < 6 and attempts < 24:
        attempts += 1
        land(rng.randint(2, 4))
        proc = _spawn(tmp_path)
        time.sleep(rng.uniform(0.3, span))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate()
    assert killed >= 3
    clean = _spawn(tmp_path, None, None, "--wait-lock", "30")  # the last killed run's lease runs out first
    assert clean.wait(timeout=120) == 0, clean.stderr.read()
    ids = _ids(tmp_path)
    assert sorted(ids) == list(range(next_id)), f"{len(ids) - next_id:+d} rows"


# Both writers pass a barrier just before their commit, so they race for the same Delta version. The lake's
# table lock is bypassed (as if each machine had its own): only the commit protocol decides.
RACER = """
import contextlib, os, sys, time
import lh360.context
lh360.context.table_lock = lambda *args, **kwargs: contextlib.nullcontext()
import deltalake
real = deltalake.write_deltalake
def gated(*args, **kwargs):
    barrier = os.environ["BARRIER"]
    open(os.path.join(barrier, str(os.getpid())), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(barrier)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return real(*args, **kwargs)
deltalake.write_deltalake = gated
sys.argv = ["lh360", *sys.argv[1:]]
from lh360.cli import main
main()
"""


def _race(tmp_path) -> list[tuple[int, str, str]]:
    barrier = tmp_path / "barrier"
    barrier.mkdir(exist_ok=True)
    for f in barrier.iterdir():
        f.unlink()
    racers = []
    for i in range(2):
        machine = tmp_path / f"machine{i}"  # each "machine" has its own lock folder: no shared flock
        machine.mkdir(exist_ok=True)
        racers.append(_spawn(tmp_path, {"BARRIER": str(barrier), "XDG_RUNTIME_DIR": str(machine)}, RACER))
    return [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in racers]


def _land(s3, day: int, first_id: int, files: int = 3, rows: int = 50) -> int:
    for f in range(files):
        ids = range(first_id + f * rows, first_id + (f + 1) * rows)
        put(s3, f"raw/eventos/2025/06/{day:02d}/{f:03d}.json", ndjson(*({"id": i} for i in ids)))
    return first_id + files * rows


def test_two_writers_on_one_table_the_loser_exits_75_and_nothing_is_lost(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    expected = _land(s3, 1, 0)
    assert cli(tmp_path, "ingest", "eventos").returncode == 0
    expected = _land(s3, 2, expected)
    results = _race(tmp_path)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 75], results
    loser = next(err for code, _, err in results if code == 75)
    assert "another writer committed to bronze first" in loser and "Concurrent transaction" in loser
    assert sorted(_ids(tmp_path)) == list(range(expected))  # the winner's batch, once
    # the loser left nothing half-written: a rerun finds nothing to do, and new files still flow
    rerun = json_out(cli(tmp_path, "--json", "ingest", "eventos"))
    assert rerun.get("tables", [{}])[0].get("files") == 0, rerun
    put(s3, "raw/eventos/2025/06/03/new.json", ndjson({"id": expected}))
    again = cli(tmp_path, "--json", "ingest", "eventos")
    assert again.returncode == 0 and json_out(again)["tables"][0]["files"] == 1
    assert sorted(_ids(tmp_path)) == list(range(expected + 1))


def test_two_writers_racing_to_create_bronze(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    expected = _land(s3, 1, 0)
    results = _race(tmp_path)
    assert sorted(code for code, _, _ in results) == [0, 75], results
    assert sorted(_ids(tmp_path)) == list(range(expected))


def test_a_new_column_on_s3_lands_with_its_batch_in_one_commit(s3, tmp_path):
    """Files DuckDB wrote are uploaded and committed; a batch that adds a column is appended by delta-rs with
    a schema merge instead, still one commit; an irregular batch is read by the lenient query."""
    make_project(tmp_path, [eventos_spec(bronze={"schema_evolution": "addNewColumns"})])
    put(s3, "raw/eventos/a.json", ndjson(*({"id": i, "nome": f"n{i}"} for i in range(50))))
    first = json_out(cli(tmp_path, "--json", "ingest", "eventos"))["tables"][0]
    assert first["bronze_version"] == 1 and first["batches"][0]["fast_path"]
    put(s3, "raw/eventos/b.json", ndjson({"id": 100, "nome": "x", "canal": "app"}, {"id": 101}))
    second = json_out(cli(tmp_path, "--json", "ingest", "eventos"))["tables"][0]
    assert second["bronze_version"] == 2 and second["new_columns"] == ["canal"]
    assert not second["batches"][0]["fast_path"]  # `id 101` lacks fields: the lenient query read it
    rows = _rows(tmp_path, "SELECT id, nome, canal FROM bronze.eventos WHERE id >= 100 ORDER BY id", "s3")
    assert rows == [[100, "x", "app"], [101, None, None]]
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT id) FROM bronze.eventos", "s3") == [[52, 52]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="lh/bronze/eventos/")["Contents"]]
    assert not [k for k in keys if "_lh360_tmp" in k]  # staging stays on the machine for an S3 lake
