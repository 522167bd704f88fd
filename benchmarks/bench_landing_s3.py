"""Landing on S3: with 100,000 objects in a table's prefix, most already ingested, a listing costs what is new.

A moto server on 127.0.0.1 (started here) holds N objects (default 100,000) with date-ordered keys; bronze's
ingest state says all but the newest ones are ingested. We measure `lh360.listing.list_table` — the listing
behind `lh360 landing` and ingest — as a full listing (first run, `--full-listing`, the periodic backfill)
and as an incremental listing after the watermark with 10, 100, 1,000 and 5,000 new objects, then time
`lh360 landing --json` end to end. Cost = LIST requests (S3 bills them per 1,000 keys) and objects listed;
moto's own time per request grows with the bucket (it scans every key), real S3's does not, so the
request and object counts are the figures to compare.

    python benchmarks/bench_landing_s3.py [--objects 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import report  # noqa: E402

REGION = "sa-east-1"


def start_moto() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        del os.environ[var]
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ALLOW_HTTP="true",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return url


def populate(start: int, n: int) -> list[str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    rels = []
    for i in range(start, start + n):
        rel = f"{2025 + i // 500_000}/{(i // 10_000) % 12 + 1:02d}/{i:07d}.json"
        backend.put_object("landing", f"raw/eventos/{rel}", b'{"id": %d}\n' % i)
        rels.append(rel)
    return rels


def project(root: Path):
    import yaml

    (root / "configs" / "tables").mkdir(parents=True)
    config = {
        "project": "bench",
        "default_target": "s3",
        # every object here was uploaded a moment ago; in a real zone the ingested ones are older than
        # aws.listing_lag (30m), which is what lets the watermark move: no lag, to measure that case
        "targets": {
            "s3": {
                "landing": "s3://landing/raw",
                "lake": "s3://lake/lh",
                "aws": {"region": REGION, "listing_lag": "0s"},
            }
        },
    }
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = {"table": "eventos", "source": {"path": "eventos/"}, "landing": {"max_age": "1h"}}
    (root / "configs" / "tables" / "eventos.yaml").write_text(yaml.safe_dump(spec))
    from lh360.config import load_project

    p = load_project(root / "configs" / "lh360.yaml")
    return p.target("s3"), p.specs["eventos"]


def seed_ingested(target, spec, rels: list[str], batch: int) -> None:
    """Bronze's ingest state as ingest leaves it: a commit with the app transaction, and the state file."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lh360.delta import commit_properties
    from lh360.engines.local.ingest_state import app_id, write_state
    from lh360.layout import Lake
    from lh360.storage import delta_storage_options

    uri = Lake(target.lake).table("bronze", spec.table)
    write_state(target, spec, batch, set(rels), "seed")
    write_deltalake(
        uri,
        pa.table({"id": pa.array([], pa.int64())}),
        mode="append",
        storage_options=delta_storage_options(uri, target.settings.aws),
        commit_properties=commit_properties(
            app_id(spec), batch, {"lh360.step": "ingest", "lh360.batch_id": str(batch), "lh360.nonce": "seed"}
        ),
    )


def listing(target, spec, **kw) -> dict:
    from lh360.engines.local.ingest_state import ingested_files
    from lh360.listing import list_table

    committed, done = ingested_files(target, spec)
    t = time.perf_counter()
    result = list_table(target, spec, done, committed, **kw)
    seconds = time.perf_counter() - t
    pending = sum(1 for f in result.files if f.rel not in done)
    return {
        "mode": result.mode,
        "requests": result.stats.requests,
        "objects_listed": result.stats.objects,
        "pending": pending,
        "seconds": round(seconds, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100_000)
    args = ap.parse_args()
    start_moto()
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("landing", "lake"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    work = Path(tempfile.mkdtemp(prefix="lh360-bench-landing-"))
    target, spec = project(work)
    steps = [10, 100, 1_000, 5_000]
    base = args.objects - sum(steps)
    t = time.perf_counter()
    ingested = populate(0, base)
    populated = time.perf_counter() - t
    seed_ingested(target, spec, ingested, 0)

    full = listing(target, spec, full=True)  # also sets the watermark, as a first (or periodic) listing does
    rows = []
    total, batch = base, 0
    for new in steps:
        fresh = populate(total, new)
        total += new
        inc = listing(target, spec)
        inc["new_objects"] = new
        inc["objects_in_prefix"] = total
        inc["requests_vs_full"] = round(inc["requests"] / full["requests"], 4)
        inc["objects_vs_full"] = round(inc["objects_listed"] / full["objects_listed"], 4)
        rows.append(inc)
        batch += 1
        ingested += fresh
        seed_ingested(target, spec, ingested, batch)  # the new files get ingested before the next round
    full_end = listing(target, spec, full=True)

    # end to end: `lh360 landing --json` with 1,000 new objects over the whole prefix
    populate(total, 1_000)
    env = {**os.environ, "LH360_CONFIG": str(work / "configs" / "lh360.yaml")}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lh360", "--json", "landing", "eventos"], env=env, capture_output=True, text=True
    )
    cli_seconds = time.perf_counter() - t
    doc = json.loads(proc.stdout)["tables"][0]
    report(
        "landing_s3_listing",
        {
            "objects_in_prefix": args.objects,
            "populate_seconds": round(populated, 1),
            "full_listing": full,
            "full_listing_at_end": full_end,
            "incremental": rows,
            "cli_landing_json": {
                "seconds": round(cli_seconds, 2),
                "exit_code": proc.returncode,
                "pending_files": doc["pending_files"],
                "listing": {k: doc["listing"][k] for k in ("mode", "requests", "objects")},
            },
            "note": "requests and objects listed are S3's cost; moto's seconds per request grow with the bucket "
            "(it scans every key), real S3's do not",
        },
    )
    os._exit(0)  # skip interpreter teardown (delta-rs' runtime can abort at exit)


if __name__ == "__main__":
    main()
