"""Quarantine: the right reasons (a malformed line, a NULL key), `lh360 quarantine list`, and
`lh360 quarantine replay` (re-evaluate quarantined rows against today's rules; exactly once)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_table


def spec(**silver) -> dict:
    base = {
        "keys": ["id"],
        "sequence_by": "ts",
        "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
        "expectations": [
            {"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"},
            {"name": "not_bad", "rule": "v <> 'bad'", "action": "quarantine"},
        ],
    }
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "silver": {**base, **silver},
        "gold": {"ev_count": {"sql": "SELECT count(*) AS n FROM silver.ev"}},
    }


def rec(i: int | None, v: str = "ok", day: int = 1) -> dict:
    return {"id": i, "v": v, "ts": f"2025-01-{day:02d}T00:00:00Z"}


def ok(run_cli, p, *args: str) -> dict:
    code, out, err = run_cli(*args, "--json", cwd=p.root)
    assert code == 0, err
    return json.loads(out)


def quarantined(p) -> list[tuple]:
    got = [(r["id"], tuple(r["_failed_rules"]), r.get("_corrupt_record")) for r in read_table(p.root, "quarantine.ev")]
    return sorted(got, key=lambda t: (t[0] is None, t[0] or 0, t[1]))


@pytest.mark.slow
def test_a_malformed_line_is_quarantined_under_its_own_reason_with_its_raw_text(project, run_cli):
    p = project(spec())
    p.write_landing("ev", "a.json", [rec(1), '{"id": 2, "v": oops', rec(3, "bad")])
    doc = ok(run_cli, p, "run", "ev")
    r = doc["refine"][0]
    assert r["quarantined"] == 2 and r["rule_failures"] == {"v_set": 0, "not_bad": 1, "corrupt_record": 1}
    assert quarantined(p) == [
        (3, ("not_bad",), None),
        (None, ("corrupt_record",), '{"id": 2, "v": oops'),
    ]
    assert [x["id"] for x in read_table(p.root, "silver.ev")] == [1]


@pytest.mark.slow
def test_a_row_with_a_null_key_never_enters_silver(project, run_cli):
    p = project(spec(keys=["id", "v"]))
    p.write_landing("ev", "a.json", [rec(1), rec(None), {"id": 4, "v": None, "ts": "2025-01-01T00:00:00Z"}])
    r = ok(run_cli, p, "run", "ev")["refine"][0]
    assert r["rule_failures"] == {"v_set": 1, "not_bad": 1, "null_key": 2}
    assert quarantined(p) == [(4, ("null_key", "v_set", "not_bad"), None), (None, ("null_key",), None)]
    # promoted again (a replayed batch, a full refresh): still never in silver, never twice in quarantine
    ok(run_cli, p, "promote", "ev", "--to", "silver", "--full-refresh")
    assert [x["id"] for x in read_table(p.root, "silver.ev")] == [1]
    assert len(quarantined(p)) == 2


def test_null_key_and_corrupt_record_are_reserved_rule_names(project, run_cli):
    s = spec(expectations=[{"name": "null_key", "rule": "id > 0", "action": "drop"}])
    p = project(s)
    code, _, err = run_cli("lint", cwd=p.root)
    assert code == 2 and "null_key" in err and "quarantine reason" in err


# ---- quarantine list ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_list_counts_quarantined_rows_by_rule_and_batch(project, run_cli):
    p = project(spec())
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad"), '{"broken'])
    ok(run_cli, p, "run", "ev")
    p.write_landing("ev", "b.json", [rec(3, "bad"), {"id": 4, "v": None, "ts": "2025-01-01T00:00:00Z"}])
    ok(run_cli, p, "run", "ev")
    doc = ok(run_cli, p, "quarantine", "list", "ev")
    assert (doc["rows"], doc["pending"], doc["replayed"]) == (4, 4, {})
    assert doc["by_rule"] == {"corrupt_record": 1, "not_bad": 3, "v_set": 1}
    groups = [(g["rule"], g["batch_id"], g["rows"]) for g in doc["groups"]]
    assert groups == [("corrupt_record", 0, 1), ("not_bad", 0, 1), ("not_bad", 1, 2), ("v_set", 1, 1)]
    code, out, _ = run_cli("quarantine", "list", "ev", cwd=p.root)
    assert code == 0 and "not_bad" in out and "4 row(s): 4 pending" in out


@pytest.mark.slow
def test_list_and_replay_of_a_table_without_quarantine_are_usage_errors(project, run_cli):
    p = project(spec(expectations=[]))
    p.write_landing("ev", "a.json", [rec(1)])
    ok(run_cli, p, "run", "ev")
    for verb in ("list", "replay"):
        code, _, err = run_cli("quarantine", verb, "ev", cwd=p.root)
        assert code == 2 and "quarantine.ev" in err, err
        code, _, err = run_cli("quarantine", verb, "nope", cwd=p.root)
        assert code == 2 and "no spec for table nope" in err


# ---- quarantine replay -----------------------------------------------------------------------------------


def silver(p) -> list[tuple]:
    return [(r["id"], r["v"], r["ts"].day) for r in read_table(p.root, "silver.ev", order_by="id, ts")]


def seeded(project, run_cli, **silver_spec):
    """Silver 1 ok, 2 ok (day 3), 4 ok (day 2); quarantined: 2 bad (day 1, older than silver's), 3 bad,
    4 bad (day 5, newer than silver's), a malformed line and a NULL key."""
    p = project(spec(**silver_spec))
    p.write_landing("ev", "a.json", [rec(1), rec(2, "bad", 1), rec(3, "bad"), rec(4, "ok", 2), '{"x'])
    ok(run_cli, p, "run", "ev")
    p.write_landing("ev", "b.json", [rec(2, "ok", 3), rec(4, "bad", 5), rec(None, "ok")])
    ok(run_cli, p, "run", "ev")
    return p


@pytest.mark.slow
def test_replay_merges_what_passes_today_by_the_sequence_rules_exactly_once(project, run_cli):
    p = seeded(project, run_cli)
    assert silver(p) == [(1, "ok", 1), (2, "ok", 3), (4, "ok", 2)]
    # nothing passes the rules as they are: nothing is written
    versions = ok(run_cli, p, "tables")["tables"]
    doc = ok(run_cli, p, "quarantine", "replay", "ev")
    assert (doc["replay_run"], doc["evaluated"], doc["passed"], doc["still_quarantined"]) == (None, 5, 0, 5)
    assert [t["version"] for t in ok(run_cli, p, "tables")["tables"]] == [t["version"] for t in versions]
    # the rule is fixed: 'bad' is fine after all
    p.add_spec(spec(expectations=[{"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"}]))
    doc = ok(run_cli, p, "quarantine", "replay", "ev")
    assert (doc["replay_run"], doc["evaluated"], doc["passed"], doc["still_quarantined"]) == (0, 5, 3, 2)
    # 3 is new; 4's day 5 beats silver's day 2; 2's day 1 is older than silver's day 3: silver keeps day 3
    assert (doc["inserted"], doc["updated"], doc["stale"]) == (1, 1, 1)
    assert silver(p) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5)]
    listing = ok(run_cli, p, "quarantine", "list", "ev")
    assert listing["rows"] == 5 and listing["pending"] == 2 and listing["replayed"] == {"merged": 3}
    assert listing["by_rule"] == {"corrupt_record": 1, "null_key": 1}  # malformed lines and NULL keys stay
    # again: nothing left that passes; and the pipeline goes on from where it was
    assert ok(run_cli, p, "quarantine", "replay", "ev")["replay_run"] is None
    p.write_landing("ev", "c.json", [rec(5)])
    r = ok(run_cli, p, "run", "ev")["refine"][0]
    assert r["rows_in"] == 1 and r["inserted"] == 1
    assert [x["id"] for x in read_table(p.root, "silver.ev", order_by="id")] == [1, 2, 3, 4, 5]
    history = ok(run_cli, p, "history", "ev")["runs"]
    assert any(h["step"] == "replay" and h["status"] == "ok" for h in history)


@pytest.mark.slow
def test_replay_takes_out_rows_a_drop_rule_removes_now(project, run_cli):
    p = seeded(project, run_cli)
    p.add_spec(
        spec(
            expectations=[
                {"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"},
                {"name": "not_bad", "rule": "v <> 'bad'", "action": "drop"},
            ]
        )
    )
    doc = ok(run_cli, p, "quarantine", "replay", "ev")
    assert (doc["passed"], doc["dropped"], doc["inserted"] + doc["updated"]) == (0, 3, 0)
    assert silver(p) == [(1, "ok", 1), (2, "ok", 3), (4, "ok", 2)]
    assert ok(run_cli, p, "quarantine", "list", "ev")["replayed"] == {"dropped": 3}


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_replay_is_exactly_once_across_a_crash_between_its_two_commits(project, run_cli, monkeypatch, scd):
    from lh360.engines.local import replay as replay_mod

    p = seeded(project, run_cli, scd=scd)
    p.add_spec(spec(scd=scd, expectations=[]))
    target, s = p.target(), p.load().specs["ev"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(replay_mod, "_merge", killed)
        with pytest.raises(KeyboardInterrupt):
            replay_mod.replay(target, s)
    # quarantine holds the marks of replay 0, silver does not: the rerun finishes replay 0
    r = replay_mod.replay(target, s)
    assert r.resumed and r.replay_run == 0 and r.passed == 3 and r.stale == 1
    # SCD1: 3 inserted, 4 updated; SCD2: both appended as versions, 4's old current row closed
    assert (r.inserted, r.updated) == ((1, 1) if scd == 1 else (2, 1))
    again = replay_mod.replay(target, s)
    assert again.replay_run is None and again.evaluated == 2
    current = [x for x in silver(p) if scd == 1] or [
        (x["id"], x["v"], x["ts"].day) for x in read_table(p.root, "silver.ev", order_by="id") if x["is_current"]
    ]
    assert current == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5)]
    if scd == 2:  # the newer version of 4 closed the current one: history kept
        assert [(x["id"], x["ts"].day) for x in read_table(p.root, "silver.ev", order_by="id, ts")].count((4, 2)) == 1


@pytest.mark.slow
def test_replay_bad_input_leaves_the_data_untouched(project, run_cli):
    from lh360.lock import table_lock

    p = seeded(project, run_cli)

    def versions() -> list:
        return [(t["relation"], t["rows"], t["version"]) for t in ok(run_cli, p, "tables")["tables"]]

    before = versions()
    p.add_spec(spec(expectations=[{"name": "v_ok", "rule": "v = 'ok'", "action": "fail"}]))
    code, _, err = run_cli("quarantine", "replay", "ev", cwd=p.root)
    assert code == 1 and "action fail" in err and "nothing was written" in err
    p.add_spec(spec(expectations=[]))
    with table_lock(str(p.lake), "ev"):
        code, _, err = run_cli("quarantine", "replay", "ev", cwd=p.root)
    assert code == 75 and "holds the lock" in err
    good = p.config.parent / "tables" / "ev.yaml"
    good.write_text(good.read_text().replace("sequence_by: ts", "sequence_by: nope"))
    code, _, err = run_cli("quarantine", "replay", "ev", cwd=p.root)
    assert code == 2 and "sequence_by" in err
    p.add_spec(
        spec(expectations=[], columns={"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)", "w": "v"})
    )
    code, _, err = run_cli("quarantine", "replay", "ev", cwd=p.root)
    assert code == 2 and "quarantine lacks w" in err and "--full-refresh" in err
    assert versions() == before


def test_replay_on_the_databricks_engine_checks_the_lake_before_it_sends_anything(tmp_path):
    """The Databricks engine replays too (tests/test_databricks_replay.py); a table with no quarantine is
    refused as on the local engine, before any workspace call (this engine has no client to make one)."""
    from lh360.engines.databricks import DatabricksEngine
    from lh360.errors import UsageError
    from tests.databricks_support import load, make_project

    make_project(tmp_path)
    project, target = load(tmp_path)
    with pytest.raises(UsageError, match="quarantine.clientes does not exist.*nothing was sent"):
        DatabricksEngine(target, client=object()).replay_quarantine(project.specs["clientes"])


@pytest.mark.slow
def test_replay_of_a_table_with_personal_data_protects_it_once(project, run_cli):
    """Quarantine holds silver's columns as silver stores them: a column `silver.pii` drops is in neither
    table (replay does not ask for it), and a hashed one is merged as quarantine holds it, never hashed twice."""
    pii = {"ts_raw": {"kind": "other", "silver": "drop"}, "v_hash": {"kind": "other", "silver": "hash"}}
    columns = {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)", "ts_raw": "ts", "v_hash": "v"}
    p = seeded(project, run_cli, columns=columns, pii=pii)
    assert "ts_raw" not in read_table(p.root, "quarantine.ev")[0]
    hashes = {r["v"]: r["v_hash"] for r in read_table(p.root, "silver.ev")}  # as refine stores them
    p.add_spec(
        spec(
            columns=columns,
            pii=pii,
            expectations=[{"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"}],
        )
    )
    doc = ok(run_cli, p, "quarantine", "replay", "ev")
    assert (doc["passed"], doc["inserted"], doc["updated"], doc["stale"]) == (3, 1, 1, 1)
    assert silver(p) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5)]
    rows = read_table(p.root, "silver.ev")
    assert "ts_raw" not in rows[0]
    bad = {r["v_hash"] for r in rows if r["v"] == "bad"}
    assert len(bad) == 1 and bad != {hashes["ok"]}
    p.write_landing("ev", "c.json", [rec(9, "bad")])  # refine hashes 'bad' as the replay left it
    ok(run_cli, p, "run", "ev")
    assert {r["v_hash"] for r in read_table(p.root, "silver.ev") if r["v"] == "bad"} == bad


@pytest.mark.slow
def test_a_rule_on_a_protected_column_keeps_its_verdict_on_replay(project, run_cli):
    """Quarantine holds a hashed column as silver does, so a rule reading it cannot be judged again (the
    raw value is kept nowhere a replay may read): it keeps the verdict refine recorded in `_failed_rules`.
    Lifting another rule lets the rows through that passed this one."""
    pii = {"doc": {"kind": "other", "silver": "hash"}}
    columns = {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)", "doc": "doc"}
    rules = [
        {"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"},
        {"name": "doc_3", "rule": "length(doc) = 3", "action": "quarantine"},
    ]
    p = project(spec(columns=columns, pii=pii, expectations=rules))
    p.write_landing(
        "ev",
        "a.json",
        [
            {**rec(1, None), "doc": "abc"},  # fails v_set only
            {**rec(2, None), "doc": "abcd"},  # fails both
            {**rec(3), "doc": "abc"},
        ],
    )
    ok(run_cli, p, "run", "ev")
    p.add_spec(spec(columns=columns, pii=pii, expectations=rules[1:]))  # v may be NULL now
    doc = ok(run_cli, p, "quarantine", "replay", "ev")
    assert (doc["evaluated"], doc["passed"], doc["still_quarantined"], doc["inserted"]) == (2, 1, 1, 1)
    assert sorted(r["id"] for r in read_table(p.root, "silver.ev")) == [1, 3]
