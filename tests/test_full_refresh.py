"""`promote --full-refresh`: silver rebuilt from all of bronze (gold from silver), each replaced in one commit,
quarantine recomputed, the spec hash recorded; and a rebuilt bronze refused until then (no rows skipped)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import read_table


def spec(**silver) -> dict:
    base = {
        "keys": ["id"],
        "sequence_by": "ts",
        "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
        "expectations": [{"name": "not_bad", "rule": "v <> 'bad'", "action": "quarantine"}],
    }
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "silver": {**base, **silver},
        "gold": {"ev_count": {"sql": "SELECT count(*) AS n FROM silver.ev"}},
    }


def rec(i: int, v: str = "ok", day: int = 1) -> dict:
    return {"id": i, "v": v, "ts": f"2025-01-{day:02d}T00:00:00Z"}


def ok(run_cli, p, *args: str) -> dict:
    code, out, err = run_cli(*args, "--json", cwd=p.root)
    assert code == 0, err
    return json.loads(out)


def versions(p) -> dict[str, int | None]:
    from lh360.delta import open_table

    out = {}
    for layer in ("silver", "quarantine"):
        dt = open_table(str(p.lake / layer / "ev"))
        out[layer] = None if dt is None else dt.version()
    return out


def last_commit(p, layer: str = "silver") -> dict:
    from lh360.delta import open_table

    return open_table(str(p.lake / layer / "ev")).history(1)[0]


@pytest.mark.slow
def test_a_rebuilt_bronze_is_refused_until_a_full_refresh(project, run_cli):
    """The review's case: bronze deleted and ingested again from landing; silver skipped ids 4-6 forever."""
    p = project(spec())
    for i in (1, 2, 3):
        p.write_landing("ev", f"{i}.json", [rec(i, "old")])
        ok(run_cli, p, "ingest", "ev")
        ok(run_cli, p, "promote", "ev", "--to", "silver")
    shutil.rmtree(p.lake / "bronze" / "ev")
    shutil.rmtree(p.lake / "_lh360" / "state" / "ev")
    before = read_table(p.root, "silver.ev", order_by="id")
    for i in (4, 5, 6, 7):
        p.write_landing("ev", f"{i}.json", [rec(i, "new", 2)])
        ok(run_cli, p, "ingest", "ev")
        code, out, err = run_cli("promote", "ev", "--to", "silver", cwd=p.root)
        assert code == 3, (code, err)
        assert "was rebuilt" in err and "lh360 promote ev --to silver --full-refresh" in err
        assert err.count("\n") == 1  # one line, no traceback
        assert read_table(p.root, "silver.ev", order_by="id") == before  # untouched
    doc = ok(run_cli, p, "promote", "ev", "--to", "silver", "--full-refresh")
    assert doc["refine"][0]["full_refresh"] is True
    assert [r["id"] for r in read_table(p.root, "silver.ev", order_by="id")] == [1, 2, 3, 4, 5, 6, 7]
    # and from then on incremental promotes work on the new bronze
    p.write_landing("ev", "8.json", [rec(8)])
    ok(run_cli, p, "ingest", "ev")
    assert ok(run_cli, p, "promote", "ev", "--to", "silver")["refine"][0]["inserted"] == 1


def test_a_watermark_older_than_the_table_id_is_checked_by_version_batch_and_creation_time():
    from types import SimpleNamespace

    from lh360.engines.local.refine import BronzeRebuilt, Watermark, _check_bronze

    table = SimpleNamespace(table="ev")

    def bronze(version: int, created: int, id_: str = "b"):
        meta = SimpleNamespace(id=id_, created_time=created)
        return SimpleNamespace(version=lambda: version, metadata=lambda: meta)

    legacy = Watermark(version=5, batch=4, timestamp=1_000)
    _check_bronze(table, bronze(7, 500), legacy, 6)  # the same table, further on: fine
    for dt, batch in ((bronze(3, 500), 6), (bronze(7, 500), 2), (bronze(9, 2_000), 8)):
        with pytest.raises(BronzeRebuilt, match="--full-refresh"):
            _check_bronze(table, dt, legacy, batch)
    with pytest.raises(BronzeRebuilt, match="table id"):
        _check_bronze(table, bronze(9, 500, "new"), Watermark(version=5, batch=4, bronze_id="old"), 8)


@pytest.mark.slow
def test_full_refresh_after_a_spec_change_rebuilds_silver_and_quarantine_in_one_commit_each(project, run_cli):
    from lh360.engines.local.refine import spec_hash

    p = project(spec())
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad"), rec(3, "worse")])
    ok(run_cli, p, "ingest", "ev")
    ok(run_cli, p, "promote", "ev", "--to", "gold")
    p.write_landing("ev", "b.json", [rec(1, "ok2", 2), rec(4, "worse")])
    ok(run_cli, p, "ingest", "ev")
    ok(run_cli, p, "promote", "ev", "--to", "gold")
    first_hash = last_commit(p)["lh360.spec_hash"]
    assert first_hash == spec_hash(p.load().specs["ev"])
    assert sorted(r["id"] for r in read_table(p.root, "quarantine.ev")) == [2]

    # the spec changes: a new column, another rule; an incremental run would mix old and new rows
    changed = spec(
        columns={"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)", "big": "upper(v)"},
        expectations=[{"name": "not_worse", "rule": "v <> 'worse'", "action": "quarantine"}],
    )
    p.add_spec(changed)
    new_hash = spec_hash(p.load().specs["ev"])
    before = versions(p)
    doc = ok(run_cli, p, "promote", "ev", "--to", "gold", "--full-refresh")
    r = doc["refine"][0]
    assert (r["full_refresh"], r["rows_in"], r["quarantined"], r["spec_hash"]) == (True, 5, 2, new_hash)
    assert versions(p) == {k: v + 1 for k, v in before.items()}  # one commit each
    for layer in ("silver", "quarantine"):
        commit = last_commit(p, layer)
        assert commit["operationParameters"]["mode"] == "Overwrite" and commit["lh360.full_refresh"] == "true"
    assert last_commit(p)["lh360.spec_hash"] == new_hash
    silver = read_table(p.root, "silver.ev", order_by="id")
    assert [(x["id"], x["v"], x["big"]) for x in silver] == [(1, "ok2", "OK2"), (2, "bad", "BAD")]
    assert sorted((x["id"], tuple(x["_failed_rules"])) for x in read_table(p.root, "quarantine.ev")) == [
        (3, ("not_worse",)),
        (4, ("not_worse",)),
    ]
    assert read_table(p.root, "gold.ev_count") == [{"n": 2}]
    # the run ledger says so, for silver and for gold
    runs = ok(run_cli, p, "history", "ev")["runs"]
    latest = {x["step"]: json.loads(x["detail"] or "{}") for x in reversed(runs)}
    assert latest["refine"]["full_refresh"] is True and latest["aggregate"] == {"full_refresh": True}
    # later incremental runs carry the hash silver was built with
    p.write_landing("ev", "c.json", [rec(5)])
    ok(run_cli, p, "ingest", "ev")
    assert ok(run_cli, p, "promote", "ev", "--to", "silver")["refine"][0]["inserted"] == 1
    assert last_commit(p)["lh360.spec_hash"] == new_hash


@pytest.mark.slow
def test_an_incremental_run_on_a_changed_spec_keeps_the_hash_silver_was_built_with(project, run_cli):
    from lh360.delta import open_table
    from lh360.engines.local.refine import built_with, spec_hash

    p = project(spec())
    p.write_landing("ev", "a.json", [rec(1)])
    ok(run_cli, p, "ingest", "ev")
    ok(run_cli, p, "promote", "ev", "--to", "silver")
    old = spec_hash(p.load().specs["ev"])
    p.add_spec(spec(expectations=[]))
    p.write_landing("ev", "b.json", [rec(2)])
    ok(run_cli, p, "ingest", "ev")
    ok(run_cli, p, "promote", "ev", "--to", "silver")
    silver = open_table(str(p.lake / "silver" / "ev"))
    assert built_with(silver) == old != spec_hash(p.load().specs["ev"])
    assert silver.history(1)[0]["lh360.run_spec_hash"] == spec_hash(p.load().specs["ev"])


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_full_refresh_equals_a_first_promote_of_the_same_bronze(project, scd):
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.refine import refine

    p = project(spec(scd=scd, partition_by=["v"]))
    target = p.target()
    # SCD1 takes a late older version (day 2 after day 3) the same either way; SCD2 appends only versions
    # newer than the current row, where a full refresh puts a late one in its place in the history
    late = 2 if scd == 1 else 4
    for n, batch in enumerate(([rec(1), rec(2, "bad")], [rec(1, "x", 3), rec(3, day=2)], [rec(1, "y", late)])):
        p.write_landing("ev", f"{n}.json", batch)
        ingest(target, p.load().specs["ev"])
        refine(target, p.load().specs["ev"])
    incremental = read_table(p.root, "silver.ev", order_by="id, ts")
    r = refine(target, p.load().specs["ev"], full_refresh=True)
    assert r.full_refresh and r.run == 3 and r.bronze_from is None
    assert read_table(p.root, "silver.ev", order_by="id, ts") == incremental
    assert len(read_table(p.root, "quarantine.ev")) == 1  # recomputed, not appended again


@pytest.mark.slow
def test_full_refresh_bad_input_leaves_the_data_untouched(project, run_cli):
    from lh360.lock import table_lock

    p = project(spec())
    # no bronze yet: nothing to rebuild from
    code, _, err = run_cli("promote", "ev", "--to", "silver", "--full-refresh", cwd=p.root)
    assert code == 2 and "does not exist" in err and not (p.lake / "silver").exists()
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad")])
    ok(run_cli, p, "ingest", "ev")
    ok(run_cli, p, "promote", "ev", "--to", "gold")
    before = versions(p)
    # an unknown table
    code, _, err = run_cli("promote", "nope", "--to", "silver", "--full-refresh", cwd=p.root)
    assert code == 2, err
    # another run holds the lock
    with table_lock(str(p.lake), "ev"):
        code, _, err = run_cli("promote", "ev", "--to", "silver", "--full-refresh", cwd=p.root)
    assert code == 75 and "holds the lock" in err
    # a spec error
    good = p.config.parent / "tables" / "ev.yaml"
    text = good.read_text()
    broken = yaml.safe_load(text)
    broken["silver"]["keys"] = ["nope"]
    good.write_text(yaml.safe_dump(broken))
    code, _, err = run_cli("promote", "ev", "--to", "silver", "--full-refresh", cwd=p.root)
    assert code == 2 and "keys" in err
    good.write_text(text)
    # bronze deleted after silver was built: silver stays as it is
    shutil.rmtree(p.lake / "bronze" / "ev")
    code, _, err = run_cli("promote", "ev", "--to", "silver", "--full-refresh", cwd=p.root)
    assert code == 2 and "does not exist" in err
    assert versions(p) == before
    assert [r["id"] for r in read_table(p.root, "silver.ev")] == [1]


def test_an_interrupted_full_refresh_must_be_finished_by_one(project, monkeypatch):
    """Killed between its quarantine and silver commits: a plain promote would merge into the old silver
    against the rebuilt quarantine, so it says to finish the full refresh, which does."""
    from lh360.engines.local import refine as refine_mod
    from lh360.engines.local.ingest import ingest
    from lh360.errors import EngineError

    p = project(spec())
    target = p.target()
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad")])
    ingest(target, p.load().specs["ev"])
    refine_mod.refine(target, p.load().specs["ev"])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(refine_mod, "_merge", killed)
        with pytest.raises(KeyboardInterrupt):
            refine_mod.refine(target, p.load().specs["ev"], full_refresh=True)
    with pytest.raises(EngineError, match="full refresh .* was interrupted"):
        refine_mod.refine(target, p.load().specs["ev"])
    r = refine_mod.refine(target, p.load().specs["ev"], full_refresh=True)
    assert r.full_refresh and [x["id"] for x in read_table(p.root, "silver.ev")] == [1]
    assert [x["id"] for x in read_table(p.root, "quarantine.ev")] == [2]
    assert refine_mod.refine(target, p.load().specs["ev"]).noop


@pytest.mark.slow
def test_plan_run_and_tables_say_when_a_full_refresh_is_due_and_run_never_does_one(project, run_cli):
    from lh360.engines.local.refine import spec_hash

    p = project(spec())
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad")])
    first = ok(run_cli, p, "run", "ev")
    assert first["full_refresh_due"] == []
    silver = next(r for r in ok(run_cli, p, "tables")["tables"] if r["relation"] == "silver.ev")
    assert silver["full_refresh_due"] is False
    built = spec_hash(p.load().specs["ev"])
    p.add_spec(spec(expectations=[]))  # the rule is gone: row 2 would be in silver after a rebuild
    # plan
    plan = ok(run_cli, p, "plan", "ev", "--to", "silver")
    refine = next(s for s in plan["steps"] if s["kind"] == "refine")
    assert "--full-refresh" in refine["full_refresh_due"]
    code, out, _ = run_cli("plan", "ev", "--to", "silver", cwd=p.root)
    assert code == 0 and "full_refresh_due: silver.ev was built with another version" in out
    # tables
    silver = next(r for r in ok(run_cli, p, "tables")["tables"] if r["relation"] == "silver.ev")
    assert silver["full_refresh_due"] is True
    code, out, _ = run_cli("tables", cwd=p.root)
    assert "full refresh due: silver.ev" in out
    # run: incremental, and says so (text and --json); silver still records the spec it was built with
    p.write_landing("ev", "b.json", [rec(3)])
    doc = ok(run_cli, p, "run", "ev")
    assert doc["full_refresh_due"] == ["ev"] and doc["refine"][0]["full_refresh"] is False
    assert doc["refine"][0]["full_refresh_due"] is True and last_commit(p)["lh360.spec_hash"] == built
    code, out, _ = run_cli("run", "ev", cwd=p.root)
    assert code == 0 and "full refresh due: silver.ev" in out and "FULL REFRESH DUE" in out
    assert sorted(r["id"] for r in read_table(p.root, "silver.ev")) == [1, 3]
    # after the rebuild, nothing is due any more
    ok(run_cli, p, "promote", "ev", "--to", "gold", "--full-refresh")
    assert sorted(r["id"] for r in read_table(p.root, "silver.ev")) == [1, 2, 3]
    silver = next(r for r in ok(run_cli, p, "tables")["tables"] if r["relation"] == "silver.ev")
    assert silver["full_refresh_due"] is False
    assert ok(run_cli, p, "run", "ev")["full_refresh_due"] == []
