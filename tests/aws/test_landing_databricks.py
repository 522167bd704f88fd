"""Landing on a `databricks` target: the files the Spark job ingested count as done.

Bronze is committed here exactly as lh360/spark/job.py commits an Auto Loader micro-batch (an append carrying
the app transaction `lh360-ingest-<table>` = batch id, and a commitInfo.userMetadata naming the batch's
files as `_metadata.file_path` gives them, URL-encoded), then `lh360 -t prod landing` runs on the ops box.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import yaml
from awstest import REGION, cli, json_out, ndjson, put

FILES = ["2025/06/01/a.json", "2025/06/02/b c.json", "2025/06/03/d.json"]


def make_databricks_project(root):
    (root / "configs" / "tables").mkdir(parents=True)
    config = {
        "project": "dbx-landing",
        "default_target": "prod",
        "targets": {
            "prod": {
                "engine": "databricks",
                "landing": "s3://landing/raw",
                "lake": "s3://lake/lh",
                "aws": {"region": REGION, "listing_lag": "0s"},  # files listed right after upload
                "databricks": {"catalog": "lakehouse360", "host": "http://127.0.0.1:9"},
            }
        },
    }
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = {"table": "eventos", "source": {"path": "eventos/"}, "landing": {"max_age": "1h", "min_files": 1}}
    (root / "configs" / "tables" / "eventos.yaml").write_text(yaml.safe_dump(spec))


def commit_like_the_job(batch_id: int, files: list[str], *, schema_rows: int = 1) -> None:
    """One micro-batch append to bronze, with the commit the Spark job writes (bronze_writer_options)."""
    import pyarrow as pa
    from deltalake import CommitProperties, Transaction, write_deltalake

    from lh360.spark.contract import bronze_commit_metadata
    from lh360.storage import delta_storage_options

    uri = "s3://lake/lh/bronze/eventos"
    # Spark's _metadata.file_path: the full URI, URL-encoded (a space is %20)
    paths = [f"s3://landing/raw/eventos/{quote(f)}" for f in files]
    data = pa.table({"id": list(range(len(files))), "_source_file": paths, "_batch_id": [batch_id] * len(files)})
    write_deltalake(
        uri,
        data,
        mode="append",
        storage_options=delta_storage_options(uri),
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id="lh360-ingest-eventos", version=batch_id)],
            custom_metadata={"userMetadata": bronze_commit_metadata(batch_id, paths)},
        ),
    )


def landing_report(root):
    proc = cli(root, "-t", "prod", "landing", "--json", "--full-listing")
    doc = json_out(proc)
    assert proc.returncode in (0, 1), proc.stderr
    return doc["tables"][0]


def test_files_the_spark_job_ingested_are_not_pending_and_the_watermark_advances(s3, tmp_path):
    make_databricks_project(tmp_path)
    for f in FILES:
        put(s3, f"raw/eventos/{f}", ndjson({"id": 1}))

    before = landing_report(tmp_path)
    assert before["pending_files"] == 3  # nothing ingested yet

    commit_like_the_job(0, FILES[:2])
    after_one = landing_report(tmp_path)
    assert after_one["pending_files"] == 1 and after_one["files"] == 3

    commit_like_the_job(1, FILES[2:])
    report = landing_report(tmp_path)
    assert report["pending_files"] == 0 and report["pending_bytes"] == 0

    # the S3 listing watermark moved past every ingested key: the next listing starts after it
    state = json.loads(s3.get_object(Bucket="lake", Key="lh/_lh360/state/eventos/listing.json")["Body"].read())
    assert state["start_after"] == FILES[-1]
    put(s3, "raw/eventos/2025/06/04/e.json", ndjson({"id": 2}))
    proc = cli(tmp_path, "-t", "prod", "landing", "--json")
    incremental = json_out(proc)["tables"][0]
    assert incremental["listing"]["mode"] == "incremental"
    assert incremental["listing"]["start_after"] == FILES[-1]
    assert incremental["pending_files"] == 1


def test_a_recreated_bronze_forgets_the_files_of_the_old_one(s3, tmp_path):
    import boto3

    make_databricks_project(tmp_path)
    for f in FILES:
        put(s3, f"raw/eventos/{f}", ndjson({"id": 1}))
    commit_like_the_job(0, FILES)
    assert landing_report(tmp_path)["pending_files"] == 0

    # bronze deleted (to rebuild it): the cache of the old table's files must not count
    lake = boto3.resource("s3", region_name=REGION).Bucket("lake")
    lake.objects.filter(Prefix="lh/bronze/").delete()
    assert landing_report(tmp_path)["pending_files"] == 3
    commit_like_the_job(0, FILES[:1])
    assert landing_report(tmp_path)["pending_files"] == 2
