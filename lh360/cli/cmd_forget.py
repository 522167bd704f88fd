"""The right to erasure: forget."""

from __future__ import annotations

import typer

from lh360.cli import app, render, state
from lh360.cli.options import WAIT_LOCK


@app.command()
def forget(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="The table (spec) holding the data subject."),
    key: list[str] = typer.Option(
        ...,
        "--key",
        metavar="COLUMN=VALUE",
        help="Who to erase: a silver column and its value (as silver computes it, or as it landed); repeat "
        "for a composite key. Every row of the same entity (silver.keys) goes too.",
    ),
    vacuum: bool = typer.Option(
        False,
        "--vacuum",
        help="Also purge old Parquet files, Delta log entries and checkpoints (time travel ends there), so no "
        "file in the lake holds the subject's values; without it the next `lh360 maintain` does.",
    ),
    require_match: bool = typer.Option(False, "--require-match", help="Exit 1 when the key matched nothing."),
    wait_lock: float = WAIT_LOCK,
) -> None:
    """Erase one data subject (LGPD art. 18) from landing, bronze, silver, quarantine, gold and check samples.

    Landing files are rewritten without the subject's lines under the same name (and their older versions
    deleted on a versioned bucket); each lake table is rewritten in one commit, only the files that hold the
    subject; gold relations reading the table are recomputed. An erasure ledger (<lake>/_lh360/erasures)
    records when, which table, which key columns, an HMAC of the key and rows per layer, never the values.
    Idempotent; a run killed half-way is finished by running it again. Exit 75 while another run holds the
    table's lock.

    Example:  lh360 forget clientes --key cpf=123.456.789-09 --vacuum --require-match
    """
    st = state(ctx)
    lh = st.lakehouse(wait_lock=wait_lock)
    result = lh.forget(table, key, vacuum=vacuum, require_match=require_match)
    if st.out.json:
        st.out.emit({"target": lh.target.name, "ok": True, **result.as_dict()})
        return
    render.render_forget(st.out, result)
