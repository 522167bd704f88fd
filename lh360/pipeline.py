"""The whole job for cron: landing check → ingest → (promote → validate, as the engine supports them)."""

from __future__ import annotations

from typing import Any

from lh360.config import Project, ResolvedTarget


def run_pipeline(project: Project, target: ResolvedTarget, tables: list[str] | None, *, out: Any,
                 wait_lock: float = 0, demo: bool = False) -> dict[str, Any]:
    from lh360.landing import check_landing
    from lh360.report import render_ingest
    from lh360.runner import run_ingest

    specs = project.select(tables)
    landing = [check_landing(target, s) for s in specs]
    results = run_ingest(project, target, [s.table for s in specs], wait_lock=wait_lock, out=out)
    if not out.json:
        render_ingest(out, results)
    return {
        "target": target.name,
        "ok": True,
        "exit_code": 0,
        "landing": [r.as_dict() for r in landing],
        "ingest": [r.as_dict() for r in results],
    }
