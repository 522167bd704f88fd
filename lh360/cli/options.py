"""Options shared by several commands, and the choices they accept (enums, so `--help` lists them)."""

from __future__ import annotations

from enum import Enum, StrEnum

import typer

from lh360.durations import parse_timeout
from lh360.engines import VALIDATORS
from lh360.engines.base import EngineOptions
from lh360.errors import UsageError


class PromoteLayer(StrEnum):
    silver = "silver"
    gold = "gold"


class PlanLayer(StrEnum):
    bronze = "bronze"
    silver = "silver"
    gold = "gold"


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    junit = "junit"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class SchemaKind(StrEnum):
    spec = "spec"
    config = "config"


class MaintenanceTask(StrEnum):
    compact = "compact"
    checkpoint = "checkpoint"
    log_cleanup = "log_cleanup"
    vacuum = "vacuum"


class PlanFormat(StrEnum):
    text = "text"
    json = "json"
    mermaid = "mermaid"


# the validators the registry knows (lh360.engines.VALIDATORS): duckdb, athena, databricks-sql
Validator = StrEnum("Validator", {name: name for name in VALIDATORS})  # type: ignore[misc]

TABLES = typer.Argument(None, help="Table names (default: all specs).", show_default=False)
WAIT_LOCK = typer.Option(
    0, "--wait-lock", metavar="SECONDS", help="Wait this long for a table's lock (default: exit 75 at once)."
)
VALIDATOR = typer.Option(None, "--engine", help="Where the checks run (default: the target's validator).")
TIMEOUT = typer.Option(
    None,
    "--timeout",
    metavar="DURATION",
    help="Remote engines: cancel a run still going after this long and exit 4 (e.g. 45m, 2h; default: the "
    "target's databricks.timeout).",
)
DETACH = typer.Option(False, "--detach", help="Remote engines: submit the run, print its id and return at once.")
RUN_ID = typer.Option(
    None,
    "--run-id",
    metavar="ID",
    help="Remote engines: the logical id of this run (e.g. your scheduler's run id or $(date +%F)); exactly "
    "one remote run per step, table and ID, even when retried on another machine.",
)


NEW_CHECKPOINT = typer.Option(
    False,
    "--new-checkpoint",
    help="Remote engines: start a new checkpoint generation for this step, after its checkpoint was lost "
    "(lh360 refuses to run on without it; ingest skips the files bronze already holds).",
)
GENERATION = typer.Option(
    None,
    "--generation",
    metavar="NAME",
    help="With --new-checkpoint: the new generation's name (letters, digits, - and _; default: the time).",
)


def engine_options(
    timeout: str | None = None,
    detach: bool = False,
    run_id: str | None = None,
    new_checkpoint: bool = False,
    generation: str | None = None,
) -> EngineOptions:
    """The command's --timeout/--detach/--run-id/--new-checkpoint for the engine (which refuses what it cannot
    honour)."""

    if generation is not None and not new_checkpoint:
        raise UsageError("--generation names a new checkpoint generation: give --new-checkpoint with it")
    fresh = (generation or "") if new_checkpoint else None
    return EngineOptions(timeout=parse_timeout(timeout), detach=detach, run_id=run_id, new_checkpoint=fresh)


def value(choice: Enum | None) -> str | None:
    return None if choice is None else str(choice.value)
