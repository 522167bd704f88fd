"""`lh360 quarantine list`: what a table's quarantine holds, by rule and by batch.

Quarantine is a Delta table at `<lake>/quarantine/<table>` whichever engine wrote it, so it is read the same
way for every target (delta-rs from the ops box). A row counts under every rule it failed
(`_failed_rules`), lh360's own reasons included (`corrupt_record`, `null_key`); rows a replay took out are
counted apart (`replayed`), by outcome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, open_table, reader
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec


@dataclass
class QuarantineGroup:
    rule: str
    batch_id: int | None
    rows: int
    pending: int  # not replayed
    replayed: int
    first_quarantined_at: str | None = None
    last_quarantined_at: str | None = None


@dataclass
class QuarantineListing:
    table: str
    version: int | None
    rows: int = 0  # every row quarantine holds
    pending: int = 0  # not replayed: `quarantine replay` evaluates these
    replayed: dict[str, int] = field(default_factory=dict)  # outcome (merged, dropped) → rows
    by_rule: dict[str, int] = field(default_factory=dict)  # rule → pending rows that failed it
    groups: list[QuarantineGroup] = field(default_factory=list)  # by rule and batch

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "relation": f"quarantine.{self.table}"}


def quarantine_listing(target: ResolvedTarget, spec: TableSpec) -> QuarantineListing:
    """The table's quarantine by rule and batch; UsageError (exit 2) when the table has none."""
    import duckdb

    dt = open_table(Lake(target.lake).table("quarantine", spec.table), target.settings.aws)
    if dt is None:
        raise UsageError(
            f"{spec.table}: there is no quarantine.{spec.table} (no row has been quarantined, or the table "
            "was never promoted)"
        )
    held = set(arrow_schema(dt).names)
    wanted = [
        c for c in ("_failed_rules", "_batch_id", "_quarantined_at", "_replayed_at", "_replay_outcome") if c in held
    ]
    listing = QuarantineListing(table=spec.table, version=dt.version())
    con = duckdb.connect()
    try:
        con.register("q", reader(dt, wanted).read_all())
        missing = [f"NULL AS {c}" for c in ("_replayed_at", "_replay_outcome") if c not in held]
        con.execute(f"CREATE TEMP VIEW v AS SELECT *{''.join(', ' + m for m in missing)} FROM q")
        listing.rows, listing.pending = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE _replayed_at IS NULL) FROM v"
        ).fetchall()[0]
        listing.replayed = dict(
            con.execute(
                "SELECT _replay_outcome, count(*) FROM v WHERE _replayed_at IS NOT NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        rows = con.execute(
            """SELECT rule, _batch_id, count(*), count(*) FILTER (WHERE _replayed_at IS NULL),
                      count(*) FILTER (WHERE _replayed_at IS NOT NULL),
                      strftime(min(_quarantined_at), '%Y-%m-%dT%H:%M:%SZ'),
                      strftime(max(_quarantined_at), '%Y-%m-%dT%H:%M:%SZ')
               FROM (SELECT unnest(CASE WHEN len(_failed_rules) > 0 THEN _failed_rules ELSE ['?'] END) AS rule, *
                     FROM v)
               GROUP BY ALL ORDER BY rule, _batch_id NULLS FIRST"""
        ).fetchall()
    finally:
        con.close()
    listing.groups = [QuarantineGroup(*r) for r in rows]
    for g in listing.groups:
        if g.pending:
            listing.by_rule[g.rule] = listing.by_rule.get(g.rule, 0) + g.pending
    return listing
