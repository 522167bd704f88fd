"""AWS on loopback: one moto server (S3, Glue, Athena) on 127.0.0.1 for the whole session, and per test the
environment that points boto3, pyathena and delta-rs at it, fake credentials and a clean slate.

The server runs in this process (a thread), which is what lets the Athena double (`athena_double.py`) hook
moto's Athena backend: queries sent by a CLI subprocess through pyathena → boto3 → HTTP reach the hook.
"""

from __future__ import annotations

import logging
import os

import pytest
from awstest import BUCKETS, REGION, post


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    import athena_double

    athena_double.install(f"http://{host}:{port}", REGION)
    yield f"http://{host}:{port}"
    athena_double.uninstall()
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto_url, monkeypatch, tmp_path):
    """Point everything at the moto server, with fake credentials, for this test only; reset moto first."""
    for var in list(os.environ):
        if var.startswith(("AWS_", "LH360_")):
            monkeypatch.delenv(var, raising=False)
    aws_home = tmp_path / ".aws-empty"
    aws_home.mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_home / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    post(moto_url, "/moto-api/reset", {})
    import athena_double

    athena_double.DOUBLE.reset()
    yield moto_url


@pytest.fixture
def s3(aws_env):
    import boto3

    client = boto3.client("s3", region_name=REGION)
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("athena", region_name=REGION).create_work_group(
        Name="lh360", Configuration={"ResultConfiguration": {"OutputLocation": "s3://athena-results/q/"}}
    )
    return client
