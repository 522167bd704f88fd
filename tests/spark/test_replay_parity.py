"""Parity of quarantine replay: the Spark job's replay step (what runs on Databricks, lh360/spark/runtime.py
run_replay) and the local engine's (lh360/engines/local/replay.py) give the same counts, the same silver and
the same marks in quarantine, from the same silver and quarantine.

The local engine refines two waves of rows (tests/test_quarantine.py's `seeded`: a version older than silver's,
a new key, a newer version, a malformed line, a NULL key); its silver and quarantine are read into Spark as
they are before the replay, the rule that quarantined the rows is lifted, and both engines replay."""

from __future__ import annotations

import datetime as dt

import pytest

from lh360.spark import contract, runtime
from tests.test_quarantine import ok, seeded, spec

pytestmark = [pytest.mark.spark, pytest.mark.slow]

COUNTS = ("replay_run", "resumed", "evaluated", "passed", "dropped", "still_quarantined", "inserted", "updated")
COUNTS += ("stale",)
QUARANTINE = "id bigint, v string, ts timestamp, _failed_rules array<string>, _source_file string, _batch_id bigint, "
QUARANTINE += "_corrupt_record string"
SCD2 = ", valid_from timestamp, valid_to timestamp, is_current boolean"


def utc(value):
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def lake_rows(root, relation: str, columns: list[str]) -> list[tuple]:
    from tests.conftest import read_table

    return [tuple(utc(r[c]) for c in columns) for r in read_table(root, relation)]


def spark_lake(spark, memory_target_cls, p, scd: int, payload: dict):
    """The local lake's silver (its data columns, as the job's silver holds them) and quarantine, in Spark."""
    data = ["id", "v", "ts"] + (["valid_from", "valid_to", "is_current"] if scd == 2 else [])
    target = memory_target_cls(spark, payload)
    target.silver = spark.createDataFrame(
        lake_rows(p.root, "silver.ev", data), "id bigint, v string, ts timestamp" + (SCD2 if scd == 2 else "")
    )
    names = [c.split(" ")[0] for c in QUARANTINE.split(", ")]
    target.quarantine = spark.createDataFrame(lake_rows(p.root, "quarantine.ev", names), QUARANTINE)
    return target


def silver_of(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda t: tuple((x is None, str(x)) for x in t))


@pytest.mark.parametrize("scd", [1, 2])
@pytest.mark.parametrize(
    "rules",
    [
        [{"name": "v_set", "rule": "v IS NOT NULL", "action": "quarantine"}],  # 'bad' is fine after all
        [{"name": "not_bad", "rule": "v <> 'bad'", "action": "drop"}],  # 'bad' is dropped now
    ],
)
def test_the_spark_replay_gives_what_the_local_replay_gives(spark, memory_target_cls, project, run_cli, scd, rules):
    p = seeded(project, run_cli, scd=scd)
    fixed = spec(scd=scd, expectations=rules)
    payload = contract.parse_payload(
        {"step": "replay", "table": "ev", "spec": fixed, "paths": {"silver": "s", "quarantine": "q", "state": "t"}}
    )
    target = spark_lake(spark, memory_target_cls, p, scd, payload)

    p.add_spec(fixed)
    local = ok(run_cli, p, "quarantine", "replay", "ev")
    remote = runtime.run_replay(spark, payload, target_factory=target.factory)
    assert {k: remote[k] for k in COUNTS} == {k: local[k] for k in COUNTS}
    assert local["passed"] + local["dropped"] > 0  # the replay did something

    data = ["id", "v", "ts"] + (["valid_from", "valid_to", "is_current"] if scd == 2 else [])
    spark_silver = [tuple(r[c] for c in data) for r in target.silver.collect()]
    assert silver_of(spark_silver) == silver_of(lake_rows(p.root, "silver.ev", data))
    marks = ["id", "v", "ts", "_replay_run", "_replay_outcome"]
    spark_marks = [tuple(r[c] for c in marks) for r in target.quarantine.collect()]
    assert silver_of(spark_marks) == silver_of(lake_rows(p.root, "quarantine.ev", marks))
