"""`lh360 maintain` and the `maintenance:` policy `lh360 run` follows: compaction, checkpoints, log cleanup
and VACUUM of every lake table (ledgers and quarantine included), rows never changed, exactly once kept."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import read_table
from tests.test_maintain_exactly_once import landed, spec

SHORT = ("--retain", "0", "--allow-short-retention", "--log-retain", "0")
TABLES = ("bronze.ev", "silver.ev", "quarantine.ev", "gold.ev_count")


def ok(run_cli, p, *args: str) -> dict:
    code, out, err = run_cli(*args, "--json", cwd=p.root)
    assert code == 0, err
    return json.loads(out)


def hourly(p, run_cli, n0: int, runs: int) -> None:
    """`runs` cron hours: one landing file each, then `lh360 run`."""
    for i in range(n0, n0 + runs):
        landed(p, i, 1, bad={3})
        ok(run_cli, p, "run", "ev")


def files_on_disk(folder: Path) -> tuple[int, int]:
    """(Parquet files, bytes) under a table folder, whatever the log says."""
    found = [f for f in folder.rglob("*.parquet") if "_delta_log" not in f.parts]
    return len(found), sum(f.stat().st_size for f in found)


def log_files(folder: Path) -> list[str]:
    return sorted(f.name for f in (folder / "_delta_log").iterdir() if f.name[:1].isdigit())


def rows(p) -> dict[str, list]:
    keys = {"bronze.ev": "id", "silver.ev": "id", "quarantine.ev": "id", "gold.ev_count": "n"}
    out = {}
    for relation, key in keys.items():
        got = read_table(p.root, relation, order_by=key)
        out[relation] = [{k: v for k, v in r.items() if k not in ("_ingested_at",)} for r in got]
    return out


@pytest.mark.slow
def test_maintain_shrinks_every_table_and_its_log_and_changes_no_row(project, run_cli):
    from lh360.delta import open_table
    from lh360.engines.local.refine import built_with, spec_hash

    s = spec()
    s["checks"] = {"silver.ev": [{"row_count": {"min": 1}}]}
    p = project(s)
    hourly(p, run_cli, 0, 6)
    before = rows(p)
    disk = {t: files_on_disk(p.lake / t.replace(".", "/")) for t in TABLES}
    doc = ok(run_cli, p, "maintain", *SHORT)
    by_relation = {r["relation"]: r for r in doc["maintenance"]}
    assert set(by_relation) == {*TABLES, "lh360.runs", "lh360.checks"}
    for relation in (*TABLES, "lh360.runs"):
        r = by_relation[relation]
        assert r["done"] == ["compact", "vacuum", "checkpoint", "log_cleanup"] or r["skipped"] == {
            "compact": "no small files to bin-pack"
        }, r
        assert r["files_after"] == 1
    assert by_relation["bronze.ev"]["compacted_files"] == 6
    assert by_relation["lh360.runs"]["files_before"] > 30
    assert rows(p) == before  # not one row changed
    for t in TABLES:
        count, size = files_on_disk(p.lake / t.replace(".", "/"))
        assert count == 1 and size <= disk[t][1], (t, count, disk[t])
    # log cleanup keeps the checkpoint before the newest (a process may have listed the log just before the
    # newest was written): after another hour, the next maintain removes what precedes this one's checkpoint
    first = {t: by_relation[t]["checkpoint_version"] for t in TABLES}
    hourly(p, run_cli, 6, 1)
    again = {r["relation"]: r for r in ok(run_cli, p, "maintain", *SHORT)["maintenance"]}
    for t in TABLES:
        folder = p.lake / t.replace(".", "/")
        assert again[t]["logs_removed"] > 0
        assert log_files(folder)[0] == f"{first[t]:020d}.checkpoint.parquet", log_files(folder)
    # what lh360 keeps in commit metadata was carried forward: silver still knows the spec it was built with
    assert built_with(open_table(str(p.lake / "silver" / "ev"))) == spec_hash(p.load().specs["ev"])
    # and the next hours are exactly once
    hourly(p, run_cli, 7, 2)
    assert [r["id"] for r in read_table(p.root, "bronze.ev", order_by="id")] == list(range(9))
    assert [r["id"] for r in read_table(p.root, "silver.ev", order_by="id")] == [0, 1, 2, 4, 5, 6, 7, 8]
    assert [r["id"] for r in read_table(p.root, "quarantine.ev")] == [3]
    assert read_table(p.root, "gold.ev_count") == [{"n": 8}]
    history = ok(run_cli, p, "history", "-n", "200")["runs"]
    assert {r["relation"] for r in history if r["step"] == "maintain"} >= {*TABLES, "lh360.runs", "lh360.checks"}


@pytest.mark.slow
def test_a_short_retention_needs_the_explicit_flag(project, run_cli):
    p = project(spec())
    hourly(p, run_cli, 0, 1)
    for retain in ("1d", "0", "167h"):
        code, _, err = run_cli("maintain", "--retain", retain, cwd=p.root)
        assert code == 2 and "shorter than 7 days" in err and "--allow-short-retention" in err, err
    assert ok(run_cli, p, "maintain", "--retain", "7d", "--only", "vacuum")["maintenance"]
    # in the policy too: a target or spec that asks for it says so
    cfg = yaml.safe_load(p.config.read_text())
    cfg["targets"]["local"]["maintenance"] = {"vacuum": {"retain": "1d"}}
    p.config.write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli("maintain", cwd=p.root)
    assert code == 2 and "lh360.yaml" in err and "maintenance.vacuum" in err and "allow_short_retention" in err
    cfg["targets"]["local"]["maintenance"]["vacuum"]["allow_short_retention"] = True
    p.config.write_text(yaml.safe_dump(cfg))
    ok(run_cli, p, "maintain", "--only", "vacuum")


@pytest.mark.slow
def test_maintain_bad_input_leaves_the_tables_untouched(project, run_cli):
    from lh360.lock import table_lock

    p = project(spec())
    hourly(p, run_cli, 0, 3)
    logs = {t: log_files(p.lake / t.replace(".", "/")) for t in TABLES}
    code, _, err = run_cli("maintain", "nope", cwd=p.root)
    assert code == 2 and "no spec for table nope" in err
    code, _, err = run_cli("maintain", "ev", "--only", "shrink", cwd=p.root)
    assert code == 2
    with table_lock(str(p.lake), "ev"):
        code, _, err = run_cli("maintain", "ev", cwd=p.root)
    assert code == 75 and "holds the lock" in err
    good = p.config.parent / "tables" / "ev.yaml"
    broken = yaml.safe_load(good.read_text())
    broken["maintenance"] = {"compact": {"target_size": "huge"}}
    good.write_text(yaml.safe_dump(broken))
    code, _, err = run_cli("maintain", "ev", cwd=p.root)
    assert code == 2 and "maintenance.compact.target_size" in err
    assert {t: log_files(p.lake / t.replace(".", "/")) for t in TABLES} == logs


def clean_spec() -> dict:
    """The spec without its quarantine rule: nothing is ever quarantined, there is no quarantine table."""
    s = spec()
    s["silver"]["expectations"] = []
    return s


@pytest.mark.slow
def test_run_performs_what_the_policy_says_is_due_and_reports_it(project, run_cli):
    p = project(clean_spec())
    cfg = yaml.safe_load(p.config.read_text())
    cfg["targets"]["local"]["maintenance"] = {
        "compact": {"every": "0s"},
        "checkpoint": {"every": "off"},
        "log_cleanup": {"every": "off"},
        "vacuum": {"every": "0s", "retain": "0s", "allow_short_retention": True},
    }
    p.config.write_text(yaml.safe_dump(cfg))
    landed(p, 0, 1)
    first = ok(run_cli, p, "run", "ev")
    assert first["maintenance"] == []  # the first sight of a table starts its clocks
    landed(p, 1, 1)
    second = ok(run_cli, p, "run", "ev")
    done = {r["relation"]: r["done"] for r in second["maintenance"]}
    assert done["bronze.ev"] == ["compact", "vacuum"] and done["lh360.runs"] == ["compact", "vacuum"]
    assert "quarantine.ev" not in done  # no row was ever quarantined: there is no quarantine table
    steps = [s for s in second["steps"] if s["step"] == "maintain"]
    assert {s["relation"] for s in steps} == set(done) and all(s["status"] == "ok" for s in steps)
    # a spec turns compaction off for its own tables; the ledgers keep the target's policy
    s = clean_spec()
    s["maintenance"] = {"compact": {"every": "off"}}
    p.add_spec(s)
    landed(p, 2, 1)
    third = ok(run_cli, p, "run", "ev")
    done = {r["relation"]: r["done"] for r in third["maintenance"]}
    assert done["bronze.ev"] == ["vacuum"] and done["lh360.runs"] == ["compact", "vacuum"]
    assert [r["id"] for r in read_table(p.root, "silver.ev", order_by="id")] == [0, 1, 2]


@pytest.mark.slow
def test_run_keeps_its_exit_code_and_still_maintains_when_a_check_fails(project, run_cli):
    s = spec()
    s["checks"] = {"silver.ev": [{"row_count": {"max": 0}}]}
    p = project(s)
    cfg = yaml.safe_load(p.config.read_text())
    cfg["targets"]["local"]["maintenance"] = {"compact": {"every": "0s"}}
    p.config.write_text(yaml.safe_dump(cfg))
    for i in range(2):
        landed(p, i, 1)
        code, out, _ = run_cli("run", "ev", "--json", cwd=p.root)
        assert code == 1
    doc = json.loads(out)
    assert doc["failed_step"] == "validate" and "bronze.ev" in {r["relation"] for r in doc["maintenance"]}


def test_the_policy_resolves_spec_over_target_over_defaults(project):
    from lh360.maintenance import DEFAULTS, policy

    s = spec()
    s["maintenance"] = {"vacuum": {"retain": "30d"}, "compact": {"every": "off"}}
    p = project(
        s,
        config={
            "targets": {
                "local": {
                    "engine": "local",
                    "landing": "../landing",
                    "lake": "../lake",
                    "maintenance": {"vacuum": {"every": "12h"}, "compact": {"target_size": "64MB"}},
                }
            }
        },
    )
    project_ = p.load()
    pol = policy(project_.target(), project_.specs["ev"])
    assert pol.vacuum["every"] == timedelta(hours=12) and pol.vacuum["retain"] == timedelta(days=30)
    assert pol.every("compact") is None and pol.compact["target_size"] == 64 * 1024**2
    assert pol.log_cleanup == DEFAULTS["log_cleanup"]
    target_only = policy(project_.target())
    assert target_only.vacuum["retain"] == timedelta(days=7) and target_only.every("compact") == timedelta(days=1)


def test_the_record_starts_clocks_then_says_what_is_due():
    from lh360.maintenance import Record, policy

    class T:  # a target without a maintenance section
        class settings:  # noqa: N801
            from lh360.spec import Maintenance

            maintenance = Maintenance()

    pol = policy(T)  # type: ignore[arg-type]
    r = Record("x")
    assert r.due("silver.a", pol, 1000.0) == set() and r.changed
    assert r.due("silver.a", pol, 1000.0 + 86399) == set()
    assert r.due("silver.a", pol, 1000.0 + 86400) == {"compact", "checkpoint", "log_cleanup", "vacuum"}
    r.mark("silver.a", ["vacuum"], 1000.0 + 86400)
    assert "vacuum" not in r.due("silver.a", pol, 1000.0 + 86401)


@pytest.mark.slow
def test_a_lost_or_broken_record_only_restarts_the_clocks(project, run_cli):
    p = project(spec())
    cfg = yaml.safe_load(p.config.read_text())
    cfg["targets"]["local"]["maintenance"] = {"compact": {"every": "0s"}}
    p.config.write_text(yaml.safe_dump(cfg))
    landed(p, 0, 1)
    ok(run_cli, p, "run", "ev")
    record = p.lake / "_lh360" / "state" / "ev" / "maintenance.json"
    assert json.loads(record.read_text())["done"]["bronze.ev"]["compact"] > 0
    record.write_text("{not json")
    landed(p, 1, 1)
    # the table's clocks start again: nothing of it is due yet (the ledgers' record is another one)
    assert [r["relation"] for r in ok(run_cli, p, "run", "ev")["maintenance"]] == ["lh360.runs"]
    assert json.loads(record.read_text())["done"]["bronze.ev"]["compact"] > 0
    landed(p, 2, 1)
    assert "bronze.ev" in {r["relation"] for r in ok(run_cli, p, "run", "ev")["maintenance"]}


def test_a_needless_or_platform_task_restarts_its_clock_a_missing_table_does_not():
    from lh360.engines.base import MISSING_TABLE, MaintainResult
    from lh360.maintenance import checked

    done = MaintainResult(
        relation="silver.x",
        table="x",
        engine="local",
        done=["vacuum"],
        skipped={"compact": "no small files to bin-pack", "checkpoint": "the platform does it"},
    )
    assert checked(done) == ["vacuum", "compact", "checkpoint"]
    missing = MaintainResult(relation="gold.y", table="x", engine="local", skipped={"compact": MISSING_TABLE})
    assert checked(missing) == []


@pytest.mark.slow
def test_a_daily_policy_maintains_once_a_day_even_when_compaction_has_nothing_to_do(project, run_cli, monkeypatch):
    """Hourly runs under `every: 1d`: a table whose compaction found no small files was tried again every
    hour (its clock never restarted), so maintenance ran in nearly every run."""
    import lh360.maintenance as maintenance
    from lh360.config import load_project
    from lh360.context import Lakehouse

    p = project(clean_spec())
    cfg = yaml.safe_load(p.config.read_text())
    cfg["targets"]["local"]["maintenance"] = {"log_cleanup": {"every": "off"}, "vacuum": {"every": "off"}}
    p.config.write_text(yaml.safe_dump(cfg))
    start = 1_800_000_000.0
    maintained = []
    for hour in range(30):
        monkeypatch.setattr(maintenance, "now", lambda h=hour: start + h * 3600.0)
        landed(p, hour, 1)
        project_ = load_project(p.config)
        summary = Lakehouse(project_, project_.target()).run(None)
        assert summary.ok, summary.error
        if summary.maintenance:
            maintained.append(hour)
    assert maintained == [24], maintained
