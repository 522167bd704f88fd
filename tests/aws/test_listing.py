"""The incremental S3 listing (lh360.listing): a listing after the watermark finds every pending file, costs
what is new, and a full listing (first, periodic, forced, or when the state cannot be trusted) catches the
late uploads that sort below the watermark."""

from __future__ import annotations

import time

from awstest import eventos_spec, load, make_project, ndjson, put

from lh360.engines.local.ingest import ingest, pending_files
from lh360.engines.local.ingest_state import ingested_files
from lh360.listing import arrival_ordered, list_table, load_state
from lh360.storage import FileInfo


def _project(tmp_path, aws=None, **spec):
    # no listing lag unless a test is about it: these tests list right after uploading
    cfg = make_project(tmp_path, [eventos_spec(**spec)], aws={"listing_lag": "0s", **(aws or {})})
    project, target = load(cfg)
    return target, project.specs["eventos"]


def _day(s3, day: int, n: int = 2) -> list[str]:
    keys = []
    for i in range(n):
        key = f"raw/eventos/2025/06/{day:02d}/part-{i:04d}.json"
        put(s3, key, ndjson({"id": day * 100 + i, "dia": day}))
        keys.append(key)
    return keys


def _list(target, spec, **kw):
    committed, done = ingested_files(target, spec)
    return list_table(target, spec, done, committed, **kw), done


def test_first_listing_is_full_then_incremental_after_the_watermark(s3, tmp_path):
    target, spec = _project(tmp_path)
    for day in (1, 2, 3):
        _day(s3, day)
    listing, _ = _list(target, spec)
    assert listing.mode == "full" and listing.reason == "first listing of this table"
    assert len(listing.files) == 6 and listing.state.start_after is None  # nothing ingested yet

    ingest(target, spec)
    listing, done = _list(target, spec)
    assert listing.mode == "incremental"  # no watermark yet: lists from the start, sets one
    assert listing.state.start_after == "2025/06/03/part-0001.json"

    _day(s3, 4)
    listing, done = _list(target, spec)
    assert listing.mode == "incremental" and listing.start_after == "2025/06/03/part-0001.json"
    assert [f.rel for f in listing.files] == ["2025/06/04/part-0000.json", "2025/06/04/part-0001.json"]
    assert listing.stats.requests == 1 and listing.stats.objects == 2
    assert [f.rel for f in pending_files(target, spec)] == [f.rel for f in listing.files]
    result = ingest(target, spec)
    assert result.files == 2
    assert len(ingested_files(target, spec)[1]) == 8


def test_pending_files_below_the_newest_ingested_one_are_never_skipped(s3, tmp_path):
    # ingest takes files oldest first, one batch at a time: what is ingested is not a key-order prefix
    target, spec = _project(tmp_path, bronze={"max_files_per_batch": 2})
    _day(s3, 2)
    time.sleep(1.1)
    _day(s3, 1)  # smaller keys, uploaded later
    list_table(target, spec, set(), -1)  # first (full) listing
    ingest(target, spec, max_batches=1)  # ingests day 2 (oldest by mtime); day 1 stays pending
    listing, done = _list(target, spec)
    pending = sorted(f.rel for f in listing.files if f.rel not in done)
    assert pending == ["2025/06/01/part-0000.json", "2025/06/01/part-0001.json"]
    assert listing.state.start_after is None or listing.state.start_after < pending[0]
    ingest(target, spec)
    assert len(ingested_files(target, spec)[1]) == 4


def test_a_late_upload_below_the_watermark_waits_for_the_next_full_listing(s3, tmp_path, monkeypatch):
    target, spec = _project(tmp_path)
    for day in (1, 2, 3):
        _day(s3, day)
    ingest(target, spec)
    ingest(target, spec)  # sets the watermark at day 3
    late = "raw/eventos/2025/06/02/part-late.json"
    put(s3, late, ndjson({"id": 999}))
    listing, done = _list(target, spec)
    assert listing.mode == "incremental", listing.reason
    assert "2025/06/02/part-late.json" not in [f.rel for f in listing.files]  # the documented gap

    # the periodic full listing (default every 24h) finds it and turns incremental listing off
    later = time.time() + 25 * 3600
    listing, done = _list(target, spec, now=later)
    assert listing.mode == "full" and listing.reason.startswith("periodic full listing")
    assert listing.late == ["2025/06/02/part-late.json"]
    assert listing.state.ordered is False
    listing, _ = _list(target, spec, now=later + 60)
    assert listing.mode == "full" and listing.reason == "keys are not in arrival order"
    ingest(target, spec)
    assert "2025/06/02/part-late.json" in ingested_files(target, spec)[1]


def test_forced_full_listing_and_the_interval_setting(s3, tmp_path, monkeypatch, caplog):
    target, spec = _project(tmp_path)
    _day(s3, 1)
    ingest(target, spec)
    ingest(target, spec)
    assert _list(target, spec)[0].mode == "incremental"
    assert _list(target, spec, full=True)[0].mode == "full"
    monkeypatch.setenv("LH360_FULL_LISTING", "1")
    assert _list(target, spec)[0].reason == "full listing requested"
    monkeypatch.delenv("LH360_FULL_LISTING")
    # the interval is a target setting; the old environment variable is not read (and says so)
    monkeypatch.setenv("LH360_FULL_LISTING_INTERVAL", "1s")
    time.sleep(1.1)
    assert _list(target, spec)[0].mode == "incremental"
    assert "aws.full_listing_interval" in caplog.text
    target, spec = _project(tmp_path, aws={"full_listing_interval": "1s"})
    assert _list(target, spec)[0].reason == "periodic full listing (every 1s)"


def test_the_watermark_keeps_clear_of_uploads_still_under_way(s3, tmp_path):
    """Parallel producers: K2 lands and is ingested while K1 < K2 is still uploading. A watermark at K2 would
    leave K1 below it; the watermark waits until K2 is older than the lag."""
    target, spec = _project(tmp_path, aws={"listing_lag": "30m"})
    k2 = "raw/eventos/2025/06/01/part-0002.json"
    put(s3, k2, ndjson({"id": 2}))
    ingest(target, spec)
    listing, done = _list(target, spec)
    assert done == {"2025/06/01/part-0002.json"}
    assert listing.state.start_after is None  # K2 is younger than the lag: the watermark does not reach it
    put(s3, "raw/eventos/2025/06/01/part-0001.json", ndjson({"id": 1}))  # K1 < K2 lands later
    listing, _ = _list(target, spec)
    assert "2025/06/01/part-0001.json" in [f.rel for f in listing.files]  # found, not left below a watermark
    assert listing.late == []
    # once the keys are older than the lag, the watermark moves on
    listing, _ = _list(target, spec, now=time.time() + 31 * 60)
    assert listing.state.start_after is None  # K1 is pending: still nothing below it
    ingest(target, spec)
    listing, _ = _list(target, spec, now=time.time() + 31 * 60)
    assert listing.state.start_after == "2025/06/01/part-0002.json"


def test_the_watermark_stays_below_a_multipart_upload_in_progress(s3, tmp_path):
    target, spec = _project(tmp_path)
    for day in (1, 3):
        _day(s3, day)
    # an upload of day 2 started (and dated) long ago, still in progress: not listable yet
    upload = s3.create_multipart_upload(Bucket="landing", Key="raw/eventos/2025/06/02/big.json")
    ingest(target, spec)
    listing, done = _list(target, spec)
    assert len(done) == 4
    assert listing.state.start_after == "2025/06/01/part-0001.json"  # below the upload, not at day 3
    s3.upload_part(
        Bucket="landing",
        Key="raw/eventos/2025/06/02/big.json",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=ndjson({"id": 200}).encode(),
    )
    parts = s3.list_parts(Bucket="landing", Key="raw/eventos/2025/06/02/big.json", UploadId=upload["UploadId"])
    s3.complete_multipart_upload(
        Bucket="landing",
        Key="raw/eventos/2025/06/02/big.json",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": p["ETag"], "PartNumber": p["PartNumber"]} for p in parts["Parts"]]},
    )
    listing, done = _list(target, spec)
    assert listing.mode == "incremental"
    assert "2025/06/02/big.json" in [f.rel for f in listing.files if f.rel not in done]  # found, not late
    assert listing.late == []


def test_state_that_cannot_be_trusted_means_a_full_listing(s3, tmp_path):
    target, spec = _project(tmp_path)
    _day(s3, 1)
    ingest(target, spec)
    ingest(target, spec)
    state = load_state(target, spec)
    assert state is not None and state.start_after == "2025/06/01/part-0001.json"
    # bronze dropped and recreated: its committed batch went backwards, the ingested set is empty
    listing = list_table(target, spec, set(), -1, save=False)
    assert listing.mode == "full" and listing.reason == "bronze was reset since the last listing"
    assert listing.late == []  # below the old watermark, but not late: the old watermark is void
    # a watermark that is not an ingested file
    listing = list_table(target, spec, {"2025/06/01/part-0000.json"}, 5, save=False)
    assert listing.mode == "full" and listing.reason == "the watermark is not an ingested file"
    # a torn state file
    s3.put_object(Bucket="lake", Key="lh/_lh360/state/eventos/listing.json", Body=b"{not json")
    listing, _ = _list(target, spec)
    assert listing.mode == "full" and listing.reason == "first listing of this table"


def test_arrival_order_judgement():
    now = 1_000_000.0

    def f(rel, age):
        return FileInfo(uri=rel, rel=rel, size=1, mtime=now - age)

    ordered = [f("2025/06/01/a.json", 3000), f("2025/06/02/a.json", 2000), f("2025/06/03/a.json", 1000)]
    assert arrival_ordered(ordered, now)
    # parallel uploads finishing out of key order within the skew are fine
    assert arrival_ordered([*ordered, f("2025/06/04/b.json", 100), f("2025/06/04/a.json", 90)], now)
    # a smaller key uploaded long after a greater one is not
    assert not arrival_ordered([*ordered, f("2025/06/01/z.json", 10)], now)
    # random (uuid) names are not
    uuids = [f(name, age) for name, age in (("c1.json", 500), ("a7.json", 400), ("f0.json", 300), ("0b.json", 200))]
    assert not arrival_ordered(uuids, now, skew_s=10)
    # history older than the window does not count
    assert arrival_ordered([f("z-old.json", 30 * 86400), *ordered], now)
