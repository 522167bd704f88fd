"""`lh360 quarantine replay` on the local engine: give quarantined rows a second chance.

The rows of `<lake>/quarantine/<table>` not replayed yet are evaluated again against the spec's rules as
they are now (the columns quarantine holds are silver's, already projected; the rules read those). A rule
that reads a column silver protects (`silver.pii`: hash, mask, drop) cannot be judged again, since the raw
value is kept in neither table: it keeps the verdict refine recorded in the row's `_failed_rules`.

- a malformed line (`corrupt_record`) or a row with a NULL key stays quarantined, as does a row that still
  fails a `quarantine` rule; a `fail` rule that fails stops the replay before anything is written (exit 1);
- a row that fails a `drop` rule now is marked replayed, outcome `dropped`, and reaches no table;
- the others are marked replayed, outcome `merged`, and merged into silver by the usual sequence rules:
  per key the greatest sequence wins, and a row replaces silver's only when its sequence is greater (a NULL
  sequence being the lowest). With an equal sequence silver keeps its row: quarantine does not know whether
  it arrived before or after it, and an older arrival must never overwrite a newer one. SCD2 appends
  versions newer than the current row; an older one would belong in the middle of the history, which a
  full refresh rebuilds (`--full-refresh`): it is counted as `stale`.

Marked rows stay in quarantine for audit (`_replayed_at`, `_replay_run`, `_replay_outcome`).

Exactly once across crashes. Replay N first rewrites quarantine with its rows marked, in one overwrite
commit carrying the app transaction (`lh360-replay-<table>`, N), then merges the rows marked N into silver
in one commit carrying the same transaction (an empty commit when nothing changes). A run that finds
quarantine at N and silver before it finishes replay N from the marks (the rows are re-merged by the same
rules against silver as it is then); a run that finds both at N starts N + 1. Both commits carry the
table's lh360 state forward (silver's watermark, quarantine's pin), so promotes go on as before.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from lh360 import pii
from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, commit_properties, open_table, reader, txn_version
from lh360.engines.base import ReplayResult
from lh360.engines.local.duck import LakeCatalog, connect
from lh360.engines.local.maintain import carried_state
from lh360.engines.local.refine import (
    CORRUPT_RECORD,
    TMP,
    RefineResult,
    _current,
    _current_rows,
    _merge,
    lit,
    q,
    refine_sql,
    rules,
)
from lh360.errors import CheckFailed, ConfigError, EngineError, LockBusy, UsageError, first_line
from lh360.layout import Lake
from lh360.spec import TableSpec

MARKS = {"_replayed_at": "TIMESTAMPTZ", "_replay_run": "BIGINT", "_replay_outcome": "VARCHAR"}
LINEAGE = {"_source_file": "VARCHAR", "_batch_id": "BIGINT", "_corrupt_record": "VARCHAR"}


def replay_app_id(spec: TableSpec) -> str:
    return f"lh360-replay-{spec.table}"


def replay(target: ResolvedTarget, spec: TableSpec) -> ReplayResult:
    """Replay the quarantined rows of `spec` (see the module docstring); the caller holds the table's lock."""

    if spec.silver is None:
        raise ConfigError("has no silver section: nothing is quarantined", file=_file(spec), field="silver")
    started = time.monotonic()
    lake, aws = Lake(target.lake), target.settings.aws
    q_uri, s_uri = lake.table("quarantine", spec.table), lake.table("silver", spec.table)
    qdt, sdt = open_table(q_uri, aws), open_table(s_uri, aws)
    if qdt is None or sdt is None:
        missing = f"quarantine.{spec.table}" if qdt is None else f"silver.{spec.table}"
        raise UsageError(
            f"{spec.table}: {missing} does not exist, so there is nothing to replay (run lh360 promote "
            f"{spec.table} --to silver first); nothing was written"
        )
    result = ReplayResult(table=spec.table, engine="local")
    marked, merged = txn_version(qdt, replay_app_id(spec)), txn_version(sdt, replay_app_id(spec))
    result.resumed = marked > merged
    run = marked if result.resumed else marked + 1
    result.replay_run = run
    con = connect(lake=target.lake)
    try:
        names = _silver_names(spec, qdt)
        _load(con, qdt, names)
        if not result.resumed:
            _evaluate(con, spec, names, result)
            if result.passed + result.dropped == 0:  # nothing leaves quarantine: write nothing
                result.replay_run = None
                result.quarantine_version, result.silver_version = qdt.version(), sdt.version()
                result.seconds = round(time.monotonic() - started, 3)
                return result
            result.quarantine_version = _mark(con, q_uri, aws, qdt, spec, run)
        else:
            result.quarantine_version = qdt.version()
            result.passed = con.execute(
                f"SELECT count(*) FROM {TMP}qall WHERE _replay_run = {run} AND _replay_outcome = 'merged'"
            ).fetchall()[0][0]
        _merge_marked(con, target, spec, sdt, run, names, result)
    finally:
        con.close()
    result.silver_version = open_table(s_uri, aws).version()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _silver_names(spec: TableSpec, qdt) -> list[str]:
    """Silver's columns as the spec names them now, but those silver.pii drops (neither table stores them);
    quarantine must hold each of them."""
    assert spec.silver is not None
    held = [f.name for f in qdt.schema().fields]
    names = spec.silver.stored_columns or [c for c in held if not c.startswith("_")]
    lacking = [n for n in names if n not in held]
    if lacking:
        raise UsageError(
            f"{spec.table}: silver.columns changed since these rows were quarantined (quarantine lacks "
            f"{', '.join(lacking)}): rebuild silver and quarantine from bronze instead: lh360 promote "
            f"{spec.table} --to silver --full-refresh"
        )
    return names


def _load(con, qdt, names: list[str]) -> None:
    """`__lh360_qall`: every quarantine row, with a row number, the marks and lineage (NULL where absent)."""

    held = set(arrow_schema(qdt).names)
    con.register(f"{TMP}qarrow", reader(qdt).read_all())
    extra = [f"NULL::{t} AS {q(c)}" for c, t in {**LINEAGE, **MARKS}.items() if c not in held]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {TMP}qall AS SELECT *{''.join(', ' + e for e in extra)}, "
        f"row_number() OVER () AS {q(TMP + 'qid')} FROM {TMP}qarrow"
    )


def _evaluate(con, spec: TableSpec, names: list[str], result: ReplayResult) -> None:
    """`__lh360_verdict` (qid, outcome): `merged` or `dropped` for the pending rows that leave quarantine."""
    assert spec.silver is not None
    recorded = set(pii.recorded_rules(spec))  # rules on protected columns: refine's verdict stands
    rs = [
        (name, f'NOT list_contains(coalesce("_failed_rules", []::VARCHAR[]), {lit(name)})', action)
        if name in recorded
        else (name, expr, action)
        for name, expr, action in rules(spec)
    ]
    corrupt = f'("_corrupt_record" IS NOT NULL OR list_contains("_failed_rules", {lit(CORRUPT_RECORD)}))'
    null_key = " OR ".join(f"{q(k)} IS NULL" for k in spec.silver.keys)
    oks = [f"coalesce(({expr}), false) AS {q(f'{TMP}ok{i}')}" for i, (_, expr, _) in enumerate(rs)]

    def failing(action: str) -> str:
        return " OR ".join(f"NOT {q(f'{TMP}ok{i}')}" for i, (_, _, a) in enumerate(rs) if a == action) or "false"

    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {TMP}judged AS
            SELECT *, {corrupt} OR ({null_key}) OR {failing("quarantine")} AS {q(TMP + "stays")},
                   {failing("drop")} AS {q(TMP + "drop")}, {failing("fail")} AS {q(TMP + "fail")}
            FROM (SELECT *{"".join(", " + o for o in oks)} FROM {TMP}qall WHERE "_replayed_at" IS NULL)"""
        )
    except Exception as exc:
        raise EngineError(f"{spec.table}: the expectations failed on quarantine's rows: {first_line(exc)}") from None
    failed = con.execute(
        f"SELECT count(*) FROM {TMP}judged WHERE {q(TMP + 'fail')} AND NOT {q(TMP + 'stays')}"
    ).fetchall()[0][0]
    if failed:
        raise CheckFailed(
            f"{spec.table}: {failed} quarantined row(s) fail an expectation with action fail; nothing was written"
        )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {TMP}verdict AS
        SELECT {q(TMP + "qid")}, CASE WHEN {q(TMP + "drop")} THEN 'dropped' ELSE 'merged' END AS outcome
        FROM {TMP}judged WHERE NOT {q(TMP + "stays")}"""
    )
    counts = con.execute(
        f"""SELECT (SELECT count(*) FROM {TMP}judged), count(*) FILTER (WHERE outcome = 'merged'),
                   count(*) FILTER (WHERE outcome = 'dropped') FROM {TMP}verdict"""
    ).fetchall()[0]
    result.evaluated, result.passed, result.dropped = (int(x) for x in counts)
    result.still_quarantined = result.evaluated - result.passed - result.dropped


def _mark(con, uri: str, aws, qdt, spec: TableSpec, run: int) -> int:
    """Quarantine rewritten with this replay's rows marked, in one commit with (replay app id, run)."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    now = lit(datetime.now(UTC).isoformat())
    qid = q(TMP + "qid")
    cols = [c for c in (r[0] for r in con.execute(f"DESCRIBE {TMP}qall").fetchall()) if c != TMP + "qid"]
    marks = {
        "_replayed_at": f"coalesce(q._replayed_at, CASE WHEN v.outcome IS NOT NULL THEN {now}::TIMESTAMPTZ END)",
        "_replay_run": f"coalesce(q._replay_run, CASE WHEN v.outcome IS NOT NULL THEN {int(run)} END)",
        "_replay_outcome": "coalesce(q._replay_outcome, v.outcome)",
    }
    select = ", ".join(f"{marks[c]} AS {q(c)}" if c in marks else f"q.{q(c)}" for c in cols)
    rows = con.sql(f"SELECT {select} FROM {TMP}qall AS q LEFT JOIN {TMP}verdict AS v USING ({qid})").to_arrow_table()
    metadata = {**carried_state(qdt)[1], "lh360.step": "replay", "lh360.replay": str(run)}
    props = commit_properties(replay_app_id(spec), run, metadata)
    try:
        write_deltalake(qdt, rows, mode="overwrite", schema_mode="merge", commit_properties=props)
    except CommitFailedError as exc:
        raise LockBusy(
            f"{spec.table}: another writer committed to quarantine first ({first_line(exc)}); try again"
        ) from None
    con.register(f"{TMP}marked", rows)  # what was committed: the merge reads its marks from it
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}qall AS SELECT * FROM {TMP}marked")
    return open_table(uri, aws).version()


def _merge_marked(con, target, spec: TableSpec, sdt, run: int, names: list[str], result: ReplayResult) -> None:
    """Merge the rows marked `merged` by replay `run` into silver by the sequence rules, in one commit."""

    assert spec.silver is not None
    silver = spec.silver
    seq, keys = q(silver.sequence_by), [q(k) for k in silver.keys]
    catalog = LakeCatalog(con, target)
    catalog.attach("silver", spec.table, version=sdt.version())
    current = f'(SELECT * FROM "silver".{q(spec.table)}' + (' WHERE "is_current")' if silver.scd == 2 else ")")
    on = " AND ".join(f"t.{k} = c.{k}" for k in keys)
    # a row silver holds with the same or a greater sequence wins (see the module docstring)
    newer_held = f"t.{seq} >= c.{seq} OR c.{seq} IS NULL"
    data = ", ".join(q(n) for n in names)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {TMP}refined AS
        SELECT {data}, "_source_file", "_batch_id", NULL::TIMESTAMPTZ AS {q(TMP + "arrival")},
               NULL::BIGINT AS {q(TMP + "line")}, false AS {q(TMP + "q")}, false AS {q(TMP + "d")}
        FROM {TMP}qall AS c
        WHERE c."_replay_run" = {int(run)} AND c."_replay_outcome" = 'merged'
          AND NOT EXISTS (SELECT 1 FROM {current} AS t WHERE {on} AND ({newer_held}))"""
    )
    fresh = con.execute(f"SELECT count(*) FROM {TMP}refined").fetchall()[0][0]
    # quarantine holds silver's columns as silver stores them (projected, personal data protected): none again
    plain = spec.model_copy(update={"silver": silver.model_copy(update={"columns": {}, "pii": {}})})
    sql = refine_sql(plain, [*names, "_source_file", "_batch_id"], source=f"{TMP}refined")
    if silver.scd == 2:
        _current(con, catalog, spec, sdt)
        ties = con.execute(sql["scd2_ties"]).fetchall()[0][0]
        _current_rows(con, spec, sdt if ties else None)
    source = con.sql(sql["merge_source"]).to_arrow_table()
    carried = carried_state(sdt)[1]
    metadata = {**carried, "lh360.step": "replay", "lh360.replay": str(run), "lh360.replayed": str(result.passed)}
    props = commit_properties(replay_app_id(spec), run, metadata)
    merged = RefineResult(table=spec.table)
    # one commit whatever changes (an empty one when nothing does): it records that replay `run` is merged
    _merge(Lake(target.lake).table("silver", spec.table), target.settings.aws, sdt, source, spec, props, merged)
    result.inserted = merged.inserted
    result.updated = merged.updated if silver.scd == 1 else merged.closed
    result.stale = result.passed - int(fresh)


def _file(spec: TableSpec) -> str | None:
    return str(spec.file) if spec.file else None
