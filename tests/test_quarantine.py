"""Quarantine: the right reasons (a malformed line, a NULL key), `lh360 quarantine list`, and
`lh360 quarantine replay` (re-evaluate quarantined rows against today's rules; exactly once)."""

from __future__ import annotations

import json

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
