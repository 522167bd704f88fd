"""scripts/smoke-aws.sh end to end against the moto server (S3, Glue, the Athena double): it generates a landing
zone under a scratch prefix, runs landing -> ingest -> promote -> deploy -> validate, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
from awstest import REGION

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke-aws.sh"


def _smoke(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LH360_", "DATABRICKS_"))}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env)


def test_the_smoke_test_runs_and_cleans_up(s3):
    proc = _smoke(
        "--landing", "s3://landing/smoke", "--lake", "s3://lake/smoke", "--workgroup", "lh360", "--region", REGION
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "smoke test passed" in out and "table_type=DELTA" in out
    for step in ("landing", "ingest", "promote", "deploy", "validate"):
        assert f"== {step}: lh360" in out
    for bucket, prefix in (("landing", "smoke/"), ("lake", "smoke/")):
        assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0, f"{bucket}/{prefix} not cleaned"
    databases = boto3.client("glue", region_name=REGION).get_databases()["DatabaseList"]
    assert not [d["Name"] for d in databases if d["Name"].startswith("lh360_smoke_")]


def test_a_missing_bucket_is_named_before_anything_runs(s3):
    proc = _smoke("--landing", "s3://no-such-landing/x", "--lake", "s3://lake/smoke", "--workgroup", "lh360")
    assert proc.returncode == 1
    assert "bucket no-such-landing does not exist" in proc.stderr
    assert "== ingest" not in proc.stdout
