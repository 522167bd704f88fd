"""Helpers of the Databricks contract tests: a throwaway project with a `prod` target on Databricks, the fake
workspace with hermetic SDK settings, and the job's one-line JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.databricks_workspace import FakeWorkspace

REPO = Path(__file__).resolve().parents[1]
CATALOG = "lakehouse360"
WORKSPACE_DIR = "/Workspace/Shared/lh360"
WAREHOUSE = "wh-fake-1"


def make_project(root: Path, *, databricks: dict[str, Any] | None = None, spec_text: str | None = None) -> Path:
    """configs/lh360.yaml (targets local and prod) + the repo's clientes spec under root."""
    (root / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    (root / "landing").mkdir(exist_ok=True)
    db = {
        "profile": "lh360-prod",
        "catalog": CATALOG,
        "compute": "serverless",
        "warehouse_id": WAREHOUSE,
        "workspace_dir": WORKSPACE_DIR,
    }
    db.update(databricks or {})
    config = {
        "project": "t",
        "default_target": "local",
        "targets": {
            "local": {"engine": "local", "landing": "../landing", "lake": "../lake"},
            "prod": {"engine": "databricks", "landing": "../landing", "lake": "../lake-prod", "databricks": db},
        },
    }
    cfg = root / "configs" / "lh360.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    spec = spec_text if spec_text is not None else (REPO / "configs" / "tables" / "clientes.yaml").read_text()
    (root / "configs" / "tables" / "clientes.yaml").write_text(spec)
    return cfg


def summary_line(step: str = "ingest", **counters: Any) -> str:
    """What the job prints last on stdout (lh360/spark/job.py)."""
    doc = {
        "lh360_job": 1,
        "step": step,
        "table": "clientes",
        "run_id": "x",
        "status": "succeeded",
        "error": None,
        "error_kind": None,
        "exit_code": 0,
        **counters,
    }
    return "some spark log line\n" + json.dumps(doc)


def load(root: Path):
    from lh360.config import load_project

    project = load_project(root / "configs" / "lh360.yaml")
    return project, project.target("prod")


def deploy_to(ws: FakeWorkspace, root: Path):
    from lh360.deploy import deploy

    project, target = load(root)
    return deploy(project, target)


def cli(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60, **popen: Any
) -> subprocess.CompletedProcess:
    """`python -m lh360 ARGS` in root, as cron runs it (no TTY)."""
    return subprocess.run(
        [sys.executable, "-m", "lh360", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(root, env),
        **popen,
    )


def cli_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env.update({"LH360_CONFIG": str(root / "configs" / "lh360.yaml"), "PYTHONPATH": str(REPO)})
    for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_FILE"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


def passing_checks(statement: str, params: list):
    """The fake warehouse's answers to lh360's fused check queries: every check passes."""
    import datetime as dt
    import re

    if statement.startswith("DESCRIBE HISTORY"):
        return ["version"], [[3]]
    if "AS `left`" in statement:
        return ["left", "right"], [[10, 10]]
    cols, row = [], []
    for expr, alias in re.findall(r"(\w+)\([^`]*`?[^`]*`?\)? AS `(c\d+)`", statement):
        cols.append(alias)
        row.append(dt.datetime.now(dt.UTC) if expr.upper() == "MAX" else (100 if alias == "c0" else 0))
    return cols, [row]
