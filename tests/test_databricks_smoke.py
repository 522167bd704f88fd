"""The smoke test of a REAL Databricks workspace (scripts/smoke-databricks.sh). It runs only where one is
configured (LH360_SMOKE_BUCKET, LH360_SMOKE_CATALOG, LH360_SMOKE_WAREHOUSE_ID and Databricks credentials);
CI has none, so there it is skipped, and pytest's summary says so. The script itself is tested against
the fake workspace and moto in tests/aws/test_smoke_databricks_script.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.databricks_support import REPO

NEEDS = ("LH360_SMOKE_BUCKET", "LH360_SMOKE_CATALOG", "LH360_SMOKE_WAREHOUSE_ID")


@pytest.mark.slow
def test_smoke_on_a_real_databricks_workspace():
    missing = [v for v in NEEDS if not os.environ.get(v)]
    if missing:
        pytest.skip(
            f"smoke test of a real Databricks workspace (scripts/smoke-databricks.sh): set {', '.join(missing)}"
        )
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "smoke-databricks.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=3 * 3600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
