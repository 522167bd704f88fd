"""The CLI on a databricks target, in a subprocess as cron runs it, against the fake workspace: exit codes and
messages, --json, --detach, --timeout, SIGTERM/SIGINT cancelling the run, and `plan -t prod` offline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.databricks_support import cli, cli_env, deploy_to, load, make_project, passing_checks, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root


def names(body):
    """A run's name without its submitter id (`lh360 ingest clientes [<epoch>.<n>]`)."""
    return body["run_name"].rsplit(" [", 1)[0]


@pytest.fixture
def deployed(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return project_root


@pytest.mark.slow
def test_ingest_prints_the_run_and_its_counts(fake_ws, deployed):
    fake_ws.script_run("success", running_polls=2, logs=summary_line(rows_in=1500, rows_out=1500, files=4))
    proc = cli(deployed, "-t", "prod", "ingest", "clientes")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ingest clientes: run 1001 PENDING" in out and "RUNNING" in out and "TERMINATED/SUCCESS" in out
    assert "#job/" in out  # the run page
    assert "1,500" in out
    assert "\x1b[" not in out  # no colours when piped


@pytest.mark.slow
def test_ingest_json_is_one_document(fake_ws, deployed):
    fake_ws.script_run("success", logs=summary_line(rows_in=3, rows_out=3, files=1))
    proc = cli(deployed, "-t", "prod", "ingest", "clientes", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document on stdout
    (t,) = doc["tables"]
    assert t["engine"] == "databricks" and t["result_state"] == "SUCCESS" and t["rows"] == 3
    assert t["run_id"] == 1001 and t["idempotency_token"].startswith("lh360-")


@pytest.mark.slow
def test_a_failed_run_exits_3_with_the_error_and_trace(fake_ws, deployed):
    fake_ws.script_run(
        "failed",
        error="Py4JJavaError: An error occurred while calling o123.load",
        error_trace='Traceback (most recent call last):\n  File "/Workspace/Shared/lh360/lh360_job.py", line 1\nboom',
    )
    proc = cli(deployed, "-t", "prod", "ingest", "clientes")
    assert proc.returncode == 3
    assert "Databricks run 1001 FAILED: Py4JJavaError" in proc.stderr
    assert "lh360_job.py" in proc.stderr and "run page:" in proc.stderr


@pytest.mark.slow
def test_timeout_cancels_and_exits_4(fake_ws, deployed):
    fake_ws.script_run("never_ends")
    proc = cli(deployed, "-t", "prod", "ingest", "clientes", "--timeout", "1s", "--json")
    assert proc.returncode == 4, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 4 and "did not finish within 1s" in doc["error"]
    assert fake_ws.requests_to("/jobs/runs/cancel")
    assert fake_ws.submitted[0]["timeout_seconds"] == 61


@pytest.mark.slow
def test_detach_prints_the_run_id_and_returns(fake_ws, deployed):
    fake_ws.script_run("never_ends")
    proc = cli(deployed, "-t", "prod", "ingest", "clientes", "--detach", "--json")
    assert proc.returncode == 0, proc.stderr
    (t,) = json.loads(proc.stdout)["tables"]
    assert t["detached"] and t["run_id"] == 1001 and t["state"] == "PENDING"
    assert not fake_ws.requests_to("/jobs/runs/cancel")


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cancels_the_run_then_exits(fake_ws, deployed, signum, code):
    fake_ws.script_run("never_ends")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lh360", "-t", "prod", "ingest", "clientes"],
        cwd=deployed,
        env=cli_env(deployed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(r.gets >= 3 for r in fake_ws.runs.values()):  # it is waiting for the run
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run was never submitted"
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    (run,) = fake_ws.runs.values()
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]
    assert "cancelling run 1001" in out
    assert run.cancel_at is not None


@pytest.mark.slow
def test_promote_to_gold_runs_refine_then_each_gold_table(fake_ws, deployed):
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=10, kept=10, rows_out=10, inserted=10))
    fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=27))
    fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=12))
    proc = cli(deployed, "-t", "prod", "promote", "clientes", "--to", "gold", "--timeout", "30m", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["relation"] for r in doc["refine"]] == ["silver.clientes"]
    golds = [r["relation"] for r in doc["aggregate"]]
    assert sorted(golds) == ["gold.clientes_por_segmento", "gold.clientes_por_uf"]
    assert [names(b) for b in fake_ws.submitted] == ["lh360 refine clientes"] + [
        f"lh360 aggregate {g.split('.')[1]}" for g in golds
    ]
    assert {b["timeout_seconds"] for b in fake_ws.submitted} == {1800 + 60}


@pytest.mark.slow
def test_plan_shows_the_exact_payloads_without_touching_the_network(fake_ws, deployed):
    fake_ws.script_run("success")
    n = len(fake_ws.requests)
    proc = cli(deployed, "-t", "prod", "plan", "clientes", "--to", "gold", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(fake_ws.requests) == n  # offline
    steps = json.loads(proc.stdout)["steps"]
    kinds = [(s["kind"], s["relation"]) for s in steps]
    assert kinds[:2] == [("ingest", "bronze.clientes"), ("refine", "silver.clientes")]
    assert sorted(kinds[2:4]) == [("aggregate", "gold.clientes_por_segmento"), ("aggregate", "gold.clientes_por_uf")]
    ingest = steps[0]
    body = ingest["jobs_submit"]
    assert names(body) == "lh360 ingest clientes" and body["tasks"][0]["spark_python_task"]["parameters"][1] == "ingest"
    assert ingest["wire"] == "POST /api/2.2/jobs/runs/submit" and json.loads(ingest["wire_body"]) == body
    assert ingest["wire_bytes"] == len(ingest["wire_body"].encode())
    assert ingest["job"]["reader_options"]["cloudFiles.schemaEvolutionMode"] == "addNewColumns"
    assert "MERGE INTO `lakehouse360`.`silver`.`clientes`" in steps[1]["sql"]
    assert steps[2]["sql"].startswith(f"CREATE OR REPLACE TABLE `lakehouse360`.`gold`.`{steps[2]['relation'][5:]}`")
    assert any(s["kind"] == "validate" for s in steps)

    # after a real ingest, the plan's next token and body are exactly what the next submit sends
    from lh360.engines.databricks import DatabricksEngine
    from lh360.plan import build_plan

    project, target = load(deployed)
    DatabricksEngine(target, poll_interval=0.01).ingest(project.specs["clientes"])
    engine = DatabricksEngine(target, poll_interval=0.01)
    planned = build_plan(project, target, engine, ["clientes"], "bronze").steps[0].detail["jobs_submit"]
    detail = build_plan(project, target, engine, ["clientes"], "bronze").steps[0].detail
    DatabricksEngine(target, poll_interval=0.01).ingest(project.specs["clientes"])
    assert fake_ws.submitted[-1] == planned
    assert fake_ws.requests_to("/jobs/runs/submit")[-1].raw == detail["wire_body"].encode()  # byte for byte
    assert fake_ws.submitted[-1]["idempotency_token"] != fake_ws.submitted[-2]["idempotency_token"]


@pytest.mark.slow
def test_plan_text(fake_ws, deployed):
    proc = cli(deployed, "-t", "prod", "plan", "clientes", "--to", "silver")
    assert proc.returncode == 0, proc.stderr
    assert "jobs.submit  run_name 'lh360 ingest clientes [<new>]'" in proc.stdout
    assert "on the wire: POST /api/2.2/jobs/runs/submit, " in proc.stdout
    assert '"environment_version": "2"' in proc.stdout and "MERGE INTO" in proc.stdout


def test_plan_never_builds_a_client(monkeypatch, tmp_path):
    import lh360.engines.databricks.client as client_mod
    from lh360.plan import build_plan

    def refuse(*a, **k):
        raise AssertionError("plan must not build a workspace client")

    monkeypatch.setattr(client_mod, "workspace_client", refuse)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = tmp_path / "p"
    root.mkdir()
    make_project(root)
    project, target = load(root)
    from lh360.engines import engine_for

    plan = build_plan(project, target, engine_for(target), None, to="gold")
    assert plan.engine == "databricks" and plan.steps[0].detail["jobs_submit"]["idempotency_token"]


def test_databricks_options_on_a_local_target_are_a_usage_error(fake_ws, deployed):
    proc = cli(deployed, "ingest", "clientes", "--timeout", "1h")
    assert proc.returncode == 2 and "only for runs on a remote engine" in proc.stderr


@pytest.mark.slow
def test_run_all_runs_every_step_on_databricks_and_validates_on_the_warehouse(fake_ws, deployed):
    import os

    landing = deployed / "landing" / "clientes"
    landing.mkdir(parents=True)
    (landing / "part-0001.json").write_text('{"id": 1}\n')
    os.utime(landing / "part-0001.json")
    fake_ws.sql_handler = passing_checks
    proc = cli(deployed, "-t", "prod", "run", "--all", "--engine", "databricks-sql", "--run-id", "2025-06-01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [names(b) for b in fake_ws.submitted][:2] == ["lh360 ingest clientes", "lh360 refine clientes"]
    assert len(fake_ws.submitted) == 4  # ingest, refine, two gold tables
    assert all(json.loads(b["tasks"][0]["spark_python_task"]["parameters"][3])["run_id"] == "2025-06-01"
               for b in fake_ws.submitted)  # fmt: skip
    checks = [s for s in fake_ws.statements.values() if "`lakehouse360`.`silver`.`clientes`" in s.body["statement"]]
    assert checks and all(s.body["wait_timeout"] == "0s" for s in checks)
    assert "ok" in proc.stdout
