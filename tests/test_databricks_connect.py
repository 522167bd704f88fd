"""First contact with a workspace, as cron runs lh360 (a subprocess, no TTY): an unreachable or silent host is
exit 3 within 30 s on one line naming it; SIGTERM/SIGINT end lh360 within seconds whatever the SDK is doing
(resolving its config, sleeping between retries, failing to cancel); the SDK's own log lines go through
lh360's logging, so `--log-format json` stays JSON."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.databricks_support import cli, cli_env, deploy_to, load, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root


@pytest.fixture
def deployed(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return project_root


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(root, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lh360", *args],
        cwd=root,
        env=cli_env(root, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, proc, seconds=60.0, what="the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "clientes"),
        ("deploy", "--dry-run"),
        ("validate", "--engine", "databricks-sql"),
    ],
)
def test_an_unreachable_workspace_exits_3_within_30s_naming_the_host(project_root, fake_ws, args):
    host = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    proc = cli(project_root, "-t", "prod", *args, env={"DATABRICKS_HOST": host}, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert elapsed < 30, elapsed
    (line,) = error_lines(proc.stderr)
    assert host in line and "cannot reach the Databricks workspace" in line


@pytest.mark.slow
def test_a_host_that_never_answers_exits_3_within_30s(project_root, fake_ws):
    silent = socket.socket()  # accepts connections (the kernel does) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    host = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        started = time.monotonic()
        proc = cli(project_root, "-t", "prod", "ingest", "clientes", env={"DATABRICKS_HOST": host}, timeout=90)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert elapsed < 30, elapsed
    (line,) = error_lines(proc.stderr)
    assert host in line


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_sdk_resolves_its_config_ends_lh360_at_once(fake_ws, deployed, signum, code):
    fake_ws.well_known_delay = 60  # the host-metadata probe hangs
    before = fake_ws.well_known_arrivals
    proc = start(deployed, "-t", "prod", "ingest", "clientes")
    wait_for(lambda: fake_ws.well_known_arrivals > before, proc, what="the probe")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert time.monotonic() - sent < 5
    assert "Falling back" not in out + err  # the SDK did not swallow it and carry on
    assert not fake_ws.runs


@pytest.mark.slow
def test_sigterm_while_the_sdk_sleeps_between_retries_cancels_the_run(fake_ws, deployed):
    fake_ws.script_run("never_ends")
    proc = start(deployed, "-t", "prod", "ingest", "clientes")
    wait_for(lambda: any(r.gets >= 2 for r in fake_ws.runs.values()), proc, what="the run's polls")
    fake_ws.inject_http_errors("/api/2.2/jobs/runs/get", [503], method="GET", retry_after="30")
    wait_for(lambda: 503 in fake_ws.responses, proc, what="the throttled poll")
    time.sleep(0.3)  # the SDK now sleeps 30 s before its retry
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 10
    (run,) = fake_ws.runs.values()
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]


@pytest.mark.slow
def test_a_workspace_failing_while_lh360_cancels_does_not_hold_a_signal_for_minutes(fake_ws, deployed):
    """The cancel itself keeps failing (503 with Retry-After): lh360 stops trying after a few seconds, says
    so, and exits 143 (the run's own timeout_seconds still stops it on Databricks)."""
    fake_ws.script_run("never_ends")
    proc = start(deployed, "-t", "prod", "ingest", "clientes")
    wait_for(lambda: any(r.gets >= 2 for r in fake_ws.runs.values()), proc, what="the run's polls")
    fake_ws.inject_http_errors("/api/2.2/jobs/runs/cancel", [503] * 1000, retry_after="5")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("lh360 was still trying to cancel 40 s after SIGTERM")
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 25
    assert "could not cancel" in err


@pytest.mark.slow
def test_sdk_log_lines_stay_json_under_log_format_json(fake_ws, deployed):
    fake_ws.well_known = "404"  # the SDK warns that it could not resolve the host metadata
    fake_ws.script_run("success", logs=summary_line(rows_in=1, rows_out=1, files=1))
    proc = cli(deployed, "--log-format", "json", "-t", "prod", "ingest", "clientes")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]  # every line is JSON
    sdk = [d for d in docs if d["logger"].startswith("databricks.sdk")]
    assert sdk and "host metadata" in sdk[0]["msg"] and sdk[0]["level"] == "warning"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["drop", "404", "slow"])
def test_a_missing_or_slow_host_metadata_probe_does_not_stop_a_run(fake_ws, deployed, mode):
    from lh360.engines.databricks import DatabricksEngine

    if mode == "slow":
        fake_ws.well_known_delay = 2
    else:
        fake_ws.well_known = mode
    project, target = load(deployed)
    started = time.monotonic()
    result = DatabricksEngine(target, poll_interval=0.01).ingest(project.specs["clientes"])
    assert result.run.result_state == "SUCCESS"
    assert time.monotonic() - started < 25
