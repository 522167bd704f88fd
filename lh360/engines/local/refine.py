"""Bronze → silver on the local engine: project, expectations, dedupe, guarded merge (SCD1/SCD2).

The rules are the ones lh360/spark/transforms.py implements for Databricks (a parity test compares them):

1. Project `silver.columns` (Spark SQL → DuckDB, lh360.engines.local.transpile) plus `_source_file`,
   `_batch_id`; no columns = every bronze column not starting with `_`.
2. Expectations: a row passes a rule only if it is TRUE (NULL fails). warn counts; drop removes;
   quarantine moves the row to `<lake>/quarantine/<table>` with `_failed_rules` (every rule it failed, in
   spec order), `_source_file`, `_batch_id`, `_quarantined_at`; quarantine beats drop; any `fail` row
   stops the step before anything is written (CheckFailed, exit 1).
3. Dedupe per key: greatest `sequence_by`, then greatest `_batch_id`, then greatest `_source_file`.
4. SCD1: update when s.seq > t.seq, insert new keys, ignore equal/older (a replay changes nothing).
5. SCD2: append every distinct version newer than the key's current row, chain valid_from/valid_to, close
   the previous current row.

Exactly once. Silver's commits carry an app transaction (`lh360-refine-<table>`, version = run number N)
and the watermark: the bronze version (and ingest batch id) read up to. A run reads only bronze rows
committed after the watermark. The quarantine append is written BEFORE the silver merge with its own app
transaction (`lh360-quarantine-<table>`, same N) and the bronze version it read: after a crash between the
two commits the rerun is run N again, sees quarantine already holds N, skips that write and reads bronze
up to exactly the same version, so silver gets the same rows and quarantine no duplicates. A crash before
a commit leaves only unreferenced Parquet files (invisible; `vacuum` removes them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import commit_properties, open_table, txn_version
from lh360.errors import CheckFailed, ConfigError, EngineError, LockBusy
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import delta_storage_options, to_delta_uri

TMP = "__lh360_"
SCD2_COLUMNS = ("valid_from", "valid_to", "is_current")
LINEAGE = ("_source_file", "_batch_id")
SAMPLE_ROWS = 5


def app_id(spec: TableSpec) -> str:
    return f"lh360-refine-{spec.table}"


def quarantine_app_id(spec: TableSpec) -> str:
    return f"lh360-quarantine-{spec.table}"


@dataclass
class RefineResult:
    table: str
    run: int | None = None
    noop: bool = False
    bronze_from: int | None = None  # the watermark before this run (bronze version), None = never read
    bronze_to: int | None = None
    rows_in: int = 0
    kept: int = 0
    dropped: int = 0
    quarantined: int = 0
    warned: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0  # rows written to silver (inserted + updated, or SCD2 versions appended)
    inserted: int = 0
    updated: int = 0
    closed: int = 0
    silver_version: int | None = None
    quarantine_version: int | None = None
    quarantine_replayed: bool = False  # the quarantine append of this run was already committed
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"step": "refine", "relation": f"silver.{self.table}", **self.__dict__}


# ---- watermark -------------------------------------------------------------------------------------


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


def watermark(dt) -> tuple[int, int]:
    """(bronze version, ingest batch id) silver has read up to; (-1, -1) when it has read nothing."""
    for commit in _commits(dt):
        if "lh360.bronze_version" in commit:
            return int(commit["lh360.bronze_version"]), int(commit.get("lh360.bronze_batch", -1))
    return -1, -1


def _quarantine_pin(qdt, run: int) -> tuple[int, int] | None:
    for commit in _commits(qdt):
        if str(commit.get("lh360.run")) == str(run):
            return int(commit["lh360.bronze_version"]), int(commit.get("lh360.bronze_batch", -1))
    return None


# ---- SQL -------------------------------------------------------------------------------------------


def q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def lit(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def projected_columns(spec: TableSpec, bronze_columns: list[str] | None) -> list[tuple[str, str]]:
    """[(silver column, DuckDB expression)] in spec order."""
    from lh360.engines.local import transpile
    from lh360.sql import SQLError

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
    from lh360.engines.local import transpile
    from lh360.sql import SQLError

    assert spec.silver is not None
    out = []
    for i, e in enumerate(spec.silver.expectations):
        try:
            out.append((e.name, transpile.expression(e.rule), e.action))
        except SQLError as exc:
            raise ConfigError(str(exc), file=_file(spec), field=f"silver.expectations[{i}].rule") from None
    return out


def refine_sql(
    spec: TableSpec, bronze_columns: list[str] | None, source: str = "__lh360_bronze_batch"
) -> dict[str, str]:
    """The step's SQL, by stage: `refined` (projection + one flag per rule), `quarantine`, `merge_source`.

    `plan` prints these; `refine` runs them.
    """
    assert spec.silver is not None
    silver = spec.silver
    cols = projected_columns(spec, bronze_columns)
    names = [c for c, _ in cols]
    rs = rules(spec)
    lineage = []
    for m, t in (("_source_file", "VARCHAR"), ("_batch_id", "BIGINT")):
        lineage.append(q(m) if bronze_columns is None or m in bronze_columns else f"NULL::{t} AS {q(m)}")
    select = ",\n    ".join([*(f"{expr} AS {q(name)}" for name, expr in cols), *lineage])
    flags = [f"coalesce(({expr}), false) AS {q(f'{TMP}ok{i}')}" for i, (_, expr, _) in enumerate(rs)]
    q_rules = [f"NOT {q(f'{TMP}ok{i}')}" for i, (_, _, a) in enumerate(rs) if a == "quarantine"]
    d_rules = [f"NOT {q(f'{TMP}ok{i}')}" for i, (_, _, a) in enumerate(rs) if a == "drop"]
    refined = (
        f"SELECT *,\n  {' OR '.join(q_rules) or 'false'} AS {q(TMP + 'q')},\n  {' OR '.join(d_rules) or 'false'} AS {q(TMP + 'd')}\n"
        f"FROM (\n  SELECT p.*{''.join(', ' + f for f in flags)}\n  FROM (\n    SELECT\n    {select}\n    FROM {source}\n  ) AS p\n)"
    )
    failed = ", ".join(f"CASE WHEN NOT {q(f'{TMP}ok{i}')} THEN {lit(n)} END" for i, (n, _, _) in enumerate(rs))
    failed_rules = f"list_filter([{failed}], lambda r: r IS NOT NULL)::VARCHAR[]" if rs else "[]::VARCHAR[]"
    data = ", ".join(q(n) for n in names)
    quarantine = (
        f'SELECT {data}, {failed_rules} AS "_failed_rules", "_source_file", "_batch_id", '
        f'$quarantined_at::TIMESTAMPTZ AS "_quarantined_at"\nFROM {TMP}refined WHERE {q(TMP + "q")}'
    )
    keys = ", ".join(q(k) for k in silver.keys)
    seq = q(silver.sequence_by)
    order = f'{seq} DESC NULLS LAST, "_batch_id" DESC NULLS LAST, "_source_file" DESC NULLS LAST'
    kept = f"NOT {q(TMP + 'q')} AND NOT {q(TMP + 'd')}"
    if silver.scd == 1:
        merge_source = (
            f"SELECT {data} FROM (\n  SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS {q(TMP + 'rn')}\n"
            f"  FROM {TMP}refined WHERE {kept}\n) WHERE {q(TMP + 'rn')} = 1"
        )
    else:
        merge_source = _scd2_sql(spec, names, kept, order)
    return {"refined": refined, "quarantine": quarantine, "merge_source": merge_source}


def _scd2_sql(spec: TableSpec, names: list[str], kept: str, order: str) -> str:
    """Inserts (every newer version, chained) and closes (the current row of each changed key)."""
    assert spec.silver is not None
    keys = spec.silver.keys
    seq = q(spec.silver.sequence_by)
    part = ", ".join(q(k) for k in keys)
    on = " AND ".join(f"v.{q(k)} = c.{q(k)}" for k in keys)
    data = ", ".join(q(n) for n in names)
    nulls = ", ".join(f"NULL AS {q(n)}" if n not in keys else f"f.{q(n)}" for n in names)
    key_eq = " AND ".join(f"c.{q(k)} = f.{q(k)}" for k in keys)
    nxt = f"lead({seq}) OVER (PARTITION BY {part} ORDER BY {seq} ASC NULLS FIRST)"
    return f"""WITH versions AS (
  SELECT {data} FROM (
    SELECT *, row_number() OVER (PARTITION BY {part}, {seq} ORDER BY {order}) AS {q(TMP + "rn")}
    FROM {TMP}refined WHERE {kept}
  ) WHERE {q(TMP + "rn")} = 1
),
cur AS (SELECT {part}, "valid_from" AS {q(TMP + "cur")}, true AS {q(TMP + "hit")} FROM {TMP}current),
newer AS (
  SELECT v.* FROM versions AS v LEFT JOIN cur AS c ON {on}
  WHERE coalesce(c.{q(TMP + "hit")} IS NULL OR v.{seq} > c.{q(TMP + "cur")}, false)
),
first_new AS (SELECT {part}, min({seq}) AS {q(TMP + "first")} FROM newer GROUP BY {part})
SELECT {data}, {seq} AS "valid_from", {nxt} AS "valid_to", ({nxt}) IS NULL AS "is_current", 'insert' AS {q(TMP + "change")}
FROM newer
UNION ALL BY NAME
SELECT {nulls}, c.{q(TMP + "cur")} AS "valid_from", f.{q(TMP + "first")} AS "valid_to", false AS "is_current", 'close' AS {q(TMP + "change")}
FROM first_new AS f JOIN cur AS c ON {key_eq}"""


# ---- the step --------------------------------------------------------------------------------------


def refine(target: ResolvedTarget, spec: TableSpec, *, con=None) -> RefineResult:
    """Refine the bronze rows committed since silver's watermark into silver (one commit)."""
    from lh360.engines.local.duck import LakeCatalog, connect, duckdb_types, scan_sql
    from lh360.engines.local.ingest import app_id as ingest_app_id

    if spec.silver is None:
        raise ConfigError("has no silver section", file=_file(spec), field="silver")
    started = time.monotonic()
    lake = Lake(target.lake)
    aws = target.settings.aws
    silver_uri = lake.table("silver", spec.table)
    quarantine_uri = lake.table("quarantine", spec.table)
    bronze_uri = lake.table("bronze", spec.table)
    result = RefineResult(table=spec.table)

    silver_dt = open_table(silver_uri, aws)
    run = txn_version(silver_dt, app_id(spec)) + 1
    result.run = run
    w_version, w_batch = watermark(silver_dt)
    result.bronze_from = None if w_version < 0 else w_version

    bronze_dt = open_table(bronze_uri, aws)
    if bronze_dt is None:
        result.noop, result.run = True, None
        result.silver_version = None if silver_dt is None else silver_dt.version()
        return result
    quarantine_dt = open_table(quarantine_uri, aws)
    replay = txn_version(quarantine_dt, quarantine_app_id(spec)) >= run
    if replay:
        pin = _quarantine_pin(quarantine_dt, run)
        if pin is None:
            raise EngineError(
                f"{spec.table}: quarantine holds run {run} but not its bronze version; inspect {quarantine_uri}"
            )
        bronze_dt = open_table(bronze_uri, aws, version=pin[0])
        result.quarantine_replayed = True
    v_to = bronze_dt.version()
    result.bronze_to = v_to
    if v_to <= w_version:
        result.noop, result.run = True, None
        result.silver_version = None if silver_dt is None else silver_dt.version()
        result.seconds = round(time.monotonic() - started, 3)
        return result
    b_to = txn_version(bronze_dt, ingest_app_id(spec))

    own = con is None
    con = con or connect(lake=target.lake)
    try:
        # the new rows: files added since the watermark version, and (in case bronze was compacted,
        # which rewrites old rows into new files) only batches after the watermark's batch
        files = bronze_dt.file_uris()
        if w_version >= 0:
            try:
                old = set(open_table(bronze_uri, aws, version=w_version).file_uris())
                files = [f for f in files if f not in old]
            except Exception:  # the old version's log is gone: the batch filter alone decides
                pass
        bronze_types = duckdb_types(con, _schema(bronze_dt))
        scan = scan_sql(con, bronze_dt, bronze_uri, files=files)
        if scan is None:  # read through delta-rs
            from lh360.delta import reader

            con.register(f"{TMP}bronze_arrow", reader(bronze_dt).read_all())
            scan = f"SELECT * FROM {TMP}bronze_arrow"
        where = f' WHERE "_batch_id" > {int(w_batch)}' if w_batch >= 0 and "_batch_id" in bronze_types else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW {TMP}bronze_batch AS SELECT * FROM ({scan}){where}")
        sql = refine_sql(spec, list(bronze_types))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}refined AS {sql['refined']}")
        except Exception as exc:
            raise EngineError(f"{spec.table}: silver.columns or expectations failed on DuckDB: {_first(exc)}") from None
        _count(con, spec, result)

        now = datetime.now(UTC)
        metadata = {
            "lh360.step": "refine",
            "lh360.table": spec.table,
            "lh360.run": str(run),
            "lh360.bronze_version": str(v_to),
            "lh360.bronze_batch": str(b_to),
        }
        if result.quarantined and not replay:
            rows = con.sql(sql["quarantine"].replace("$quarantined_at", lit(now.isoformat()))).to_arrow_table()
            _write_quarantine(quarantine_uri, aws, rows, spec, run, metadata)
            result.quarantine_version = open_table(quarantine_uri, aws).version()
        elif quarantine_dt is not None:
            result.quarantine_version = quarantine_dt.version()

        if spec.silver.scd == 2:
            _current(con, LakeCatalog(con, target), spec, silver_dt)
        source = con.sql(sql["merge_source"]).to_arrow_table()
        metadata |= {"lh360.rows_in": str(result.rows_in), "lh360.quarantined": str(result.quarantined)}
        props = commit_properties(app_id(spec), run, metadata)
        _merge(silver_uri, aws, silver_dt, source, spec, props, result)
    finally:
        if own:
            con.close()
    result.silver_version = open_table(silver_uri, aws).version()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _schema(dt):
    from lh360.delta import arrow_schema

    return arrow_schema(dt)


def _count(con, spec: TableSpec, result: RefineResult) -> None:
    """Rule counters in one pass; a failing `fail` rule stops here, before any write."""
    rs = rules(spec)
    aggs = ["count(*)"] + [f"count(*) FILTER (WHERE NOT {q(f'{TMP}ok{i}')})" for i in range(len(rs))]
    aggs += [
        f"count(*) FILTER (WHERE {q(TMP + 'q')})",
        f"count(*) FILTER (WHERE {q(TMP + 'd')} AND NOT {q(TMP + 'q')})",
    ]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {TMP}refined").fetchall()[0]
    result.rows_in = int(row[0])
    result.rule_failures = {name: int(row[1 + i]) for i, (name, _, _) in enumerate(rs)}
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
        detail = "sample failing rows:\n" + "\n".join(
            "  " + ", ".join(f"{c}={v!r}" for c, v in zip(cols, r, strict=False)) for r in sample
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


def _write_quarantine(uri: str, aws, rows, spec: TableSpec, run: int, metadata: dict[str, str]) -> None:
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    try:
        write_deltalake(
            to_delta_uri(uri),
            rows,
            mode="append",
            schema_mode="merge",
            storage_options=delta_storage_options(uri, aws),
            commit_properties=commit_properties(quarantine_app_id(spec), run, {**metadata, "lh360.step": "quarantine"}),
        )
    except CommitFailedError as exc:
        raise LockBusy(
            f"{spec.table}: another writer committed to quarantine first ({_first(exc)}); try again"
        ) from None


def _merge(uri: str, aws, dt, source, spec: TableSpec, props, result: RefineResult) -> None:
    """One commit to silver: the first write, a guarded merge, or (nothing changed) an empty append that
    still moves the watermark."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    assert spec.silver is not None
    silver = spec.silver
    change = TMP + "change"
    storage = delta_storage_options(uri, aws)
    try:
        if dt is None:
            rows = source
            if silver.scd == 2:
                rows = source.filter(pc.equal(source[change], "insert")).drop_columns([change])
            write_deltalake(
                to_delta_uri(uri),
                rows,
                mode="append",
                partition_by=silver.partition_by or None,
                storage_options=storage,
                commit_properties=props,
            )
            result.inserted = result.rows_out = rows.num_rows
            return
        if source.num_rows == 0:
            empty = pa.schema(dt.schema().to_arrow()).empty_table()
            write_deltalake(dt, empty, mode="append", commit_properties=props)
            return
        keys = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in silver.keys)
        new_cols = [c for c in source.column_names if c not in set(dt.schema().to_arrow().names) and c != change]
        if silver.scd == 1:
            merger = dt.merge(
                source,
                predicate=keys,
                source_alias="s",
                target_alias="t",
                merge_schema=bool(new_cols),
                commit_properties=props,
            )
            seq = q(silver.sequence_by)
            metrics = (
                merger.when_matched_update_all(predicate=f"s.{seq} > t.{seq}").when_not_matched_insert_all().execute()
            )
            result.inserted = int(metrics.get("num_target_rows_inserted", 0))
            result.updated = int(metrics.get("num_target_rows_updated", 0))
            result.rows_out = result.inserted + result.updated
        else:
            data = [c for c in source.column_names if c != change]
            predicate = f'{keys} AND t."valid_from" = s."valid_from" AND t."is_current" = true'
            merger = dt.merge(
                source,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=bool(new_cols),
                commit_properties=props,
            )
            metrics = (
                merger.when_matched_update(
                    updates={"valid_to": 's."valid_to"', "is_current": "false"}, predicate=f"s.{q(change)} = 'close'"
                )
                .when_not_matched_insert(updates={c: f"s.{q(c)}" for c in data}, predicate=f"s.{q(change)} = 'insert'")
                .execute()
            )
            result.inserted = result.rows_out = int(metrics.get("num_target_rows_inserted", 0))
            result.closed = int(metrics.get("num_target_rows_updated", 0))
        if result.rows_out == 0 and result.closed == 0 and open_table(uri, aws).version() == dt.version():
            # delta-rs makes no commit for a merge that changes nothing: commit the watermark anyway
            empty = pa.schema(dt.schema().to_arrow()).empty_table()
            write_deltalake(dt, empty, mode="append", commit_properties=props)
    except CommitFailedError as exc:
        raise LockBusy(
            f"{spec.table}: another writer committed to silver first ({_first(exc)}); "
            "nothing of this run is visible; try again"
        ) from None
    except Exception as exc:
        if isinstance(exc, (LockBusy, CheckFailed)):
            raise
        raise EngineError(f"{spec.table}: writing silver failed: {_first(exc)}") from None


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


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
            f"update when s.{s.sequence_by} > t.{s.sequence_by}, insert new keys"
            if s.scd == 1
            else "append newer versions, close the current row (valid_to, is_current)"
        ),
        "expectations": {e.name: e.action for e in s.expectations},
    }
