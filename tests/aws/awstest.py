"""Helpers for the AWS tests: projects whose targets live on the moto S3, the CLI in a subprocess, uploads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REGION = "sa-east-1"
BUCKETS = ("landing", "lake", "athena-results")
ATHENA = {
    "workgroup": "lh360",
    "databases": {"bronze": "lh360_bronze", "silver": "lh360_silver", "gold": "lh360_gold", "ledger": "lh360_ledger"},
    "output": "s3://athena-results/q/",
}
TEMPLATES = Path(__file__).resolve().parents[2] / "lh360" / "templates" / "configs"


TEST_PII_KEY = "lh360-test-pii-key-0123456789"  # as tests/conftest.py


def aws_environment(mp, moto_url: str, home: Path) -> None:
    """Set (on a pytest MonkeyPatch) the environment that sends boto3, pyathena and delta-rs to moto."""
    for var in list(os.environ):
        if var.startswith(("AWS_", "LH360_")):
            mp.delenv(var, raising=False)
    mp.setenv("LH360_PII_KEY", TEST_PII_KEY)  # the demo spec hashes CPFs (silver.pii)
    aws_home = home / ".aws-empty"
    aws_home.mkdir(exist_ok=True)
    mp.setenv("AWS_CONFIG_FILE", str(aws_home / "config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_home / "credentials"))
    mp.setenv("AWS_ENDPOINT_URL", moto_url)
    mp.setenv("AWS_ALLOW_HTTP", "true")
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


def post(base: str, path: str, doc: Any) -> None:
    req = urllib.request.Request(base + path, data=json.dumps(doc).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def eventos_spec(**extra: Any) -> dict[str, Any]:
    return {"table": "eventos", "source": {"path": "eventos/"}, "landing": {"max_age": "1h", "min_files": 1}, **extra}


def make_project(
    root: Path,
    specs: list[dict[str, Any]] | None = None,
    *,
    landing: str = "s3://landing/raw",
    lake: str = "s3://lake/lh",
    clientes: bool = False,
    aws: dict[str, Any] | None = None,
    athena_timeout: str = "20s",
    athena: dict[str, Any] | None = None,
) -> Path:
    """configs/ under root with a target `s3` (local engine, landing and lake on S3, Athena validator) and a
    target `local` (folders under root); the specs given, and/or the clientes template spec."""
    tables = root / "configs" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    config = {
        "project": "lh360-aws-tests",
        "default_target": "s3",
        "tables_dir": "tables",
        "targets": {
            "s3": {
                "engine": "local",
                "landing": landing,
                "lake": lake,
                "aws": {"region": REGION, **(aws or {})},
                "validator": "athena",
                "athena": {**ATHENA, "timeout": athena_timeout, **(athena or {})},
            },
            "local": {"engine": "local", "landing": "../landing", "lake": "../lake"},
        },
    }
    path = root / "configs" / "lh360.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for spec in specs or []:
        (tables / f"{spec['table']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if clientes:
        (tables / "clientes.yaml").write_text((TEMPLATES / "tables" / "clientes.yaml").read_text())
    return path


def load(config: Path, target: str = "s3"):
    from lh360.config import load_project

    project = load_project(config)
    return project, project.target(target)


def cli(root: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m lh360 ARGS` in a subprocess, as cron runs it (no TTY), against the moto server."""
    full_env = {**os.environ, "LH360_CONFIG": str(root / "configs" / "lh360.yaml"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lh360", *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def json_out(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"not one JSON document (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


def put(s3, key: str, body: bytes | str, bucket: str = "landing") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def ndjson(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def upload_tree(s3, folder: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every visible file under folder to s3://bucket/prefix/<relative path>, in key order."""
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}"
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def reset_moto(url: str) -> None:
    import athena_double

    post(url, "/moto-api/reset", {})
    athena_double.DOUBLE.reset()


def create_buckets() -> None:
    import boto3

    client = boto3.client("s3", region_name=REGION)
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("athena", region_name=REGION).create_work_group(
        Name="lh360", Configuration={"ResultConfiguration": {"OutputLocation": "s3://athena-results/q/"}}
    )
