"""Full refresh and spec drift of silver on a `databricks` target, as the ops box sees them.

The job records the spec silver was built with as silver's Delta table property `lh360.spec_hash` (set when a
run creates silver and in the commit of a full refresh's replace, kept by every later MERGE: a MERGE cannot
carry commit userMetadata on serverless). The ops box reads it from silver's Delta log with delta-rs (no
Spark, no workspace call), as landing_state.py reads bronze's commits, and compares it with the hash of the
spec as it is now, computed the way the local engine does (lh360.engines.local.refine.spec_hash).

How a full refresh runs (a new checkpoint generation whose first micro-batch replaces quarantine and silver,
resumed by the next run when it was interrupted): lh360/spark/contract.py and checkpoints.py.
"""

from __future__ import annotations

import logging

from lh360.config import ResolvedTarget
from lh360.delta import open_table
from lh360.engines.base import SpecDrift
from lh360.errors import UsageError, first_line
from lh360.layout import Lake
from lh360.spark.contract import SPEC_HASH_PROPERTY
from lh360.spec import TableSpec, spec_hash

log = logging.getLogger("lh360.databricks")


def spec_drift(target: ResolvedTarget, spec: TableSpec) -> SpecDrift | None:
    """Silver's recorded spec hash against the spec's now; None without silver (or when the lake cannot be
    read from this box: the log says why)."""

    if spec.silver is None:
        return None
    uri = Lake(target.lake).table("silver", spec.table)
    try:
        dt = open_table(uri, target.settings.aws)
        if dt is None:
            return None
        built = dt.metadata().configuration.get(SPEC_HASH_PROPERTY)
    except Exception as exc:  # noqa: BLE001 - no rights on the lake from this box: drift unknown, not an error
        log.warning("could not read %s to compare its spec: %s", uri, first_line(exc))
        return None
    return SpecDrift(spec.table, built or None, spec_hash(spec))


def check_bronze(target: ResolvedTarget, spec: TableSpec) -> None:
    """Refuse (exit 2, silver untouched) a full refresh with no bronze to rebuild from. A lake this box cannot
    read lets the run go: the job refuses it then."""

    uri = Lake(target.lake).table("bronze", spec.table)
    try:
        missing = open_table(uri, target.settings.aws) is None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not read %s: %s", uri, first_line(exc))
        return
    if missing:
        raise UsageError(
            f"{spec.table}: bronze.{spec.table} does not exist, so there is nothing to rebuild silver from "
            f"(silver is untouched); run lh360 -t {target.name} ingest {spec.table} first"
        )
