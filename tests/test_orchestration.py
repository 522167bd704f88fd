"""What the orchestration layer owns, tested in process with a scripted engine (tests/fakes/engine.py):
the order of steps, the exit code of the first failing step, locks, the run ledger and the --json shape.
The real engines are tested elsewhere; here no engine work runs, so each test takes milliseconds."""

from __future__ import annotations

import json

import pytest
import yaml

from lh360.cli import run
from lh360.errors import CheckFailed, EngineError, Interrupted, LockBusy, RunTimeout
from lh360.lock import table_lock
from tests.fakes import engine as fake


def spec(table: str, gold: dict | None = None) -> dict:
    s = {
        "table": table,
        "source": {"path": f"{table}/"},
        "landing": {"min_files": 0},
        "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "cast(id as bigint)"}},
    }
    if gold:
        s["gold"] = gold
    return s


@pytest.fixture
def project(tmp_path):
    fake.register()
    (tmp_path / "configs" / "tables").mkdir(parents=True)
    config = {"project": "t", "targets": {"t": {"engine": "fake", "landing": "../landing", "lake": "../lake"}}}
    (tmp_path / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    specs = [
        spec("a", {"a_total": {"sql": "SELECT count(*) AS n FROM silver.a"}}),
        # b's gold reads a's gold: a_total must be recomputed first
        spec("b", {"b_vs_a": {"sql": "SELECT n FROM gold.a_total JOIN silver.b ON true"}}),
    ]
    for s in specs:
        (tmp_path / "configs" / "tables" / f"{s['table']}.yaml").write_text(yaml.safe_dump(s))
    yield tmp_path
    fake.unregister()  # the registry is global: leave it as other tests expect it


def lh360(project, capsys, *args: str) -> tuple[int, str, str]:
    code = run(["--config", str(project / "configs" / "lh360.yaml"), *args])
    out, err = capsys.readouterr()
    return code, out, err


def ledger_rows(project) -> list[dict]:
    from lh360.config import load_project
    from lh360.ledger import Ledger

    p = load_project(project / "configs" / "lh360.yaml")
    return Ledger(p.target()).history(limit=100)


def test_run_all_takes_every_step_in_dependency_order(project, capsys):
    code, out, _ = lh360(project, capsys, "run", "--all", "--json")
    assert code == 0
    assert fake.FakeEngine.calls == [
        ("ingest", "a"),
        ("ingest", "b"),
        ("refine", "a"),
        ("refine", "b"),
        ("aggregate", "gold.a_total"),
        ("aggregate", "gold.b_vs_a"),
    ]
    doc = json.loads(out)  # one document
    assert doc["ok"] is True and doc["exit_code"] == 0
    assert [(s["step"], s["relation"]) for s in doc["steps"]][:3] == [
        ("landing", "landing.a"),
        ("landing", "landing.b"),
        ("ingest", "bronze.a"),
    ]
    assert doc["refine"][0]["rows_out"] == 9 and doc["aggregate"][1]["relation"] == "gold.b_vs_a"


@pytest.mark.parametrize(
    "error, code, status",
    [
        (EngineError("boom"), 3, "failed"),
        (LockBusy("another writer won"), 75, "busy"),
        (CheckFailed("a fail expectation"), 1, "failed"),
        (RunTimeout("too slow"), 4, "failed"),
        (Interrupted(15), 143, "failed"),
    ],
    ids=["engine", "lock", "check", "timeout", "sigterm"],
)
def test_the_first_failing_step_decides_the_exit_code_and_nothing_after_it_runs(project, capsys, error, code, status):
    fake.FakeEngine.script[("refine", "b")] = error
    rc, out, _ = lh360(project, capsys, "run", "--all", "--json")
    assert rc == code
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == code and doc["failed_step"] == "promote"
    assert ("aggregate", "gold.a_total") not in fake.FakeEngine.calls  # gold never ran
    rows = {(r["step"], r["relation"]): r for r in ledger_rows(project)}
    assert rows[("refine", "silver.a")]["status"] == "ok"
    assert rows[("refine", "silver.b")]["status"] == status and rows[("refine", "silver.b")]["exit_code"] == code


def test_a_held_table_lock_makes_the_run_exit_75_before_any_step(project, capsys):
    lake = str(project / "lake")
    with table_lock(lake, "b"):
        rc, out, _ = lh360(project, capsys, "run", "--all", "--json")
    assert rc == 75 and json.loads(out)["failed_step"] == "landing"
    assert fake.FakeEngine.calls == []


def test_promote_to_gold_runs_upstream_gold_first(project, capsys):
    rc, out, _ = lh360(project, capsys, "promote", "b", "--to", "gold", "--json")
    assert rc == 0
    # b's gold reads gold.a_total, which reads silver.a: silver a and b, then a_total, then b_vs_a
    assert fake.FakeEngine.calls == [
        ("refine", "a"),
        ("refine", "b"),
        ("aggregate", "gold.a_total"),
        ("aggregate", "gold.b_vs_a"),
    ]
    assert [r["relation"] for r in json.loads(out)["aggregate"]] == ["gold.a_total", "gold.b_vs_a"]


def test_ingest_failure_names_the_table_and_keeps_earlier_tables(project, capsys):
    fake.FakeEngine.script[("ingest", "b")] = EngineError("b: the landing zone is unreadable")
    rc, out, err = lh360(project, capsys, "ingest", "--all")
    assert rc == 3 and "b: the landing zone is unreadable" in err and "Traceback" not in err
    assert [(r["table"], r["status"]) for r in ledger_rows(project) if r["step"] == "ingest"] == [
        ("b", "failed"),
        ("a", "ok"),
    ]


def test_usage_errors_are_exit_2_in_json_too(project, capsys):
    rc, out, _ = lh360(project, capsys, "run", "--json")
    assert rc == 2 and json.loads(out)["error"] == "name the tables to run, or pass --all"
    rc, _, err = lh360(project, capsys, "promote", "--to", "platinum")
    assert rc == 2 and "platinum" in err


def test_plan_asks_the_engine_to_explain_each_step(project, capsys):
    rc, out, _ = lh360(project, capsys, "plan", "--to", "gold", "--json")
    assert rc == 0
    steps = json.loads(out)["steps"]
    assert [s["kind"] for s in steps] == ["ingest", "ingest", "refine", "refine", "aggregate", "aggregate"]
    assert all(s["engine"] == "fake" and s["sql"].startswith("-- ") for s in steps)
