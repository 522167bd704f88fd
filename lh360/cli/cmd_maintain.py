"""Maintenance commands: maintain."""

from __future__ import annotations

from datetime import timedelta

import typer

from lh360.cli import app, render, state
from lh360.cli.options import TABLES, WAIT_LOCK, MaintenanceTask
from lh360.durations import parse_duration
from lh360.errors import UsageError


def retention(text: str | None, option: str):
    """A retention from the command line: a duration (7d, 168h, 30m), or a bare number of hours (as Delta's
    `RETAIN n HOURS`)."""

    if text is None:
        return None
    try:
        return timedelta(hours=float(text)) if text.strip().replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


@app.command()
def maintain(
    ctx: typer.Context,
    tables: list[str] = TABLES,
    only: list[MaintenanceTask] = typer.Option(
        None, "--only", help="Only this task (repeat for more); default: every task the policy has not turned off."
    ),
    retain: str = typer.Option(
        None, "--retain", metavar="DURATION", help="VACUUM keeps what versions this recent need (default: 7d)."
    ),
    log_retain: str = typer.Option(
        None, "--log-retain", metavar="DURATION", help="Log cleanup keeps commit files this recent (default: 30d)."
    ),
    allow_short_retention: bool = typer.Option(
        False,
        "--allow-short-retention",
        help="Allow --retain under 7 days (as Delta requires): a run or reader still on an older version may "
        "lose its files.",
    ),
    due: bool = typer.Option(False, "--due", help="Only what the maintenance policy says is due (what `run` does)."),
    wait_lock: float = WAIT_LOCK,
) -> None:
    """Compact, checkpoint, clean the logs of and VACUUM every lake table: bronze, silver, quarantine and gold
    of each TABLE (default: all, and the run and check ledgers too).

    Each spec's tables are maintained under its lock (exit 75 if a run holds it; see --wait-lock). Rows never
    change: compaction bin-packs small files toward the policy's target size, VACUUM deletes the files no
    version within --retain needs (and those a killed writer left), log cleanup deletes commit files older
    than --log-retain that precede the newest checkpoint. `maintenance:` in the target (or a spec) sets how
    often `lh360 run` does each by itself.

    Example:  lh360 maintain --only compact --only vacuum --retain 14d
    """
    from lh360.maintenance import Overrides  # pydantic, yaml: off the --help path

    st = state(ctx)
    overrides = Overrides(
        tasks=tuple(t.value for t in only) if only else None,
        retain=retention(retain, "--retain"),
        log_retain=retention(log_retain, "--log-retain"),
        allow_short_retention=allow_short_retention,
    )
    lh = st.lakehouse(wait_lock=wait_lock)
    results = lh.maintain(tables or None, overrides=overrides, due_only=due)
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": True, "maintenance": [r.as_dict() for r in results]})
        return
    render.render_maintenance(st.out, results)
