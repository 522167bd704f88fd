"""Default credentials work: the shipped prod target on a box with no ~/.aws, only environment keys or only an
instance role (moto's instance metadata), runs every AWS command; and delta-rs gets credentials that refresh.

Which credentials signed each request is read from the requests themselves, at the moto server
(tests/aws/recorder.py): delta-rs included, which signs in Rust.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import recorder
import yaml
from awstest import REGION, aws_environment, cli, reset_moto, upload_tree

from tests.fakes.databricks_workspace import FakeWorkspace, isolate_databricks_env

SHARED_MOTO = True
TEMPLATE = Path(__file__).resolve().parents[2] / "lh360" / "templates" / "configs"
IMDS_KEY = "test-key"  # what moto's instance metadata hands out
PROD_COMMANDS = [
    ["deploy"],
    ["landing"],
    ["validate"],
    ["history"],
    ["tables"],
    ["sql", "SELECT count(*) FROM silver.clientes"],
]


@pytest.fixture(scope="module")
def lakehouse(moto_url, tmp_path_factory):
    """The shipped config (`lh360 init`), its prod target untouched, on moto's buckets of the same names, with a
    `writer` target (local engine, same landing and lake) that fills the lake."""
    from lh360.demo.generator import write_landing

    root = tmp_path_factory.mktemp("credentials")
    with pytest.MonkeyPatch.context() as mp:
        aws_environment(mp, moto_url, root)
        reset_moto(moto_url)
        config = yaml.safe_load((TEMPLATE / "lh360.yaml").read_text())
        prod = config["targets"]["prod"]
        s3 = boto3.client("s3", region_name=REGION)
        buckets = {prod["landing"].split("/")[2], prod["lake"].split("/")[2], prod["athena"]["output"].split("/")[2]}
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        boto3.client("athena", region_name=REGION).create_work_group(
            Name=prod["athena"]["workgroup"],
            Configuration={"ResultConfiguration": {"OutputLocation": prod["athena"]["output"]}},
        )
        for database in prod["athena"]["databases"].values():
            boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": database})
        proc = cli(root, "init", str(root))
        assert proc.returncode == 0, proc.stderr
        shipped = root / "configs" / "lh360.yaml"
        doc = yaml.safe_load(shipped.read_text())
        assert doc["targets"]["prod"] == prod  # as shipped
        writer = {"engine": "local", "landing": prod["landing"], "lake": prod["lake"], "aws": {"region": REGION}}
        doc["targets"]["writer"] = writer
        shipped.write_text(yaml.safe_dump(doc, sort_keys=False))
        write_landing(root / "gen", rows=60, files=2, seed=2, start=datetime.now(UTC) - timedelta(hours=1))
        landing_bucket, _, landing_prefix = prod["landing"].removeprefix("s3://").partition("/")
        upload_tree(s3, root / "gen", landing_bucket, f"{landing_prefix}/clientes")
        for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"]):
            proc = cli(root, "-t", "writer", *args)
            assert proc.returncode == 0, proc.stderr
    return root


def _box_env(tmp_path: Path, workspace: FakeWorkspace, moto_url: str, **aws: str) -> dict[str, str]:
    """A process environment with no AWS config at all (HOME is an empty folder) but what `aws` adds."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LH360_", "DATABRICKS_"))}
    env.update(
        HOME=str(home),
        AWS_ENDPOINT_URL=moto_url,
        AWS_ALLOW_HTTP="true",
        DATABRICKS_HOST=workspace.host,
        DATABRICKS_TOKEN=workspace.token,
        DATABRICKS_CONFIG_FILE=str(home / ".databrickscfg"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        **aws,
    )
    return env


def _run_as_the_box(root: Path, env: dict[str, str]) -> set[str]:
    keys: set[str] = set()
    for args in PROD_COMMANDS:
        with recorder.RECORDER.recording("box") as requests:
            proc = _cli(root, env, "-t", "prod", *args)
        assert proc.returncode == 0, (
            f"lh360 -t prod {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        keys |= {r.access_key for r in requests if r.access_key and r.access_key != "AKIAVIAATHENADOUBLE"}
    return keys


def _cli(root: Path, env: dict[str, str], *args: str):
    import subprocess

    full = {**env, "LH360_CONFIG": str(root / "configs" / "lh360.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "lh360", *args], cwd=root, capture_output=True, text=True, timeout=180, env=full
    )


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    isolate_databricks_env(monkeypatch, tmp_path)
    ws = FakeWorkspace().start()
    yield ws
    ws.stop()


def test_every_command_works_with_environment_keys_and_no_aws_config(lakehouse, workspace, moto_url, tmp_path):
    env = _box_env(
        tmp_path,
        workspace,
        moto_url,
        AWS_ACCESS_KEY_ID="ENVKEY",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    assert _run_as_the_box(lakehouse, env) == {"ENVKEY"}


def test_every_command_works_with_only_an_instance_role(lakehouse, workspace, moto_url, tmp_path):
    """No keys anywhere: boto3, pyathena and delta-rs all find the instance role (moto serves the metadata)."""
    env = _box_env(
        tmp_path,
        workspace,
        moto_url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=moto_url,  # boto3 / pyathena
        AWS_METADATA_ENDPOINT=moto_url,  # delta-rs (object_store)
        AWS_REGION=REGION,
    )
    assert _run_as_the_box(lakehouse, env) == {IMDS_KEY}


# ---- delta-rs and named profiles ---------------------------------------------------------------------------------

ROTATING = """
import json, sys, datetime
path = sys.argv[1]
try:
    n = int(open(path).read()) + 1
except FileNotFoundError:
    n = 1
open(path, "w").write(str(n))
exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
print(json.dumps({"Version": 1, "AccessKeyId": f"ROT{n}", "SecretAccessKey": "s", "SessionToken": f"t{n}",
                  "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


@pytest.fixture
def rotating_profile(aws_env, tmp_path, monkeypatch):
    """Profile `rot`: temporary credentials from a credential_process, new keys each time, valid 2 s."""
    script = tmp_path / "rotate.py"
    script.write_text(ROTATING)
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile rot]\nregion = {REGION}\ncredential_process = {sys.executable} {script} {tmp_path / 'n'}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    try:
        s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass  # moto's state is shared by this module's tests
    return "rot"


def test_delta_rs_gets_credentials_that_refresh_from_a_named_profile(rotating_profile):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from lh360.config import AwsSettings
    from lh360.storage import delta_storage_options

    uri = "s3://lake/t"
    opts = delta_storage_options(uri, AwsSettings(profile=rotating_profile, region=REGION))
    assert "AWS_ACCESS_KEY_ID" not in opts  # no frozen copy of one session's keys
    with recorder.RECORDER.recording("profile") as requests:
        write_deltalake(uri, pa.table({"a": [1]}), storage_options=opts)
        table = DeltaTable(uri, storage_options=opts)  # one long-lived handle
        time.sleep(2.5)  # the first session's keys have expired
        write_deltalake(table, pa.table({"a": [2]}), mode="append")
    keys = [r.access_key for r in requests]
    assert all(k.startswith("ROT") for k in keys), set(keys)
    assert len(set(keys)) >= 2, "the same keys signed before and after they expired"
    assert keys[-1] != keys[0]


def test_a_profile_with_long_lived_keys_is_passed_as_keys(aws_env, tmp_path, monkeypatch):
    from lh360.config import AwsSettings
    from lh360.storage import delta_storage_options

    credentials = tmp_path / "credentials"
    credentials.write_text("[static]\naws_access_key_id = AKIASTATIC\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    opts = delta_storage_options("s3://lake/t", AwsSettings(profile="static", region=REGION))
    assert opts["AWS_ACCESS_KEY_ID"] == "AKIASTATIC" and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in opts


def test_the_credential_server_answers_only_its_token(rotating_profile):
    from lh360.aws_credentials import delta_credentials

    opts = delta_credentials(rotating_profile)
    url, token = (
        opts["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        Path(opts["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text(),
    )
    assert url.startswith("http://127.0.0.1:")
    assert oct(Path(opts["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).stat().st_mode & 0o777) == "0o600"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=10)
    assert denied.value.code == 403
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": token}), timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["AccessKeyId"].startswith("ROT") and doc["Token"] and doc["Expiration"].endswith("Z")


def test_an_unknown_profile_is_a_config_error(lakehouse, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), LH360_AWS_PROFILE="nobody", LH360_CONFIG=str(lakehouse / "configs" / "lh360.yaml"))
    proc = cli(lakehouse, "-t", "prod", "landing", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "AWS profile 'nobody'" in proc.stderr and "Traceback" not in proc.stderr
