"""`lh360 demo`: a sample `clientes` landing zone on the local target, then the pipeline on it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.storage import is_s3, join

DEMO_TABLE = "clientes"


def write_demo_landing(target: ResolvedTarget, spec_path: str, *, rows: int, files: int, seed: int,
                       now: datetime | None = None) -> tuple[list[Path], bool]:
    """Write the sample files unless the folder already holds some; returns (paths, written)."""
    from lh360.demo_data import DEFAULT_SPAN, write_landing

    folder = Path(join(target.landing, spec_path))
    existing = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []
    if existing:
        return existing, False
    now = now or datetime.now(UTC)
    # the newest record lands just before now, so freshness checks pass on the day the demo runs
    start = now.replace(minute=0, second=0, microsecond=0) - DEFAULT_SPAN
    return write_landing(folder, rows=rows, files=files, seed=seed, start=start), True


def run_demo(project: Project, target: ResolvedTarget, *, rows: int, files: int, seed: int, fresh: bool,
             out: Any) -> dict[str, Any]:
    if target.engine != "local" or is_s3(target.landing) or is_s3(target.lake):
        raise UsageError(f"lh360 demo runs on a local-folder target; {target.name!r} is not one (pass -t local)")
    if DEMO_TABLE not in project.specs:
        raise UsageError(f"the demo needs the {DEMO_TABLE} spec in {project.tables_dir} (run `lh360 init`)")
    spec = project.specs[DEMO_TABLE]
    if fresh:
        lake = Lake(target.lake)
        for path in (join(target.landing, spec.source.path), lake.uri):
            shutil.rmtree(path, ignore_errors=True)
    paths, written = write_demo_landing(target, spec.source.path, rows=rows, files=files, seed=seed)
    out.print(
        f"landing: {'wrote' if written else 'kept'} {len(paths)} file(s) in {join(target.landing, spec.source.path)}"
        + ("" if written else " (use --fresh to start over)")
    )
    from lh360.pipeline import run_pipeline

    return run_pipeline(project, target, [DEMO_TABLE], out=out, demo=True)


def demo_start(now: datetime) -> datetime:
    return now - timedelta(hours=12)
