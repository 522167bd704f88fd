"""Helpers for the ingest tests: a throwaway project on local folders, the CLI in a subprocess, bronze reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CONFIG = {
    "project": "t",
    "default_target": "local",
    "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake"}},
}


def make_project(root: Path, spec: dict[str, Any] | None = None, **bronze: Any) -> Path:
    """configs/lh360.yaml + configs/tables/<table>.yaml under root; returns the config path."""
    (root / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    (root / "landing").mkdir(exist_ok=True)
    spec = spec or {
        "table": "eventos",
        "source": {"path": "eventos/"},
        "bronze": {"schema_evolution": "addNewColumns", **bronze},
    }
    spec = {**spec, "landing": {"settle": 0, **(spec.get("landing") or {})}}  # files are ingested as written
    cfg = root / "configs" / "lh360.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    (root / "configs" / "tables" / f"{spec['table']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return cfg


def write_lines(
    path: Path, lines: list[str | bytes], *, newline_at_end: bool = True, mtime: float | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
    if newline_at_end and lines:
        data += b"\n"
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def cli(root: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lh360 ARGS` in root, as cron would (no TTY)."""
    full_env = {**os.environ, "LH360_CONFIG": str(root / "configs" / "lh360.yaml"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lh360", *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def bronze_rows(root: Path, table: str = "eventos", columns: str = "*", where: str = "true") -> list[dict[str, Any]]:
    import duckdb
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(str(root / "lake" / "bronze" / table))
    arrow = QueryBuilder().register("t", dt).execute("SELECT * FROM t").read_all()
    con = duckdb.connect()
    con.register("b", arrow)
    cur = con.execute(f"SELECT {columns} FROM b WHERE {where}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def rescued(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["_rescued_data"]) if row.get("_rescued_data") else None


def ingest(root: Path, table: str = "eventos"):
    """In-process ingest (faster than the CLI for semantics tests)."""
    from lh360.config import load_project
    from lh360.engines.local.ingest import ingest as run

    project = load_project(root / "configs" / "lh360.yaml")
    return run(project.target(), project.specs[table])
