"""Full refresh and spec drift on a `databricks` target, from the ops box against the fake workspace: `plan`
and `tables` say when silver was built with another version of its spec (silver's `lh360.spec_hash` table
property, which the job sets), `plan` shows what the job would run; `promote --full-refresh` starts a new
checkpoint generation whose first run rebuilds silver, the ledger says so; one that did not finish is finished
by the next refine; a missing bronze is refused before anything is sent. The job's side: tests/spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lh360.durations import parse_timeout
from lh360.engines.base import EngineOptions
from lh360.engines.databricks import DatabricksEngine
from lh360.engines.local.refine import spec_hash
from lh360.errors import EngineError, UsageError
from lh360.spark.contract import SPEC_HASH_PROPERTY
from tests.databricks_support import cli, deploy_to, load, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

SUBMIT = "/api/2.2/jobs/runs/submit"
OLD_RULE = """{name: email_valido, rule: "email like '%@%'", action: warn}"""
NEW_RULE = """{name: email_valido, rule: "email like '%@%'", action: quarantine}"""


@pytest.fixture
def deployed(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return project_root


def engine(target, **options):
    return DatabricksEngine(
        target, EngineOptions(timeout=parse_timeout(options.pop("timeout", None)), **options), poll_interval=0.01
    )


def lake(root: Path) -> Path:
    return root / "lake-prod"


def spec_file(root: Path) -> Path:
    return root / "configs" / "tables" / "clientes.yaml"


def change_the_spec(root: Path) -> None:
    text = spec_file(root).read_text()
    assert OLD_RULE in text
    spec_file(root).write_text(text.replace(OLD_RULE, NEW_RULE))


def built_by_the_job(root: Path, layer: str = "silver") -> None:
    """A Delta table as the job leaves it: silver carries the hash of the spec it was built with as a table
    property (written into the log as Spark writes it: delta-rs refuses to write a property it does not know,
    though it reads one)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    path = lake(root) / layer / "clientes"
    write_deltalake(str(path), pa.table({"id": [1], "_source_file": ["x.json"]}))
    if layer == "silver":
        first = path / "_delta_log" / f"{0:020d}.json"
        actions = [json.loads(line) for line in first.read_text().splitlines()]
        for action in actions:
            if "metaData" in action:
                action["metaData"]["configuration"][SPEC_HASH_PROPERTY] = spec_hash(load(root)[0].specs["clientes"])
        first.write_text("".join(json.dumps(a) + "\n" for a in actions))


def checkpoint_started(root: Path, folder: str) -> None:
    cp = lake(root) / "_lh360" / "state" / "clientes" / "checkpoint" / folder
    cp.mkdir(parents=True, exist_ok=True)
    (cp / "metadata").write_text('{"id":"x"}\n')


def marker(root: Path) -> dict:
    return json.loads((lake(root) / "_lh360" / "state" / "clientes" / "generation-silver.json").read_text())


def sent_payload(fake_ws, i=-1) -> dict:
    return json.loads(fake_ws.submitted[i]["tasks"][0]["spark_python_task"]["parameters"][3])


def refine_step(root: Path) -> dict:
    proc = cli(root, "-t", "prod", "plan", "clientes", "--to", "silver", "--json")
    assert proc.returncode == 0, proc.stderr
    return next(s for s in json.loads(proc.stdout)["steps"] if s["kind"] == "refine")


def silver_row(root: Path) -> dict:
    proc = cli(root, "-t", "prod", "tables", "--json")
    assert proc.returncode == 0, proc.stderr
    return next(r for r in json.loads(proc.stdout)["tables"] if r["relation"] == "silver.clientes")


@pytest.mark.slow
def test_plan_and_tables_say_a_full_refresh_is_due_after_a_spec_change(fake_ws, deployed):
    built_by_the_job(deployed)
    assert silver_row(deployed)["full_refresh_due"] is False
    step = refine_step(deployed)
    assert "full_refresh_due" not in step and "full_refresh_job" not in step
    assert step["payload"]["spec_hash"] == spec_hash(load(deployed)[0].specs["clientes"])

    change_the_spec(deployed)
    n = len(fake_ws.requests)
    assert silver_row(deployed)["full_refresh_due"] is True
    step = refine_step(deployed)
    assert "lh360 promote clientes --to silver --full-refresh" in step["full_refresh_due"]
    new_hash = spec_hash(load(deployed)[0].specs["clientes"])
    assert step["payload"]["spec_hash"] == new_hash and "full_refresh" not in step["payload"]  # run: incremental
    job = step["full_refresh_job"]  # what --full-refresh would have the job do
    assert job["command"] == "lh360 -t prod promote clientes --to silver --full-refresh"
    assert job["silver_sql"].startswith("CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes` USING DELTA")
    assert f"'lh360.spec_hash' = '{new_hash}'" in job["silver_sql"]
    assert job["quarantine_sql"].startswith("CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes_quarantine`")
    assert len(fake_ws.requests) == n  # plan and tables read the lake, never the workspace

    text = cli(deployed, "-t", "prod", "plan", "clientes", "--to", "silver").stdout
    assert "FULL REFRESH DUE: silver.clientes was built with another version" in text
    assert "CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes`" in text


def test_a_plain_refine_after_a_spec_change_stays_incremental_and_says_a_refresh_is_due(fake_ws, deployed):
    built_by_the_job(deployed)
    checkpoint_started(deployed, "silver")
    change_the_spec(deployed)
    project, target = load(deployed)
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=1, kept=1, rows_out=1, inserted=1))
    result = engine(target).refine(project.specs["clientes"])
    assert result.full_refresh_due and not result.full_refresh
    assert "full_refresh" not in sent_payload(fake_ws) and "state_generation" not in sent_payload(fake_ws)


@pytest.mark.slow
def test_promote_full_refresh_rebuilds_in_a_new_generation_and_the_ledger_says_so(fake_ws, deployed):
    built_by_the_job(deployed, "bronze")
    built_by_the_job(deployed)
    change_the_spec(deployed)
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=5, kept=4, rows_out=4, full_refresh=True))
    for rows in (27, 12):
        fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=rows))
    proc = cli(deployed, "-t", "prod", "promote", "clientes", "--to", "gold", "--full-refresh", "--json")
    assert proc.returncode == 0, proc.stderr
    (refined,) = json.loads(proc.stdout)["refine"]
    assert refined["full_refresh"] is True and refined["full_refresh_due"] is False
    payload = sent_payload(fake_ws, 0)
    generation = marker(deployed)["generation"]
    assert payload["full_refresh"] is True and payload["state_generation"] == generation
    assert payload["spec_hash"] == spec_hash(load(deployed)[0].specs["clientes"]) and "recover" not in payload
    assert marker(deployed)["full_refresh"] == "done"  # the run was seen to succeed

    runs = json.loads(cli(deployed, "-t", "prod", "history", "clientes", "--json").stdout)["runs"]
    detail = {r["relation"]: json.loads(r["detail"] or "{}") for r in runs}
    assert detail["silver.clientes"]["full_refresh"] is True
    assert detail["gold.clientes_por_uf"]["full_refresh"] is True

    # the next plain refine runs on in that generation, incrementally
    checkpoint_started(deployed, f"silver-g{generation}")
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=0))
    project, target = load(deployed)
    engine(target).refine(project.specs["clientes"])
    assert sent_payload(fake_ws)["state_generation"] == generation and "full_refresh" not in sent_payload(fake_ws)


def test_a_full_refresh_that_did_not_finish_is_finished_by_the_next_refine(fake_ws, deployed):
    built_by_the_job(deployed, "bronze")
    built_by_the_job(deployed)
    project, target = load(deployed)
    fake_ws.script_run("failed", error="the driver died")
    with pytest.raises(EngineError):
        engine(target).refine(project.specs["clientes"], full_refresh=True)
    generation = marker(deployed)["generation"]
    assert marker(deployed)["full_refresh"] == "pending"

    # no checkpoint of that generation yet while silver holds data: not a lost checkpoint, a refresh to finish
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=5, full_refresh=True))
    result = engine(target).refine(project.specs["clientes"])
    payload = sent_payload(fake_ws)
    assert payload["full_refresh"] is True and payload["state_generation"] == generation
    assert result.full_refresh and marker(deployed)["full_refresh"] == "done"


def test_a_new_checkpoint_started_while_a_full_refresh_is_unfinished_carries_it_on(fake_ws, deployed):
    built_by_the_job(deployed, "bronze")
    built_by_the_job(deployed)
    project, target = load(deployed)
    fake_ws.script_run("failed", error="the driver died")
    with pytest.raises(EngineError):
        engine(target).refine(project.specs["clientes"], full_refresh=True)
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=5, full_refresh=True))
    engine(target, new_checkpoint="again").refine(project.specs["clientes"])
    payload = sent_payload(fake_ws)
    assert payload["state_generation"] == "again" and payload["full_refresh"] is True and "recover" not in payload
    assert marker(deployed)["generation"] == "again" and marker(deployed)["full_refresh"] == "done"


def test_a_full_refresh_without_bronze_is_refused_and_sends_nothing(fake_ws, deployed):
    built_by_the_job(deployed)
    project, target = load(deployed)
    with pytest.raises(UsageError, match="bronze.clientes does not exist, so there is nothing to rebuild") as exc:
        engine(target).refine(project.specs["clientes"], full_refresh=True)
    assert exc.value.exit_code == 2
    assert not fake_ws.requests_to(SUBMIT)
    assert not (lake(deployed) / "_lh360" / "state" / "clientes" / "generation-silver.json").exists()


def test_quarantine_replay_after_a_column_change_is_refused_with_the_way_out(fake_ws, deployed):
    """Quarantine holds silver's columns as they were: a spec that gives silver another one takes a full refresh."""
    built_by_the_job(deployed)
    built_by_the_job(deployed, "quarantine")
    project, target = load(deployed)
    with pytest.raises(UsageError, match="quarantine lacks cpf.*promote clientes --to silver --full-refresh"):
        DatabricksEngine(target).replay_quarantine(project.specs["clientes"])
    assert not fake_ws.requests_to(SUBMIT)
