"""What each table holds right now, per layer: rows, Delta version, last commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.delta import open_table
from lh360.layout import Lake
from lh360.ledger import Ledger


def table_stats(uri: str, aws) -> dict[str, Any]:
    dt = open_table(uri, aws)
    if dt is None:
        return {"rows": None, "version": None, "last_commit": None}
    rows = 0
    actions = dt.get_add_actions(flatten=True)
    import pyarrow as pa

    table = pa.table(actions)
    if "num_records" in table.schema.names:
        rows = sum(v or 0 for v in table.column("num_records").to_pylist())
    history = dt.history(1)
    ts = history[0].get("timestamp") if history else None
    last = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="seconds") if ts else None
    return {"rows": rows, "version": dt.version(), "last_commit": last}


def last_runs(target: ResolvedTarget) -> dict[str, dict[str, Any]]:
    """relation → its newest step in the run ledger; {} when there is no ledger (or it cannot be read)."""

    try:
        return Ledger(target).last_runs()
    except Exception:  # the inventory is still useful without the ledger
        return {}


def inventory(project: Project, target: ResolvedTarget, engine: Any = None) -> list[dict[str, Any]]:
    """A row per relation of every spec. With the target's `engine`, a silver row says whether silver was
    built with the spec as it is now (`full_refresh_due`: True, False, or None when not recorded)."""
    lake = Lake(target.lake)
    runs = last_runs(target)
    out = []
    for spec in project.select(None):
        for relation in spec.relations():
            layer, name = relation.split(".", 1)
            stats = table_stats(lake.table(layer, name), target.settings.aws)
            run = runs.get(relation)
            last = None
            if run:
                ended = run["ended_at"]
                when = ended.isoformat(timespec="seconds") if hasattr(ended, "isoformat") else str(ended)
                last = f"{when} {run['step']} {run['status']}"
            out.append(
                {
                    "table": spec.table,
                    "layer": layer,
                    "relation": relation,
                    **stats,
                    "last_run": last,
                    "last_run_id": run["run_id"] if run else None,
                }
            )
            if layer == "silver" and engine is not None:
                drift = engine.spec_drift(spec) if stats["version"] is not None else None
                out[-1]["full_refresh_due"] = None if drift is None else drift.due
    return out
