"""Runs steps on tables the way cron needs: one table lock each, progress on a terminal, results to report."""

from __future__ import annotations

import logging
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.engines.base import engine_for
from lh360.lock import table_lock

log = logging.getLogger("lh360.runner")


def run_ingest(project: Project, target: ResolvedTarget, tables: list[str] | None, *, wait_lock: float = 0,
               out: Any = None, **engine_options: Any) -> list[Any]:
    """Ingest each table under its lock; the first failure stops the run (its exception carries the exit code)."""
    engine = engine_for(target, **engine_options)
    results = []
    for spec in project.select(tables):
        with table_lock(target.lake, spec.table, wait=wait_lock):
            progress = _IngestProgress(out) if out is not None else None
            try:
                log.info("ingest start", extra={"fields": {"table": spec.table, "target": target.name}})
                result = engine.ingest(spec, progress=progress)
            finally:
                if progress:
                    progress.close()
            log.info("ingest done", extra={"fields": {"table": spec.table, **_brief(result)}})
            results.append(result)
    return results


def _brief(result: Any) -> dict[str, Any]:
    d = result.as_dict() if hasattr(result, "as_dict") else {}
    return {k: d.get(k) for k in ("files", "rows", "rescued", "malformed", "bronze_version")}


class _IngestProgress:
    """A rich progress bar over bytes on a terminal; silent otherwise."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.bar = None
        self.task = None

    def __call__(self, event: str, **kw: Any) -> None:
        if event == "start":
            if kw.get("files") and kw.get("bytes", 0) > 0:
                self.bar = self.out.progress_bar(kw["bytes"], kw["table"])
                if self.bar is not None:
                    self.bar.start()
                    self.task = self.bar.add_task(f"ingest {kw['table']}", total=kw["bytes"])
        elif event == "batch" and self.bar is not None:
            self.bar.advance(self.task, kw["batch"].bytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
