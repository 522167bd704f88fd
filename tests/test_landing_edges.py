"""Landing files at the edges: still being written, rewritten, unreadable, symlinked, dated in the future.

Each file either lands in bronze exactly once or is reported (by `ingest` and `landing`), never silently
taken half-way, dropped or ignored.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from tests.ingest_support import bronze_rows, cli, ingest, make_project, write_lines


def spec(**landing):
    return {"table": "eventos", "source": {"path": "eventos/"}, "landing": landing}


def check(root: Path, now: float | None = None):
    from lh360.config import load_project
    from lh360.engines import engine_for
    from lh360.landing import check_landing

    project = load_project(root / "configs" / "lh360.yaml")
    target, spec = project.target(), project.specs["eventos"]
    return check_landing(target, spec, engine_for(target).ingested(spec), now=now)


def records(first: int, n: int) -> list[str]:
    return [json.dumps({"id": i, "v": f"r{i}"}) for i in range(first, first + n)]


def land(root: Path) -> Path:
    return root / "landing" / "eventos"


# ---- item 0: a file still being written is not ingested half-way ------------------------------------


def test_a_file_being_written_waits_for_settle_and_then_lands_whole(tmp_path):
    make_project(tmp_path, spec(settle="60s"))
    path = land(tmp_path) / "export.json"
    path.parent.mkdir(parents=True)
    # the producer has written 1,000 lines and part of the next one
    part = "\n".join(records(0, 1000)) + "\n" + records(1000, 1)[0][:7]
    path.write_text(part)
    first = ingest(tmp_path)
    assert first.files == 0 and [w["file"] for w in first.settling] == ["export.json"]
    report = check(tmp_path)
    assert [w["file"] for w in report.settling] == ["export.json"] and report.settling[0]["settle_s"] == 60
    assert any("settle" in w for w in report.warnings)
    # the producer finishes; a minute later the file has settled
    path.write_text("\n".join(records(0, 1001)) + "\n")
    old = time.time() - 61
    os.utime(path, (old, old))
    second = ingest(tmp_path)
    assert (second.files, second.rows, second.malformed) == (1, 1001, 0)
    assert sorted(r["id"] for r in bronze_rows(tmp_path)) == list(range(1001))


def test_a_settled_file_whose_last_line_never_ended_is_quarantined_until_it_changes(tmp_path):
    make_project(tmp_path, spec(settle=0))
    path = write_lines(land(tmp_path) / "cut.json", [*records(0, 3), records(3, 1)[0][:6]], newline_at_end=False)
    write_lines(land(tmp_path) / "good.json", records(10, 2))
    result = ingest(tmp_path)
    assert result.files == 1 and sorted(r["id"] for r in bronze_rows(tmp_path)) == [10, 11]
    assert [q["file"] for q in result.quarantined] == ["cut.json"] and "incomplete" in result.quarantined[0]["error"]
    rerun = ingest(tmp_path)  # not retried while unchanged, and still reported
    assert rerun.files == 0 and [q["file"] for q in rerun.still_quarantined] == ["cut.json"]
    assert [q["file"] for q in check(tmp_path).quarantined] == ["cut.json"]
    path.write_text("\n".join(records(0, 5)) + "\n")  # the writer comes back and finishes it
    fixed = ingest(tmp_path)
    assert (fixed.files, fixed.rows) == (1, 5)
    assert sorted(r["id"] for r in bronze_rows(tmp_path)) == [0, 1, 2, 3, 4, 10, 11]
    assert check(tmp_path).quarantined == []


@pytest.mark.parametrize(
    "tail", [json.dumps({"id": 9}), json.dumps([{"id": 9}], indent=2)], ids=["ndjson-without-final-newline", "array"]
)
def test_a_file_without_final_newline_that_ends_a_whole_value_is_taken(tmp_path, tail):
    make_project(tmp_path, spec(settle=0))
    land(tmp_path).mkdir(parents=True)
    text = tail if tail.startswith("[") else records(0, 2)[0] + "\n" + tail
    (land(tmp_path) / "a.json").write_text(text)
    result = ingest(tmp_path)
    assert result.files == 1 and result.quarantined == []
    assert 9 in {r["id"] for r in bronze_rows(tmp_path)}


def test_a_file_changed_between_listing_and_reading_is_left_to_settle(tmp_path):
    from lh360.engines.local.landing_files import FileProblem, _recheck
    from lh360.storage import FileInfo

    path = write_lines(tmp_path / "a.json", records(0, 2))
    st = path.stat()
    _recheck(FileInfo(str(path), "a.json", st.st_size, st.st_mtime), None)  # unchanged: fine
    with pytest.raises(FileProblem) as err:
        _recheck(FileInfo(str(path), "a.json", st.st_size - 1, st.st_mtime), None)
    assert err.value.kind == "settling"


@pytest.mark.slow
def test_landing_cli_lists_files_waiting_to_settle(tmp_path):
    make_project(tmp_path, spec(settle="1h"))
    write_lines(land(tmp_path) / "fresh.json", records(0, 1))
    proc = cli(tmp_path, "landing", "eventos", "--json")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)["tables"][0]
    assert [w["file"] for w in table["settling"]] == ["fresh.json"]
    text = cli(tmp_path, "landing", "eventos")
    assert "settling fresh.json" in text.stdout


def test_the_default_settle_is_a_minute_and_lint_refuses_a_negative_one(tmp_path):
    from lh360.spec import LandingSLA

    assert LandingSLA().settle.total_seconds() == 60
    with pytest.raises(ValueError):
        LandingSLA(settle=-5)


# ---- 1.5: a file rewritten under an ingested name is reported ----------------------------------------


@pytest.mark.slow
def test_a_rewritten_landing_file_is_reported_by_ingest_and_landing(tmp_path):
    make_project(tmp_path, spec(settle=0))
    path = write_lines(land(tmp_path) / "export.json", [json.dumps({"id": 1, "v": "v1"})], mtime=1_700_000_000)
    ingest(tmp_path)
    assert ingest(tmp_path).rewritten == [] and check(tmp_path).rewritten == []
    write_lines(path, [json.dumps({"id": 1, "v": "v2 corrected"}), json.dumps({"id": 2, "v": "new"})])
    result = ingest(tmp_path)
    assert result.files == 0  # identified by its path: not ingested again ...
    assert [r["file"] for r in result.rewritten] == ["export.json"]  # ... but reported
    assert any("rewritten" in w for w in result.warnings)
    assert [r["file"] for r in check(tmp_path).rewritten] == ["export.json"]
    proc = cli(tmp_path, "ingest", "eventos", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["tables"][0]["rewritten"][0]["file"] == "export.json"
    assert "rewritten" in cli(tmp_path, "ingest", "eventos").stderr
    assert [r["v"] for r in bronze_rows(tmp_path)] == ["v1"]


def test_rewrites_are_detected_after_the_state_file_is_rebuilt_from_the_log(tmp_path):
    make_project(tmp_path, spec(settle=0))
    path = write_lines(land(tmp_path) / "a.json", records(0, 1), mtime=1_700_000_000)
    ingest(tmp_path)
    for f in (tmp_path / "lake" / "_lh360" / "state").rglob("*.json.gz"):
        f.unlink()
    write_lines(path, records(0, 2), mtime=1_700_000_000)
    assert [r["file"] for r in ingest(tmp_path).rewritten] == ["a.json"]


def test_a_state_file_written_before_sizes_were_recorded_still_reads(tmp_path):
    """Old state files list paths only: they stay valid (exactly once), nothing is reported as rewritten."""
    from lh360.engines.local.ingest_state import read_ingest_state

    make_project(tmp_path, spec(settle=0))
    write_lines(land(tmp_path) / "a.json", records(0, 1))
    ingest(tmp_path)
    state_file = next((tmp_path / "lake" / "_lh360" / "state" / "eventos" / "ingest").glob("*.json.gz"))
    doc = json.loads(gzip.decompress(state_file.read_bytes()))
    del doc["meta"]
    state_file.write_bytes(gzip.compress(json.dumps(doc).encode()))
    project = __import__("lh360.config", fromlist=["load_project"]).load_project(tmp_path / "configs" / "lh360.yaml")
    state = read_ingest_state(project.target(), project.specs["eventos"])
    assert state.files == {"a.json"} and state.meta == {}
    write_lines(land(tmp_path) / "a.json", records(0, 3))
    result = ingest(tmp_path)
    assert result.files == 0 and result.rewritten == []


# ---- 4.1: an unreadable file is quarantined; the batch's good files land -------------------------------


@pytest.mark.slow
def test_bad_gzip_files_are_quarantined_and_the_good_files_land(tmp_path):
    make_project(tmp_path, spec(settle=0))
    folder = land(tmp_path)
    folder.mkdir(parents=True)
    (folder / "plain.json.gz").write_text("not gzip\n")
    whole = gzip.compress("".join(f'{{"id":{i}}}\n' for i in range(5000)).encode())
    (folder / "cut.json.gz").write_bytes(whole[: len(whole) // 2])
    write_lines(folder / "good.json", [json.dumps({"id": 99999})])
    proc = cli(tmp_path, "ingest", "eventos", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["tables"][0]
    errors = {q["file"]: q["error"] for q in doc["quarantined"]}
    assert set(errors) == {"plain.json.gz", "cut.json.gz"}
    assert "not a gzip" in errors["plain.json.gz"] and "truncated" in errors["cut.json.gz"]
    assert [r["id"] for r in bronze_rows(tmp_path)] == [99999]
    again = json.loads(cli(tmp_path, "ingest", "eventos", "--json").stdout)["tables"][0]
    assert again["files"] == 0 and {q["file"] for q in again["still_quarantined"]} == set(errors)
    landing = json.loads(cli(tmp_path, "landing", "eventos", "--json").stdout)["tables"][0]
    assert {q["file"] for q in landing["quarantined"]} == set(errors)
    assert "quarantined cut.json.gz" in cli(tmp_path, "landing", "eventos").stdout
    # fixed (rewritten whole): tried again and ingested
    (folder / "cut.json.gz").write_bytes(whole)
    fixed = ingest(tmp_path)
    assert fixed.rows == 5000
    assert {q["file"] for q in check(tmp_path).quarantined} == {"plain.json.gz"}


def test_an_unreadable_file_is_quarantined(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    make_project(tmp_path, spec(settle=0))
    path = write_lines(land(tmp_path) / "secret.json", records(0, 1))
    write_lines(land(tmp_path) / "good.json", records(5, 1))
    path.chmod(0)
    try:
        result = ingest(tmp_path)
    finally:
        path.chmod(0o644)
    assert [q["file"] for q in result.quarantined] == ["secret.json"] and result.rows == 1


# ---- 6.1: symlinks are not followed ----------------------------------------------------------------


def test_symlinks_are_skipped_and_reported(tmp_path):
    make_project(tmp_path, spec(settle=0))
    outside = write_lines(tmp_path / "secrets.json", [json.dumps({"aws_secret": "wJalr"})])
    write_lines(land(tmp_path) / "1.json", records(0, 1))
    (land(tmp_path) / "innocent.json").symlink_to(outside)
    (land(tmp_path) / "dir").symlink_to(tmp_path, target_is_directory=True)
    result = ingest(tmp_path)
    assert result.files == 1 and all(r.get("aws_secret") is None for r in bronze_rows(tmp_path))
    assert {s["file"] for s in result.symlinks} == {"innocent.json", "dir"}
    report = check(tmp_path)
    assert {s["file"] for s in report.symlinks} == {"innocent.json", "dir"}
    assert "symlink not followed innocent.json" in cli(tmp_path, "landing", "eventos").stdout


def test_symlinks_inside_the_landing_zone_are_followed_when_allowed(tmp_path):
    make_project(tmp_path, spec(settle=0, symlinks="inside"))
    target_file = write_lines(tmp_path / "landing" / "shared" / "x.json", records(7, 1))
    outside = write_lines(tmp_path / "secrets.json", [json.dumps({"aws_secret": "wJalr"})])
    land(tmp_path).mkdir(parents=True)
    (land(tmp_path) / "linked.json").symlink_to(target_file)
    (land(tmp_path) / "outside.json").symlink_to(outside)
    result = ingest(tmp_path)
    assert [r["id"] for r in bronze_rows(tmp_path)] == [7]
    assert [(s["file"], s["reason"]) for s in result.symlinks] == [
        ("outside.json", "resolves outside the landing zone")
    ]


# ---- 2.3: a future mtime cannot make a dead feed look fresh -------------------------------------------


def test_a_future_mtime_counts_from_when_it_was_first_seen(tmp_path):
    make_project(tmp_path, spec(max_age="1h", min_files=1, settle=0))
    write_lines(land(tmp_path) / "old.json", records(0, 1), mtime=time.mktime((2020, 1, 1, 0, 0, 0, 0, 0, -1)))
    assert check(tmp_path).breached
    future = time.mktime((2035, 1, 1, 0, 0, 0, 0, 0, -1))
    write_lines(land(tmp_path) / "clock_skew.json", records(1, 1), mtime=future)
    now = time.time()
    first = check(tmp_path, now=now)
    assert not first.breached and first.newest_age_s == 0  # it did just land...
    assert [f["file"] for f in first.future_mtime] == ["clock_skew.json"]
    assert any("future" in w for w in first.warnings)
    later = check(tmp_path, now=now + 2 * 3600)  # ... but two hours later the feed is dead, and says so
    assert later.breached and later.newest_age_s == pytest.approx(7200, abs=1)
    assert later.recent_files == 0


def test_a_future_mtime_file_settles_after_settle_from_first_seen(tmp_path):
    from lh360.config import load_project
    from lh360.engines.local.ingest_state import ingest_state
    from lh360.listing import landing_candidates

    make_project(tmp_path, spec(settle="60s"))
    write_lines(land(tmp_path) / "skewed.json", records(0, 1), mtime=time.time() + 30 * 86400)
    project = load_project(tmp_path / "configs" / "lh360.yaml")
    target, table = project.target(), project.specs["eventos"]
    now = time.time()
    state = ingest_state(target, table)
    assert [w["file"] for w in landing_candidates(target, table, state, now=now).settling] == ["skewed.json"]
    assert [f.rel for f in landing_candidates(target, table, state, now=now + 120).ready] == ["skewed.json"]


# ---- JSON-array files ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["addNewColumns", "rescue"])
def test_a_deeply_nested_json_array_file_becomes_rows(tmp_path, mode):
    make_project(tmp_path, {**spec(settle=0), "bronze": {"schema_evolution": mode}})
    write_lines(land(tmp_path) / "0.json", [json.dumps({"id": 0, "v": "a"})])
    ingest(tmp_path)
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    land(tmp_path).joinpath("deep.json").write_text(f'[{{"id": 1, "n": {deep}}}, {{"id": 2, "p": 1.50}}]')
    write_lines(land(tmp_path) / "good.json", [json.dumps({"id": 3})])
    result = ingest(tmp_path)
    assert result.files == 2 and result.quarantined == []
    rows = {r["id"]: r for r in bronze_rows(tmp_path)}
    assert set(rows) == {0, 1, 2, 3}
    if mode == "rescue":
        assert rows[1]["_rescued_data"].startswith('{"n":' + '{"a":' * 1000 + "1")  # kept, whatever its depth
        assert '"p":1.50' in rows[2]["_rescued_data"]  # the element's text as written
    else:  # a new column, nested as deep as delta-rs can store, its deepest levels as JSON text
        depth, value = 0, rows[1]["n"]
        while isinstance(value, dict):
            depth, value = depth + 1, value["a"]
        assert depth == 32 and value.startswith('{"a":{"a":')
        assert rows[2]["p"] == 1.5
