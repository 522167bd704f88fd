"""Signals always work and errors stay errors, at the one boundary (lh360.cli.run / main).

The fast tests run the CLI in a subprocess with the scripted fake engine (tests/fakes/engine.py), whose steps
sleep, swallow exceptions, or panic like a native library on cue. The slow test sends SIGTERM/SIGINT at
random moments of a real ingest → promote → validate and checks the exit codes and the tables.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "configs" / "tables").mkdir(parents=True)
    config = {"project": "t", "targets": {"t": {"engine": "fake", "landing": "../landing", "lake": "../lake"}}}
    (tmp_path / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = {
        "table": "a",
        "source": {"path": "a/"},
        "landing": {"min_files": 0},
        "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "cast(id as bigint)"}},
    }
    (tmp_path / "configs" / "tables" / "a.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def start(project: Path, script: dict[str, str], *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LH360_CONFIG": str(project / "configs" / "lh360.yaml"),
        "LH360_FAKE_SCRIPT": json.dumps(script),
        "LH360_FAKE_READY": str(project / "step-started"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.engine", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(proc: subprocess.Popen, project: Path, timeout: float = 60) -> None:
    """Until the scripted step has begun (the fake writes a file), so the signal lands inside it."""
    marker = project / "step-started"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the scripted step never started"
        time.sleep(0.05)
    time.sleep(0.2)


def signal_during(proc: subprocess.Popen, sig: int, project: Path) -> tuple[int, str, str, float]:
    wait_for_step(proc, project)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err, time.monotonic() - sent


@pytest.mark.slow
def test_sigint_under_json_prints_one_document_saying_so(project):
    rc, out, err, took = signal_during(
        start(project, {"refine:a": "sleep:30"}, "run", "--all", "--json"), signal.SIGINT, project
    )
    assert rc == 130 and took < 5
    doc = json.loads(out)  # exactly one document
    assert doc["ok"] is False and doc["exit_code"] == 130 and "SIGINT" in doc["error"]
    assert doc["failed_step"] == "promote" and [s["step"] for s in doc["steps"]][-1] == "refine"
    assert "interrupted by SIGINT" in err and "Traceback" not in err


@pytest.mark.slow
def test_sigterm_is_not_swallowed_by_code_that_catches_every_exception(project):
    """The Databricks SDK's config probe and lh360's own housekeeping catch `Exception`: SIGTERM gets through."""
    proc = start(project, {"ingest:a": "swallow-sleep:30"}, "ingest", "a", "--json")
    rc, out, _, took = signal_during(proc, signal.SIGTERM, project)
    assert rc == 143 and took < 5
    assert json.loads(out) == {"ok": False, "exit_code": 143, "error": "interrupted by SIGTERM", "kind": "interrupted"}


def test_a_signal_that_surfaces_as_another_error_still_exits_143_not_3(project):
    proc = start(project, {"refine:a": "interrupt-as-error:30"}, "promote", "--to", "silver")
    rc, _, err, _ = signal_during(proc, signal.SIGTERM, project)
    assert rc == 143 and "interrupted by SIGTERM" in err and "Query interrupted" not in err


@pytest.mark.slow
def test_a_second_signal_stops_at_once(project):
    """The first SIGTERM is handled gracefully; a second one while that runs ends the process."""
    proc = start(project, {"refine:a": "interrupt-as-error:30"}, "promote", "--to", "silver")
    wait_for_step(proc, project)
    os.kill(proc.pid, signal.SIGSTOP)  # both signals arrive while it is stopped: the second one finds the first
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    os.kill(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=30)
    assert proc.returncode in (143, 130)


def test_a_native_panic_is_one_line_and_exit_3(project):
    proc = start(project, {"ingest:a": "panic"}, "ingest", "a", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and doc["kind"] == "native panic" and "PanicException" in doc["error"]
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.strip()]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "default"])
def test_hundreds_of_native_panic_reports_do_not_reach_the_log(project, quiet):
    args = ["ingest", "a", *(["-q"] if quiet else [])]
    proc = start(project, {"ingest:a": "stderr-panics:300"}, *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    panics = [x for x in err.splitlines() if "panicked at" in x]
    assert len(panics) == (0 if quiet else 1), err[:2000]
    assert "RUST_BACKTRACE" not in err
    assert "PanicException" in err  # lh360's own one-line report


def test_data_that_ends_early_is_an_engine_error_not_an_interrupt(project):
    proc = start(project, {"ingest:a": "eof"}, "ingest", "a", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert "unexpected end of data" in json.loads(out)["error"]


# ---- the real engine, interrupted at random moments ------------------------------------------------


@pytest.mark.slow
def test_signals_at_random_moments_of_ingest_promote_and_validate(tmp_path):
    """30+ runs of ingest, promote and validate on the local engine, each sent SIGTERM or SIGINT at a random
    moment: the exit code is 130/143 (or 0 when it finished first, never 3), and a clean rerun then gives
    exactly the tables an uninterrupted run gives."""
    from tests.ingest_support import cli

    root = tmp_path / "p"
    assert subprocess.run([sys.executable, "-m", "lh360", "init", str(root)], capture_output=True).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "LH360_CONFIG": str(root / "configs" / "lh360.yaml")}
    demo = subprocess.run(
        [sys.executable, "-m", "lh360", "demo", "--rows", "60000", "--files", "12", "-q"], cwd=root, env=env
    )
    assert demo.returncode in (0, 1)
    lake = root / "lakehouse" / "lake"
    reference = _digests(lake)

    rng = random.Random(7)
    codes: dict[int, int] = {}
    commands = [["ingest", "--all"], ["promote", "--to", "gold"], ["validate"]]
    for i in range(33):
        command = commands[i % 3]
        if command[0] == "ingest":
            _reset(lake, keep_bronze=False)
        elif command[0] == "promote":
            _reset(lake, keep_bronze=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lh360", *command, "--json"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.3, 3.0))
        sig = rng.choice([signal.SIGTERM, signal.SIGINT])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        codes[proc.returncode] = codes.get(proc.returncode, 0) + 1
        assert proc.returncode in (0, 128 + sig), (command, proc.returncode, err[-500:])
        if proc.returncode:
            assert json.loads(out)["exit_code"] == 128 + sig
        # a clean rerun finishes the work exactly once
        for step in (["ingest", "--all"], ["promote", "--to", "gold"]):
            rerun = cli(root, *step, "-q")
            assert rerun.returncode == 0, rerun.stderr
        assert _digests(lake) == reference, (i, command)
    assert codes.get(130, 0) + codes.get(143, 0) >= 20, codes  # most signals landed mid-run


def _reset(lake: Path, *, keep_bronze: bool) -> None:
    import shutil

    for layer in ("silver", "gold", "quarantine") if keep_bronze else ("bronze", "silver", "gold", "quarantine"):
        shutil.rmtree(lake / layer, ignore_errors=True)
    if not keep_bronze:
        shutil.rmtree(lake / "_lh360" / "state", ignore_errors=True)


def _digests(lake: Path) -> dict[str, tuple]:
    """Each table's rows, order-free, without columns that record when or which run."""
    import duckdb
    from deltalake import DeltaTable

    out = {}
    volatile = {"_ingested_at", "_quarantined_at", "_batch_id", "_source_modified_at", "valid_from", "valid_to"}
    for layer in ("bronze", "silver", "gold", "quarantine"):
        for table in sorted((lake / layer).glob("*")) if (lake / layer).exists() else []:
            files = DeltaTable(str(table)).file_uris()
            if not files:
                out[f"{layer}.{table.name}"] = (0, None)
                continue
            con = duckdb.connect()
            cols = [
                c[0]
                for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet({files!r}, union_by_name=true)").fetchall()
            ]
            keep = ", ".join(f'"{c}"' for c in cols if c not in volatile)
            count, digest = con.execute(
                f"SELECT count(*), sum(hash(({keep}))) FROM read_parquet({files!r}, union_by_name=true)"
            ).fetchall()[0]
            out[f"{layer}.{table.name}"] = (count, digest)
            con.close()
    return out


def test_a_signal_during_a_native_import_waits_for_the_import_to_finish(tmp_path, monkeypatch):
    """An exception raised inside a native library's module initialisation leaves it half-built, and the
    next call into it aborts the process (seen as exit -6 with DuckDB): the signal waits for the import."""
    from lh360 import signals
    from lh360.errors import Interrupted

    (tmp_path / "lh360_native_probe.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.2)  # the handler runs here, in the middle of the import\n"
        "completed = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(signals, "NATIVE", signals.NATIVE | {"lh360_native_probe"})
    with pytest.raises(Interrupted) as exc, signals.handled():
        import lh360_native_probe  # noqa: F401
    assert exc.value.exit_code == 143
    assert sys.modules["lh360_native_probe"].completed is True
    sys.modules.pop("lh360_native_probe")


def test_the_entry_point_sets_its_signal_handlers_before_importing_the_cli():
    """`lh360` (and `python -m lh360`) install the early handlers first: the CLI's imports take hundreds of
    milliseconds, and a SIGTERM then must exit 143, not kill the process by the signal."""
    code = "import sys, lh360._entry; print(sorted(m for m in sys.modules if m.startswith('lh360.cli')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
