"""Which version of a key silver keeps: NULL `sequence_by` is the lowest value, and ties on `sequence_by` go
to the latest arrival (the ingest batch, then the file's place in its batch, then the line), the same way
whether the versions are promoted together or one promote at a time (SCD1 and SCD2)."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import read_table

SAME = "2025-01-01T10:00:00Z"


def spec(scd: int = 1, **silver) -> dict:
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "bronze": {"max_files_per_batch": 1000},
        "silver": {
            "keys": ["id"],
            "sequence_by": "ts",
            "scd": scd,
            "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
            **silver,
        },
    }


def ingest(p) -> None:
    from lh360.engines.local.ingest import ingest as run

    project = p.load()
    run(project.target(), project.specs["ev"])


def promote(p):
    from lh360.engines.local.refine import refine

    project = p.load()
    return refine(project.target(), project.specs["ev"])


def land_and_promote(p, name: str, records: list[dict], mtime: float | None = None):
    p.write_landing("ev", name, records, mtime=mtime)
    ingest(p)
    return promote(p)


def rebuild_silver(p):
    """Silver from all of bronze in one promote (quarantine and silver removed first)."""
    shutil.rmtree(p.lake / "silver", ignore_errors=True)
    shutil.rmtree(p.lake / "quarantine", ignore_errors=True)
    return promote(p)


def current(p) -> dict[int, str]:
    rows = read_table(p.root, "silver.ev")
    if rows and "is_current" in rows[0]:
        rows = [r for r in rows if r["is_current"]]
    return {r["id"]: r["v"] for r in rows}


# ---- 1.3 a NULL sequence never freezes a key -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_a_null_first_sequence_is_replaced_by_later_versions(project, scd):
    """The review's case: the first version of a key has ts NULL; versions 2 and 3 must still win."""
    p = project(spec(scd))
    land_and_promote(p, "1.json", [{"id": 1, "v": "first", "ts": None}])
    assert current(p) == {1: "first"}
    r = land_and_promote(p, "2.json", [{"id": 1, "v": "second", "ts": "2025-06-01T00:00:00Z"}])
    assert current(p) == {1: "second"} and r.rows_out == 1
    land_and_promote(p, "3.json", [{"id": 1, "v": "third", "ts": "2025-07-01T00:00:00Z"}])
    assert current(p) == {1: "third"}
    if scd == 2:
        history = read_table(p.root, "silver.ev", order_by="valid_from NULLS FIRST")
        assert [(r["v"], r["is_current"]) for r in history] == [("first", False), ("second", False), ("third", True)]
        assert history[0]["valid_to"] == history[1]["valid_from"]  # the NULL version is closed, not orphaned
    rebuild_silver(p)  # the same as one promote of all three
    assert current(p) == {1: "third"}


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_a_null_sequence_never_replaces_a_known_one(project, scd):
    p = project(spec(scd))
    land_and_promote(p, "1.json", [{"id": 1, "v": "known", "ts": SAME}])
    r = land_and_promote(p, "2.json", [{"id": 1, "v": "null later", "ts": None}])
    assert current(p) == {1: "known"} and r.rows_out == 0
    rebuild_silver(p)
    assert current(p) == {1: "known"}


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_two_null_sequences_go_to_the_later_arrival(project, scd):
    p = project(spec(scd))
    land_and_promote(p, "1.json", [{"id": 1, "v": "null a", "ts": None}])
    land_and_promote(p, "2.json", [{"id": 1, "v": "null b", "ts": None}])
    assert current(p) == {1: "null b"}
    rebuild_silver(p)
    assert current(p) == {1: "null b"}
    if scd == 2:  # one version per sequence value: the later arrival replaced the NULL version
        assert len(read_table(p.root, "silver.ev")) == 1


# ---- 2.2 ties go to the latest arrival ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_equal_sequence_in_a_later_batch_wins_split_or_together(project, scd):
    """The review's case (a): the same instant (10:00Z = 12:00+02:00) in two batches."""
    p = project(spec(scd))
    land_and_promote(p, "a.json", [{"id": 1, "v": "batch0", "ts": "2025-01-01T10:00:00Z"}])
    r = land_and_promote(p, "b.json", [{"id": 1, "v": "batch1 (later)", "ts": "2025-01-01T12:00:00+02:00"}])
    assert current(p) == {1: "batch1 (later)"} and r.rows_out == 1
    if scd == 2:
        assert len(read_table(p.root, "silver.ev")) == 1  # replaced in place: one version per sequence
    rebuild_silver(p)
    assert current(p) == {1: "batch1 (later)"}


@pytest.mark.slow
@pytest.mark.parametrize("scd", [1, 2])
def test_an_unchanged_version_delivered_again_changes_nothing(project, scd):
    p = project(spec(scd))
    land_and_promote(p, "a.json", [{"id": 1, "v": "x", "ts": SAME}])
    before = read_table(p.root, "silver.ev")
    r = land_and_promote(p, "b.json", [{"id": 1, "v": "x", "ts": SAME}])
    assert r.rows_out == 0 and r.updated == 0 and r.closed == 0
    assert read_table(p.root, "silver.ev") == before


def test_within_a_batch_the_later_landed_file_wins_not_the_greater_name(project):
    """Arrival, not the lexicographic path: a.json landed a day after z.json."""
    p = project(spec())
    now = time.time()
    p.write_landing("ev", "z.json", [{"id": 1, "v": "z landed first", "ts": SAME}], mtime=now - 86400)
    p.write_landing("ev", "a.json", [{"id": 1, "v": "a landed later", "ts": SAME}], mtime=now - 60)
    ingest(p)
    r = promote(p)
    assert r.rows_in == 2 and current(p) == {1: "a landed later"}


@pytest.mark.parametrize("scd", [1, 2])
def test_within_a_file_the_later_line_wins(project, scd):
    p = project(spec(scd))
    lines = [{"id": i % 3, "v": f"line {i}", "ts": SAME} for i in range(9)]
    land_and_promote(p, "a.json", lines)
    assert current(p) == {0: "line 6", 1: "line 7", 2: "line 8"}


@pytest.mark.slow
def test_fifty_thousand_duplicate_lines_give_the_same_winner_every_run(project):
    """The review's case (b): two lines of one file per key, same ts; the kept line changed between runs."""
    p = project(spec())
    path = p.landing / "ev" / "dups.json"
    path.parent.mkdir(parents=True)
    with open(path, "w") as f:
        for v in ("first line", "second line"):
            for i in range(50_000):
                f.write(json.dumps({"id": i, "v": v, "ts": "2025-01-01T00:00:00Z"}) + "\n")
    ingest(p)
    for _ in range(3):
        rebuild_silver(p)
        counts = {}
        for v in current(p).values():
            counts[v] = counts.get(v, 0) + 1
        assert counts == {"second line": 50_000}
