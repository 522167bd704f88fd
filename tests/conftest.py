"""Shared fixtures: a throwaway project on local folders (`project`) and the CLI in a subprocess (`run_cli`).

def test_x(project, run_cli):
    p = project({"table": "t", "source": {"path": "t/"}, "silver": {...}})
    p.write_landing("t", "a.json", [{"id": 1}])
    code, out, err = run_cli("run", "t", cwd=p.root)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Areas whose every test starts something heavy: a JVM (spark), the moto server (aws), checkov or the
# Terraform tree (terraform), Node (iam). They are `slow`: CI runs everything, `pytest -m "not slow"` is the
# fast loop of a developer. Single slow tests elsewhere carry the marker themselves.
SLOW_AREAS = ("spark", "aws", "terraform", "iam")


# files holding the longest tests (minutes of signal and kill -9 loops): they run first, so parallel workers
# (scripts/test.sh) do not end with one worker alone on a long test
LONG_FIRST = ("test_signals.py", "test_maintain_concurrency.py", "test_ingest_crash.py", "test_promote_crash.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(TESTS).parts
        if parts[0] in SLOW_AREAS or item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: Path(str(item.fspath)).name not in LONG_FIRST)  # stable: order kept otherwise


@dataclass
class TmpProject:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "configs" / "lh360.yaml"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def add_spec(self, spec: dict[str, Any]) -> Path:
        """Writes the spec; landing.settle defaults to 0 here (tests write files and ingest at once)."""
        spec = with_settle_zero(spec)
        path = self.root / "configs" / "tables" / f"{spec['table']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        return path

    def write_landing(
        self, folder: str, name: str, records: list[dict[str, Any] | str], *, mtime: float | None = None
    ) -> Path:
        """NDJSON (a str record is written verbatim, for malformed lines)."""
        path = self.landing / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def load(self):
        from lh360.config import load_project

        return load_project(self.config)

    def target(self):
        return self.load().target()


def with_settle_zero(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with `landing.settle: 0` unless it sets one: a test writes a file and ingests it at once."""
    landing = dict(spec.get("landing") or {})
    landing.setdefault("settle", 0)
    return {**spec, "landing": landing}


def _make(root: Path, specs: list[dict[str, Any]], config: dict[str, Any] | None) -> TmpProject:
    (root / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    (root / "landing").mkdir(exist_ok=True)
    cfg = {
        "project": "t",
        "default_target": "local",
        "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake", "validator": "duckdb"}},
        **(config or {}),
    }
    p = TmpProject(root)
    p.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    for spec in specs:
        p.add_spec(spec)
    return p


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., TmpProject]:
    """project(spec_or_specs, config=None, name="p") → a TmpProject under tmp_path/name."""

    def factory(
        specs: dict[str, Any] | list[dict[str, Any]], config: dict[str, Any] | None = None, name: str = "p"
    ) -> TmpProject:
        return _make(tmp_path / name, specs if isinstance(specs, list) else [specs], config)

    return factory


def cli(
    *args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None, timeout: float = 180
) -> tuple[int, str, str]:
    """`python -m lh360 ARGS` as cron runs it (no TTY); (exit code, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    if "LH360_CONFIG" not in (env or {}):
        full_env.pop("LH360_CONFIG", None)  # a developer's own config must not leak into a test
    proc = subprocess.run(
        [sys.executable, "-m", "lh360", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def read_table(root: Path, relation: str, order_by: str | None = None) -> list[dict[str, Any]]:
    """Rows of lake/<layer>/<name> through DuckDB (LakeCatalog), as dicts; [] if the table does not exist."""
    from lh360.config import load_project
    from lh360.engines.local.duck import LakeCatalog, connect

    target = load_project(root / "configs" / "lh360.yaml").target()
    con = connect()
    try:
        layer, name = relation.split(".", 1)
        if LakeCatalog(con, target).attach(layer, name) is None:
            return []
        cur = con.execute(f'SELECT * FROM "{layer}"."{name}"' + (f" ORDER BY {order_by}" if order_by else ""))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    return cli


TEST_PII_KEY = "lh360-test-pii-key-0123456789"


@pytest.fixture(autouse=True)
def pii_key(monkeypatch):
    """The HMAC key of silver.pii's `hash` (lh360.pii), as every deployment sets it in its environment; a test
    about a missing key deletes it."""
    monkeypatch.setenv("LH360_PII_KEY", TEST_PII_KEY)
    monkeypatch.delenv("LH360_PII_KEY_FILE", raising=False)
    return TEST_PII_KEY.encode()
