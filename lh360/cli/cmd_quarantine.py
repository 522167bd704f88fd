"""Quarantine commands: `lh360 quarantine list TABLE` and `lh360 quarantine replay TABLE`."""

from __future__ import annotations

import typer

from lh360.cli import app, render, state
from lh360.cli.options import WAIT_LOCK

quarantine_app = typer.Typer(
    help="Rows silver's expectations set aside: list them, give them a second chance.\n\n"
    "Example:  lh360 quarantine list clientes",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(quarantine_app, name="quarantine")

TABLE = typer.Argument(..., help="The table whose quarantine to read.", show_default=False)


@quarantine_app.command("list")
def list_(ctx: typer.Context, table: str = TABLE) -> None:
    """Quarantined rows by rule and batch: how many, how many a replay took out, when they arrived.

    A row counts under every rule it failed, lh360's own reasons included: corrupt_record (a malformed
    line, kept with its raw text) and null_key (a key column is NULL). Exit 2 when the table has no
    quarantine.

    Example:  lh360 quarantine list clientes --json
    """
    st = state(ctx)
    lh = st.lakehouse()
    listing = lh.quarantine(table)
    if st.out.json:
        st.out.emit({"target": lh.target.name, **listing.as_dict()})
        return
    render.render_quarantine(st.out, listing)


@quarantine_app.command("replay")
def replay(ctx: typer.Context, table: str = TABLE, wait_lock: float = WAIT_LOCK) -> None:
    """Re-evaluate quarantined rows against today's rules (after a rule or the data was fixed) and merge
    those that pass into silver by the usual sequence rules: a row replaces silver's only when its sequence
    is greater, so an older version never overwrites a newer one.

    Replayed rows stay in quarantine, marked (_replayed_at, _replay_run, _replay_outcome), and are never
    replayed twice, even across crashes. Rows that now fail a drop rule leave quarantine for no table;
    malformed lines and NULL keys stay. Exit 1 if a row fails an expectation with action fail (nothing
    written), 2 if the table has no quarantine or silver's columns changed (use promote --full-refresh),
    75 if a run holds the table's lock. On a databricks target it is one run of the Spark job (its replay
    step): exit 3 if the run fails, 4 past its timeout.

    Example:  lh360 quarantine replay clientes
    """
    st = state(ctx)
    lh = st.lakehouse(wait_lock=wait_lock)
    result = lh.replay_quarantine(table)
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": True, **result.as_dict()})
        return
    render.say(st.out, render.replay_line(result))
