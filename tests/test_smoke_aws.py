"""scripts/smoke-aws.sh, the smoke test for a real AWS account: CI has none, so it checks the script's syntax, its
help and its usage errors, and runs it only when LH360_SMOKE_LANDING and LH360_SMOKE_LAKE name your buckets.
(tests/aws/test_smoke_script.py runs it end to end against the moto server.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "smoke-aws.sh"


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)


def test_help_names_the_settings_and_the_permissions():
    proc = _run("--help")
    assert proc.returncode == 0
    for word in ("--landing", "--lake", "--athena-output", "--workgroup", "--profile", "--keep", "LH360_SMOKE_LANDING"):
        assert word in proc.stdout
    assert "glue:CreateTable" in proc.stdout and "athena:StartQueryExecution" in proc.stdout


def test_missing_locations_are_a_usage_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LH360_SMOKE_")}
    proc = _run(env=env)
    assert proc.returncode == 2 and "--landing s3://BUCKET" in proc.stderr
    proc = _run("--landing", "s3://b/p", "--lake", "not-a-uri", env=env)
    assert proc.returncode == 2 and "--lake" in proc.stderr


@pytest.mark.skipif(
    not (os.environ.get("LH360_SMOKE_LANDING") and os.environ.get("LH360_SMOKE_LAKE")),
    reason="needs a real AWS account: set LH360_SMOKE_LANDING and LH360_SMOKE_LAKE (see scripts/smoke-aws.sh --help)",
)
def test_smoke_on_a_real_account():
    proc = _run(timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_failure_is_explained_as_a_permission_on_a_resource(tmp_path):
    err = tmp_path / "ingest.err"
    err.write_text(
        "error: An error occurred (AccessDenied) when calling the PutObject operation: User: arn:aws:iam::1:user/u "
        'is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::lake/lh360-smoke-1/bronze/x" '
        "because no identity-based policy allows the s3:PutObject action\n"
        "Generic S3 error: Error performing GET http://s3.amazonaws.com/lake/p/_delta_log/_last_checkpoint in 20ms "
        "- Server returned non-2xx status code: 403 Forbidden\n"
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_aws.py"), "explain", "ingest", str(err)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "missing permission s3:PutObject on arn:aws:s3:::lake/lh360-smoke-1/bronze/x" in proc.stdout
    assert (
        "missing permission s3:GetObject" in proc.stdout
        and "arn:aws:s3:::lake/p/_delta_log/_last_checkpoint" in proc.stdout
    )
    assert "step ingest needs" in proc.stdout
