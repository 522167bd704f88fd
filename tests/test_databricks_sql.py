"""The databricks-sql QueryRunner against the fake workspace: Statement Execution with wait_timeout 0s, our own
polling, typed results, failures (exit 3), timeouts that cancel the statement (exit 4), interrupts that cancel it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from lh360.engines.databricks.statements import DatabricksSQLRunner, make_runner
from lh360.errors import ConfigError, EngineError, Interrupted, RunTimeout
from tests.databricks_support import load, make_project
from tests.fakes.databricks_workspace import SqlError

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root


def runner(target, **kw):
    kw.setdefault("poll_interval", 0.01)
    return DatabricksSQLRunner(target, **kw)


def test_query_polls_and_converts_types(fake_ws, project_root):
    project, target = load(project_root)
    fake_ws.sql_delay_polls = 3
    ts = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.UTC)
    fake_ws.sql_handler = lambda statement, params: (
        [("n", "LONG"), ("avg", "DOUBLE"), ("renda", "DECIMAL"), ("ok", "BOOLEAN"), ("at", "TIMESTAMP"),
         ("d", "DATE"), ("s", "STRING"), ("nothing", "LONG")],
        [[42, 1.5, Decimal("10.25"), True, ts, dt.date(2025, 6, 1), "SP", None]],
    )  # fmt: skip
    r = make_runner(project, target, poll_interval=0.01)
    res = r.query("SELECT 1")
    assert res.columns == ["n", "avg", "renda", "ok", "at", "d", "s", "nothing"]
    assert res.rows == [(42, 1.5, Decimal("10.25"), True, ts, dt.date(2025, 6, 1), "SP", None)]
    (st,) = fake_ws.statements.values()
    assert res.query_id == st.statement_id
    assert st.body["wait_timeout"] == "0s" and st.body["on_wait_timeout"] == "CONTINUE"
    assert st.body["warehouse_id"] == "wh-fake-1" and st.body["catalog"] == "lakehouse360"
    assert len(fake_ws.requests_to(f"/api/2.0/sql/statements/{st.statement_id}", "GET")) == 3  # our polls


def test_names_and_dialect(fake_ws, project_root):
    _, target = load(project_root)
    r = runner(target)
    assert r.dialect == "databricks"
    assert r.table_name("silver", "clientes") == "`lakehouse360`.`silver`.`clientes`"
    assert r.table_name("gold", "select") == "`lakehouse360`.`gold`.`select`"


def test_table_version_reads_the_delta_history(fake_ws, project_root):
    _, target = load(project_root)
    fake_ws.sql_handler = lambda statement, params: (["version", "operation"], [[7, "MERGE"]])
    r = runner(target)
    assert r.table_version("silver", "clientes") == 7
    assert fake_ws.statements[r.statements[0]].body["statement"].startswith("DESCRIBE HISTORY `lakehouse360`")
    assert r.table_version("silver", "clientes") == 7 and len(r.statements) == 1  # cached


def test_a_failed_statement_is_an_engine_error_with_the_sql(fake_ws, project_root):
    _, target = load(project_root)

    def handler(statement, params):
        raise SqlError("[TABLE_OR_VIEW_NOT_FOUND] The table `x` cannot be found.", "BAD_REQUEST")

    fake_ws.sql_handler = handler
    with pytest.raises(EngineError) as exc:
        runner(target).query("SELECT * FROM x")
    assert exc.value.exit_code == 3 and "TABLE_OR_VIEW_NOT_FOUND" in exc.value.message
    assert "SELECT * FROM x" in exc.value.detail


def test_a_statement_past_the_timeout_is_cancelled_exit_4(fake_ws, project_root):
    _, target = load(project_root)
    fake_ws.sql_delay_polls = 10_000
    with pytest.raises(RunTimeout) as exc:
        runner(target, timeout=0.2).query("SELECT slow()")
    assert exc.value.exit_code == 4
    (st,) = fake_ws.statements.values()
    assert st.state == "CANCELED" and fake_ws.requests_to(f"/{st.statement_id}/cancel")


def test_timeout_from_the_target(fake_ws, tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    make_project(root, databricks={"timeout": "90s"})
    _, target = load(root)
    assert runner(target).timeout == 90


@pytest.mark.parametrize("signal_exc", [KeyboardInterrupt(), Interrupted(15)])
def test_an_interrupt_cancels_the_statement(fake_ws, project_root, monkeypatch, signal_exc):
    import lh360.engines.databricks.client as client_mod

    _, target = load(project_root)
    fake_ws.sql_delay_polls = 10_000

    def sleep(seconds):
        raise signal_exc

    monkeypatch.setattr(client_mod.time, "sleep", sleep)
    with pytest.raises(type(signal_exc)):
        runner(target).query("SELECT slow()")
    (st,) = fake_ws.statements.values()
    assert st.state == "CANCELED"


def test_throttling_is_retried(fake_ws, project_root):
    _, target = load(project_root)
    fake_ws.sql_handler = lambda statement, params: (["n"], [[1]])
    fake_ws.inject_http_errors("/api/2.0/sql/statements", [429, 503], method="POST")
    assert runner(target).query("SELECT 1").rows == [(1,)]
    assert len(fake_ws.statements) == 1


def test_no_warehouse_is_a_config_error(fake_ws, tmp_path):
    root = tmp_path / "nowh"
    root.mkdir()
    make_project(root, databricks={"warehouse_id": None})
    _, target = load(root)
    with pytest.raises(ConfigError) as exc:
        runner(target)
    assert "warehouse_id" in str(exc.value)
