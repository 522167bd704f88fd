"""`lh360 landing` on S3: pending files and bytes against the bronze ledger, the SLA (exit 1 and a --json
report), zero-byte objects, multipart uploads in progress, a parse of the newest file — and a zone of
100,000 objects, most already ingested, checked at a listing cost proportional to what is new."""

from __future__ import annotations

import gzip
import json
import time

from awstest import REGION, cli, eventos_spec, json_out, load, make_project, ndjson, put


def test_landing_report_on_s3(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    put(s3, "raw/eventos/2025/06/01/a.json", ndjson({"id": 1}, {"id": 2}))
    proc = cli(tmp_path, "--json", "ingest", "eventos")
    assert proc.returncode == 0, proc.stderr
    put(s3, "raw/eventos/2025/06/02/b.json", ndjson({"id": 3}))
    put(s3, "raw/eventos/2025/06/02/c.json.gz", gzip.compress(b'{"id": 4}\n{"id": oops}\n'))
    put(s3, "raw/eventos/2025/06/02/d.json", b"")
    put(s3, "raw/eventos/2025/06/02/_tmp/e.json", ndjson({"id": 5}))  # hidden: a writer's temp name
    upload = s3.create_multipart_upload(Bucket="landing", Key="raw/eventos/2025/06/02/f.json")

    proc = cli(tmp_path, "--json", "landing", "eventos")
    doc = json_out(proc)
    assert proc.returncode == 0, proc.stderr
    (r,) = doc["tables"]
    assert r["prefix"] == "s3://landing/raw/eventos"
    assert r["pending_files"] == 3 and r["files"] == 4
    assert r["pending_bytes"] == len(ndjson({"id": 3})) + len(gzip.compress(b'{"id": 4}\n{"id": oops}\n'))
    assert r["empty_files"] == ["2025/06/02/d.json"]
    assert [u["file"] for u in r["uploading"]] == ["2025/06/02/f.json"]
    assert r["newest_age_s"] < 60 and r["status"] == "ok"
    assert r["unreadable"] == [{"file": "2025/06/02/c.json.gz", "line": 2, "error": r["unreadable"][0]["error"]}]
    assert r["listing"]["mode"] == "incremental" and r["listing"]["requests"] == 1
    s3.abort_multipart_upload(Bucket="landing", Key="raw/eventos/2025/06/02/f.json", UploadId=upload["UploadId"])

    # the SLA: nothing newer than max_age (1h) → exit 1, the report says why
    later = cli(tmp_path, "--json", "landing", "eventos", env={"LH360_FULL_LISTING": "1"})
    assert later.returncode == 0
    spec = eventos_spec(landing={"max_age": "1s", "min_files": 1})
    make_project(tmp_path, [spec])
    time.sleep(1.5)
    breach = cli(tmp_path, "--json", "landing", "eventos", "--full-listing")
    doc = json_out(breach)
    assert breach.returncode == 1 and doc["ok"] is False
    (r,) = doc["tables"]
    assert r["status"] == "breach" and r["listing"]["mode"] == "full"
    assert any("over the SLA of 1s" in p for p in r["problems"])
    assert any("fewer than min_files 1" in p for p in r["problems"])
    human = cli(tmp_path, "landing", "eventos")
    assert human.returncode == 1 and "SLA breach" in human.stdout


def test_no_files_at_all_is_a_breach(s3, tmp_path):
    make_project(tmp_path, [eventos_spec()])
    proc = cli(tmp_path, "--json", "landing")
    assert proc.returncode == 1
    (r,) = json_out(proc)["tables"]
    assert r["files"] == 0 and r["problems"][0].startswith("no files")


def _populate(bucket: str, prefix: str, n: int, start: int = 0) -> list[str]:
    """n objects put straight into moto's S3 backend (this process runs the server): 100k in seconds."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    rels = []
    for i in range(start, start + n):
        rel = f"2025/{(i // 10000) + 1:02d}/{i:07d}.json"
        backend.put_object(bucket, f"{prefix}/{rel}", b'{"id": %d}\n' % i)
        rels.append(rel)
    return rels


def seed_ingested(target, spec, rels: list[str]) -> None:
    """The ingest state of a bronze table that has ingested `rels`: a committed batch 0 carrying the app
    transaction, and the cumulative state file, exactly as lh360's ingest leaves them."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lh360.delta import commit_properties
    from lh360.engines.local.ingest_state import app_id, write_state
    from lh360.layout import Lake
    from lh360.storage import delta_storage_options

    uri = Lake(target.lake).table("bronze", spec.table)
    write_state(target, spec, 0, set(rels), "seed")
    write_deltalake(
        uri,
        pa.table({"id": pa.array([], pa.int64()), "_source_file": pa.array([], pa.string())}),
        storage_options=delta_storage_options(uri, target.settings.aws),
        commit_properties=commit_properties(
            app_id(spec), 0, {"lh360.step": "ingest", "lh360.batch_id": "0", "lh360.nonce": "seed"}
        ),
    )


def test_100k_objects_mostly_ingested_cost_what_is_new(s3, tmp_path):
    cfg = make_project(tmp_path, [eventos_spec()])
    project, target = load(cfg)
    spec = project.specs["eventos"]
    old = _populate("landing", "raw/eventos", 99_000)
    seed_ingested(target, spec, old)
    # the listing state a previous full listing left: the watermark at the last ingested key
    from lh360.listing import ListingState, save_state

    save_state(target, spec, ListingState(start_after=old[-1], bronze_batch=0, last_full_at=time.time(), ordered=True))
    new = _populate("landing", "raw/eventos", 1_000, start=99_000)

    started = time.monotonic()
    proc = cli(tmp_path, "--json", "landing", "eventos")
    seconds = time.monotonic() - started
    (r,) = json_out(proc)["tables"]
    assert proc.returncode == 0, proc.stderr
    assert r["pending_files"] == len(new) == 1_000
    assert r["files"] == 100_000
    listing = r["listing"]
    assert listing["mode"] == "incremental" and listing["start_after"] == old[-1]
    assert listing["objects"] == 1_000  # only what is new was listed...
    assert listing["requests"] == 1  # ...in one LIST request, where a full listing takes 100
    assert listing["watermark"] == old[-1]  # nothing new is ingested yet
    assert seconds < 30
    # and the files landed since are what ingest would take
    import boto3

    assert (
        boto3.client("s3", region_name=REGION).list_objects_v2(
            Bucket="landing", Prefix="raw/eventos/", StartAfter=f"raw/eventos/{old[-1]}"
        )["KeyCount"]
        == 1_000
    )
    assert json.loads(json.dumps(listing))  # JSON-clean for alerting
