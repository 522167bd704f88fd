"""Contract tests of the Databricks engine against a fake workspace on loopback, driven by the real SDK.

Each scripted outcome (success, FAILED with a trace, TIMEDOUT, INTERNAL_ERROR, CANCELED elsewhere, a run that
never ends, 429/503 answers, a lost submit response) maps to its exit code and message; a resubmission
after a crash reuses the idempotency token; SIGINT/SIGTERM cancel the run lh360 started.
"""

from __future__ import annotations

import json

import pytest

from lh360.durations import parse_timeout
from lh360.engines.base import EngineOptions
from lh360.engines.databricks import DatabricksEngine
from lh360.engines.databricks.code import code_bundle
from lh360.engines.databricks.journal import Journal, idempotency_token
from lh360.engines.databricks.requests import gold_sql_databricks, payload_file, submit_body, wire
from lh360.errors import CheckFailed, ConfigError, EngineError, Interrupted, RunTimeout, UsageError
from tests.databricks_support import CATALOG, deploy_to, load, make_project, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

SUBMIT = "/api/2.2/jobs/runs/submit"
NEW_CLUSTER = {"spark_version": "15.4.x-scala2.12", "num_workers": 2, "node_type_id": "m5.large"}


@pytest.fixture
def prod(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    project, target = load(project_root)
    return project, target


def engine(target, timeout=None, detach=False, run_id=None, **kw):
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("cancel_wait", 2)
    options = EngineOptions(timeout=parse_timeout(timeout), detach=detach, run_id=run_id)
    return DatabricksEngine(target, options, **kw)


def ok(result):
    """A step that ran remotely and succeeded (or was detached)."""
    return result.run.detached or result.run.result_state == "SUCCESS"


def params_of(body):
    return body["tasks"][0]["spark_python_task"]["parameters"]


def test_ingest_success_sends_the_exact_payload_and_reads_the_task_output(fake_ws, prod):
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("success", running_polls=3, logs=summary_line("ingest", rows_in=120, rows_out=120, files=3))
    result = engine(target).ingest(spec)

    assert ok(result) and result.run.result_state == "SUCCESS" and result.run.state == "TERMINATED"
    assert result.as_dict()["rows"] == 120 and result.as_dict()["files"] == 3
    assert len(fake_ws.submitted) == 1
    body = fake_ws.submitted[0]
    # exactly the body `lh360 plan` builds for this logical run
    entry = Journal(target).load("ingest", "clientes")
    assert entry.status == "finished" and entry.run_id == result.run.run_id
    assert body == submit_body(target, spec, "ingest", entry, timeout=6 * 3600)
    # the bytes on the wire are exactly the plan's (lh360 posts them itself: no SDK round trip)
    (post,) = fake_ws.requests_to(SUBMIT)
    assert post.raw == wire(body)
    assert body["run_name"] == f"lh360 ingest clientes [{entry.submitter}]"
    assert body["idempotency_token"] == entry.token and len(entry.token) <= 64
    assert body["timeout_seconds"] == 6 * 3600 + 60  # the documented default of databricks.timeout
    task = body["tasks"][0]
    assert task["spark_python_task"]["python_file"] == "/Workspace/Shared/lh360/lh360_job.py"
    assert task["environment_key"] == "lh360"
    assert body["environments"] == [{"environment_key": "lh360", "spec": {"environment_version": "2"}}]
    params = params_of(body)
    assert params[:3] == ["--step", "ingest", "--payload"]
    payload = json.loads(params[3])
    assert payload["step"] == "ingest" and payload["table"] == "clientes" and payload["catalog"] == CATALOG
    assert payload["run_id"] == entry.logical_id
    assert payload["paths"]["landing"].endswith("/landing/clientes/")
    assert payload["paths"]["bronze"].endswith("/lake-prod/bronze/clientes")
    assert payload["spec"]["bronze"]["schema_hints"] == {"id": "bigint", "renda_mensal": "decimal(18,2)"}
    assert "checks" not in payload["spec"]
    # the job accepts what we send
    from lh360.spark.contract import parse_payload

    parse_payload(payload, "ingest")
    # the output was read from the TASK run (the parent answers 400 for multi-task runs)
    out_reqs = fake_ws.requests_to("/jobs/runs/get-output")
    assert [r.query["run_id"] for r in out_reqs] == [str(fake_ws.run(result.run.run_id).task_run_ids["lh360_ingest"])]


def test_refine_and_aggregate_payloads(fake_ws, prod):
    project, target = prod
    spec = project.specs["clientes"]
    eng = engine(target)
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=10, kept=9, rows_out=9, inserted=9, dropped=1))
    fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=27))
    r1 = eng.refine(spec)
    r2 = eng.aggregate(project, "gold.clientes_por_uf")
    assert ok(r1) and ok(r2)
    # the keys and attributes the runner, the ledger and the reports read on every engine
    assert (r1.rows_in, r1.rows_out, r1.dropped, r1.quarantined, r1.noop) == (10, 9, 1, 0, False)
    assert r2.as_dict()["rows_out"] == 27 and r2.relation == "gold.clientes_por_uf"
    refine, aggregate = (json.loads(params_of(b)[3]) for b in fake_ws.submitted)
    assert refine["paths"]["silver"].endswith("/silver/clientes")
    assert refine["paths"]["quarantine"].endswith("/quarantine/clientes")
    assert refine["tables"]["quarantine"] == "`lakehouse360`.`silver`.`clientes_quarantine`"
    assert set(aggregate["gold"]) == {"clientes_por_uf"}
    sql = aggregate["gold"]["clientes_por_uf"]["sql"]
    assert "`lakehouse360`.`silver`.`clientes`" in sql and "silver.clientes " not in sql
    assert aggregate["gold"]["clientes_por_uf"]["path"].endswith("/gold/clientes_por_uf")
    assert fake_ws.submitted[1]["run_name"].startswith("lh360 aggregate clientes_por_uf [")
    from lh360.spark.contract import parse_payload

    parse_payload(refine, "refine")
    parse_payload(aggregate, "aggregate")
    with pytest.raises(UsageError):
        eng.aggregate(project, "gold.nope")


def test_gold_sql_is_qualified_with_the_catalog():
    sql = gold_sql_databricks("SELECT g.uf FROM gold.a g JOIN silver.b ON g.x = silver.b.x", "cat")
    assert "`cat`.`gold`.`a` AS g" in sql and "`cat`.`silver`.`b`" in sql


@pytest.mark.parametrize(
    "cluster, message",
    [
        (
            {"cluster_name": "old-etl", "data_security_mode": "NONE"},
            "cluster '0101-abc' (old-etl): data_security_mode 'NONE' has no Unity Catalog access",
        ),
        ({"data_security_mode": "LEGACY_TABLE_ACL"}, "'LEGACY_TABLE_ACL' has no Unity Catalog access"),
        ({"cluster_name": "no-mode"}, "data_security_mode not set: the cluster would have no Unity Catalog access"),
        (None, "cluster '0101-abc' does not exist in http://127.0.0.1"),
    ],
)
def test_an_existing_cluster_without_unity_catalog_access_is_refused_before_any_submit(
    fake_ws, tmp_path, cluster, message
):
    """An `existing_cluster_id` must name a cluster whose access mode can write Unity Catalog tables: checked
    with clusters/get before the first submit, refused (exit 2) naming the config's file, line and field."""
    root = tmp_path / "p3"
    root.mkdir()
    if cluster is not None:
        fake_ws.clusters["0101-abc"] = cluster
    cfg = make_project(root, databricks={"compute": {"existing_cluster_id": "0101-abc"}})
    deploy_to(fake_ws, root)
    project, target = load(root)
    with pytest.raises(ConfigError) as err:
        engine(target).ingest(project.specs["clientes"])
    text = str(err.value)
    assert message in text and "existing_cluster_id" in text and str(cfg) in text
    assert fake_ws.submitted == []  # nothing ran


def test_an_existing_cluster_in_auto_or_standard_mode_is_accepted(fake_ws, tmp_path):
    root = tmp_path / "p4"
    root.mkdir()
    fake_ws.clusters["0101-abc"] = {"kind": "CLASSIC_PREVIEW"}  # with `kind`, an unset mode is AUTO
    make_project(root, databricks={"compute": {"existing_cluster_id": "0101-abc"}})
    deploy_to(fake_ws, root)
    project, target = load(root)
    fake_ws.script_run("success", logs=summary_line(rows_in=1, rows_out=1, files=1))
    eng = engine(target)
    assert ok(eng.ingest(project.specs["clientes"]))
    fake_ws.clusters["0101-abc"] = {"data_security_mode": "NONE"}  # checked once per invocation, not per run
    fake_ws.script_run("success", logs=summary_line(rows_in=1, rows_out=1, files=1))
    assert ok(eng.ingest(project.specs["clientes"]))
    gets = [r for r in fake_ws.requests if r.path == "/api/2.1/clusters/get"]
    assert len(gets) == 1


@pytest.mark.parametrize(
    "compute, expect",
    [
        ({"existing_cluster_id": "0101-abc"}, {"existing_cluster_id": "0101-abc"}),
        (
            {"new_cluster": {**NEW_CLUSTER, "data_security_mode": "SINGLE_USER"}},
            {"new_cluster": {**NEW_CLUSTER, "data_security_mode": "SINGLE_USER"}},  # it survives
        ),
    ],
)
def test_configured_compute_replaces_serverless(fake_ws, tmp_path, compute, expect):
    root = tmp_path / "p2"
    root.mkdir()
    fake_ws.clusters["0101-abc"] = {"cluster_name": "etl", "data_security_mode": "SINGLE_USER"}
    make_project(root, databricks={"compute": compute})
    deploy_to(fake_ws, root)
    project, target = load(root)
    assert ok(engine(target).ingest(project.specs["clientes"]))
    body = fake_ws.submitted[0]
    task = body["tasks"][0]
    assert "environments" not in body and "environment_key" not in task
    for k, v in expect.items():
        assert task[k] == v


def test_failed_run_shows_the_task_error_and_trace_exit_3(fake_ws, prod):
    project, target = prod
    trace = 'Traceback (most recent call last):\n  File "lh360_job.py", line 700, in main\nAnalysisException: [UNRESOLVED_COLUMN] cpf'
    fake_ws.script_run("failed", error="AnalysisException: [UNRESOLVED_COLUMN] cpf", error_trace=trace)
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    e = exc.value
    assert e.exit_code == 3
    assert "FAILED" in e.message and "UNRESOLVED_COLUMN" in e.message and "ingest clientes" in e.message
    assert "lh360_job.py" in e.detail and "run page: http://127.0.0.1" in e.detail
    assert Journal(target).load("ingest", "clientes").outcome == "TERMINATED/FAILED"


def test_fail_expectation_is_a_data_check_failure_exit_1(fake_ws, prod):
    project, target = prod
    logs = json.dumps(
        {
            "lh360_job": 1,
            "step": "refine",
            "status": "failed",
            "error_kind": "expectation_failed",
            "error": "LH360_EXPECTATION_FAILED: expectation(s) with action 'fail' failed: cpf_ok (3 rows)",
        }
    )
    fake_ws.script_run("failed", error="SystemExit: 1", logs=logs)
    with pytest.raises(CheckFailed) as exc:
        engine(target).refine(project.specs["clientes"])
    assert exc.value.exit_code == 1 and "cpf_ok (3 rows)" in exc.value.message


def test_timedout_on_databricks_exits_4(fake_ws, prod):
    project, target = prod
    fake_ws.script_run("timedout")
    with pytest.raises(RunTimeout) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 4 and "TIMEDOUT" in exc.value.message


def test_internal_error_exits_3(fake_ws, prod):
    project, target = prod
    fake_ws.script_run("internal_error")
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 3 and "INTERNAL_ERROR" in exc.value.message


def test_cancelled_elsewhere_is_a_failure_not_a_success(fake_ws, prod):
    project, target = prod
    fake_ws.script_run("canceled")
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert "CANCELED" in exc.value.message and "not by this lh360" in exc.value.message


def test_a_run_that_never_ends_is_cancelled_at_the_timeout_exit_4(fake_ws, prod):
    project, target = prod
    fake_ws.script_run("never_ends")
    with pytest.raises(RunTimeout) as exc:
        engine(target, timeout=0.3).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 4 and "lh360 cancelled it" in exc.value.message
    run = next(iter(fake_ws.runs.values()))
    assert run.cancel_at is not None
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]
    assert fake_ws.submitted[0]["timeout_seconds"] == 1 + 60  # the run stops itself if the ops box dies
    assert Journal(target).load("ingest", "clientes").outcome == "CANCELED_BY_LH360"


def test_timeout_from_the_target_config(fake_ws, tmp_path):
    root = tmp_path / "p3"
    root.mkdir()
    make_project(root, databricks={"timeout": "2h"})
    _, target = load(root)
    assert engine(target).timeout == 7200
    assert engine(target, timeout="30m").timeout == 1800
    with pytest.raises(UsageError):
        engine(target, timeout="soon")


@pytest.mark.slow
def test_429_and_503_are_retried_by_the_sdk_and_start_one_run(fake_ws, prod):
    project, target = prod
    fake_ws.inject_http_errors(SUBMIT, [429, 503])
    fake_ws.inject_http_errors("/api/2.2/jobs/runs/get", [503], method="GET")
    result = engine(target).ingest(project.specs["clientes"])
    assert ok(result)
    assert len(fake_ws.runs) == 1
    submits = fake_ws.requests_to(SUBMIT)
    assert len(submits) == 3 and len({r.body["idempotency_token"] for r in submits}) == 1
    assert 429 in fake_ws.responses and 503 in fake_ws.responses


def test_a_lost_submit_response_is_retried_with_the_same_token_one_run(fake_ws, prod):
    project, target = prod
    fake_ws.inject_http_errors(SUBMIT, [503], process=True)  # the run is created, the answer is lost
    result = engine(target).ingest(project.specs["clientes"])
    assert ok(result) and len(fake_ws.runs) == 1
    assert len(fake_ws.requests_to(SUBMIT)) == 2


def test_the_workspace_keeps_failing_exit_3_with_the_reason(fake_ws, prod):
    project, target = prod
    fake_ws.inject_http_errors(SUBMIT, [400])
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert "submitting the run" in exc.value.message and "injected HTTP 400" in exc.value.message


class Crash(BaseException):
    """The ops box dies (kill -9, reboot): nothing of lh360 runs after it."""


def crash_on_first_sleep(monkeypatch):
    import lh360.engines.databricks.client as client_mod

    def boom(seconds):
        raise Crash()

    monkeypatch.setattr(client_mod.time, "sleep", boom)


def test_a_retry_after_a_crash_reuses_the_token_and_attaches_to_the_same_run(fake_ws, prod, monkeypatch):
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("success", running_polls=4)
    with monkeypatch.context() as m:
        crash_on_first_sleep(m)
        with pytest.raises(Crash):
            engine(target).ingest(spec)
    assert Journal(target).load("ingest", "clientes").status == "submitted"
    assert not fake_ws.requests_to("/jobs/runs/cancel")  # a crash cancels nothing

    result = engine(target).ingest(spec)  # cron retries
    assert ok(result) and result.run.attached
    assert len(fake_ws.runs) == 1  # never double-submitted
    first, second = fake_ws.requests_to(SUBMIT)
    assert first.body["idempotency_token"] == second.body["idempotency_token"]
    assert result.run.run_id == next(iter(fake_ws.runs))

    # the next (tomorrow's) run is a new logical run: a new token, a new Databricks run
    tomorrow = engine(target).ingest(spec)
    assert len(fake_ws.runs) == 2 and tomorrow.run.idempotency_token != result.run.idempotency_token
    assert not tomorrow.run.attached


def test_a_crashed_invocations_run_that_already_ended_is_reported_then_a_fresh_run_starts(fake_ws, prod, monkeypatch):
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("failed", running_polls=1)
    with monkeypatch.context() as m:
        crash_on_first_sleep(m)
        with pytest.raises(Crash):
            engine(target).ingest(spec)
    old = next(iter(fake_ws.runs.values()))
    for _ in range(3):  # the run goes on without lh360 and ends
        fake_ws.client().jobs.get_run(old.run_id)
    result = engine(target).ingest(spec)
    assert ok(result) and not result.run.attached
    assert len(fake_ws.runs) == 2
    tokens = [r.body["idempotency_token"] for r in fake_ws.requests_to(SUBMIT)]
    assert tokens[0] == tokens[1] != tokens[2]


def test_an_explicit_run_id_gives_one_run_per_logical_run_on_any_machine(fake_ws, prod, tmp_path):
    project, target = prod
    spec = project.specs["clientes"]
    a = engine(target, run_id="2025-06-01", journal=Journal(target, tmp_path / "box-a"))
    b = engine(target, run_id="2025-06-01", journal=Journal(target, tmp_path / "box-b"))
    ra = a.ingest(spec)
    rb = b.ingest(spec)  # a retry on another ops box
    assert len(fake_ws.runs) == 1 and ra.run.run_id == rb.run.run_id and rb.run.attached
    assert ra.run.idempotency_token == idempotency_token(target, "ingest", "clientes", "2025-06-01")
    rc = engine(target, run_id="2025-06-02").ingest(spec)
    assert len(fake_ws.runs) == 2 and rc.run.run_id != ra.run.run_id


def test_an_explicit_run_id_whose_run_failed_reports_that_failure(fake_ws, prod):
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("failed")
    with pytest.raises(EngineError):
        engine(target, run_id="r1").ingest(spec)
    with pytest.raises(EngineError) as exc:
        engine(target, run_id="r1").ingest(spec)
    assert "FAILED" in exc.value.message and len(fake_ws.runs) == 1


@pytest.mark.parametrize("signal_exc, code", [(KeyboardInterrupt(), 130), (Interrupted(15), 143)])
def test_sigint_and_sigterm_cancel_the_run_lh360_started(fake_ws, prod, monkeypatch, signal_exc, code):
    import lh360.engines.databricks.client as client_mod

    project, target = prod
    fake_ws.script_run("never_ends")
    real_sleep = client_mod.time.sleep
    calls = {"n": 0}

    def sleep(seconds):
        calls["n"] += 1
        if calls["n"] == 2:  # while waiting for the run
            raise signal_exc
        real_sleep(0)

    monkeypatch.setattr(client_mod.time, "sleep", sleep)
    with pytest.raises(type(signal_exc)) as exc:
        engine(target).ingest(project.specs["clientes"])
    if isinstance(signal_exc, Interrupted):
        assert exc.value.exit_code == code
    run = next(iter(fake_ws.runs.values()))
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]
    # lh360 waited for the cancellation to land before exiting
    assert fake_ws.client().jobs.get_run(run.run_id).state.result_state.value == "CANCELED"
    assert Journal(target).load("ingest", "clientes").outcome == "CANCELED_BY_LH360"


def test_detach_returns_the_run_id_at_once_and_the_next_invocation_attaches(fake_ws, prod):
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("success", running_polls=3)
    r = engine(target, detach=True).ingest(spec)
    assert r.run.detached and r.run.run_id and r.run.state == "PENDING"
    assert fake_ws.run(r.run.run_id).gets == 1
    assert r.as_dict()["detached"] is True
    again = engine(target).ingest(spec)  # not a second run while the detached one is going
    assert again.run.attached and again.run.run_id == r.run.run_id and len(fake_ws.runs) == 1


def test_runs_refuse_code_that_is_not_deployed(fake_ws, project_root):
    project, target = load(project_root)
    with pytest.raises(UsageError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 2 and "deploy" in exc.value.message
    assert not fake_ws.requests_to(SUBMIT)


def test_runs_refuse_code_that_differs_from_the_deployed(fake_ws, prod, monkeypatch):
    import lh360.engines.databricks.engine as dbx
    from lh360.engines.databricks.code import CodeBundle

    project, target = prod
    changed = CodeBundle({**code_bundle().files, "transforms.py": b"# changed\n"})
    monkeypatch.setattr(dbx, "code_bundle", lambda: changed)
    with pytest.raises(UsageError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert "is not this lh360's" in exc.value.message and not fake_ws.requests_to(SUBMIT)


def test_a_payload_too_large_for_a_parameter_goes_to_a_private_lake_file_removed_at_the_end(fake_ws, tmp_path):
    import os

    from tests.databricks_support import REPO

    text = (REPO / "configs" / "tables" / "clientes.yaml").read_text()
    text = text.replace("description: Clientes da base transacional RT2", "description: " + "x" * 9000)
    root = tmp_path / "big"
    root.mkdir()
    make_project(root, spec_text=text)
    deploy_to(fake_ws, root)
    project, target = load(root)
    fake_ws.script_run("success", running_polls=3)
    detached = engine(target, detach=True).ingest(project.specs["clientes"])
    token = detached.run.idempotency_token
    params = params_of(fake_ws.submitted[0])
    assert params[2] == "--payload-file"
    path = payload_file(target, token)
    assert params[3] == path and "/_lh360/payloads/" in path and "/Shared/" not in path
    stored = json.loads(open(path, encoding="utf-8").read())
    assert stored["spec"]["description"] == "x" * 9000
    assert os.stat(path).st_mode & 0o077 == 0  # readable by its owner only
    assert not [p for p in fake_ws.objects if "payloads" in p]  # nothing in the workspace
    engine(target).ingest(project.specs["clientes"])  # attaches, sees the end
    assert not os.path.exists(path)  # removed once the run has ended


def test_the_inline_limit_is_measured_on_the_wire_encoding(fake_ws, tmp_path):
    """A payload of Portuguese text with quotes under 8,000 bytes as UTF-8 text, far over once
    escaped for the wire (quotes as \\\", ç as \\u00e7): it must not go inline."""
    from lh360.engines.databricks.requests import MAX_INLINE_PARAMETERS, parameters_wire_size
    from tests.databricks_support import REPO

    text = (REPO / "configs" / "tables" / "clientes.yaml").read_text()
    desc = 'ação "ç" ' * 250  # 2,750 bytes of UTF-8
    text = text.replace("description: Clientes da base transacional RT2", "description: " + json.dumps(desc))
    root = tmp_path / "acc"
    root.mkdir()
    make_project(root, spec_text=text)
    project, target = load(root)
    entry = Journal(target, tmp_path / "j").next_entry("ingest", "clientes")[0]
    body = submit_body(target, project.specs["clientes"], "ingest", entry, timeout=None)
    assert params_of(body)[2] == "--payload-file"
    from lh360.engines.databricks.requests import payload_json, step_payload

    as_text = payload_json(step_payload(target, project.specs["clientes"], "ingest", entry.logical_id))
    assert (
        len(as_text.encode()) < MAX_INLINE_PARAMETERS < parameters_wire_size(["--step", "ingest", "--payload", as_text])
    )


def test_braces_in_a_spec_are_never_a_dynamic_value_reference(fake_ws, tmp_path):
    from lh360.spark.contract import parse_payload
    from tests.databricks_support import REPO

    text = (REPO / "configs" / "tables" / "clientes.yaml").read_text()
    text = text.replace(
        "description: Clientes da base transacional RT2", 'description: "ids {{job.id}} and {{task.name}}"'
    )
    root = tmp_path / "braces"
    root.mkdir()
    make_project(root, spec_text=text)
    project, target = load(root)
    entry = Journal(target, tmp_path / "j").next_entry("ingest", "clientes")[0]
    body = submit_body(target, project.specs["clientes"], "ingest", entry, timeout=None)
    assert "{{" not in wire(body).decode()
    payload = parse_payload(params_of(body)[3], "ingest")  # what the job reads: the text as written
    assert payload["spec"]["description"] == "ids {{job.id}} and {{task.name}}"


def test_aggregate_on_the_sql_warehouse(fake_ws, tmp_path):
    root = tmp_path / "wh"
    root.mkdir()
    make_project(root, databricks={"aggregate_on": "warehouse"})
    deploy_to(fake_ws, root)
    project, target = load(root)
    fake_ws.sql_delay_polls = 2
    fake_ws.sql_handler = lambda statement, params: (["n"], [[27]]) if "count(*)" in statement else ([], [])
    result = engine(target).aggregate(project, "gold.clientes_por_uf")
    assert ok(result) and len(result.run.statements) == 2 and not fake_ws.runs
    assert result.as_dict()["rows_out"] == 27
    st = fake_ws.statements[result.run.statements[0]]
    assert st.body["statement"].startswith(
        "CREATE OR REPLACE TABLE `lakehouse360`.`gold`.`clientes_por_uf` USING DELTA"
    )
    assert "`lakehouse360`.`silver`.`clientes`" in st.body["statement"]
    assert st.body["wait_timeout"] == "0s" and st.body["warehouse_id"] == "wh-fake-1"


def test_auth_by_profile_from_the_target(fake_ws, prod, monkeypatch, tmp_path):
    project, target = prod
    cfg = tmp_path / "databrickscfg"
    cfg.write_text(f"[lh360-prod]\nhost = {fake_ws.host}\ntoken = {fake_ws.token}\n")
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    assert ok(engine(target).ingest(project.specs["clientes"]))


def test_missing_credentials_are_a_config_error_that_names_the_profile(fake_ws, prod, monkeypatch):
    project, target = prod
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret-never-printed")
    before = len(fake_ws.requests)
    with pytest.raises(ConfigError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 2 and "lh360-prod" in str(exc.value)
    assert "dapi-secret-never-printed" not in str(exc.value)
    assert len(fake_ws.requests) == before  # nothing was sent anywhere


def test_an_interrupt_during_the_submit_cancels_the_run_its_token_names(fake_ws, prod, monkeypatch):
    """The POST created the run but lh360 was interrupted before it learnt the id: the token finds it."""
    project, target = prod
    fake_ws.script_run("never_ends")
    eng = engine(target)
    real_submit = eng._post_submit
    calls = {"n": 0}

    def submit(body):
        calls["n"] += 1
        run_id = real_submit(body)
        if calls["n"] == 1:
            raise KeyboardInterrupt  # Ctrl-C while the answer was on its way
        return run_id

    monkeypatch.setattr(eng, "_post_submit", submit)
    with pytest.raises(KeyboardInterrupt):
        eng.ingest(project.specs["clientes"])
    (run,) = fake_ws.runs.values()  # one run, found again by its token
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]
    assert Journal(target).load("ingest", "clientes").outcome == "CANCELED_BY_LH360"


def test_a_run_of_an_explicit_run_id_started_elsewhere_is_not_cancelled(fake_ws, prod, monkeypatch, tmp_path):
    """Another ops box started run-id R and waits for it; this invocation attaches, then times out: it must
    leave that run alone (exit 4 all the same)."""
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("never_ends")
    other = engine(target, run_id="R", detach=True, journal=Journal(target, tmp_path / "other-box"))
    other.ingest(spec)  # the same instant: ownership must not come from comparing clocks
    with pytest.raises(RunTimeout) as exc:
        engine(target, run_id="R", timeout=0.2).ingest(spec)
    assert "it goes on" in exc.value.message
    assert not fake_ws.requests_to("/jobs/runs/cancel") and len(fake_ws.runs) == 1


@pytest.mark.slow
@pytest.mark.parametrize("step", ["ingest", "refine", "aggregate"])
def test_the_uploaded_job_file_accepts_the_payloads_we_send(fake_ws, prod, tmp_path, step):
    """What deploy uploads, run as Databricks runs it (a script outside the lh360 package, under its uploaded
    name), with the exact parameters of our submit body, in --explain mode (no Spark)."""
    import subprocess
    import sys

    project, target = prod
    for name, content in code_bundle().files.items():
        (tmp_path / name).write_bytes(content)
    spec = project.specs["clientes"]
    gold = "clientes_por_uf" if step == "aggregate" else None
    entry = Journal(target, tmp_path / "j").next_entry(step, gold or "clientes")[0]
    params = params_of(submit_body(target, spec, step, entry, timeout=None, gold_name=gold))
    proc = subprocess.run(
        [sys.executable, "lh360_job.py", *params, "--explain"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["step"] == step and plan["table"] == "clientes"
    if step == "aggregate":
        assert plan["gold"][0]["sql"].startswith("CREATE OR REPLACE TABLE `lakehouse360`.`gold`.`clientes_por_uf`")
