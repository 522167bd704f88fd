"""Bronze → silver on the local engine: project, expectations, dedupe, guarded merge (SCD1/SCD2).

The rules are the ones lh360/spark/transforms.py implements for Databricks (a parity test compares them):

1. Project `silver.columns` (Spark SQL → DuckDB, lh360.engines.local.transpile) plus `_source_file`,
   `_batch_id`; no columns = every bronze column not starting with `_`.
2. Expectations: a row passes a rule only if it is TRUE (NULL fails). warn counts; drop removes;
   quarantine moves the row to `<lake>/quarantine/<table>` with `_failed_rules` (every rule it failed, in
   spec order), `_source_file`, `_batch_id`, `_quarantined_at`; quarantine beats drop; any `fail` row
   stops the step before anything is written (CheckFailed, exit 1). Before the spec's rules, lh360's own
   reasons: a malformed line (bronze's `_rescued_data._corrupt_record`) is quarantined as `corrupt_record`
   with its raw text in `_corrupt_record`, no rule evaluated on it; a row with a NULL key as `null_key`
   (a merge can never match it: it never enters silver).
3. Which version of a key wins: the greatest `sequence_by`, NULL being the lowest value (a NULL never
   freezes a key: any known sequence replaces it). Ties go to the latest arrival: the greatest `_batch_id`,
   then the file ingested later within its batch (`_source_modified_at`, then `_source_file`: the order
   ingest takes files in, not the name alone), then the greater `_line`; last, for bronze written before
   `_line` existed, a hash of the row, so the same bronze always gives the same silver.
4. SCD1: the in-batch winner updates silver's row when it is later by rule 3: a greater sequence, a known
   sequence over NULL, or an equal sequence (NULL = NULL) with different values, since every row of a
   run comes from a batch after the watermark, so it arrived after everything silver holds. New keys are
   inserted; an older version, or the same values again, changes nothing (a replay changes nothing).
5. SCD2: every distinct sequence newer than the key's current row is appended, chained by
   valid_from/valid_to; the previous current row is closed. A version with the current row's own sequence
   and other values replaces that row's values in place (one row per sequence, the later arrival's).
Promoting versions together or one promote at a time gives the same silver.

Exactly once. Silver's commits carry an app transaction (`lh360-refine-<table>`, version = run number N)
and the watermark: the bronze version (and ingest batch id) read up to, and bronze's table id. A run reads
only bronze rows committed after the watermark. The quarantine append is written BEFORE the silver merge
with its own app transaction (`lh360-quarantine-<table>`, same N) and the bronze version it read: after a
crash between the two commits the rerun is run N again, sees quarantine already holds N, skips that write
and reads bronze up to exactly the same version, so silver gets the same rows and quarantine no duplicates.
A crash before a commit leaves only unreferenced Parquet files (invisible; `vacuum` removes them).

Two runs that race (no lock shared: two machines, a deleted lock folder) never both commit. Both write
on the snapshots they read, with the same app transactions, so the second commit to either table fails
(CommitFailedError → LockBusy, exit 75) before it changes anything. A table's first write is an empty
create that must be version 0 (delta-rs would rebase a losing first write onto the winner's), and a spec
with quarantine rules commits to quarantine in every run, rows or not: that commit is where two runs
meet first, so the loser's quarantine rows never become visible.

Bronze rebuilt (deleted and ingested again) is refused: the watermark belongs to the old table (its id,
or a version or batch that went backwards), and reading on would skip rows forever. `full_refresh`
rebuilds silver from all of bronze instead: silver and quarantine are each replaced in one overwrite
commit. Silver's commits record `lh360.spec_hash`, the hash of the silver spec its rows were built with
(set by the first write and by a full refresh, carried by incremental runs; `lh360.run_spec_hash` is the
spec of each run), so a changed spec shows as `spec_hash(spec) != built_with(silver)`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lh360 import pii
from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, commit_properties, open_table, reader, txn_version
from lh360.engines.base import SpecDrift
from lh360.engines.local import transpile
from lh360.engines.local.duck import LakeCatalog, connect, duckdb_types, scan_sql
from lh360.engines.local.ingest_state import app_id as ingest_app_id
from lh360.errors import CheckFailed, ConfigError, EngineError, LH360Error, LockBusy, UsageError, first_line
from lh360.layout import Lake
from lh360.spec import QUARANTINE_REASONS, TableSpec, spec_hash
from lh360.sql import SQLError
from lh360.sql import quote_ident as q
from lh360.sql import quote_literal as lit
from lh360.storage import delta_storage_options, join, store_for, to_delta_uri

TMP = "__lh360_"
# quarantine reasons of lh360's own, besides the spec's rules (no expectation may be named so)
CORRUPT_RECORD, NULL_KEY = QUARANTINE_REASONS  # a malformed line (its raw text kept); a NULL key
SCD2_COLUMNS = ("valid_from", "valid_to", "is_current")
LINEAGE = ("_source_file", "_batch_id")
# bronze columns that order ties by arrival (rule 3); carried under scratch names, never written out
ARRIVAL = (("_source_modified_at", "TIMESTAMPTZ", "arrival"), ("_line", "BIGINT", "line"))
SAMPLE_ROWS = 5


def app_id(spec: TableSpec) -> str:
    return f"lh360-refine-{spec.table}"


def quarantine_app_id(spec: TableSpec) -> str:
    return f"lh360-quarantine-{spec.table}"


class BronzeRebuilt(EngineError):
    """Bronze is not the table silver's watermark was taken on: promoting would skip rows forever."""


@dataclass
class RefineResult:
    table: str
    run: int | None = None
    noop: bool = False
    full_refresh: bool = False
    bronze_from: int | None = None  # the watermark before this run (bronze version), None = never read
    bronze_to: int | None = None
    rows_in: int = 0
    kept: int = 0
    dropped: int = 0
    quarantined: int = 0
    warned: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0  # rows written to silver (inserted + updated, or SCD2 versions appended + replaced)
    inserted: int = 0
    updated: int = 0
    closed: int = 0
    silver_version: int | None = None
    quarantine_version: int | None = None
    quarantine_replayed: bool = False  # the quarantine append of this run was already committed
    spec_hash: str | None = None  # the spec silver is built with after this run (None: not recorded)
    full_refresh_due: bool = False  # silver is built with another version of the spec than this one
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"step": "refine", "relation": f"silver.{self.table}", **self.__dict__}


# ---- watermark -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watermark:
    """What silver's last refine commit recorded about bronze (and the spec silver was built with)."""

    version: int = -1  # bronze version read up to; -1: nothing read yet
    batch: int = -1  # bronze's ingest batch id at that version
    bronze_id: str | None = None  # bronze's Delta table id (metaData.id); None: written before it was recorded
    spec_hash: str | None = None
    timestamp: int | None = None  # ms since the epoch, of the commit that recorded it
    lost: bool = False  # log cleanup removed every record of it (silver from before the app transactions)


def _commits(dt, limit_first: int = 20):
    """Commit infos newest first; reads a few first because the one wanted is nearly always recent."""
    if dt is None:
        return
    seen = 0
    for commit in dt.history(limit_first):
        seen += 1
        yield commit
    if seen >= limit_first:
        yield from dt.history()[limit_first:]


def read_watermark(dt, spec: TableSpec | None = None) -> Watermark:
    """The watermark of silver's newest commit that records one (lh360's maintenance commits carry it
    forward, and its log cleanup keeps that commit). When log cleanup removed every such commit, the
    bronze version and batch come from the app transactions each refine commit also carries (a checkpoint
    keeps them); `lost` when not even those exist (silver from before them)."""
    oldest = None
    for commit in _commits(dt):
        if "lh360.bronze_version" in commit:
            return Watermark(
                version=int(commit["lh360.bronze_version"]),
                batch=int(commit.get("lh360.bronze_batch", -1)),
                bronze_id=commit.get("lh360.bronze_id"),
                spec_hash=commit.get("lh360.spec_hash"),
                timestamp=commit.get("timestamp"),
            )
        oldest = commit.get("version", oldest)
    if oldest is None or int(oldest) == 0:
        return Watermark()
    if spec is not None and txn_version(dt, watermark_app_id(spec, "bronze_version")) >= 0:
        return Watermark(
            version=txn_version(dt, watermark_app_id(spec, "bronze_version")),
            batch=txn_version(dt, watermark_app_id(spec, "bronze_batch")),
        )
    return Watermark(lost=True)


def watermark_app_id(spec: TableSpec, part: str) -> str:
    """App transactions that carry a commit's watermark as numbers, where log cleanup cannot remove them
    (checkpoints keep app transactions): silver's `bronze_version` and `bronze_batch`; quarantine's pin,
    `quarantine_bronze_version` and `quarantine_full_refresh` (1 or 0)."""
    return f"lh360-refine-{spec.table}.{part}"


def watermark(dt) -> tuple[int, int]:
    """(bronze version, ingest batch id) silver has read up to; (-1, -1) when it has read nothing."""
    w = read_watermark(dt)
    return w.version, w.batch


def spec_drift(target: ResolvedTarget, spec: TableSpec):
    """Engine.spec_drift: silver's recorded spec hash against the spec's now (None: no silver)."""

    if spec.silver is None:
        return None
    silver_dt = open_table(Lake(target.lake).table("silver", spec.table), target.settings.aws)
    if silver_dt is None:
        return None
    return SpecDrift(spec.table, read_watermark(silver_dt, spec).spec_hash, spec_hash(spec))


def built_with(dt) -> str | None:
    """The `spec_hash` silver's rows were built with; None if unknown (no silver, or silver older than it)."""
    return read_watermark(dt).spec_hash


def _quarantine_commit(spec: TableSpec, qdt, run: int) -> dict | None:
    """What quarantine's commit of `run` pinned (its bronze version; a full refresh?): from the commit, or,
    once log cleanup removed it, from the app transactions it carried (those of quarantine's last run)."""
    for commit in _commits(qdt):
        if str(commit.get("lh360.run")) == str(run):
            return commit
    pinned = -1
    if txn_version(qdt, quarantine_app_id(spec)) == run:
        pinned = txn_version(qdt, watermark_app_id(spec, "quarantine_bronze_version"))
    if pinned < 0:
        return None
    full = txn_version(qdt, watermark_app_id(spec, "quarantine_full_refresh")) == 1
    return {"lh360.bronze_version": str(pinned), **({"lh360.full_refresh": "true"} if full else {})}


def _check_bronze(spec: TableSpec, bronze_dt, w: Watermark, ingest_batch: int) -> None:
    """Refuse a bronze that is not the table the watermark was taken on (deleted and ingested again):
    its id changed, or its version or batch went backwards, or (a watermark that predates the id) it was
    created after the watermark was committed."""
    if w.version < 0:
        return
    meta = bronze_dt.metadata()
    reason = None
    if w.bronze_id and w.bronze_id != meta.id:
        reason = f"its Delta table id is {meta.id}, silver read {w.bronze_id}"
    elif bronze_dt.version() < w.version:
        reason = f"its version went back from {w.version} to {bronze_dt.version()}"
    elif 0 <= ingest_batch < w.batch:
        reason = f"its last ingest batch went back from {w.batch} to {ingest_batch}"
    elif not w.bronze_id and w.timestamp and meta.created_time and meta.created_time > w.timestamp:
        reason = "it was created after silver last read bronze"
    if reason:
        raise BronzeRebuilt(
            f"{spec.table}: bronze.{spec.table} was rebuilt since silver last read it ({reason}); silver's "
            f"watermark belongs to the old table and promoting would skip rows. Rebuild silver from all of "
            f"bronze: lh360 promote {spec.table} --to silver --full-refresh"
        )


# ---- SQL -------------------------------------------------------------------------------------------


def projected_columns(spec: TableSpec, bronze_columns: list[str] | None) -> list[tuple[str, str]]:
    """[(silver column, DuckDB expression)] in spec order."""

    assert spec.silver is not None
    if spec.silver.columns:
        out = []
        for name, text in spec.silver.columns.items():
            try:
                out.append((name, transpile.expression(text)))
            except SQLError as exc:
                raise ConfigError(str(exc), file=_file(spec), field=f"silver.columns.{name}") from None
        return out
    if bronze_columns is None:
        raise ValueError("bronze columns are needed when silver.columns is empty")
    return [(c, q(c)) for c in bronze_columns if not c.startswith("_")]


def rules(spec: TableSpec) -> list[tuple[str, str, str]]:
    """[(name, DuckDB boolean expression, action)] in spec order."""

    assert spec.silver is not None
    out: list[tuple[str, str, str]] = []
    for i, e in enumerate(spec.silver.expectations):
        try:
            out.append((e.name, transpile.expression(e.rule), e.action))
        except SQLError as exc:
            raise ConfigError(str(exc), file=_file(spec), field=f"silver.expectations[{i}].rule") from None
    return out


def refine_sql(
    spec: TableSpec, bronze_columns: list[str] | None, source: str = "__lh360_bronze_batch"
) -> dict[str, str]:
    """The step's SQL, by stage: `refined` (projection + one flag per rule), `quarantine`, `merge_source`;
    SCD2 also `scd2_ties` (how many versions carry their key's current sequence: only then are silver's
    current rows read, to compare their values).

    `plan` prints these; `refine` runs them.
    """
    assert spec.silver is not None
    silver = spec.silver
    cols = projected_columns(spec, bronze_columns)
    names = [c for c, _ in cols]
    rs = rules(spec)

    def bronze(column: str, type_: str, alias: str) -> str:
        present = bronze_columns is None or column in bronze_columns
        return f"{q(column)} AS {q(alias)}" if present else f"NULL::{type_} AS {q(alias)}"

    lineage = [bronze(m, t, m) for m, t in (("_source_file", "VARCHAR"), ("_batch_id", "BIGINT"))]
    lineage += [bronze(m, t, TMP + alias) for m, t, alias in ARRIVAL]
    corrupt, null_key = q(TMP + "corrupt"), q(TMP + "null_key")
    if bronze_columns is None or "_rescued_data" in bronze_columns:  # a malformed line's raw text
        lineage.append(f"json_extract_string({q('_rescued_data')}, '$._corrupt_record') AS {corrupt}")
    else:
        lineage.append(f"NULL::VARCHAR AS {corrupt}")
    select = ",\n    ".join([*(f"{expr} AS {q(name)}" for name, expr in cols), *lineage])
    # rules are not evaluated on a malformed line (its columns are NULL for want of a record, not by value)
    flags = [
        f"coalesce(({expr}), false) OR {corrupt} IS NOT NULL AS {q(f'{TMP}ok{i}')}" for i, (_, expr, _) in enumerate(rs)
    ]
    missing_key = " OR ".join(f"{q(k)} IS NULL" for k in silver.keys)
    flags.append(f"({missing_key}) AND {corrupt} IS NULL AS {null_key}")
    q_rules = [f"NOT {q(f'{TMP}ok{i}')}" for i, (_, _, a) in enumerate(rs) if a == "quarantine"]
    q_rules = [f"{corrupt} IS NOT NULL", null_key, *q_rules]  # lh360's own reasons, then the spec's
    d_rules = [f"NOT {q(f'{TMP}ok{i}')}" for i, (_, _, a) in enumerate(rs) if a == "drop"]
    refined = (
        f"SELECT *,\n  {' OR '.join(q_rules)} AS {q(TMP + 'q')},\n  {' OR '.join(d_rules) or 'false'} AS {q(TMP + 'd')}\n"
        f"FROM (\n  SELECT p.*{''.join(', ' + f for f in flags)}\n  FROM (\n    SELECT\n    {select}\n    FROM {source}\n  ) AS p\n)"
    )
    # personal data as silver.pii says silver stores it, once the rules have judged the real values
    refined, names = pii.protect(spec, names, refined)
    failed = [f"CASE WHEN {null_key} THEN {lit(NULL_KEY)} END"]
    failed += [f"CASE WHEN NOT {q(f'{TMP}ok{i}')} THEN {lit(n)} END" for i, (n, _, _) in enumerate(rs)]
    failed_rules = (
        f"CASE WHEN {corrupt} IS NOT NULL THEN [{lit(CORRUPT_RECORD)}] "
        f"ELSE list_filter([{', '.join(failed)}], lambda r: r IS NOT NULL) END::VARCHAR[]"
    )
    data = ", ".join(q(n) for n in names)
    quarantine = (
        f'SELECT {data}, {failed_rules} AS "_failed_rules", "_source_file", "_batch_id", '
        f'$quarantined_at::TIMESTAMPTZ AS "_quarantined_at", {corrupt} AS "_corrupt_record"\n'
        f"FROM {TMP}refined WHERE {q(TMP + 'q')}"
    )
    keys = ", ".join(q(k) for k in silver.keys)
    order = latest_first(silver.sequence_by, names)
    kept = f"NOT {q(TMP + 'q')} AND NOT {q(TMP + 'd')}"
    if silver.scd == 1:
        merge_source = (
            f"SELECT {data} FROM (\n  SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS {q(TMP + 'rn')}\n"
            f"  FROM {TMP}refined WHERE {kept}\n) WHERE {q(TMP + 'rn')} = 1"
        )
        return {"refined": refined, "quarantine": quarantine, "merge_source": merge_source}
    ties, merge_source = _scd2_sql(spec, names, kept, order)
    return {"refined": refined, "quarantine": quarantine, "scd2_ties": ties, "merge_source": merge_source}


def latest_first(sequence_by: str, names: list[str]) -> str:
    """ORDER BY of rule 3, the winner first: the greatest sequence (NULL lowest), then the latest arrival
    (batch, the file's place in its batch, line), then a hash of the row's values (bronze without `_line`:
    any tie left is between rows that differ nowhere else than in what the hash decides, deterministically)."""
    arrival = [f"{q(TMP + alias)} DESC NULLS LAST" for _, _, alias in ARRIVAL]
    return ", ".join(
        [
            f"{q(sequence_by)} DESC NULLS LAST",
            '"_batch_id" DESC NULLS LAST',
            arrival[0],
            '"_source_file" DESC NULLS LAST',
            arrival[1],
            f"hash({', '.join(q(n) for n in names)}) DESC",
        ]
    )


def _scd2_sql(spec: TableSpec, names: list[str], kept: str, order: str) -> tuple[str, str]:
    """(count of tying versions, the changes): inserts (every newer version, chained) and closes (the
    current row of each changed key: closed by its first newer version, and/or given the values of a
    version with its own sequence). `__lh360_current` holds silver's current keys and valid_from,
    `__lh360_current_rows` their values (only read when versions tie)."""
    assert spec.silver is not None
    keys = spec.silver.keys
    seq = q(spec.silver.sequence_by)
    part = ", ".join(q(k) for k in keys)
    on = " AND ".join(f"v.{q(k)} = c.{q(k)}" for k in keys)
    data = ", ".join(q(n) for n in names)
    cur, hit, rn = q(TMP + "cur"), q(TMP + "hit"), q(TMP + "rn")
    later = f"(v.{seq} > c.{cur} OR (c.{cur} IS NULL AND v.{seq} IS NOT NULL))"
    prefix = f"""WITH versions AS (
  SELECT {data} FROM (
    SELECT *, row_number() OVER (PARTITION BY {part}, {seq} ORDER BY {order}) AS {rn}
    FROM {TMP}refined WHERE {kept}
  ) WHERE {rn} = 1
),
cur AS (SELECT {part}, "valid_from" AS {cur}, true AS {hit} FROM {TMP}current),
classified AS (
  SELECT v.*, CASE WHEN c.{hit} IS NULL OR {later} THEN 'newer' WHEN v.{seq} IS NOT DISTINCT FROM c.{cur} THEN 'tie' END AS {q(TMP + "rel")}
  FROM versions AS v LEFT JOIN cur AS c ON {on}
)"""
    ties = f"{prefix}\nSELECT count(*) FROM classified WHERE {q(TMP + 'rel')} = 'tie'"

    def key_eq(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{q(k)} = {b}.{q(k)}" for k in keys)

    same = " AND ".join(f"r.{q(n)} IS NOT DISTINCT FROM t.{q(n)}" for n in names)
    close_cols = ", ".join(f"c.{q(n)}" if n in keys else f"t.{q(n)}" for n in names)
    nxt = f"lead({seq}) OVER (PARTITION BY {part} ORDER BY {seq} ASC NULLS FIRST)"
    first, tie = q(TMP + "first"), q(TMP + "tie")
    merge_source = f"""{prefix},
newer AS (SELECT {data} FROM classified WHERE {q(TMP + "rel")} = 'newer'),
ties AS (
  SELECT t.*, true AS {tie} FROM classified AS t WHERE t.{q(TMP + "rel")} = 'tie'
    AND NOT EXISTS (SELECT 1 FROM {TMP}current_rows AS r WHERE {key_eq("r", "t")} AND {same})
),
first_new AS (SELECT {part}, min({seq}) AS {first} FROM newer GROUP BY {part})
SELECT {data}, {seq} AS "valid_from", {nxt} AS "valid_to", ({nxt}) IS NULL AS "is_current", false AS {tie}, 'insert' AS {q(TMP + "change")}
FROM newer
UNION ALL BY NAME
SELECT {close_cols}, c.{cur} AS "valid_from", f.{first} AS "valid_to", f.{first} IS NULL AS "is_current",
  coalesce(t.{tie}, false) AS {tie}, 'close' AS {q(TMP + "change")}
FROM cur AS c LEFT JOIN first_new AS f ON {key_eq("c", "f")} LEFT JOIN ties AS t ON {key_eq("c", "t")}
WHERE f.{first} IS NOT NULL OR t.{tie}"""
    return ties, merge_source


# ---- the step --------------------------------------------------------------------------------------


def refine(target: ResolvedTarget, spec: TableSpec, *, con=None, full_refresh: bool = False) -> RefineResult:
    """Refine the bronze rows committed since silver's watermark into silver (one commit); with
    `full_refresh`, rebuild silver and quarantine from all of bronze (one overwrite commit each)."""

    if spec.silver is None:
        raise ConfigError("has no silver section", file=_file(spec), field="silver")
    started = time.monotonic()
    lake = Lake(target.lake)
    aws = target.settings.aws
    silver_uri = lake.table("silver", spec.table)
    quarantine_uri = lake.table("quarantine", spec.table)
    bronze_uri = lake.table("bronze", spec.table)
    result = RefineResult(table=spec.table, full_refresh=full_refresh)

    silver_dt = open_table(silver_uri, aws)
    run = txn_version(silver_dt, app_id(spec)) + 1
    result.run = run
    w = read_watermark(silver_dt, spec)
    if w.lost and not full_refresh:
        raise EngineError(
            f"{spec.table}: silver.{spec.table}'s log no longer records which bronze rows it has read (its log "
            f"was cleaned by something else than lh360 maintain); rebuild it: "
            f"lh360 promote {spec.table} --to silver --full-refresh"
        )
    result.bronze_from = None if w.version < 0 or full_refresh else w.version

    bronze_dt = open_table(bronze_uri, aws)
    if bronze_dt is None:
        if full_refresh:
            raise UsageError(
                f"{spec.table}: bronze.{spec.table} does not exist, so there is nothing to rebuild silver from "
                f"(silver is untouched); run lh360 ingest {spec.table} first"
            )
        result.noop, result.run = True, None
        result.silver_version = None if silver_dt is None else silver_dt.version()
        return result
    quarantine_dt = open_table(quarantine_uri, aws)
    b_to = txn_version(bronze_dt, ingest_app_id(spec))
    replay = False
    if not full_refresh:
        _check_bronze(spec, bronze_dt, w, b_to)
        replay = txn_version(quarantine_dt, quarantine_app_id(spec)) >= run
    if replay:
        pinned = _quarantine_commit(spec, quarantine_dt, run)
        if pinned is None or "lh360.bronze_version" not in pinned:
            raise EngineError(
                f"{spec.table}: quarantine holds run {run} but not its bronze version; inspect {quarantine_uri}"
            )
        if pinned.get("lh360.full_refresh") == "true":
            raise EngineError(
                f"{spec.table}: a full refresh of silver.{spec.table} was interrupted after quarantine was rebuilt; "
                f"finish it: lh360 promote {spec.table} --to silver --full-refresh"
            )
        bronze_dt = open_table(bronze_uri, aws, version=int(pinned["lh360.bronze_version"]))
        b_to = txn_version(bronze_dt, ingest_app_id(spec))
        result.quarantine_replayed = True
    v_to = bronze_dt.version()
    result.bronze_to = v_to
    # nothing new: bronze did not move, or moved by maintenance only (compaction adds no ingest batch)
    if not full_refresh and (v_to <= w.version or 0 <= b_to <= w.batch):
        result.noop, result.run = True, None
        result.silver_version = None if silver_dt is None else silver_dt.version()
        result.spec_hash = w.spec_hash
        result.full_refresh_due = w.spec_hash is not None and w.spec_hash != spec_hash(spec)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    own = con is None
    con = con or connect(lake=target.lake)
    try:
        pii.install(con, spec)
        bronze_types = duckdb_types(con, _schema(bronze_dt))
        _bronze_batch(con, target, spec, bronze_dt, bronze_types, w, full_refresh, scan_sql)
        sql = refine_sql(spec, list(bronze_types))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}refined AS {sql['refined']}")
        except Exception as exc:
            raise EngineError(
                f"{spec.table}: silver.columns or expectations failed on DuckDB: {first_line(exc)}"
            ) from None
        _count(con, spec, result)

        now = datetime.now(UTC)
        current_hash = spec_hash(spec)
        built = current_hash if (full_refresh or w.version < 0) else w.spec_hash
        result.spec_hash = built
        result.full_refresh_due = built is not None and built != current_hash
        metadata = {
            "lh360.step": "refine",
            "lh360.table": spec.table,
            "lh360.run": str(run),
            "lh360.bronze_version": str(v_to),
            "lh360.bronze_batch": str(b_to),
            "lh360.bronze_id": bronze_dt.metadata().id,
            "lh360.run_spec_hash": current_hash,
            **({"lh360.spec_hash": built} if built else {}),
            **({"lh360.full_refresh": "true"} if full_refresh else {}),
        }
        # a spec with quarantine rules commits to quarantine in every run (an empty append when nothing
        # was quarantined): the commit where two racing runs meet first (see the module docstring)
        claims = any(a == "quarantine" for _, _, a in rules(spec))
        if full_refresh and (result.quarantined or claims or quarantine_dt is not None):
            rows = con.sql(sql["quarantine"].replace("$quarantined_at", lit(now.isoformat()))).to_arrow_table()
            result.quarantine_version = _write_quarantine(
                quarantine_uri, aws, quarantine_dt, rows, spec, run, metadata, overwrite=True
            )
        elif (result.quarantined or claims) and not replay:
            rows = con.sql(sql["quarantine"].replace("$quarantined_at", lit(now.isoformat()))).to_arrow_table()
            result.quarantine_version = _write_quarantine(quarantine_uri, aws, quarantine_dt, rows, spec, run, metadata)
        elif quarantine_dt is not None:
            result.quarantine_version = quarantine_dt.version()

        if spec.silver.scd == 2:
            current_dt = None if full_refresh else silver_dt
            catalog = LakeCatalog(con, target)
            _current(con, catalog, spec, current_dt)
            ties = con.execute(sql["scd2_ties"]).fetchall()[0][0]
            _current_rows(con, spec, current_dt if ties else None)
        source = con.sql(sql["merge_source"]).to_arrow_table()
        metadata |= {"lh360.rows_in": str(result.rows_in), "lh360.quarantined": str(result.quarantined)}
        numbers = {watermark_app_id(spec, "bronze_version"): v_to, watermark_app_id(spec, "bronze_batch"): b_to}
        props = commit_properties(app_id(spec), run, metadata, numbers)
        _merge(silver_uri, aws, silver_dt, source, spec, props, result, full_refresh=full_refresh)
    finally:
        if own:
            con.close()
    result.silver_version = open_table(silver_uri, aws).version()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _bronze_batch(con, target, spec: TableSpec, bronze_dt, bronze_types, w: Watermark, full: bool, scan_sql) -> None:
    """`__lh360_bronze_batch`: the bronze rows of this run (all of them for a full refresh)."""
    bronze_uri = Lake(target.lake).table("bronze", spec.table)
    # the new rows: files added since the watermark version, and (in case bronze was compacted, which
    # rewrites old rows into new files) only batches after the watermark's batch
    files = bronze_dt.file_uris()
    if w.version >= 0 and not full:
        try:
            old = set(open_table(bronze_uri, target.settings.aws, version=w.version).file_uris())
            files = [f for f in files if f not in old]
        except Exception as exc:  # the old version's log is gone: the batch filter alone decides
            if isinstance(exc, LH360Error):  # an interruption, not a missing log
                raise
    scan = scan_sql(con, bronze_dt, bronze_uri, files=files)
    if scan is None:  # read through delta-rs
        con.register(f"{TMP}bronze_arrow", reader(bronze_dt).read_all())
        scan = f"SELECT * FROM {TMP}bronze_arrow"
    batched = w.batch >= 0 and not full and "_batch_id" in bronze_types
    where = f' WHERE "_batch_id" > {int(w.batch)}' if batched else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {TMP}bronze_batch AS SELECT * FROM ({scan}){where}")


def _schema(dt):
    return arrow_schema(dt)


def _count(con, spec: TableSpec, result: RefineResult) -> None:
    """Rule counters in one pass; a failing `fail` rule stops here, before any write."""
    rs = rules(spec)
    aggs = ["count(*)"] + [f"count(*) FILTER (WHERE NOT {q(f'{TMP}ok{i}')})" for i in range(len(rs))]
    aggs += [
        f"count(*) FILTER (WHERE {q(TMP + 'corrupt')} IS NOT NULL)",
        f"count(*) FILTER (WHERE {q(TMP + 'null_key')})",
        f"count(*) FILTER (WHERE {q(TMP + 'q')})",
        f"count(*) FILTER (WHERE {q(TMP + 'd')} AND NOT {q(TMP + 'q')})",
    ]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {TMP}refined").fetchall()[0]
    result.rows_in = int(row[0])
    result.rule_failures = {name: int(row[1 + i]) for i, (name, _, _) in enumerate(rs)}
    # lh360's own quarantine reasons, when they occurred
    result.rule_failures |= {n: int(v) for n, v in ((CORRUPT_RECORD, row[-4]), (NULL_KEY, row[-3])) if v}
    result.quarantined = int(row[-2])
    result.dropped = int(row[-1])
    result.kept = result.rows_in - result.quarantined - result.dropped
    result.warned = {n: result.rule_failures[n] for n, _, a in rs if a == "warn"}
    failed = {n: result.rule_failures[n] for n, _, a in rs if a == "fail" and result.rule_failures[n]}
    if failed:
        idx = [i for i, (n, _, _) in enumerate(rs) if n in failed]
        cond = " OR ".join(f"NOT {q(f'{TMP}ok{i}')}" for i in idx)
        sample = con.execute(
            f"SELECT COLUMNS(lambda c: NOT starts_with(c, '{TMP}')) FROM {TMP}refined WHERE {cond} LIMIT {SAMPLE_ROWS}"
        ).fetchall()
        cols = [d[0] for d in con.description]
        mask = pii.masker(spec, f"silver.{spec.table}")  # no personal data in an error message
        detail = "sample failing rows:\n" + "\n".join(
            "  " + ", ".join(f"{c}={v!r}" for c, v in mask(dict(zip(cols, r, strict=False))).items()) for r in sample
        )
        what = ", ".join(f"{n} ({k} row{'s' if k != 1 else ''})" for n, k in failed.items())
        raise CheckFailed(
            f"{spec.table}: expectation with action fail failed: {what}; nothing was written", detail=detail
        )


def _current(con, catalog, spec: TableSpec, silver_dt) -> None:
    """`__lh360_current`: the keys and valid_from of silver's current rows (SCD2 compares against them)."""
    assert spec.silver is not None
    keys = ", ".join(q(k) for k in spec.silver.keys)
    if silver_dt is not None:
        catalog.attach("silver", spec.table, version=silver_dt.version())
        con.execute(
            f'CREATE OR REPLACE TEMP VIEW {TMP}current AS SELECT {keys}, "valid_from" '
            f'FROM "silver".{q(spec.table)} WHERE "is_current"'
        )
        return
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {TMP}refined").fetchall()}
    cols = ", ".join(f"NULL::{types[k]} AS {q(k)}" for k in spec.silver.keys)
    seq_type = types[spec.silver.sequence_by]
    con.execute(
        f'CREATE OR REPLACE TEMP VIEW {TMP}current AS SELECT {cols}, NULL::{seq_type} AS "valid_from" WHERE false'
    )


def _current_rows(con, spec: TableSpec, silver_dt) -> None:
    """`__lh360_current_rows`: the values of silver's current rows, to tell a tying version that changes
    something from one delivered again; empty when nothing ties (`silver_dt` None), so silver is not read."""
    names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {TMP}refined").fetchall()]
    names = [n for n in names if not n.startswith(TMP) and n not in LINEAGE]
    if silver_dt is None:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {TMP}current_rows AS SELECT {', '.join(map(q, names))} FROM {TMP}refined WHERE false"
        )
        return
    present = set(_schema(silver_dt).names)
    cols = ", ".join(q(n) if n in present else f"NULL AS {q(n)}" for n in names)
    con.execute(
        f'CREATE OR REPLACE TEMP VIEW {TMP}current_rows AS SELECT {cols} FROM "silver".{q(spec.table)} WHERE "is_current"'
    )


def _create(uri: str, aws, schema, partition_by: list[str] | None, what: str):
    """Create the table, empty, in its own commit, and return it at that version (0). A plain first write
    is not safe: delta-rs rebases a first write, or a create, that loses the race for version 0 onto the
    winner's commits, so two first runs would both land their rows. The create carries a nonce; if
    version 0 is not ours, another writer created the table first: LockBusy (our commit, if delta-rs
    rebased it, holds no rows)."""
    from deltalake import CommitProperties, write_deltalake

    nonce = uuid.uuid4().hex
    try:
        write_deltalake(
            to_delta_uri(uri),
            schema.empty_table(),
            mode="error",
            partition_by=partition_by or None,
            storage_options=delta_storage_options(uri, aws),
            # no retry: a losing create would otherwise be rebased onto version 1, a metadata commit that then
            # fails the winner's next commit too ("Metadata changed since last commit")
            commit_properties=CommitProperties(
                custom_metadata={"lh360.step": "create", "lh360.create_nonce": nonce}, max_commit_retries=0
            ),
        )
    except Exception as exc:
        if "exist" in str(exc).lower() or "CommitFailed" in type(exc).__name__:
            raise LockBusy(
                f"{what}: another writer created the table first; nothing of this run is visible; try again"
            ) from None
        raise
    first = open_table(uri, aws, version=0)
    if first is None or _first_commit_nonce(uri, aws) != nonce:
        raise LockBusy(f"{what}: another writer created the table first; nothing of this run is visible; try again")
    return first


def _first_commit_nonce(uri: str, aws) -> str | None:
    """The create nonce in the table's commit 0, read from the log file itself."""
    store = store_for(uri, aws)
    try:
        text = store.read_bytes(join(uri, "_delta_log", f"{0:020d}.json")).decode("utf-8")
    except Exception as exc:
        if isinstance(exc, LH360Error):  # an interruption, not a missing file
            raise
        return None
    for line in text.splitlines():
        info = json.loads(line).get("commitInfo") if line.strip() else None
        if info is not None:
            return info.get("lh360.create_nonce")
    return None


def _write_quarantine(
    uri: str, aws, qdt, rows, spec: TableSpec, run: int, metadata: dict[str, str], *, overwrite: bool = False
) -> int:
    """Append (or, for a full refresh, replace) quarantine on the snapshot read at the start of the run,
    with run N's app transaction: a racing run's commit of N makes ours fail. Returns the new version."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    pin = {
        watermark_app_id(spec, "quarantine_bronze_version"): int(metadata["lh360.bronze_version"]),
        watermark_app_id(spec, "quarantine_full_refresh"): 1 if overwrite else 0,
    }
    props = commit_properties(quarantine_app_id(spec), run, {**metadata, "lh360.step": "quarantine"}, pin)
    try:
        if qdt is None:
            qdt = _create(uri, aws, rows.schema, None, f"{spec.table}: quarantine")
        write_deltalake(
            qdt,
            rows,
            mode="overwrite" if overwrite else "append",
            schema_mode="overwrite" if overwrite else "merge",
            commit_properties=props,
        )
    except CommitFailedError as exc:
        raise LockBusy(
            f"{spec.table}: another writer committed to quarantine first ({first_line(exc)}); "
            "nothing of this run is visible; try again"
        ) from None
    return open_table(uri, aws).version()


def scd1_guard(sequence_by: str, compared: list[str] | None) -> str:
    """The SCD1 merge's update condition (rule 4): `s` is later than silver's row `t`. `compared`: the
    columns whose values decide an equal sequence (None: treat every tie as a change)."""
    s, t = f"s.{q(sequence_by)}", f"t.{q(sequence_by)}"
    differs = " OR ".join(f"(s.{q(c)} IS DISTINCT FROM t.{q(c)})" for c in compared) if compared else "true"
    return f"({s} > {t}) OR ({t} IS NULL AND {s} IS NOT NULL) OR (({s} IS NOT DISTINCT FROM {t}) AND ({differs}))"


def _merge(
    uri: str, aws, dt, source, spec: TableSpec, props, result: RefineResult, *, full_refresh: bool = False
) -> None:
    """One commit to silver: the first write, a full refresh's overwrite, a guarded merge, or (nothing
    changed) an empty append that still moves the watermark. Always on the snapshot read at the start."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    assert spec.silver is not None
    silver = spec.silver
    change, tie = TMP + "change", TMP + "tie"
    scratch = [c for c in source.column_names if c.startswith(TMP)]
    try:
        if dt is None or full_refresh:
            rows = source
            if silver.scd == 2:
                rows = source.filter(pc.equal(source[change], "insert"))
            rows = rows.drop_columns(scratch)
            if dt is None:
                dt = _create(uri, aws, rows.schema, silver.partition_by, f"{spec.table}: silver")
                write_deltalake(dt, rows, mode="append", commit_properties=props)
            else:
                write_deltalake(
                    dt,
                    rows,
                    mode="overwrite",
                    schema_mode="overwrite",
                    partition_by=silver.partition_by or None,
                    commit_properties=props,
                )
            result.inserted = result.rows_out = rows.num_rows
            return
        if source.num_rows == 0:
            empty = pa.schema(dt.schema().to_arrow()).empty_table()
            write_deltalake(dt, empty, mode="append", commit_properties=props)
            return
        keys = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in silver.keys)
        target_cols = set(dt.schema().to_arrow().names)
        data = [c for c in source.column_names if c not in scratch]
        new_cols = [c for c in data if c not in target_cols]
        if silver.scd == 1:
            merger = dt.merge(
                source,
                predicate=keys,
                source_alias="s",
                target_alias="t",
                merge_schema=bool(new_cols),
                commit_properties=props,
            )
            guard = scd1_guard(silver.sequence_by, None if new_cols else data)
            metrics = merger.when_matched_update_all(predicate=guard).when_not_matched_insert_all().execute()
            result.inserted = int(metrics.get("num_target_rows_inserted", 0))
            result.updated = int(metrics.get("num_target_rows_updated", 0))
            result.rows_out = result.inserted + result.updated
        else:
            values = [c for c in data if c not in SCD2_COLUMNS]
            predicate = f'{keys} AND (t."valid_from" IS NOT DISTINCT FROM s."valid_from") AND t."is_current" = true'
            merger = dt.merge(
                source,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=bool(new_cols),
                commit_properties=props,
            )
            closing = {"valid_to": 's."valid_to"', "is_current": 's."is_current"'}
            metrics = (
                merger.when_matched_update(
                    updates={**{c: f"s.{q(c)}" for c in values}, **closing},
                    predicate=f"s.{q(change)} = 'close' AND s.{q(tie)}",
                )
                .when_matched_update(updates=closing, predicate=f"s.{q(change)} = 'close'")
                .when_not_matched_insert(updates={c: f"s.{q(c)}" for c in data}, predicate=f"s.{q(change)} = 'insert'")
                .execute()
            )
            closes = source.filter(pc.equal(source[change], "close"))
            result.inserted = int(metrics.get("num_target_rows_inserted", 0))
            result.updated = int(pc.sum(closes[tie]).as_py() or 0)  # values replaced in place
            result.closed = closes.num_rows - int(pc.sum(closes["is_current"]).as_py() or 0)
            result.rows_out = result.inserted + result.updated
        if result.rows_out == 0 and result.closed == 0 and open_table(uri, aws).version() == dt.version():
            # delta-rs makes no commit for a merge that changes nothing: commit the watermark anyway
            empty = pa.schema(dt.schema().to_arrow()).empty_table()
            write_deltalake(dt, empty, mode="append", commit_properties=props)
    except CommitFailedError as exc:
        raise LockBusy(
            f"{spec.table}: another writer committed to silver first ({first_line(exc)}); "
            "nothing of this run is visible; try again"
        ) from None
    except Exception as exc:
        if isinstance(exc, (LockBusy, CheckFailed)):
            raise
        raise EngineError(f"{spec.table}: writing silver failed: {first_line(exc)}") from None


def _file(spec: TableSpec) -> str | None:
    return str(spec.file) if spec.file else None


def describe(spec: TableSpec) -> dict[str, Any]:
    """What the merge does, for `plan`."""
    assert spec.silver is not None
    s = spec.silver
    return {
        "scd": s.scd,
        "keys": list(s.keys),
        "sequence_by": s.sequence_by,
        "partition_by": list(s.partition_by),
        "merge": (
            f"update when s is later: s.{s.sequence_by} > t.{s.sequence_by} (NULL lowest), or an equal "
            f"{s.sequence_by} with other values (later arrival); insert new keys"
            if s.scd == 1
            else "append newer versions, close the current row (valid_to, is_current); a version with the "
            "current row's own sequence and other values replaces that row's values"
        ),
        "ties": "latest arrival: _batch_id, then the file's place in its batch, then _line",
        "expectations": {e.name: e.action for e in s.expectations},
    }
