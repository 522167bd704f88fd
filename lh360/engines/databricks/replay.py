"""`lh360 -t <databricks target> quarantine replay TABLE`: one run of the job's `replay` step, whose semantics
are the local engine's (lh360/engines/local/replay.py) and whose exactly-once argument is in
lh360/spark/runtime.py: quarantine overwritten with replay N's marks in one commit carrying the app
transaction (`lh360-replay-<table>`, N), then a MERGE of strictly later versions into silver (so a repeated
MERGE changes nothing), then N recorded as silver's table property `lh360.replay`.

Before anything is sent, the ops box reads silver and quarantine from the lake with delta-rs (as refresh.py
does): a missing table, or a quarantine that lacks a column the spec now gives silver, is refused with exit
2. A lake this box cannot read lets the run go: the job refuses them then.

The app id follows the refine stream's checkpoint generation (`lh360-replay-<table>-g<G>`, as the refine
writers' ids do): a full refresh replaces quarantine, marks and all, in a new generation, so the numbers
replays start again from are never ones Delta recorded for that id (it would skip the overwrite).
"""

from __future__ import annotations

import logging
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import open_table
from lh360.engines.databricks import checkpoints
from lh360.errors import UsageError, first_line
from lh360.layout import Lake
from lh360.spec import TableSpec

log = logging.getLogger("lh360.databricks")


def check_tables(target: ResolvedTarget, spec: TableSpec) -> None:
    """Refuse (exit 2, nothing sent) a replay the job could only refuse: no quarantine or silver to replay
    into, or silver's columns changed since the rows were quarantined."""

    assert spec.silver is not None
    lake = Lake(target.lake)
    try:
        quarantine = open_table(lake.table("quarantine", spec.table), target.settings.aws)
        silver = open_table(lake.table("silver", spec.table), target.settings.aws)
        held = [f.name for f in quarantine.schema().fields] if quarantine is not None else []
    except Exception as exc:  # noqa: BLE001 - no rights on the lake from this box: the job checks
        log.warning("could not read the lake tables of %s: %s", spec.table, first_line(exc))
        return
    if quarantine is None or silver is None:
        missing = f"quarantine.{spec.table}" if quarantine is None else f"silver.{spec.table}"
        raise UsageError(
            f"{spec.table}: {missing} does not exist, so there is nothing to replay (run lh360 -t {target.name} "
            f"promote {spec.table} --to silver first); nothing was sent"
        )
    lacking = [name for name in spec.silver.stored_columns if name not in held]
    if lacking:
        raise UsageError(
            f"{spec.table}: silver.columns changed since these rows were quarantined (quarantine lacks "
            f"{', '.join(lacking)}): rebuild silver and quarantine from bronze instead: lh360 -t {target.name} "
            f"promote {spec.table} --to silver --full-refresh"
        )


def stream_fields(target: ResolvedTarget, table: str) -> dict[str, Any]:
    """The payload's `state_generation`: the refine stream's current one, which the replay's app id follows."""

    generation = checkpoints.current(target, table, checkpoints.LAYER_OF_STEP["refine"])
    return {"state_generation": generation} if generation else {}
