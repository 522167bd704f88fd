"""The fake Databricks workspace (tests/fakes/databricks_workspace.py) against the REAL databricks-sdk:
what the engine's contract tests rely on. Loopback only; every test takes well under a few seconds."""

from __future__ import annotations

import base64
import io
import socket
import time
from datetime import timedelta

import pytest

pytest.importorskip("databricks.sdk", reason="databricks-sdk is not installed")

from databricks.sdk import errors  # noqa: E402
from databricks.sdk.service import catalog, jobs, sql, workspace  # noqa: E402

from tests.fakes.databricks_workspace import (  # noqa: E402
    FakeWorkspace,
    SqlError,
    fast_sdk_polling,
    isolate_databricks_env,
)

pytestmark = pytest.mark.timeout(30)

TEN_S = timedelta(seconds=10)


@pytest.fixture
def ws(monkeypatch, tmp_path):
    isolate_databricks_env(monkeypatch, tmp_path)
    with FakeWorkspace() as fake:
        yield fake


def submit(w, token=None, key="refine"):
    return w.jobs.submit(
        run_name="lh360 refine clientes",
        idempotency_token=token,
        tasks=[
            jobs.SubmitTask(
                task_key=key,
                spark_python_task=jobs.SparkPythonTask(
                    python_file="/Workspace/Shared/lh360/job.py",
                    parameters=["--step", "refine", "--payload-file", "/Workspace/Shared/lh360/runs/r1.json"],
                ),
                existing_cluster_id="0101-fake-cluster",
            )
        ],
    )


def test_client_constructs_instantly_from_host_metadata(ws):
    started = time.monotonic()
    w = ws.client()
    assert time.monotonic() - started < 2
    assert ws.requests[0].method == "GET" and ws.requests[0].path == "/.well-known/databricks-config"
    assert w.config.workspace_id == ws.workspace_id and w.config.host == ws.host
    # the plain constructor works too (what lh360's engine calls)
    from databricks.sdk import WorkspaceClient

    assert WorkspaceClient(host=ws.host, token=ws.token).config.workspace_id == ws.workspace_id
    assert w.current_user.me().user_name == "lh360-fake@example.com"
    me = ws.requests_to("/scim/v2/Me")[0]
    assert me.headers["Authorization"] == "Bearer dapi-fake"
    assert me.headers["X-Databricks-Workspace-Id"] == ws.workspace_id


def test_wrong_token_is_unauthenticated(ws):
    from databricks.sdk import WorkspaceClient

    w = WorkspaceClient(host=ws.host, token="dapi-wrong")
    with pytest.raises(errors.Unauthenticated):
        w.jobs.get_run(1)


def test_submit_success_walks_the_life_cycle(ws):
    summary = '{"lh360_job": 1, "status": "succeeded", "rows_in": 3}'
    ws.script_run("success", pending_polls=1, running_polls=2, logs=f"spark says hi\n{summary}\n")
    w = ws.client()
    seen = []
    with fast_sdk_polling():
        waiter = submit(w)
        run = waiter.result(timeout=TEN_S, callback=lambda r: seen.append(r.state.life_cycle_state))
    assert seen == [jobs.RunLifeCycleState.PENDING, jobs.RunLifeCycleState.RUNNING, jobs.RunLifeCycleState.RUNNING]
    assert run.run_id == waiter.run_id
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.status.state == jobs.RunLifecycleStateV2State.TERMINATED
    assert run.status.termination_details.code == jobs.TerminationCodeCode.SUCCESS
    assert run.run_page_url.startswith(f"{ws.host}/?o={ws.workspace_id}#job/")
    assert run.end_time >= run.start_time > 0
    (task,) = run.tasks
    assert task.task_key == "refine" and task.run_id != run.run_id
    assert task.spark_python_task.python_file == "/Workspace/Shared/lh360/job.py"
    assert task.state.result_state == jobs.RunResultState.SUCCESS

    out = w.jobs.get_run_output(task.run_id)
    assert out.logs.splitlines()[-1] == summary and out.error is None
    assert out.metadata.run_id == task.run_id
    # like the service: the parent of a multi-task run has no single output
    with pytest.raises(errors.InvalidParameterValue, match="multiple tasks"):
        w.jobs.get_run_output(run.run_id)
    body = ws.submitted[0]
    assert (
        body["run_name"] == "lh360 refine clientes" and body["tasks"][0]["existing_cluster_id"] == "0101-fake-cluster"
    )


def test_failed_run_terminates_with_error_and_trace(ws):
    ws.script_run(
        "failed", error="AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]", error_trace="Traceback ...", logs="{}"
    )
    w = ws.client()
    with fast_sdk_polling():
        run = submit(w).result(timeout=TEN_S)
    # databricks-sdk 0.162's waiter returns TERMINATED runs whatever their result: the caller checks it
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.status.termination_details.code == jobs.TerminationCodeCode.RUN_EXECUTION_ERROR
    out = w.jobs.get_run_output(run.tasks[0].run_id)
    assert out.error == "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]" and out.error_trace == "Traceback ..."


def test_internal_error_makes_the_sdk_waiter_raise_operation_failed(ws):
    ws.script_run("internal_error", pending_polls=0, running_polls=1, state_message="Cluster launch failed")
    w = ws.client()
    with fast_sdk_polling(), pytest.raises(errors.OperationFailed, match="INTERNAL_ERROR.*Cluster launch failed"):
        submit(w).result(timeout=TEN_S)


@pytest.mark.parametrize(
    "outcome, result", [("timedout", jobs.RunResultState.TIMEDOUT), ("canceled", jobs.RunResultState.CANCELED)]
)
def test_timedout_and_canceled_outcomes(ws, outcome, result):
    ws.script_run(outcome, pending_polls=0, running_polls=0)
    w = ws.client()
    with fast_sdk_polling():
        run = submit(w).result(timeout=TEN_S)
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == result and run.state.user_cancelled_or_timedout is True


def test_unscripted_runs_use_the_default_outcome(ws):
    ws.default_outcome = "failed"
    w = ws.client()
    with fast_sdk_polling():
        run = submit(w).result(timeout=TEN_S)
    assert run.state.result_state == jobs.RunResultState.FAILED


def test_idempotency_token_returns_the_same_run(ws):
    w = ws.client()
    first = submit(w, token="lh360-refine-clientes-20250101T0300").run_id
    second = submit(w, token="lh360-refine-clientes-20250101T0300").run_id
    third = submit(w, token="lh360-refine-clientes-20250102T0300").run_id
    assert first == second != third
    assert len(ws.runs) == 2
    with pytest.raises(errors.InvalidParameterValue, match="64"):
        submit(w, token="x" * 65)


def test_lost_submit_response_is_retried_into_the_same_run(ws):
    """The service created the run but the answer was a 503: the SDK retries, the token dedupes."""
    ws.inject_http_errors("/api/2.2/jobs/runs/submit", [503], process=True)
    w = ws.client()
    run_id = submit(w, token="tok-1").run_id
    assert len(ws.runs) == 1 and run_id in ws.runs
    assert [s for r, s in zip(ws.requests, ws.responses, strict=True) if r.path.endswith("/runs/submit")] == [503, 200]


def test_cancel_a_never_ending_run(ws):
    ws.script_run("never_ends", pending_polls=0)
    w = ws.client()
    run_id = submit(w).run_id
    for _ in range(5):
        assert w.jobs.get_run(run_id).state.life_cycle_state == jobs.RunLifeCycleState.RUNNING
    waiter = w.jobs.cancel_run(run_id)
    assert w.jobs.get_run(run_id).state.life_cycle_state == jobs.RunLifeCycleState.TERMINATING
    with fast_sdk_polling():
        run = waiter.result(timeout=TEN_S)
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.CANCELED
    assert run.status.termination_details.code == jobs.TerminationCodeCode.USER_CANCELED
    w.jobs.cancel_run(run_id)  # cancelling a finished run is a no-op, like the service
    assert w.jobs.get_run(run_id).state.result_state == jobs.RunResultState.CANCELED
    assert w.jobs.get_run(run.tasks[0].run_id).state.result_state == jobs.RunResultState.CANCELED


def test_unknown_run_is_not_found(ws):
    # the service answers 400 INVALID_PARAMETER_VALUE "Run N does not exist."; the SDK maps it to NotFound
    with pytest.raises(errors.ResourceDoesNotExist, match="Run 424242 does not exist"):
        ws.client().jobs.get_run(424242)


@pytest.mark.slow
def test_429_and_503_are_retried_by_the_sdk(ws):
    ws.script_run("never_ends")
    w = ws.client(retry_timeout_seconds=10)
    run_id = submit(w).run_id
    ws.inject_http_errors("/api/2.2/jobs/runs/get", [429, 503])
    started = time.monotonic()
    assert w.jobs.get_run(run_id).run_id == run_id
    assert time.monotonic() - started < 5
    gets = [s for r, s in zip(ws.requests, ws.responses, strict=True) if r.path.endswith("/runs/get")]
    assert gets == [429, 503, 200]
    assert ws.requests_to("/runs/get")[0].query == {"run_id": str(run_id)}


def test_retry_budget_runs_out_and_other_errors_are_not_retried(ws):
    w = ws.client(retry_timeout_seconds=1)
    ws.inject_http_errors("/api/2.2/jobs/runs/get", [503] * 100)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        w.jobs.get_run(1)
    assert time.monotonic() - started < 4
    ws.inject_http_errors("/api/2.2/jobs/runs/get", [500])
    with pytest.raises(errors.InternalError):
        w.jobs.get_run(1)


def test_workspace_upload_mkdirs_status_and_export(ws):
    w = ws.client()
    code = b"print('lh360 job')\n"
    # like the service, import needs the parent folder
    with pytest.raises(errors.NotFound, match="parent folder"):
        w.workspace.upload("/Shared/lh360/job.py", io.BytesIO(code), format=workspace.ImportFormat.AUTO)
    w.workspace.mkdirs("/Shared/lh360")
    w.workspace.upload("/Shared/lh360/job.py", io.BytesIO(code), format=workspace.ImportFormat.AUTO)
    info = w.workspace.get_status("/Shared/lh360/job.py")
    assert info.object_type == workspace.ObjectType.FILE and info.size == len(code)
    assert w.workspace.get_status("/Shared/lh360").object_type == workspace.ObjectType.DIRECTORY
    assert ws.file("/Shared/lh360/job.py") == code
    upload = ws.requests_to("/workspace/import")[-1]
    assert upload.body["path"] == "/Shared/lh360/job.py" and upload.body["format"] == "AUTO"

    with pytest.raises(errors.ResourceAlreadyExists):
        w.workspace.upload("/Shared/lh360/job.py", io.BytesIO(b"x"), format=workspace.ImportFormat.AUTO)
    w.workspace.import_(
        "/Shared/lh360/job.py",
        content=base64.b64encode(b"v2").decode(),
        format=workspace.ImportFormat.AUTO,
        overwrite=True,
    )
    assert w.workspace.download("/Shared/lh360/job.py").read() == b"v2"
    assert base64.b64decode(w.workspace.export("/Shared/lh360/job.py").content) == b"v2"
    # SOURCE + a language is a notebook (not runnable as a spark_python_task file)
    w.workspace.upload("/Shared/lh360/nb.py", io.BytesIO(b"1"))
    assert w.workspace.get_status("/Shared/lh360/nb.py").object_type == workspace.ObjectType.NOTEBOOK
    assert sorted(o.path for o in w.workspace.list("/Shared/lh360")) == ["/Shared/lh360/job.py", "/Shared/lh360/nb.py"]
    with pytest.raises(errors.NotFound):
        w.workspace.get_status("/Shared/nope")


def test_sql_statement_execute_poll_and_results(ws):
    calls = []

    def handler(statement, parameters):
        calls.append((statement, parameters))
        return [("uf", "STRING"), "clientes", "ativo"], [("SP", 10, True), ("RJ", None, False)]

    ws.sql_handler = handler
    ws.sql_delay_polls = 2
    w = ws.client()
    resp = w.statement_execution.execute_statement(
        statement="SELECT uf, count(*) AS clientes FROM lakehouse360.gold.x WHERE uf = :uf",
        warehouse_id="wh-1",
        wait_timeout="0s",
        parameters=[sql.StatementParameterListItem(name="uf", value="SP", type="STRING")],
    )
    assert resp.status.state == sql.StatementState.PENDING and not calls
    states = []
    while True:
        got = w.statement_execution.get_statement(resp.statement_id)
        states.append(got.status.state)
        if got.status.state not in (sql.StatementState.PENDING, sql.StatementState.RUNNING):
            break
    assert states == [sql.StatementState.RUNNING, sql.StatementState.SUCCEEDED]
    assert calls == [(calls[0][0], [{"name": "uf", "value": "SP", "type": "STRING"}])]
    cols = got.manifest.schema.columns
    assert [(c.name, c.type_name) for c in cols] == [
        ("uf", sql.ColumnInfoTypeName.STRING),
        ("clientes", sql.ColumnInfoTypeName.LONG),
        ("ativo", sql.ColumnInfoTypeName.BOOLEAN),
    ]
    assert got.result.data_array == [["SP", "10", "true"], ["RJ", None, "false"]]
    assert got.manifest.total_row_count == 2


def test_sql_statement_failures_cancel_and_validation(ws):
    def handler(statement, parameters):
        if "boom" in statement:
            raise SqlError("[TABLE_OR_VIEW_NOT_FOUND] boom", error_code="BAD_REQUEST", sql_state="42P01")
        return ["n"], []

    ws.sql_handler = handler
    w = ws.client()
    failed = w.statement_execution.execute_statement(statement="SELECT boom", warehouse_id="wh", wait_timeout="5s")
    assert failed.status.state == sql.StatementState.FAILED
    assert failed.status.error.message == "[TABLE_OR_VIEW_NOT_FOUND] boom"
    empty = w.statement_execution.execute_statement(statement="SELECT 1 WHERE false", warehouse_id="wh")
    assert empty.status.state == sql.StatementState.SUCCEEDED and empty.result.data_array is None

    ws.sql_delay_polls = 3
    slow = w.statement_execution.execute_statement(statement="SELECT 1", warehouse_id="wh", wait_timeout="0s")
    w.statement_execution.cancel_execution(slow.statement_id)
    assert w.statement_execution.get_statement(slow.statement_id).status.state == sql.StatementState.CANCELED
    timed_out = w.statement_execution.execute_statement(
        statement="SELECT 1",
        warehouse_id="wh",
        wait_timeout="5s",
        on_wait_timeout=sql.ExecuteStatementRequestOnWaitTimeout.CANCEL,
    )
    assert timed_out.status.state == sql.StatementState.CANCELED
    with pytest.raises(errors.InvalidParameterValue, match="wait_timeout"):
        w.statement_execution.execute_statement(statement="SELECT 1", warehouse_id="wh", wait_timeout="60s")


def test_unity_catalog_schemas_and_tables(ws):
    w = ws.client()
    w.schemas.create(name="bronze", catalog_name="lakehouse360", storage_root="s3://lake/bronze")
    with pytest.raises(errors.ResourceConflict):
        w.schemas.create(name="bronze", catalog_name="lakehouse360")
    assert w.schemas.get("lakehouse360.bronze").full_name == "lakehouse360.bronze"
    with pytest.raises(errors.NotFound):
        w.schemas.get("lakehouse360.gold")
    t = w.tables.create(
        name="clientes",
        catalog_name="lakehouse360",
        schema_name="bronze",
        table_type=catalog.TableType.EXTERNAL,
        data_source_format=catalog.DataSourceFormat.DELTA,
        storage_location="s3://lake/bronze/clientes",
    )
    assert t.full_name == "lakehouse360.bronze.clientes"
    got = w.tables.get("lakehouse360.bronze.clientes")
    assert got.storage_location == "s3://lake/bronze/clientes" and got.table_type == catalog.TableType.EXTERNAL
    assert w.tables.exists("lakehouse360.bronze.clientes").table_exists is True
    assert w.tables.exists("lakehouse360.bronze.nope").table_exists is False
    assert [s.name for s in w.schemas.list(catalog_name="lakehouse360")] == ["bronze"]
    with pytest.raises(errors.NotFound):
        w.tables.get("lakehouse360.bronze.nope")


def test_unimplemented_endpoint_says_so(ws):
    with pytest.raises(errors.NotFound, match=r"FakeWorkspace does not implement GET /api/2\.\d/clusters/list"):
        list(ws.client().clusters.list())


def test_an_unknown_cluster_answers_as_the_service_does(ws):
    # the service answers 400 INVALID_PARAMETER_VALUE; the SDK's own override maps it to ResourceDoesNotExist
    with pytest.raises(errors.ResourceDoesNotExist, match="Cluster abc does not exist"):
        ws.client().clusters.get("abc")
    ws.clusters["abc"] = {"cluster_name": "etl", "data_security_mode": "USER_ISOLATION"}
    got = ws.client().clusters.get("abc")
    assert got.cluster_name == "etl" and got.data_security_mode.value == "USER_ISOLATION"


def test_isolation_refuses_non_loopback_hosts(ws):
    with pytest.raises(OSError, match="non-loopback"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with pytest.raises(OSError, match="DNS lookup"):
        socket.getaddrinfo("example.com", 443)
