"""The embedded engine: DuckDB computes, delta-rs writes, on a folder or on S3."""

from __future__ import annotations

from dataclasses import dataclass

from lh360.config import Project, ResolvedTarget
from lh360.engines.base import Progress
from lh360.spec import TableSpec


@dataclass
class LocalEngine:
    target: ResolvedTarget

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None):
        from lh360.engines.local.ingest import ingest

        return ingest(self.target, spec, progress=progress)

    def refine(self, spec: TableSpec, *, full_refresh: bool = False):
        """bronze → silver (lh360.engines.local.refine); `full_refresh`: from all of bronze."""
        from lh360.engines.local.refine import refine

        return refine(self.target, spec, full_refresh=full_refresh)

    def aggregate(self, project: Project, relation: str):
        """silver/gold → `relation` (gold.<name>), replaced atomically (lh360.engines.local.aggregate)."""
        from lh360.engines.local.aggregate import aggregate

        return aggregate(project, self.target, relation)
