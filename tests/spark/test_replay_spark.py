"""Quarantine replay on the Spark job (lh360/spark/runtime.py run_replay, the `replay` step): quarantined rows
judged again against today's rules, marked in quarantine, those that pass merged into silver by sequence alone
(an older or equal version never replaces silver's), exactly once across a crash between marking and merging.
Silver and quarantine are DataFrames in the in-memory stand-in for Delta (conftest.MemoryTarget), whose
quarantine overwrite honours the app transaction and whose MERGE does not (as on Databricks)."""

from __future__ import annotations

import datetime as dt

import pytest

from lh360.spark import contract, runtime
from lh360.spark import transforms as T

pytestmark = pytest.mark.spark

DATA = "id bigint, v string, ts timestamp"
LINEAGE = "_failed_rules array<string>, _source_file string, _batch_id bigint, _quarantined_at timestamp, "
LINEAGE += "_corrupt_record string"
V_SET = {"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"}
NOT_BAD = {"name": "not_bad", "rule": "v <> 'bad'", "action": "quarantine"}


def day(n: int) -> dt.datetime:
    return dt.datetime(2025, 1, n)


def payload(scd: int = 1, expectations: list | None = None) -> dict:
    spec = {
        "table": "ev",
        "silver": {
            "keys": ["id"],
            "sequence_by": "ts",
            "scd": scd,
            "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
            "expectations": [V_SET] if expectations is None else expectations,
        },
    }
    paths = {"silver": "s3://lake/silver/ev", "quarantine": "s3://lake/quarantine/ev", "state": "s3://lake/_lh360/ev"}
    return contract.parse_payload({"step": "replay", "table": "ev", "catalog": "c", "spec": spec, "paths": paths})


def q(i, v, d, rules=("not_bad",), corrupt=None, batch=0):
    return (i, v, day(d) if d else None, list(rules), f"f{batch}.json", batch, day(28), corrupt)


# silver: 1 ok (day 1), 2 ok (day 3), 4 ok (day 2), 6 ok (day 4); quarantined: 2 bad (day 1: older than silver's),
# 3 bad (a new key), 4 bad (day 5: newer), 6 bad (day 4: silver's own sequence), a malformed line, a NULL key
SILVER = [(1, "ok", day(1)), (2, "ok", day(3)), (4, "ok", day(2)), (6, "ok", day(4))]
QUARANTINE = [
    q(2, "bad", 1),
    q(3, "bad", 1),
    q(4, "bad", 5, batch=1),
    q(6, "bad", 4, batch=1),
    q(None, None, None, rules=("corrupt_record",), corrupt='{"x'),
    q(None, "ok", 1, rules=("null_key",), batch=1),
]


@pytest.fixture
def lake(spark, memory_target_cls):
    def build(scd: int = 1, expectations: list | None = None, silver=SILVER, quarantine=QUARANTINE):
        p = payload(scd, expectations)
        target = memory_target_cls(spark, p)
        if scd == 2:
            rows = [(*r, r[2], None, True) for r in silver]
            target.silver = spark.createDataFrame(
                rows, f"{DATA}, valid_from timestamp, valid_to timestamp, is_current boolean"
            )
        else:
            target.silver = spark.createDataFrame(silver, DATA)
        target.quarantine = spark.createDataFrame(quarantine, f"{DATA}, {LINEAGE}")
        return target

    return build


def replay(spark, target) -> dict:
    return runtime.run_replay(spark, target.payload, target_factory=target.factory)


def current(target) -> list[tuple]:
    df = target.silver.where("is_current") if "is_current" in target.silver.columns else target.silver
    return sorted((r["id"], r["v"], r["ts"].day) for r in df.collect())


def quarantine_rows(target) -> list[dict]:
    return [r.asDict() for r in target.quarantine.collect()]


def marks(target) -> list[tuple]:
    rows = [(r["id"], r["v"], r.get("_replay_run"), r.get("_replay_outcome")) for r in quarantine_rows(target)]
    return sorted(rows, key=lambda t: (t[0] is None, t[0] or 0, str(t[1])))


def test_replay_merges_what_passes_by_sequence_and_marks_it_once(spark, lake):
    target = lake(expectations=[V_SET, NOT_BAD])
    nothing = replay(spark, target)  # nothing passes the rules as they are: nothing is written
    assert (nothing["replay_run"], nothing["evaluated"], nothing["passed"], nothing["still_quarantined"]) == (
        None,
        6,
        0,
        6,
    )
    assert not [c for c in target.calls if c[0] in ("mark_quarantine", "merge_replay", "record_replayed")]

    target.payload = payload()  # the rule is fixed: 'bad' is fine after all
    doc = replay(spark, target)
    assert (doc["replay_run"], doc["resumed"], doc["evaluated"], doc["passed"], doc["dropped"]) == (0, False, 6, 4, 0)
    # 3 is new, 4's day 5 beats silver's day 2; 2's day 1 is older and 6's day 4 is silver's own: silver keeps them
    assert (doc["inserted"], doc["updated"], doc["stale"], doc["still_quarantined"]) == (1, 1, 2, 2)
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5), (6, "ok", 4)]
    # every row stays in quarantine; the malformed line and the NULL key stay pending
    assert marks(target) == [
        (2, "bad", 0, "merged"),
        (3, "bad", 0, "merged"),
        (4, "bad", 0, "merged"),
        (6, "bad", 0, "merged"),
        (None, None, None, None),
        (None, "ok", None, None),
    ]
    assert target.properties["silver"][contract.REPLAY_PROPERTY] == "0"
    assert target.quarantine.where("_replay_run = 0").where("_replayed_at IS NULL").count() == 0

    again = replay(spark, target)  # nothing pending passes: replay 1 never happens
    assert (again["replay_run"], again["evaluated"], again["passed"]) == (None, 2, 0)
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5), (6, "ok", 4)]


def test_a_row_that_fails_a_drop_rule_now_leaves_quarantine_for_no_table(spark, lake):
    drop_bad = {"name": "not_bad", "rule": "v <> 'bad'", "action": "drop"}
    target = lake(expectations=[V_SET, drop_bad])
    doc = replay(spark, target)
    assert (doc["replay_run"], doc["passed"], doc["dropped"], doc["inserted"] + doc["updated"]) == (0, 0, 4, 0)
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (4, "ok", 2), (6, "ok", 4)]
    assert [m[3] for m in marks(target)] == ["dropped"] * 4 + [None, None]


def test_a_fail_rule_stops_the_replay_before_anything_is_written(spark, lake, monkeypatch, capsys):
    from lh360.spark import job

    fail = {"name": "v_ok", "rule": "v = 'ok'", "action": "fail"}
    target = lake(expectations=[V_SET, fail])
    before = marks(target)
    with pytest.raises(T.ExpectationFailed, match="v_ok \\(4 rows\\)"):  # the NULL key's 'ok' row stays: not counted
        replay(spark, target)
    assert marks(target) == before and target.calls == []
    # through the job's CLI: exit 1, the expectation named in the summary
    monkeypatch.setitem(runtime.RUNNERS, "replay", lambda s, p: runtime.run_replay(s, p, target_factory=target.factory))
    import json

    code = job.main(["--step", "replay", "--payload", json.dumps(target.payload)], spark=spark)
    summary = contract.parse_summary(capsys.readouterr().out)
    assert code == contract.EXIT_EXPECTATION_FAILED and summary["error_kind"] == "expectation_failed"
    assert marks(target) == before and target.calls == []


def test_scd2_appends_later_versions_and_counts_older_ones_stale(spark, lake):
    target = lake(scd=2)
    doc = replay(spark, target)
    assert (doc["replay_run"], doc["passed"], doc["inserted"], doc["updated"], doc["stale"]) == (0, 4, 2, 1, 2)
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5), (6, "ok", 4)]
    history = sorted((r["id"], r["v"], r["ts"].day, r["is_current"]) for r in target.silver.where("id = 4").collect())
    assert history == [(4, "bad", 5, True), (4, "ok", 2, False)]  # the old current row closed, kept


@pytest.mark.parametrize("scd", [1, 2])
def test_a_crash_between_marking_and_merging_is_finished_by_the_next_run_exactly_once(spark, lake, monkeypatch, scd):
    target = lake(scd=scd)
    real = type(target).merge_replay

    def crash(self, source_df, columns):
        raise RuntimeError("the driver died")

    monkeypatch.setattr(type(target), "merge_replay", crash)
    with pytest.raises(RuntimeError, match="the driver died"):
        replay(spark, target)
    assert [m[2] for m in marks(target)].count(0) == 4  # quarantine marked by replay 0, silver untouched
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (4, "ok", 2), (6, "ok", 4)]
    assert contract.REPLAY_PROPERTY not in target.properties["silver"]

    monkeypatch.setattr(type(target), "merge_replay", real)
    target.calls = []
    resumed = replay(spark, target)
    assert (resumed["replay_run"], resumed["resumed"], resumed["evaluated"], resumed["passed"]) == (0, True, 0, 4)
    assert (resumed["inserted"], resumed["updated"], resumed["stale"]) == (1 + (scd == 2), 1, 2)
    assert ("mark_quarantine", 0) not in target.calls  # finished from the marks: quarantine not written again
    after = current(target)
    assert after == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5), (6, "ok", 4)]
    rows = target.silver.count()

    # a crash after the MERGE, before silver's property: the rerun merges the same rows again, a no-op
    target.properties["silver"].pop(contract.REPLAY_PROPERTY)
    again = replay(spark, target)
    assert (again["replay_run"], again["resumed"], again["inserted"], again["updated"], again["stale"]) == (
        0,
        True,
        0,
        0,
        4,
    )
    assert current(target) == after and target.silver.count() == rows
    assert target.properties["silver"][contract.REPLAY_PROPERTY] == "0"
    assert replay(spark, target)["replay_run"] is None  # then: a new replay finds nothing pending that passes


def test_a_replayed_quarantine_overwrite_is_skipped_and_said(spark, lake):
    target = lake()
    target.txn[contract.txn_app_id(target.payload, "replay")] = 0  # Delta already holds (lh360-replay-ev, 0)
    with pytest.raises(RuntimeError, match="holds no mark of replay 0 .*lh360-replay-ev, 0"):
        replay(spark, target)
    assert current(target) == [(1, "ok", 1), (2, "ok", 3), (4, "ok", 2), (6, "ok", 4)]


def test_a_replay_after_the_last_is_numbered_after_silver_s_record_too(spark, lake):
    """Marks lost after replay 3 merged (an erasure deleted its rows): the next is 4, never 3 again, whose
    overwrite Delta would skip."""
    target = lake()
    target.properties["silver"][contract.REPLAY_PROPERTY] = "3"
    assert replay(spark, target)["replay_run"] == 4
    assert {m[2] for m in marks(target)} == {4, None}


def test_missing_tables_and_changed_columns_are_refused_before_any_write(spark, lake):
    target = lake()
    target.quarantine = None
    with pytest.raises(RuntimeError, match="quarantine.ev does not exist"):
        replay(spark, target)
    target = lake()
    target.payload["spec"]["silver"]["columns"]["w"] = "v"
    with pytest.raises(T.SpecError, match="quarantine lacks w"):
        replay(spark, target)
    assert target.calls == []


def test_replay_plan_and_payload(spark):
    p = payload(scd=1)
    plan = contract.plan(p)
    assert plan["step"] == "replay" and plan["marks"] == ["_replayed_at", "_replay_run", "_replay_outcome"]
    assert plan["quarantine_writer_options"] == {"txnAppId": "lh360-replay-ev", "txnVersion": "<replay number>"}
    # an equal sequence never replaces silver's row: no tie clause in the replay's SCD1 MERGE
    assert "<=>" not in plan["merge_sql"] and "s.`ts` > t.`ts`" in plan["merge_sql"]
    assert "<=>" in contract.merge_sql({**p, "step": "refine"})
    gen = contract.parse_payload({**p, "state_generation": "g1"})
    assert contract.replay_writer_options(gen, 2) == {"txnAppId": "lh360-replay-ev-gg1", "txnVersion": "2"}
    with pytest.raises(contract.PayloadError, match="payload.paths.quarantine: required"):
        contract.parse_payload({**p, "paths": {"silver": "s", "state": "t"}})


def test_a_column_silver_pii_drops_is_in_neither_table_and_is_not_asked_of_quarantine(spark, lake):
    target = lake()
    silver = target.payload["spec"]["silver"]
    silver["columns"]["email"] = "lower(v)"
    silver["pii"] = {"email": {"kind": "email", "silver": "drop"}}
    doc = replay(spark, target)
    assert (doc["replay_run"], doc["inserted"], doc["updated"]) == (0, 1, 1)
    assert "email" not in target.silver.columns and "email" not in target.quarantine.columns


CONNECT_SCRIPT = r"""
import json
from pyspark.sql import SparkSession
from lh360.spark import runtime
from tests.spark.conftest import MemoryTarget
from tests.spark.test_replay_spark import DATA, LINEAGE, QUARANTINE, SILVER, current, marks, payload

spark = SparkSession.builder.remote("local[1]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
assert "connect" in type(spark).__module__, type(spark)
target = MemoryTarget(spark, payload())
target.silver = spark.createDataFrame(SILVER, DATA)
target.quarantine = spark.createDataFrame(QUARANTINE, f"{DATA}, {LINEAGE}")
first = runtime.run_replay(spark, target.payload, target_factory=target.factory)
again = runtime.run_replay(spark, target.payload, target_factory=target.factory)
print(json.dumps({
    "first": [first[k] for k in ("replay_run", "passed", "inserted", "updated", "stale")],
    "again": again["replay_run"], "silver": current(target), "outcomes": [m[3] for m in marks(target)],
}))
spark.stop()
"""


def test_replay_runs_on_spark_connect():
    """Serverless is Spark Connect: the replay step on `remote("local")`, in a process of its own (a Connect
    session cannot live beside the classic one of the other tests)."""
    from tests.spark.test_serverless import run_on_spark_connect

    result = run_on_spark_connect(CONNECT_SCRIPT)
    assert result["first"] == [0, 4, 1, 1, 2] and result["again"] is None
    assert result["silver"] == [[1, "ok", 1], [2, "ok", 3], [3, "bad", 1], [4, "bad", 5], [6, "ok", 4]]
    assert result["outcomes"] == ["merged"] * 4 + [None, None]


def test_a_rule_on_a_protected_column_keeps_refines_verdict(spark, lake):
    """A rule the payload lists in `recorded_rules` (it reads a column silver hashes, masks or drops, whose
    raw value quarantine lacks) is not judged again: the row's `_failed_rules` stands for it."""
    not_bad_recorded = {**NOT_BAD, "rule": "length(v) = 999"}  # judged again, every row would fail it
    rows = [q(3, "bad", 1, rules=("v_set",)), q(5, "ok", 1, rules=("v_set", "not_bad"))]
    target = lake(expectations=[not_bad_recorded], quarantine=rows)
    target.payload = {**target.payload, "recorded_rules": ["not_bad"]}
    doc = replay(spark, target)  # v_set is lifted; not_bad keeps refine's verdict
    assert (doc["evaluated"], doc["passed"], doc["still_quarantined"], doc["inserted"]) == (2, 1, 1, 1)
    assert (3, "bad", 1) in current(target) and 5 not in [r[0] for r in current(target)]
