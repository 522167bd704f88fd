"""AWS on loopback: one moto server (S3, Glue, Athena) on 127.0.0.1 for the whole session, and per test the
environment that points boto3, pyathena and delta-rs at it, fake credentials and a clean slate.

The server runs in this process (a thread), which is what lets the Athena double (`athena_double.py`) hook
moto's Athena backend: queries sent by a CLI subprocess through pyathena → boto3 → HTTP reach the hook. It is
also what lets `recorder.RECORDER` see every request (boto3, pyathena and delta-rs alike) at the server side.

A test module that sets `SHARED_MOTO = True` keeps moto's state from one test to the next: its module-scoped
fixture resets moto (`reset_moto`) and builds a lakehouse once for all its tests.
"""

from __future__ import annotations

import logging

import pytest
from awstest import REGION, aws_environment, create_buckets, reset_moto


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    import athena_double
    import faults
    import recorder

    recorder.install(server)  # idle (one attribute check per request) until a test records
    faults.install(server)  # idle until a test injects a fault

    athena_double.install(f"http://{host}:{port}", REGION)
    yield f"http://{host}:{port}"
    athena_double.uninstall()
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(request, moto_url, monkeypatch, tmp_path):
    """Point everything at the moto server, with fake credentials, for this test only; reset moto first."""
    with pytest.MonkeyPatch.context() as mp:
        aws_environment(mp, moto_url, tmp_path)
        import faults

        faults.FAULTS.reset()
        if not getattr(request.module, "SHARED_MOTO", False):
            reset_moto(moto_url)
        else:  # the module's own fixture reset moto once and built what its tests share
            import athena_double

            athena_double.DOUBLE.reset()
        yield moto_url


@pytest.fixture
def s3(aws_env):
    import boto3

    create_buckets()
    return boto3.client("s3", region_name=REGION)
