"""`terraform fmt -check`: the one terraform command that needs no provider plugins.

The binary is $LH360_TERRAFORM or `terraform` on PATH; without one the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _terraform_binary() -> str | None:
    configured = os.environ.get("LH360_TERRAFORM")
    if configured:
        found = shutil.which(configured)
        if not found:
            pytest.fail(f"LH360_TERRAFORM={configured!r} is not an executable terraform")
        return found
    return shutil.which("terraform")


@pytest.mark.parametrize("directory", ["terraform", "tests/terraform/fixtures"])
def test_terraform_files_are_formatted(directory):
    binary = _terraform_binary()
    if binary is None:
        pytest.skip("terraform not found on PATH (or LH360_TERRAFORM): cannot run `terraform fmt -check`")
    proc = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", directory],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert proc.returncode == 0, (
        f"run `terraform fmt -recursive {directory}`; these files are not formatted:\n{proc.stdout}{proc.stderr}"
    )
