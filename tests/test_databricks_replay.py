"""`lh360 -t prod quarantine replay` on a databricks target, from the ops box against the fake workspace: one run
of the job's replay step (its payload, its summary read into the result, --json, the run ledger), and the bad
input that is refused before anything is sent (a missing table, silver's columns changed, a spec error, the
lock held) or by the job (a fail rule: exit 1), each leaving the lake as it was. The job's side: tests/spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lh360.engines.databricks import DatabricksEngine
from lh360.errors import UsageError
from tests.databricks_support import cli, deploy_to, load, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

SUBMIT = "/api/2.2/jobs/runs/submit"
REPLAYED = {
    "replay_run": 0, "resumed": False, "evaluated": 5, "passed": 3, "dropped": 1, "still_quarantined": 1,
    "inserted": 1, "updated": 1, "stale": 1, "silver_version": 7, "quarantine_version": 4,
}  # fmt: skip


@pytest.fixture
def deployed(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return project_root


def lake(root: Path) -> Path:
    return root / "lake-prod"


def built_by_the_job(root: Path, *layers: str, columns: list[str] | None = None) -> None:
    """Silver and quarantine as refine runs leave them: the spec's silver columns (quarantine with lineage)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    names = columns or list(load(root)[0].specs["clientes"].silver.columns)
    for layer in layers:
        extra = ["_failed_rules", "_source_file", "_batch_id"] if layer == "quarantine" else []
        data = {n: pa.array([None], pa.string()) for n in [*names, *extra]}
        write_deltalake(str(lake(root) / layer / "clientes"), pa.table(data))


def versions(root: Path) -> dict[str, int]:
    from deltalake import DeltaTable

    held = [layer for layer in ("silver", "quarantine") if (lake(root) / layer / "clientes" / "_delta_log").is_dir()]
    return {layer: DeltaTable(str(lake(root) / layer / "clientes")).version() for layer in held}


def sent_parameters(fake_ws, i=-1) -> list[str]:
    return fake_ws.submitted[i]["tasks"][0]["spark_python_task"]["parameters"]


def replay(root: Path, *args: str):
    return cli(root, "-t", "prod", "quarantine", "replay", "clientes", *args)


@pytest.mark.slow
def test_replay_runs_the_job_s_replay_step_and_reports_its_counts(fake_ws, deployed):
    built_by_the_job(deployed, "silver", "quarantine")
    fake_ws.script_run("success", logs=summary_line("replay", **REPLAYED))
    proc = replay(deployed, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["engine"] == "databricks" and doc["step"] == "replay"
    assert {k: doc[k] for k in REPLAYED} == REPLAYED
    assert doc["result_state"] == "SUCCESS" and doc["run_id"] == 1001

    params = sent_parameters(fake_ws)
    assert params[:2] == ["--step", "replay"]
    payload = json.loads(params[3])
    assert payload["step"] == "replay" and payload["table"] == "clientes"
    assert payload["paths"]["quarantine"].endswith("lake-prod/quarantine/clientes")
    assert payload["paths"]["silver"].endswith("lake-prod/silver/clientes")
    assert payload["tables"] == {"quarantine": "`lakehouse360`.`silver`.`clientes_quarantine`"}
    assert "state_generation" not in payload and "pii_secret" not in payload
    # the rules on columns silver hashes (cpf) or masks (email) keep refine's verdict: quarantine lacks the raw values
    assert payload["recorded_rules"] == ["cpf_11_digitos", "email_valido"]
    assert fake_ws.submitted[-1]["run_name"].startswith("lh360 replay clientes")

    history = json.loads(cli(deployed, "-t", "prod", "history", "clientes", "--json").stdout)["runs"]
    assert any(h["step"] == "replay" and h["status"] == "ok" and h["version_after"] == 7 for h in history)


@pytest.mark.slow
def test_replay_text_says_what_the_run_did(fake_ws, deployed):
    built_by_the_job(deployed, "silver", "quarantine")
    fake_ws.script_run("success", logs=summary_line("replay", **{**REPLAYED, "resumed": True}))
    proc = replay(deployed)
    assert proc.returncode == 0, proc.stderr
    assert "replay clientes: run 1001" in proc.stdout
    line = "replay clientes (finished an interrupted replay): 5 evaluated, 3 passed → silver (1 inserted, 1 updated"
    assert line in proc.stdout and "silver v7, quarantine v4" in proc.stdout

    fake_ws.script_run("success", logs=summary_line("replay", **{**REPLAYED, "replay_run": None, "passed": 0}))
    proc = replay(deployed)
    assert proc.returncode == 0 and "none passes today's rules; nothing written" in proc.stdout


def test_the_replay_s_app_transaction_follows_the_refine_generation(fake_ws, deployed):
    from lh360.engines.databricks import checkpoints
    from lh360.engines.databricks.requests import step_payload
    from lh360.spark import contract

    built_by_the_job(deployed, "silver", "quarantine")
    project, target = load(deployed)
    checkpoints.start(target, "clientes", "silver", "fr1", None)
    fake_ws.script_run("success", logs=summary_line("replay", **REPLAYED))
    result = DatabricksEngine(target, poll_interval=0.01).replay_quarantine(project.specs["clientes"])
    assert result.replay_run == 0 and result.run is not None and result.run.result_state == "SUCCESS"
    payload = contract.parse_payload(json.loads(sent_parameters(fake_ws)[3]))
    assert payload["state_generation"] == "fr1"
    assert contract.replay_writer_options(payload, 0)["txnAppId"] == "lh360-replay-clientes-gfr1"
    plan = contract.plan(contract.parse_payload(step_payload(target, project.specs["clientes"], "replay", "x")))
    assert plan["step"] == "replay" and "MERGE INTO `lakehouse360`.`silver`.`clientes`" in plan["merge_sql"]


@pytest.mark.slow
def test_a_fail_rule_exits_1_with_the_job_s_word(fake_ws, deployed):
    built_by_the_job(deployed, "silver", "quarantine")
    error = "LH360_EXPECTATION_FAILED: expectation(s) with action 'fail' failed: v_ok (4 rows)"
    logs = summary_line("replay", status="failed", error=error, error_kind="expectation_failed", exit_code=1)
    fake_ws.script_run("failed", error="exit 1", logs=logs)
    before = versions(deployed)
    proc = replay(deployed)
    assert proc.returncode == 1 and "v_ok (4 rows)" in proc.stderr
    assert versions(deployed) == before


@pytest.mark.slow
@pytest.mark.parametrize("layers", [(), ("silver",), ("quarantine",)])
def test_replay_without_silver_or_quarantine_exits_2_and_sends_nothing(fake_ws, deployed, layers):
    built_by_the_job(deployed, *layers)
    proc = replay(deployed, "--json")
    assert proc.returncode == 2, proc.stderr
    missing = "silver" if layers == ("quarantine",) else "quarantine"
    assert f"{missing}.clientes does not exist, so there is nothing to replay" in proc.stderr
    assert "nothing was sent" in proc.stderr
    assert not fake_ws.requests_to(SUBMIT) and versions(deployed) == {layer: 0 for layer in layers}


@pytest.mark.slow
def test_replay_while_another_run_holds_the_lock_exits_75_and_sends_nothing(fake_ws, deployed):
    from lh360.lock import table_lock

    built_by_the_job(deployed, "silver", "quarantine")
    with table_lock(str(lake(deployed)), "clientes"):
        proc = replay(deployed)
    assert proc.returncode == 75 and "holds the lock" in proc.stderr
    assert not fake_ws.requests_to(SUBMIT) and versions(deployed) == {"silver": 0, "quarantine": 0}


@pytest.mark.slow
def test_replay_after_a_spec_error_exits_2_and_sends_nothing(fake_ws, deployed):
    built_by_the_job(deployed, "silver", "quarantine")
    spec_file = deployed / "configs" / "tables" / "clientes.yaml"
    spec_file.write_text(spec_file.read_text().replace("sequence_by: updated_at", "sequence_by: nope"))
    proc = replay(deployed)
    assert proc.returncode == 2 and "sequence_by" in proc.stderr
    assert not fake_ws.requests_to(SUBMIT) and versions(deployed) == {"silver": 0, "quarantine": 0}


@pytest.mark.slow
def test_replay_after_silver_columns_changed_points_to_a_full_refresh_and_sends_nothing(fake_ws, deployed):
    built_by_the_job(deployed, "silver", "quarantine", columns=["id", "cpf", "updated_at"])
    proc = replay(deployed)
    assert proc.returncode == 2 and "quarantine lacks nome" in proc.stderr
    assert "lh360 -t prod promote clientes --to silver --full-refresh" in proc.stderr
    assert not fake_ws.requests_to(SUBMIT) and versions(deployed) == {"silver": 0, "quarantine": 0}


def test_a_lake_this_box_cannot_read_lets_the_job_decide(fake_ws, deployed, monkeypatch):
    from lh360.engines.databricks import replay as replay_mod

    def unreadable(*args, **kwargs):
        raise PermissionError("AccessDenied")

    project, target = load(deployed)
    monkeypatch.setattr(replay_mod, "open_table", unreadable)
    replay_mod.check_tables(target, project.specs["clientes"])  # no refusal: the job checks the tables
    monkeypatch.undo()
    with pytest.raises(UsageError, match="quarantine.clientes does not exist"):
        replay_mod.check_tables(target, project.specs["clientes"])
