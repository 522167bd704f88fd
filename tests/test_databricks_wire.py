"""What goes on the wire to Databricks and how runs are watched, against the strict fake workspace:
the SDK's dataclasses as the contract of a submit body (exit 2 naming a key the service would refuse or the
SDK would drop), the run's v2 `status` read first, states lh360 does not know, the default timeout,
ownership from the journal (never from clocks), "finished" only after a terminal state, the job's own error
first, run viewers, and multi-chunk SQL results."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import pytest

from lh360.console import CaptureConsole
from lh360.durations import parse_timeout
from lh360.engines.base import EngineOptions
from lh360.engines.databricks import DatabricksEngine
from lh360.engines.databricks.journal import Journal
from lh360.errors import ConfigError, EngineError, RunTimeout, UsageError
from tests.databricks_support import REPO, deploy_to, load, make_project, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

SUBMIT = "/api/2.2/jobs/runs/submit"
CLUSTER = {"spark_version": "15.4.x-scala2.12", "num_workers": 1, "node_type_id": "m5.large"}


def engine(target, timeout=None, run_id=None, **kw):
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("cancel_wait", 2)
    return DatabricksEngine(target, EngineOptions(timeout=parse_timeout(timeout), run_id=run_id), **kw)


def project_with(fake_ws, tmp_path, **databricks):
    root = tmp_path / "p"
    root.mkdir()
    make_project(root, databricks=databricks)
    deploy_to(fake_ws, root)
    return load(root)


@pytest.fixture
def prod(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return load(project_root)


# ---- the SDK's dataclasses as the contract ---------------------------------------------------------------


def test_pyproject_requires_an_sdk_that_knows_environment_version():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (sdk,) = [d for d in deps if d.startswith("databricks-sdk")]
    low = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", sdk).group(1).split(".")[:2])
    assert low >= (0, 54), sdk


@pytest.mark.parametrize(
    "extra, key, says",
    [
        ({"spark_versions": "15.4.x-scala2.12"}, "new_cluster.spark_versions", "did you mean 'spark_version'"),
        ({"data_security_mode": "single_user"}, "new_cluster.data_security_mode", "'SINGLE_USER'"),
        (
            {"aws_attributes": {"ebs_volume_type": "gp3"}},
            "new_cluster.aws_attributes.ebs_volume_type",
            "GENERAL_PURPOSE_SSD",
        ),
        ({"spark_conf": {"spark.sql.shuffle.partitions": 8}}, "spark_conf.spark.sql.shuffle.partitions", "a string"),
    ],
)
def test_a_new_cluster_key_or_value_the_sdk_would_drop_is_exit_2_naming_it(fake_ws, tmp_path, extra, key, says):
    cluster = {**CLUSTER, "data_security_mode": "SINGLE_USER", **extra}
    project, target = project_with(fake_ws, tmp_path, compute={"new_cluster": cluster})
    with pytest.raises(ConfigError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 2
    assert exc.value.field.startswith("targets.prod.databricks.compute.") and exc.value.field.endswith(key)
    assert exc.value.file.endswith("lh360.yaml") and exc.value.line  # file:line, as every config error
    assert says in str(exc.value)
    assert not fake_ws.requests_to(SUBMIT)  # nothing half-sent


def test_a_new_cluster_without_unity_catalog_access_is_refused(fake_ws, tmp_path):
    project, target = project_with(fake_ws, tmp_path, compute={"new_cluster": CLUSTER})
    with pytest.raises(ConfigError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.field.endswith("new_cluster.data_security_mode") and "Unity Catalog" in str(exc.value)


def test_data_security_mode_reaches_the_service(fake_ws, tmp_path):
    cluster = {
        **CLUSTER,
        "data_security_mode": "SINGLE_USER",
        "aws_attributes": {"ebs_volume_type": "GENERAL_PURPOSE_SSD"},
    }
    project, target = project_with(fake_ws, tmp_path, compute={"new_cluster": cluster})
    engine(target).ingest(project.specs["clientes"])
    sent = json.loads(fake_ws.requests_to(SUBMIT)[0].raw)
    assert sent["tasks"][0]["new_cluster"] == cluster


def test_an_sdk_that_would_drop_environment_version_is_refused_naming_the_key(fake_ws, prod, monkeypatch):
    """databricks-sdk < 0.54 has no compute.Environment.environment_version: refuse, name the key and the fix."""
    import databricks.sdk.service.compute as compute
    import databricks.sdk.version as version

    from lh360.engines.databricks import contract

    @dataclass
    class Environment:  # compute.Environment as databricks-sdk 0.53 had it
        client: str | None = None
        dependencies: list[str] | None = None

        def as_dict(self) -> dict:
            return {k: v for k, v in (("client", self.client), ("dependencies", self.dependencies)) if v}

        @classmethod
        def from_dict(cls, d: dict) -> Environment:
            return cls(d.get("client"), d.get("dependencies"))

    monkeypatch.setattr(compute, "Environment", Environment)
    monkeypatch.setattr(version, "__version__", "0.53.0")
    contract._hints.cache_clear()
    project, target = prod
    try:
        with pytest.raises(UsageError) as exc:
            engine(target).ingest(project.specs["clientes"])
    finally:
        contract._hints.cache_clear()
    msg = str(exc.value)
    assert exc.value.exit_code == 2 and "environments[0].spec.environment_version" in msg
    assert "databricks-sdk 0.53.0 is installed; lh360 needs databricks-sdk>=0.54" in msg
    assert not fake_ws.requests_to(SUBMIT)


def test_run_viewers_get_can_view_on_each_run(fake_ws, tmp_path):
    viewers = ["data-engineers", {"user": "ana@example.com"}, {"service_principal": "6d5e-app-id"}]
    project, target = project_with(fake_ws, tmp_path, run_viewers=viewers)
    engine(target).ingest(project.specs["clientes"])
    assert fake_ws.submitted[0]["access_control_list"] == [
        {"group_name": "data-engineers", "permission_level": "CAN_VIEW"},
        {"user_name": "ana@example.com", "permission_level": "CAN_VIEW"},
        {"service_principal_name": "6d5e-app-id", "permission_level": "CAN_VIEW"},
    ]


def test_a_run_viewer_names_exactly_one_principal(tmp_path):
    root = tmp_path / "v"
    root.mkdir()
    make_project(root, databricks={"run_viewers": [{"user": "a@x", "group": "g"}]})
    with pytest.raises(ConfigError) as exc:
        load(root)
    assert exc.value.field == "targets.prod.databricks.run_viewers[0]" and "exactly one" in str(exc.value)


# ---- watching a run ----------------------------------------------------------------------------------


def test_every_run_has_a_default_timeout_of_hours(fake_ws, prod):
    project, target = prod
    eng = engine(target)
    assert eng.timeout == 6 * 3600
    eng.ingest(project.specs["clientes"])
    assert fake_ws.submitted[0]["timeout_seconds"] == 6 * 3600 + 60


def test_queued_blocked_and_waiting_for_retry_are_shown_as_such_from_the_v2_status(fake_ws, prod):
    """Only `status` (v2) is answered, as the deprecated `state` may one day not be."""
    project, target = prod
    fake_ws.script_run(
        "success", states=["QUEUED", "BLOCKED", "WAITING_FOR_RETRY", "PENDING"], legacy_state=False,
        logs=summary_line(rows_in=2, rows_out=2, files=1),
    )  # fmt: skip
    console = CaptureConsole()
    result = engine(target, timeout="30s", console=console).ingest(project.specs["clientes"])
    assert result.run.result_state == "SUCCESS" and result.run.state == "TERMINATED"
    text = "\n".join(console.lines)
    for shown in (
        "QUEUED (ACTIVE_RUNS_LIMIT_REACHED)",
        "BLOCKED",
        "WAITING_FOR_RETRY",
        "RUNNING",
        "TERMINATED/SUCCESS",
    ):
        assert shown in text, text


def test_a_state_lh360_does_not_know_is_logged_raw_never_shown_as_pending(fake_ws, prod, caplog):
    project, target = prod
    fake_ws.script_run("success", states=["HIBERNATING", "HIBERNATING"], legacy_state=False)
    console = CaptureConsole()
    with caplog.at_level(logging.WARNING, logger="lh360"):
        result = engine(target, timeout="30s", console=console).ingest(project.specs["clientes"])
    assert result.run.result_state == "SUCCESS"
    assert any("HIBERNATING" in line for line in console.lines)
    assert not any("PENDING" in line for line in console.lines)
    (warning,) = [r for r in caplog.records if "does not know" in r.getMessage()]
    assert "'HIBERNATING'" in warning.getMessage()


def test_a_run_stuck_in_an_unknown_state_ends_at_the_timeout_naming_it(fake_ws, prod):
    project, target = prod
    fake_ws.script_run("never_ends", states=["HIBERNATING"] * 10_000)
    with pytest.raises(RunTimeout) as exc:
        engine(target, timeout=0.3).ingest(project.specs["clientes"])
    assert "last seen HIBERNATING" in exc.value.message and "lh360 cancelled it" in exc.value.message


def test_ownership_comes_from_the_journal_never_from_clocks(fake_ws, prod, monkeypatch):
    """The ops box's clock runs an hour ahead of Databricks: the run this invocation submitted is still its
    own, so at the timeout lh360 cancels it (and never calls it 'attached')."""
    import tests.fakes.databricks_workspace as fake_module

    real_now = fake_module._now_ms
    monkeypatch.setattr(fake_module, "_now_ms", lambda: real_now() - 3_600_000)
    project, target = prod
    fake_ws.script_run("never_ends")
    with pytest.raises(RunTimeout) as exc:
        engine(target, run_id="2025-06-01", timeout=0.3).ingest(project.specs["clientes"])
    assert "lh360 cancelled it" in exc.value.message
    (run,) = fake_ws.runs.values()
    assert [r.body["run_id"] for r in fake_ws.requests_to("/jobs/runs/cancel")] == [run.run_id]


def test_the_journal_says_finished_only_after_the_run_was_seen_ending(fake_ws, prod):
    """A cancel that has not landed when lh360 gives up leaves the entry 'submitted'; the next invocation
    waits for that run to end before it starts another (never two streams on one checkpoint)."""
    project, target = prod
    spec = project.specs["clientes"]
    fake_ws.script_run("never_ends", terminating_polls=10_000)  # TERMINATING for as long as we look
    with pytest.raises(RunTimeout):
        engine(target, timeout=0.2, cancel_wait=0.1).ingest(spec)
    entry = Journal(target).load("ingest", "clientes")
    assert entry.status == "submitted" and entry.cancel_requested
    (old,) = fake_ws.runs.values()
    assert old.ended_ms is None  # still TERMINATING

    old.script.terminating_polls = old.polls - old.cancel_at + 3  # it ends three polls from now
    fake_ws.script_run("success")
    console = CaptureConsole()
    result = engine(target, timeout="30s", console=console).ingest(spec)
    assert result.run.result_state == "SUCCESS" and len(fake_ws.runs) == 2
    new = fake_ws.run(result.run.run_id)
    assert old.ended_ms is not None and old.ended_ms <= new.created_ms  # the old one ended first
    assert any("cancelled by an earlier invocation" in line for line in console.lines)
    assert Journal(target).load("ingest", "clientes").status == "finished"


def test_a_failed_run_shows_the_jobs_own_error_first(fake_ws, prod):
    project, target = prod
    logs = json.dumps(
        {"lh360_job": 1, "step": "ingest", "status": "failed", "error_kind": "error",
         "error": "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] lakehouse360.bronze.clientes"}
    )  # fmt: skip
    fake_ws.script_run("failed", error="SystemExit: 3", logs="spark says hi\n" + logs)
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert "FAILED: AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]" in exc.value.message
    assert "SystemExit: 3" not in exc.value.message and "SystemExit: 3" in exc.value.detail


# ---- SQL statements ---------------------------------------------------------------------------------


def test_a_result_in_several_chunks_is_read_whole(fake_ws, project_root):
    from lh360.engines.databricks.statements import DatabricksSQLRunner

    _, target = load(project_root)
    fake_ws.sql_chunk_rows = 2
    fake_ws.sql_handler = lambda statement, params: (["n"], [[i] for i in range(5)])
    result = DatabricksSQLRunner(target, poll_interval=0.01).query("SELECT n FROM t")
    assert result.rows == [(0,), (1,), (2,), (3,), (4,)]
    chunks = [r.path.rsplit("/", 1)[1] for r in fake_ws.requests_to("/result/chunks/")]
    assert chunks == ["1", "2"]


def test_the_strict_fake_would_have_refused_the_old_serverless_body_of_an_old_sdk(fake_ws):
    """What SDK 0.40 sent for serverless (`spec: {}`), and other bodies the service refuses."""
    w = fake_ws.client()
    base = {"run_name": "x", "tasks": [{"task_key": "t", "spark_python_task": {"python_file": "/x.py"}}]}
    bad = [
        ({"environments": [{"environment_key": "e", "spec": {}}]}, {"environment_key": "e"}, "environment_version"),
        (
            {"environments": [{"environment_key": "e", "spec": {"environment_version": "2"}}]},
            {"environment_key": "f"},
            "not defined",
        ),
        (
            {"environments": [{"environment_key": "e", "spec": {"environment_version": "2"}}]},
            {"environment_key": "e", "existing_cluster_id": "c-1"},
            "cannot be used with existing_cluster_id",
        ),
        ({}, {"existing_cluster_id": "c-1", "new_clusterr": {}}, "unknown field"),
        ({"performance_target": "FASTEST"}, {"existing_cluster_id": "c-1"}, "invalid value 'FASTEST'"),
    ]
    from databricks.sdk.errors import DatabricksError

    for top, task, says in bad:
        body = {**base, **top, "tasks": [{**base["tasks"][0], **task}]}
        with pytest.raises(DatabricksError) as exc:
            w.api_client.do("POST", SUBMIT, body=body)
        assert says in str(exc.value), (body, str(exc.value))
    assert not fake_ws.runs


def test_plan_checks_the_body_too(fake_ws, tmp_path):
    """`lh360 plan` builds the same body, so it refuses the same keys (offline, exit 2)."""
    from lh360.engines import engine_for
    from lh360.plan import build_plan

    root = tmp_path / "plan"
    root.mkdir()
    make_project(
        root,
        databricks={
            "compute": {"new_cluster": {**CLUSTER, "data_security_mode": "SINGLE_USER", "autoscale": {"min": 1}}}
        },
    )
    project, target = load(root)
    with pytest.raises(ConfigError) as exc:
        build_plan(project, target, engine_for(target), None, to="silver")
    assert exc.value.field.endswith("new_cluster.autoscale.min") and "min_workers" in str(exc.value)


def test_the_job_reads_a_payload_file_from_the_lake_through_spark(tmp_path):
    """A payload too large for a parameter sits in the lake (s3://…/_lh360/payloads/): the job reads it with
    Spark, which holds the lake's credentials (open() cannot read s3://)."""
    import argparse

    from lh360.spark.contract import PayloadError
    from lh360.spark.runtime import load_payload
    from tests.spark.test_spark_job import payload

    text = json.dumps(payload("ingest"))
    asked: list[str] = []

    class Reader:
        def text(self, path, wholetext=False):
            asked.append(path)
            assert wholetext
            return type("DF", (), {"collect": lambda self: [(text,)]})()

    spark = type("Spark", (), {"read": Reader()})()
    args = argparse.Namespace(step="ingest", payload=None, payload_file="s3://lake/_lh360/payloads/lh360-x.json")
    assert load_payload(args, lambda: spark)["table"] == "clientes"
    assert asked == ["s3://lake/_lh360/payloads/lh360-x.json"]
    local = tmp_path / "p.json"
    local.write_text(text)
    assert load_payload(argparse.Namespace(step="ingest", payload=None, payload_file=str(local)))["step"] == "ingest"
    with pytest.raises(PayloadError, match="needs Spark"):
        load_payload(args)
