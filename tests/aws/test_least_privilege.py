"""Least privilege, proven offline: every AWS request lh360 makes in a prod-like pipeline, recorded at the moto
server (boto3, pyathena and delta-rs alike: tests/aws/recorder.py), mapped to the IAM authorizations AWS would
check (tests/iam/actions.py) and evaluated with a real IAM evaluator against the policies terraform/ renders
for prod (tests/iam/lh360_platform.py, tests/iam/simulate.py).

The pipeline runs on the prod target `lh360 init --from-terraform` writes from the rendered outputs (buckets,
workgroup, Glue databases of terraform/envs with prod.tfvars), with the Databricks engine on a fake workspace:

1. the lake is filled as the Spark job would fill it (here the local engine writes the same layout: `ingest`,
   `promote --to gold`): evaluated for the Unity Catalog role, except the ledger appends, which the ops box
   makes after each step in prod;
2. an operator runs `lh360 deploy` (Glue registration): evaluated for the deployer policy;
3. the ops box runs `landing`, `run --all` (jobs on the fake workspace, checks on Athena, ledgers), `validate`,
   `history`, `tables`, `sql`, `plan`, `lint`: evaluated for the ops-box role; what the Athena double reads
   (Glue, Delta logs, data files) is evaluated for the same role through Athena (aws:CalledVia).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import athena_double
import boto3
import pytest
import recorder
import yaml
from awstest import REGION, aws_environment, cli, reset_moto, upload_tree

from tests.databricks_support import summary_line
from tests.fakes.databricks_workspace import FakeWorkspace, isolate_databricks_env
from tests.iam.actions import Environment, Unmapped, authorizations
from tests.iam.lh360_platform import render
from tests.iam.simulate import evaluate, problems

SHARED_MOTO = True
TEMPLATES = Path(__file__).resolve().parents[2] / "lh360" / "templates" / "configs"
# what lh360 itself writes from the ops box in every run, whichever engine writes the data: the ledgers and
# the tables' locks (on an S3 lake they are objects in the lake, lh360.lock)
LEDGERS = ("_lh360/runs/", "_lh360/checks/", "_lh360/locks/")
OPS_BOX_COMMANDS = [
    ["landing"],
    ["run", "--all"],
    ["validate"],
    ["history"],
    ["tables"],
    ["sql", "SELECT count(*) AS n FROM silver.clientes"],
    ["plan"],
    ["lint"],
]


def _provision(platform) -> dict:
    """What terraform apply creates and lh360 relies on: the buckets, the workgroup, the Glue databases."""
    target = platform.target()
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (platform.landing_bucket, platform.lake_bucket, platform.results_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    athena = target["athena"]
    boto3.client("athena", region_name=REGION).create_work_group(
        Name=athena["workgroup"], Configuration={"ResultConfiguration": {"OutputLocation": athena["output"]}}
    )
    glue = boto3.client("glue", region_name=REGION)
    for database in athena["databases"].values():
        glue.create_database(DatabaseInput={"Name": database})
    return target


def _project(root: Path, target: dict, workspace: FakeWorkspace) -> None:
    prod = {**target, "databricks": {**target["databricks"], "host": workspace.host}}
    writer = {k: v for k, v in target.items() if k != "databricks"} | {"engine": "local"}
    config = {"project": "least-privilege", "default_target": "prod", "targets": {"prod": prod, "writer": writer}}
    (root / "configs" / "tables").mkdir(parents=True)
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "configs" / "tables" / "clientes.yaml").write_text((TEMPLATES / "tables" / "clientes.yaml").read_text())


def _run(root: Path, env: dict, phase: str, *args: str) -> list:
    with recorder.RECORDER.recording(phase) as requests:
        proc = cli(root, *args, env=env)
    assert proc.returncode == 0, f"lh360 {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return requests


@pytest.fixture(scope="module")
def recorded(moto_url, tmp_path_factory):
    """(platform, [(principal, HttpRequest, through_athena)]) of the whole pipeline."""
    from lh360.demo.generator import write_landing

    platform = render("prod")
    root = tmp_path_factory.mktemp("least-privilege")
    with pytest.MonkeyPatch.context() as mp:
        aws_environment(mp, moto_url, root)
        isolate_databricks_env(mp, root)
        reset_moto(moto_url)
        target = _provision(platform)
        workspace = FakeWorkspace().start()
        try:
            _project(root, target, workspace)
            write_landing(root / "gen", rows=120, files=3, seed=5, start=datetime.now(UTC) - timedelta(hours=2))
            landing = target["landing"].removeprefix(f"s3://{platform.landing_bucket}/")
            upload_tree(boto3.client("s3"), root / "gen", platform.landing_bucket, f"{landing}/clientes")
            env = {
                "DATABRICKS_HOST": workspace.host,
                "DATABRICKS_TOKEN": workspace.token,
                "LH360_POLL_INTERVAL": "0.01",
                "XDG_STATE_HOME": str(root / "state"),
            }
            out = []
            for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"]):
                out += [("engine", r) for r in _run(root, env, "engine", "-t", "writer", *args)]
            # the Spark job's stream checkpoints, which the local engine does not write (lh360 refuses to run
            # on when a table holds data but its checkpoint is gone)
            bucket, lake = target["lake"].removeprefix("s3://").partition("/")[::2]
            for layer in ("bronze", "silver"):
                key = f"{lake}/_lh360/state/clientes/checkpoint/{layer}/metadata".lstrip("/")
                boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b'{"id":"x"}')
            out += [("deployer", r) for r in _run(root, env, "deploy", "-t", "prod", "deploy")]
            for step in ("ingest", "refine", "aggregate", "aggregate"):
                workspace.script_run("success", logs=summary_line(step))
            for args in OPS_BOX_COMMANDS:
                out += [("ops_box", r) for r in _run(root, env, "ops_box", "-t", "prod", *args)]
        finally:
            workspace.stop()
    return platform, target, out


def _principal(who: str, req) -> str:
    """The identity that makes this request in prod."""
    if who == "engine":
        key = req.path.split("/", 2)[2] if req.path.count("/") >= 2 else req.query.get("prefix", "")
        return "ops_box" if key.startswith(LEDGERS) else "unity_catalog"
    return who


def _authorizations(recorded_):
    platform, target, requests = recorded_
    env = Environment(platform.region, platform.account, platform.bucket_keys, target["athena"]["output"])
    out, unmapped = [], []
    for who, req in requests:
        through_athena = req.access_key == athena_double.VIA_ATHENA_KEY
        try:
            out += [(_principal(who, req), a) for a in authorizations(req, env, athena=through_athena)]
        except Unmapped as exc:
            unmapped.append(f"{who}: {exc}")
    return out, unmapped


@pytest.fixture(scope="module")
def verdicts(recorded):
    authz, unmapped = _authorizations(recorded)
    assert unmapped == [], "requests the IAM mapping does not know (add them to tests/iam/actions.py)"
    out = evaluate(recorded[0], authz)
    report = os.environ.get("LH360_IAM_REPORT")  # a path: the evaluated authorizations, one per line, for review
    if report:
        rows = sorted(
            {(v.principal, v.result, v.authz.action, v.authz.resource, json.dumps(v.authz.context)) for v in out}
        )
        Path(report).write_text("".join("\t".join(row) + "\n" for row in rows))
    return out


@pytest.mark.parametrize("principal", ["ops_box", "deployer", "unity_catalog"])
def test_every_recorded_request_is_allowed(verdicts, principal):
    mine = [v for v in verdicts if v.principal == principal]
    assert mine, f"nothing recorded for {principal}"
    assert problems(mine) == []


def test_the_recording_saw_what_the_policies_must_allow(verdicts):
    """The requests that matter were recorded: a passing run cannot come from recording nothing."""
    platform = render("prod")
    seen = {(v.principal, v.authz.action, v.authz.resource, "aws:CalledVia" in v.authz.context) for v in verdicts}
    lake, landing = f"arn:aws:s3:::{platform.lake_bucket}", f"arn:aws:s3:::{platform.landing_bucket}"

    def has(principal: str, action: str, resource_part: str, via: bool = False) -> bool:
        return any(p == principal and a == action and resource_part in r and v == via for p, a, r, v in seen)

    assert has("ops_box", "s3:GetObject", f"{lake}/bronze/clientes/_delta_log/")  # landing's ingest state
    assert has("ops_box", "s3:ListBucketMultipartUploads", landing)  # uploads in progress
    assert has("ops_box", "s3:PutObject", f"{lake}/_lh360/runs/")  # run ledger
    assert has("ops_box", "s3:PutObject", f"{lake}/_lh360/checks/")  # check ledger
    assert has("ops_box", "s3:PutObject", f"{lake}/_lh360/locks/")  # the tables' locks live in the lake
    assert has("ops_box", "athena:StartQueryExecution", ":workgroup/")
    assert has("ops_box", "s3:GetObject", f"{lake}/silver/clientes/", via=True)  # Athena reads the data
    assert has("ops_box", "glue:GetTable", ":table/", via=True)
    assert has("deployer", "glue:CreateTable", ":table/")
    assert has("unity_catalog", "s3:PutObject", f"{lake}/bronze/clientes/_delta_log/")
