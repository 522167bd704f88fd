"""Fixtures of the Databricks contract tests, loaded with `pytest_plugins = ["tests.databricks_fixtures"]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.databricks_support import make_project
from tests.fakes.databricks_workspace import FakeWorkspace, isolate_databricks_env


@pytest.fixture
def fake_ws(monkeypatch, tmp_path):
    """A started FakeWorkspace; the environment points the SDK's unified auth at it (DATABRICKS_HOST/TOKEN)."""
    isolate_databricks_env(monkeypatch, tmp_path)
    ws = FakeWorkspace().start()
    monkeypatch.setenv("DATABRICKS_HOST", ws.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", ws.token)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("LH360_POLL_INTERVAL", "0.01")
    yield ws
    ws.stop()


@pytest.fixture
def project_root(tmp_path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    make_project(root)
    return root
