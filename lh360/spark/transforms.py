"""Pure DataFrame -> DataFrame transforms of the refine step (bronze batch -> silver).

pyspark + stdlib only: this file is uploaded next to ``job.py`` and must not import lh360.
No I/O happens here; the only Spark actions are the counters of :func:`evaluate_expectations`.
The spec helpers (``silver_columns``, ``expectations``, ``validate_silver_spec`` ...) need no pyspark.

Semantics (the local DuckDB engine implements the same rules; a parity test compares them):

1. :func:`project` -- ``SELECT <expr> AS <col>, ..., _source_file, _batch_id`` in spec order (plus two
   scratch columns of arrival order, from ``_source_modified_at`` and ``_line``, dropped before writing).
2. :func:`evaluate_expectations` -- a row passes a rule only if the rule is TRUE (NULL fails).
   ``warn`` counts, ``drop`` removes, ``quarantine`` moves the row out (quarantine beats drop),
   ``fail`` raises :class:`ExpectationFailed` before anything is written. Before the spec's rules, lh360's
   own reasons: a malformed line (``_rescued_data._corrupt_record``) is quarantined as ``corrupt_record``
   with its raw text in ``_corrupt_record`` (no rule is evaluated on it), and a row with a NULL key as
   ``null_key`` (it never enters silver).
3. :func:`dedupe` -- per key, the greatest ``sequence_by`` wins, NULL being the lowest value; ties go
   to the latest arrival: the greatest ``_batch_id``, then the file ingested later in its batch
   (``_source_modified_at``, then ``_source_file``), then the greater ``_line``; last a hash of the row's
   values. Auto Loader numbers no lines, so on Databricks two versions of one key with one sequence in
   one file are told apart by that hash: deterministic, not line order.
4. SCD1 (:func:`scd1_upserts` / :func:`scd1_apply`) -- update when the incoming version is later: a
   greater sequence, a sequence over NULL, or an equal sequence (NULL = NULL) with other values (every
   incoming row arrived after silver's); insert when the key is new; older versions, or the same values
   again, change nothing.
5. SCD2 (:func:`scd2_changes` / :func:`scd2_apply`) -- every distinct newer version is appended with
   ``valid_from``/``valid_to``/``is_current``; the previous current row is closed. A version with the
   current row's own sequence and other values replaces that row's values in place.
6. Quarantine replay (:func:`judge_quarantine`, :func:`replay_counters`, :func:`marked_quarantine`,
   :func:`replay_later`, :func:`replay_merge_source`) -- quarantined rows judged again by the same rules
   (:func:`flag_rows`), and those that pass merged by sequence alone: only a version strictly later than
   silver's current row of its key is merged (runtime.run_replay says why that makes a replay exactly once).
"""

from __future__ import annotations

import hashlib
from typing import Any

try:
    from pyspark.sql import Column, DataFrame, Window
    from pyspark.sql import functions as F
except ImportError:  # the ops box has no pyspark: the spec helpers still work (payload validation)
    Column = DataFrame = Window = F = None  # type: ignore[assignment,misc]

ACTIONS = ("warn", "drop", "quarantine", "fail")
META_COLUMNS = ("_source_file", "_batch_id")
META_TYPES = {"_source_file": "string", "_batch_id": "bigint"}
SCD2_COLUMNS = ("valid_from", "valid_to", "is_current")
CHANGE_COLUMN = "_change"  # scd2_changes(): "insert" (a new version) or "close" (change the current row)
TIE_COLUMN = "_tie"  # scd2_changes(), a close row: it carries a tying version's values for the current row
QUARANTINE_EXTRA = ("_failed_rules", "_source_file", "_batch_id", "_quarantined_at", "_corrupt_record")
# quarantine reasons of lh360's own, before the spec's rules
CORRUPT_RECORD = "corrupt_record"  # a malformed line (`_rescued_data._corrupt_record`): quarantined with its text
NULL_KEY = "null_key"  # a key column is NULL: such a row never enters silver
_RESERVED = set(META_COLUMNS) | set(QUARANTINE_EXTRA) | {CHANGE_COLUMN, TIE_COLUMN}
_TMP = "__lh360_"  # prefix of scratch columns, never left in an output
# bronze columns that order ties by arrival (dedupe), carried by project() under scratch names
ARRIVAL = (("_source_modified_at", "timestamp", _TMP + "arrival"), ("_line", "bigint", _TMP + "line"))
CORRUPT = _TMP + "corrupt"  # project(): a malformed line's raw text, NULL for a parsed record


class SpecError(ValueError):
    """The silver part of a table spec is unusable (names the field)."""


class ExpectationFailed(RuntimeError):
    """An expectation with action ``fail`` failed on at least one row; nothing was written.

    ``str()`` starts with :data:`MARKER` so the driver can recognise it after Spark wrapped it
    (a foreachBatch exception reaches the driver as a StreamingQueryException).
    """

    MARKER = "LH360_EXPECTATION_FAILED"

    def __init__(self, failed: dict[str, int], counters: dict[str, Any]):
        self.failed = dict(failed)
        self.counters = counters
        detail = ", ".join(f"{name} ({n} row{'s' if n != 1 else ''})" for name, n in failed.items())
        super().__init__(f"{self.MARKER}: expectation(s) with action 'fail' failed: {detail}")


# --------------------------------------------------------------------------- spec access


def quote(name: str) -> str:
    """A Spark SQL identifier, always back-quoted."""
    return "`" + str(name).replace("`", "``") + "`"


def col(name: str) -> Column:
    """A column by exact name (dots and spaces are part of the name, not struct access)."""
    return F.col(quote(name))


def silver_spec(spec: dict) -> dict:
    silver = spec.get("silver") or {}
    if not isinstance(silver, dict):
        raise SpecError("silver: must be a mapping")
    return silver


def silver_columns(spec: dict) -> list[tuple[str, str]]:
    """``silver.columns`` as ``[(name, spark_sql_expression), ...]`` in spec order ([] if absent)."""
    cols = silver_spec(spec).get("columns") or {}
    if isinstance(cols, dict):
        pairs = list(cols.items())
    elif isinstance(cols, list):  # [{name: expr}, ...] or [[name, expr], ...]
        pairs = []
        for item in cols:
            if isinstance(item, dict) and len(item) == 1:
                pairs.extend(item.items())
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise SpecError(f"silver.columns: cannot read entry {item!r}")
    else:
        raise SpecError("silver.columns: must be a mapping of column name to Spark SQL expression")
    out = []
    for name, expr in pairs:
        if not isinstance(name, str) or not name:
            raise SpecError(f"silver.columns: bad column name {name!r}")
        if name in _RESERVED or name.startswith(_TMP):
            raise SpecError(f"silver.columns.{name}: the name is reserved by lh360")
        if expr is None or str(expr).strip() == "":
            raise SpecError(f"silver.columns.{name}: empty expression")
        out.append((name, str(expr)))
    return out


def expectations(spec: dict) -> list[dict]:
    """``silver.expectations`` validated: ``[{name, rule, action}, ...]`` in spec order."""
    exps = silver_spec(spec).get("expectations") or []
    if not isinstance(exps, list):
        raise SpecError("silver.expectations: must be a list")
    out, seen = [], set()
    for i, e in enumerate(exps):
        where = f"silver.expectations[{i}]"
        if not isinstance(e, dict):
            raise SpecError(f"{where}: must be a mapping with name, rule, action")
        name, rule, action = e.get("name"), e.get("rule"), e.get("action", "warn")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}.name: required")
        if name in seen:
            raise SpecError(f"{where}.name: duplicate expectation name {name!r}")
        if name in (CORRUPT_RECORD, NULL_KEY):
            raise SpecError(f"{where}.name: {name!r} is lh360's own quarantine reason")
        seen.add(name)
        if not isinstance(rule, str) or not rule.strip():
            raise SpecError(f"{where}.rule: required")
        if action not in ACTIONS:
            raise SpecError(f"{where}.action: {action!r} is not one of {', '.join(ACTIONS)}")
        out.append({"name": name, "rule": rule, "action": action})
    return out


def keys_and_sequence(spec: dict) -> tuple[list[str], str]:
    silver = silver_spec(spec)
    keys = silver.get("keys")
    if isinstance(keys, str):
        keys = [keys]
    if not keys or not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise SpecError("silver.keys: required (a non-empty list of column names)")
    seq = silver.get("sequence_by")
    if not isinstance(seq, str) or not seq:
        raise SpecError("silver.sequence_by: required (the column whose greatest value wins)")
    return list(keys), seq


def scd_type(spec: dict) -> int:
    scd = silver_spec(spec).get("scd", 1)
    if scd in (1, 2, "1", "2"):
        return int(scd)
    raise SpecError(f"silver.scd: {scd!r} is not 1 or 2")


def validate_silver_spec(spec: dict) -> None:
    """Raise :class:`SpecError` if the silver part of ``spec`` cannot be refined."""
    cols = [n for n, _ in silver_columns(spec)]
    keys, seq = keys_and_sequence(spec)
    scd_type(spec)
    expectations(spec)
    if cols:
        for k in [*keys, seq]:
            if k not in cols:
                raise SpecError(f"silver: key/sequence column {k!r} is not in silver.columns")
        if scd_type(spec) == 2:
            for c in SCD2_COLUMNS:
                if c in cols:
                    raise SpecError(f"silver.columns.{c}: reserved for scd: 2")
        for c in silver_spec(spec).get("partition_by") or []:
            if c not in cols:
                raise SpecError(f"silver.partition_by: {c!r} is not in silver.columns")


# --------------------------------------------------------------------------- 1. project


def project(df: DataFrame, spec: dict) -> DataFrame:
    """Apply ``silver.columns`` (Spark SQL expressions, spec order) and keep the lineage columns.

    Without ``columns``: every bronze column that does not start with ``_``.
    The result always ends with ``_source_file`` and ``_batch_id`` (NULL if bronze lacks them), then the
    scratch arrival columns :func:`dedupe` orders ties by.
    """
    pairs = silver_columns(spec)
    if pairs:
        exprs = [F.expr(expr).alias(name) for name, expr in pairs]
    else:
        exprs = [col(c) for c in df.columns if not c.startswith("_")]
    for m in META_COLUMNS:
        exprs.append(col(m) if m in df.columns else F.lit(None).cast(META_TYPES[m]).alias(m))
    for source, type_, alias in ARRIVAL:
        exprs.append((col(source) if source in df.columns else F.lit(None)).cast(type_).alias(alias))
    if "_rescued_data" in df.columns:
        exprs.append(F.get_json_object(col("_rescued_data"), "$._corrupt_record").alias(CORRUPT))
    else:
        exprs.append(F.lit(None).cast("string").alias(CORRUPT))
    return df.select(*exprs)


def data_columns(df: DataFrame) -> list[str]:
    """The projected (silver) columns of a projected frame: everything but the lineage columns."""
    return [c for c in df.columns if c not in META_COLUMNS and not c.startswith(_TMP)]


# --------------------------------------------------------------------------- 2. expectations


def _any(conds: list[Column]) -> Column:
    out = F.lit(False)
    for c in conds:
        out = out | c
    return out


def _failed(i: int) -> Column:
    """The row fails expectation ``i`` (a :func:`flag_rows` column)."""
    return ~F.col(f"{_TMP}ok{i}")


def flag_rows(df: DataFrame, spec: dict) -> DataFrame:
    """``df`` (with the :data:`CORRUPT` column, NULL where absent) plus scratch verdict columns: ``ok<i>`` per
    expectation (the rule is TRUE, or the row is a malformed line), ``null_key``, ``q`` (quarantined:
    malformed, a NULL key, or a ``quarantine`` rule failed) and ``d`` (dropped: a ``drop`` rule failed and
    the row is not quarantined)."""
    exps = expectations(spec)
    keys, _ = keys_and_sequence(spec)
    if CORRUPT not in df.columns:
        df = df.withColumn(CORRUPT, F.lit(None).cast("string"))
    corrupt = F.col(CORRUPT).isNotNull()
    # rules are not evaluated on a malformed line (its columns are NULL for want of a record, not by value)
    oks = [(F.coalesce(F.expr(e["rule"]), F.lit(False)) | corrupt).alias(f"{_TMP}ok{i}") for i, e in enumerate(exps)]
    null_key = (_any([col(k).isNull() for k in keys]) & ~corrupt).alias(f"{_TMP}null_key")
    flagged = df.select(*[col(c) for c in df.columns], *oks, null_key)
    q_cond = _any(
        [corrupt, F.col(f"{_TMP}null_key"), *[_failed(i) for i, e in enumerate(exps) if e["action"] == "quarantine"]]
    )
    d_cond = _any([_failed(i) for i, e in enumerate(exps) if e["action"] == "drop"])
    return flagged.withColumn(f"{_TMP}q", q_cond).withColumn(f"{_TMP}d", d_cond & ~F.col(f"{_TMP}q"))


def expectation_aggregates(spec: dict) -> list[Column]:
    """The counters of a :func:`flag_rows` frame, as one aggregate: ``rows_in``, ``r<i>`` (rows failing
    rule i), ``corrupt``, ``null_key``, ``quarantined``, ``dropped``. They name only the verdict columns,
    so the scan under them reads only what the rules and keys name."""
    n = len(expectations(spec))
    aggs = [F.count(F.lit(1)).alias("rows_in")]
    aggs += [F.sum(F.when(_failed(i), 1).otherwise(0)).alias(f"r{i}") for i in range(n)]
    aggs += [
        F.sum(F.when(F.col(CORRUPT).isNotNull(), 1).otherwise(0)).alias("corrupt"),
        F.sum(F.when(F.col(f"{_TMP}null_key"), 1).otherwise(0)).alias("null_key"),
        F.sum(F.when(F.col(f"{_TMP}q"), 1).otherwise(0)).alias("quarantined"),
        F.sum(F.when(F.col(f"{_TMP}d"), 1).otherwise(0)).alias("dropped"),
    ]
    return aggs


def evaluate_expectations(
    df: DataFrame, spec: dict, *, raise_on_fail: bool = True
) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """Check every expectation row by row on a projected frame.

    Returns ``(kept_df, quarantine_df, counters)``:

    * ``kept_df`` -- the projected rows (plus ``_source_file``, ``_batch_id``) that are neither
      dropped nor quarantined;
    * ``quarantine_df`` -- projected columns + ``_failed_rules`` (array<string>: ALL rules the row
      failed, in spec order) + ``_source_file`` + ``_batch_id`` + ``_quarantined_at``;
    * ``counters`` -- ``rows_in``, ``kept``, ``dropped``, ``quarantined``, ``warned`` {rule: n},
      ``failed`` {rule: n} (action ``fail``), ``rule_failures`` {rule: n} (every rule, over all
      rows_in).

    A row fails a rule unless the rule is TRUE (NULL fails). Quarantine beats drop.
    If a ``fail`` rule failed on any row, raises :class:`ExpectationFailed` (unless
    ``raise_on_fail=False``): call it before writing anything. Runs one Spark job (the counters), which
    reads only the columns the rules and keys name (:func:`expectation_aggregates`).
    """
    exps = expectations(spec)
    data_cols = data_columns(df)
    flagged = flag_rows(df, spec)
    columns = [*df.columns, *([] if CORRUPT in df.columns else [CORRUPT])]  # flagged's, without the verdicts
    corrupt = F.col(CORRUPT).isNotNull()
    row = flagged.agg(*expectation_aggregates(spec)).first()
    assert row is not None  # an aggregate without GROUP BY has exactly one row
    rows_in = int(row["rows_in"] or 0)
    rule_failures = {e["name"]: int(row[f"r{i}"] or 0) for i, e in enumerate(exps)}
    # lh360's own quarantine reasons, when they occurred
    rule_failures |= {n: int(row[k] or 0) for n, k in ((CORRUPT_RECORD, "corrupt"), (NULL_KEY, "null_key")) if row[k]}
    quarantined, dropped = int(row["quarantined"] or 0), int(row["dropped"] or 0)
    counters: dict[str, Any] = {
        "rows_in": rows_in,
        "kept": rows_in - quarantined - dropped,
        "dropped": dropped,
        "quarantined": quarantined,
        "warned": {e["name"]: rule_failures[e["name"]] for e in exps if e["action"] == "warn"},
        "failed": {e["name"]: rule_failures[e["name"]] for e in exps if e["action"] == "fail"},
        "rule_failures": rule_failures,
    }
    if raise_on_fail:
        bad = {k: v for k, v in counters["failed"].items() if v > 0}
        if bad:
            raise ExpectationFailed(bad, counters)

    kept = flagged.where(~F.col(f"{_TMP}q") & ~F.col(f"{_TMP}d")).select(*[col(c) for c in columns])
    reasons = [F.when(F.col(f"{_TMP}null_key"), F.lit(NULL_KEY))]
    reasons += [F.when(_failed(i), F.lit(e["name"])) for i, e in enumerate(exps)]
    failed_rules = F.when(corrupt, F.array(F.lit(CORRUPT_RECORD))).otherwise(
        F.filter(F.array(*reasons), lambda x: x.isNotNull())
    )
    quarantine = flagged.where(F.col(f"{_TMP}q")).select(
        *[col(c) for c in data_cols],
        failed_rules.cast("array<string>").alias("_failed_rules"),
        col("_source_file"),
        col("_batch_id"),
        F.current_timestamp().alias("_quarantined_at"),
        F.col(CORRUPT).alias("_corrupt_record"),
    )
    return kept, quarantine, counters


# --------------------------------------------------------------------------- 3. dedupe


def dedupe(df: DataFrame, keys: list[str], sequence_by: str) -> DataFrame:
    """One row per ``keys``: the greatest ``sequence_by`` (NULL is the least), ties to the latest arrival:
    the greatest ``_batch_id``, the later file in the batch (arrival time, then ``_source_file``), the
    greater line (the columns that exist), then a hash of the values (deterministic whatever is left)."""
    arrival, line = (alias for _, _, alias in ARRIVAL)
    order = [col(sequence_by).desc_nulls_last()]
    order += [col(c).desc_nulls_last() for c in ("_batch_id", arrival, "_source_file", line) if c in df.columns]
    order.append(F.xxhash64(*[_comparable(df, c) for c in data_columns(df)]).desc())
    w = Window.partitionBy(*[col(k) for k in keys]).orderBy(*order)
    rn = f"{_TMP}rn"
    return df.withColumn(rn, F.row_number().over(w)).where(F.col(rn) == 1).drop(rn)


def dedupe_versions(df: DataFrame, keys: list[str], sequence_by: str) -> DataFrame:
    """SCD2: one row per (keys, sequence_by) -- every distinct version survives, same tie-breaks."""
    return dedupe(df, [*keys, sequence_by], sequence_by)


# --------------------------------------------------------------------------- the whole batch


def refine_transform(
    df: DataFrame, spec: dict, pii_key: bytes | None = None
) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """Steps 1-3 on one bronze batch: ``(merge_source, quarantine_df, counters)``.

    ``merge_source`` holds the projected columns plus ``_source_file``/``_batch_id``: one row per
    key (SCD1) or per (key, sequence) (SCD2). Raises :class:`ExpectationFailed` before any write.
    Tagged personal data (``silver.pii``) is protected once the expectations have judged it (``pii_key``:
    the HMAC key of ``hash``).
    """
    validate_silver_spec(spec)
    keys, seq = keys_and_sequence(spec)
    projected = project(df, spec)
    missing = [c for c in [*keys, seq] if c not in projected.columns]
    if missing:
        raise SpecError(f"silver: key/sequence column(s) {missing} are not in the projected columns")
    kept, quarantine, counters = evaluate_expectations(projected, spec)
    kept, quarantine = protect(kept, spec, pii_key), protect(quarantine, spec, pii_key)
    deduped = dedupe_versions(kept, keys, seq) if scd_type(spec) == 2 else dedupe(kept, keys, seq)
    return deduped.drop(*[c for c in deduped.columns if c.startswith(_TMP)]), quarantine, counters


def _renamed_keys(df: DataFrame, keys: list[str], *extra: Column) -> DataFrame:
    """``df``'s key columns renamed to scratch names (joins never meet ambiguous references)."""
    return df.select(*[col(k).alias(f"{_TMP}k{i}") for i, k in enumerate(keys)], *extra)


def _keys_match(keys: list[str]) -> Column:
    """SQL ``=`` between ``keys`` and a :func:`_renamed_keys` frame's keys (NULL never matches)."""
    cond = F.lit(True)
    for i, k in enumerate(keys):
        cond = cond & (col(k) == F.col(f"{_TMP}k{i}"))
    return cond


# --------------------------------------------------------------------------- 4. SCD1


def has_map(dtype: Any) -> bool:
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(dtype, MapType):
        return True
    if isinstance(dtype, ArrayType):
        return has_map(dtype.elementType)
    if isinstance(dtype, StructType):
        return any(has_map(f.dataType) for f in dtype.fields)
    return False


def _comparable(df: DataFrame, name: str) -> Column:
    """A column as it can be compared and hashed: one holding a map (Spark compares and hashes no maps)
    as its JSON text."""
    return F.to_json(col(name)) if has_map(df.schema[name].dataType) else col(name)


def _later(seq: Column, cur: Column) -> Column:
    """``seq`` comes after ``cur`` by sequence alone: greater, or known over NULL (NULL is the lowest)."""
    return (seq > cur) | (cur.isNull() & seq.isNotNull())


def scd1_upserts(current: DataFrame, incoming: DataFrame, keys: list[str], sequence_by: str) -> DataFrame:
    """The incoming rows the SCD1 MERGE writes: new keys (inserts) and keys whose incoming version is
    later than silver's row (updates): a greater sequence, a sequence over NULL, or the same sequence
    with other values. Older versions and the same values again are ignored.
    Key equality is SQL ``=`` (a NULL key never matches, so it is always inserted).
    Columns: ``incoming``'s data columns (lineage columns dropped)."""
    cols = [c for c in incoming.columns if c not in META_COLUMNS]
    return _later_versions(current, incoming.select(*[col(c) for c in cols]), keys, sequence_by, ties=True)


def _later_versions(
    current: DataFrame, incoming: DataFrame, keys: list[str], sequence_by: str, *, ties: bool
) -> DataFrame:
    """Rows of ``incoming`` whose key has no row in ``current``, or whose sequence is later than that
    row's; with ``ties``, also those with the row's own sequence and other values."""
    compared = [c for c in incoming.columns if c in current.columns]
    t = _renamed_keys(
        current,
        keys,
        col(sequence_by).alias(f"{_TMP}tseq"),
        F.lit(True).alias(f"{_TMP}hit"),
        *[_comparable(current, c).alias(f"{_TMP}t{i}") for i, c in enumerate(compared)],
    )
    j = incoming.join(t, _keys_match(keys), "left")
    seq, cur = col(sequence_by), F.col(f"{_TMP}tseq")
    newer = F.col(f"{_TMP}hit").isNull() | _later(seq, cur)
    if ties:
        differs = _any([~_comparable(incoming, c).eqNullSafe(F.col(f"{_TMP}t{i}")) for i, c in enumerate(compared)])
        if set(incoming.columns) - set(current.columns):
            differs = F.lit(True)  # a column silver does not have yet: always a change
        newer = newer | (seq.eqNullSafe(cur) & differs)
    return j.where(F.coalesce(newer, F.lit(False))).select(*[col(c) for c in incoming.columns])


def scd1_apply(current: DataFrame, incoming: DataFrame, keys: list[str], sequence_by: str) -> DataFrame:
    """Reference (non-Delta) SCD1 MERGE: what silver looks like after merging ``incoming``.
    Used by tests and parity checks; the job runs the equivalent Delta ``MERGE``."""
    ups = scd1_upserts(current, incoming, keys, sequence_by)
    kept = current.join(_renamed_keys(ups, keys), _keys_match(keys), "left_anti")
    return kept.unionByName(ups.select(*[col(c) for c in current.columns]))


# --------------------------------------------------------------------------- 5. SCD2


def scd2_changes(current: DataFrame, incoming: DataFrame, spec: dict) -> DataFrame:
    """The rows the SCD2 MERGE applies, with ``_change`` and ``_tie`` columns:

    * ``insert`` -- every incoming version of a key whose sequence is later than the key's current
      row's (all of them for a new key), with ``valid_from`` = its sequence, ``valid_to`` = the next
      new version's ``valid_from`` (NULL for the newest), ``is_current`` = newest;
    * ``close`` -- one row per current row that changes (matched on keys + ``valid_from`` +
      is_current): ``valid_to`` = the first new version's ``valid_from`` and ``is_current`` = false
      when there are newer versions; with ``_tie`` the values of an incoming version that has the
      current row's own sequence and other values, which replace the row's (``is_current`` stays true
      when nothing newer came).

    ``current``: silver (only ``is_current`` rows are looked at). ``incoming``: the deduplicated
    versions of the batch (:func:`dedupe_versions`). Older versions (NULL is the lowest sequence) and
    the same values again are ignored, so a replay produces no change.
    """
    keys, seq = keys_and_sequence(spec)
    cols = [
        c
        for c in incoming.columns
        if c not in META_COLUMNS and c not in (CHANGE_COLUMN, TIE_COLUMN) and c not in SCD2_COLUMNS
    ]
    if "is_current" in current.columns:
        current = current.where(col("is_current"))
    data = incoming.select(*[col(c) for c in cols])
    later = _later_versions(current, data, keys, seq, ties=False)
    tying = _later_versions(current, data, keys, seq, ties=True).join(
        _renamed_keys(later, keys, col(seq).alias(f"{_TMP}lseq")),
        _keys_match(keys) & col(seq).eqNullSafe(F.col(f"{_TMP}lseq")),
        "left_anti",
    )  # the versions with the current row's own sequence and other values

    w = Window.partitionBy(*[col(k) for k in keys]).orderBy(col(seq).asc_nulls_first())
    nxt = F.lead(col(seq)).over(w)
    inserts = later.select(
        *[col(c) for c in cols],
        col(seq).alias("valid_from"),
        nxt.alias("valid_to"),
        nxt.isNull().alias("is_current"),
        F.lit("insert").alias(CHANGE_COLUMN),
        F.lit(False).alias(TIE_COLUMN),
    )

    first_new = _renamed_keys(later, keys, col(seq).alias(f"{_TMP}seq"))
    first_new = first_new.groupBy(*[f"{_TMP}k{i}" for i in range(len(keys))]).agg(
        F.min(f"{_TMP}seq").alias(f"{_TMP}first")
    )
    ties = _renamed_keys(tying, keys, *[col(c).alias(f"{_TMP}v{i}") for i, c in enumerate(cols)])
    ties = ties.withColumn(f"{_TMP}tie", F.lit(True))
    cur = current.select(*[col(k) for k in keys], col("valid_from"))
    changed = (
        cur.join(first_new, _keys_match(keys), "left")
        .drop(*[f"{_TMP}k{i}" for i in range(len(keys))])
        .join(ties, _keys_match(keys), "left")
        .where(F.col(f"{_TMP}first").isNotNull() | F.col(f"{_TMP}tie").isNotNull())
    )
    closes = changed.select(
        *[col(c) if c in keys else F.col(f"{_TMP}v{i}").alias(c) for i, c in enumerate(cols)],
        col("valid_from"),
        F.col(f"{_TMP}first").alias("valid_to"),
        F.col(f"{_TMP}first").isNull().alias("is_current"),
        F.lit("close").alias(CHANGE_COLUMN),
        F.coalesce(F.col(f"{_TMP}tie"), F.lit(False)).alias(TIE_COLUMN),
    )
    return inserts.unionByName(closes)


def scd2_rebuild(incoming: DataFrame, spec: dict) -> DataFrame:
    """SCD2 silver built from nothing (a full refresh): every version of :func:`dedupe_versions`, chained by
    ``valid_from``/``valid_to``, the newest current: the ``insert`` rows of :func:`scd2_changes` against an
    empty silver."""
    keys, seq = keys_and_sequence(spec)
    data = [c for c in incoming.columns if c not in META_COLUMNS and c not in (CHANGE_COLUMN, TIE_COLUMN)]
    empty = incoming.select(
        *[col(c) for c in data],
        col(seq).alias("valid_from"),
        col(seq).alias("valid_to"),
        F.lit(True).alias("is_current"),
    ).where(F.lit(False))
    return scd2_changes(empty, incoming, spec).where(col(CHANGE_COLUMN) == "insert")


def scd2_apply(silver: DataFrame, changes: DataFrame, keys: list[str]) -> DataFrame:
    """Reference (non-Delta) SCD2 MERGE of :func:`scd2_changes` into ``silver`` (all its rows).
    Used by tests and parity checks; the job runs the equivalent Delta ``MERGE``."""
    values = [c for c in silver.columns if c not in SCD2_COLUMNS and c not in keys and c in changes.columns]
    closes = _renamed_keys(
        changes.where(col(CHANGE_COLUMN) == "close"),
        keys,
        col("valid_from").alias(f"{_TMP}from"),
        col("valid_to").alias(f"{_TMP}to"),
        col("is_current").alias(f"{_TMP}cur"),
        col(TIE_COLUMN).alias(f"{_TMP}tie"),
        *[col(c).alias(f"{_TMP}v_{c}") for c in values],
    )
    cond = col("is_current") & _keys_match(keys) & col("valid_from").eqNullSafe(F.col(f"{_TMP}from"))
    j = silver.join(closes, cond, "left")
    hit = F.col(f"{_TMP}k0").isNotNull() if keys else F.lit(False)
    tie = hit & F.col(f"{_TMP}tie")

    def after(c: str) -> Column:
        if c == "valid_to":
            return F.when(hit, F.col(f"{_TMP}to")).otherwise(col(c)).alias(c)
        if c == "is_current":
            return F.when(hit, F.col(f"{_TMP}cur")).otherwise(col(c)).alias(c)
        if c in values:
            return F.when(tie, F.col(f"{_TMP}v_{c}")).otherwise(col(c)).alias(c)
        return col(c)

    closed = j.select(*[after(c) for c in silver.columns])
    inserts = changes.where(col(CHANGE_COLUMN) == "insert").select(*[col(c) for c in silver.columns])
    return closed.unionByName(inserts)


def silver_schema_columns(merge_source: DataFrame, spec: dict) -> list[tuple[str, str]]:
    """Silver's ``[(column, spark_type_ddl)]`` for a merge source: the projected columns, plus
    ``valid_from``/``valid_to`` (the sequence's type) and ``is_current`` for SCD2."""
    fields = {f.name: f.dataType.simpleString() for f in merge_source.schema.fields}
    cols = [
        (c, fields[c])
        for c in merge_source.columns
        if c not in META_COLUMNS
        and c not in (CHANGE_COLUMN, TIE_COLUMN)
        and c not in SCD2_COLUMNS
        and not c.startswith(_TMP)
    ]
    if scd_type(spec) == 2:
        _, seq = keys_and_sequence(spec)
        cols += [("valid_from", fields[seq]), ("valid_to", fields[seq]), ("is_current", "boolean")]
    return cols


# --------------------------------------------------------------------------- 6. quarantine replay
# What lh360/engines/local/replay.py does on the local engine: the quarantined rows not replayed yet are judged
# again by the spec's rules as they are now; a row that leaves quarantine is marked (it stays there, for audit).

REPLAY_MARKS = (("_replayed_at", "timestamp"), ("_replay_run", "bigint"), ("_replay_outcome", "string"))
# quarantine's lineage columns, NULL where a row lacks them
QUARANTINE_LINEAGE = (
    ("_failed_rules", "array<string>"),
    ("_source_file", "string"),
    ("_batch_id", "bigint"),
    ("_corrupt_record", "string"),
)
OUTCOME = _TMP + "outcome"  # judge_quarantine(): merged | dropped for a row this replay takes out, else NULL


def replay_silver_columns(quarantine: DataFrame, spec: dict) -> list[str]:
    """Silver's columns as the spec names them now, but those silver.pii drops (neither table stores them);
    quarantine must hold each (else a full refresh rebuilds both tables from bronze)."""
    dropped = {c for c, r in pii_rules(spec).items() if r["silver"] == "drop"}
    names = [n for n, _ in silver_columns(spec) if n not in dropped]
    names = names or [c for c in quarantine.columns if not c.startswith("_")]
    lacking = [n for n in names if n not in quarantine.columns]
    if lacking:
        raise SpecError(
            f"silver.columns: changed since these rows were quarantined (quarantine lacks {', '.join(lacking)}): "
            "rebuild silver and quarantine from bronze instead (promote --to silver --full-refresh)"
        )
    return names


def with_replay_columns(quarantine: DataFrame) -> DataFrame:
    """Quarantine with the mark and lineage columns (NULL where rows written before any replay lack them)."""
    missing = [(c, t) for c, t in (*QUARANTINE_LINEAGE, *REPLAY_MARKS) if c not in quarantine.columns]
    return quarantine.select("*", *[F.lit(None).cast(t).alias(c) for c, t in missing])


def last_replay_run(quarantine: DataFrame) -> int:
    """The greatest replay number quarantine's marks hold, -1 before any replay."""
    if "_replay_run" not in quarantine.columns:
        return -1
    row = quarantine.agg(F.max(col("_replay_run")).alias("n")).first()
    return -1 if row is None or row["n"] is None else int(row["n"])


def judge_quarantine(quarantine: DataFrame, spec: dict, recorded: list[str] | tuple[str, ...] = ()) -> DataFrame:
    """Quarantine's rows with :data:`OUTCOME` set on the pending ones (not replayed yet) that leave it now:
    ``dropped`` (a drop rule fails) or ``merged`` (they pass). A malformed line, a NULL key or a failed
    quarantine rule keeps a row where it is. ``recorded``: the rules that read a column silver protects
    (the payload's ``recorded_rules``); quarantine lacks the raw value, so refine's verdict in
    ``_failed_rules`` stands for them. No Spark action."""
    if recorded:
        exps = [
            {**e, "rule": f"NOT array_contains(coalesce(_failed_rules, array()), {_sql_string(e['name'])})"}
            if e["name"] in recorded
            else e
            for e in expectations(spec)
        ]
        spec = {**spec, "silver": {**spec["silver"], "expectations": exps}}
    rows = with_replay_columns(quarantine)
    malformed = F.array_contains(F.coalesce(col("_failed_rules"), F.array().cast("array<string>")), CORRUPT_RECORD)
    corrupt = F.coalesce(col("_corrupt_record"), F.when(malformed, F.lit("")))
    flagged = flag_rows(rows.withColumn(CORRUPT, corrupt), spec)
    leaves = col("_replayed_at").isNull() & ~F.col(f"{_TMP}q")
    return flagged.withColumn(
        OUTCOME, F.when(leaves, F.when(F.col(f"{_TMP}d"), F.lit("dropped")).otherwise(F.lit("merged")))
    )


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def replay_counters(judged: DataFrame, spec: dict) -> dict[str, Any]:
    """evaluated, passed, dropped, still_quarantined of a :func:`judge_quarantine` frame. Raises
    :class:`ExpectationFailed` (call it before writing) when a row that would leave quarantine fails a
    ``fail`` rule. One Spark job."""
    exps = expectations(spec)
    leaves = F.col(OUTCOME).isNotNull()
    fails = [(i, e["name"]) for i, e in enumerate(exps) if e["action"] == "fail"]
    row = judged.agg(
        F.count(F.when(col("_replayed_at").isNull(), 1)).alias("evaluated"),
        F.count(F.when(F.col(OUTCOME) == "merged", 1)).alias("passed"),
        F.count(F.when(F.col(OUTCOME) == "dropped", 1)).alias("dropped"),
        *[F.count(F.when(leaves & _failed(i), 1)).alias(f"f{i}") for i, _ in fails],
    ).first()
    assert row is not None  # an aggregate without GROUP BY has exactly one row
    counters = {k: int(row[k]) for k in ("evaluated", "passed", "dropped")}
    counters["still_quarantined"] = counters["evaluated"] - counters["passed"] - counters["dropped"]
    bad = {name: int(row[f"f{i}"]) for i, name in fails if row[f"f{i}"]}
    if bad:
        raise ExpectationFailed(bad, counters)
    return counters


def marked_quarantine(judged: DataFrame, run: int) -> DataFrame:
    """Quarantine as replay ``run`` leaves it: the rows it takes out marked (when, which run, the outcome),
    the others, earlier marks included, as they were."""
    out = F.col(OUTCOME)
    marks = {
        "_replayed_at": F.coalesce(col("_replayed_at"), F.when(out.isNotNull(), F.current_timestamp())),
        "_replay_run": F.coalesce(col("_replay_run"), F.when(out.isNotNull(), F.lit(int(run)).cast("bigint"))),
        "_replay_outcome": F.coalesce(col("_replay_outcome"), out),
    }
    return judged.select(
        *[marks[c].alias(c) if c in marks else col(c) for c in judged.columns if not c.startswith(_TMP)]
    )


def replayed_rows(quarantine: DataFrame, run: int, names: list[str]) -> DataFrame:
    """The rows replay ``run`` marked ``merged``: silver's columns, then the lineage dedupe orders ties by."""
    rows = with_replay_columns(quarantine)
    picked = rows.where((col("_replay_run") == int(run)) & (col("_replay_outcome") == "merged"))
    return picked.select(*[col(n) for n in names], *[col(m) for m in META_COLUMNS])


def replay_later(current: DataFrame, rows: DataFrame, spec: dict) -> DataFrame:
    """The replayed rows whose version is strictly later than silver's current row of their key (a new key's
    too). With an equal sequence silver keeps its row: quarantine cannot tell whether it arrived before or
    after silver's, and an older arrival must never overwrite a newer one."""
    keys, seq = keys_and_sequence(spec)
    if "is_current" in current.columns:
        current = current.where(col("is_current"))
    return _later_versions(current, rows, keys, seq, ties=False)


def replay_merge_source(current: DataFrame, later: DataFrame, spec: dict) -> DataFrame:
    """What the replay's MERGE applies: SCD1 one row per key (the latest version), SCD2 the changes of
    :func:`scd2_changes` (every later version appended, the current row closed)."""
    keys, seq = keys_and_sequence(spec)
    if scd_type(spec) == 2:
        return scd2_changes(current, dedupe_versions(later, keys, seq), spec)
    return dedupe(later, keys, seq).select(*[col(c) for c in later.columns if c not in META_COLUMNS])


# --------------------------------------------------------------------------- personal data (silver.pii)
# What lh360/pii.py does on the local engine, on Spark: after the expectations, silver and quarantine store
# each tagged column as its `silver` rule says (keep | hash | mask | drop), and gold queries read silver
# through views where each tagged column is as its `gold` rule says (allow_pii: as stored). hash is
# HMAC-SHA256 of the value as text (two sha2 over the padded key, RFC 2104), lower-case hex; the masks keep
# the shapes of lh360.redact.MASKS. The key never travels in a payload: the job reads it (see job.py).

PII_KINDS = ("cpf", "cnpj", "email", "phone", "name", "address", "birthdate", "other")


def pii_rules(spec: dict) -> dict[str, dict]:
    """``silver.pii`` validated: ``{column: {kind, silver, gold}}`` with the defaults (keep, drop)."""
    rules = silver_spec(spec).get("pii") or {}
    if not isinstance(rules, dict):
        raise SpecError("silver.pii: must be a mapping of column to {kind, silver, gold}")
    out = {}
    for name, rule in rules.items():
        if not isinstance(rule, dict) or rule.get("kind") not in PII_KINDS:
            raise SpecError(f"silver.pii.{name}.kind: one of {', '.join(PII_KINDS)}")
        silver, gold = rule.get("silver", "keep"), rule.get("gold", "drop")
        if silver not in ("keep", "hash", "mask", "drop") or gold not in ("hash", "mask", "drop"):
            raise SpecError(f"silver.pii.{name}: silver keep|hash|mask|drop, gold hash|mask|drop")
        out[str(name)] = {"kind": rule["kind"], "silver": silver, "gold": gold}
    return out


def needs_pii_key(spec: dict) -> bool:
    """Whether refining this spec, or a gold view of its silver, hashes a column."""
    return any(
        r["silver"] == "hash" or (r["silver"] == "keep" and r["gold"] == "hash") for r in pii_rules(spec).values()
    )


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hash_column(c: Column, key: bytes) -> Column:
    """HMAC-SHA256 of ``CAST(c AS STRING)`` as lower-case hex (NULL stays NULL)."""
    inner, outer = _pads(key)
    text = c.cast("string")
    digest = F.sha2(F.concat(F.lit(bytearray(inner)), text.cast("binary")), 256)
    return F.when(text.isNull(), F.lit(None).cast("string")).otherwise(
        F.sha2(F.concat(F.lit(bytearray(outer)), F.unhex(digest)), 256)
    )


def mask_column(kind: str, c: Column) -> Column:
    """``c`` masked to its kind's shape (lh360.redact.MASKS)."""
    v = c.cast("string")
    d = F.regexp_replace(v, "[^0-9]", "")

    def tail(prefix: str, n: int) -> Column:
        return F.when(F.length(d) >= n, F.concat(F.lit(prefix), F.substring(d, -n, n))).otherwise(F.lit("***"))

    if kind == "cpf":
        body = tail("***.***.***-", 2)
    elif kind == "cnpj":
        body = tail("**.***.***/****-", 2)
    elif kind == "phone":
        body = tail("(**) *****-", 4)
    elif kind == "email":
        body = F.when(
            F.instr(v, "@") > 0, F.concat(F.substring(v, 1, 1), F.lit("***@"), F.substring_index(v, "@", -1))
        ).otherwise(F.lit("***"))
    elif kind == "name":
        t = F.trim(v)
        body = F.when(F.length(t) > 0, F.concat(F.substring(t, 1, 1), F.lit("***"))).otherwise(F.lit("***"))
    elif kind == "birthdate":
        body = F.concat(F.substring(v, 1, 4), F.lit("-**-**"))
    else:
        body = F.lit("***")
    return F.when(c.isNull(), F.lit(None).cast("string")).otherwise(body)


def _apply(df: DataFrame, actions: dict[str, tuple[str, str]], key: bytes | None) -> DataFrame:
    """``df`` with each column of ``actions`` ({column: (hash|mask|drop, kind)}) that it has, protected."""
    present = [c for c in actions if c in df.columns]
    if any(actions[c][0] == "hash" for c in present) and not key:
        raise SpecError("silver.pii: a column is hashed, which needs the PII key (LH360_PII_KEY or the job's secret)")
    out = []
    for name in df.columns:
        action, kind = actions.get(name, ("keep", "other"))
        if action == "drop":
            continue
        if action == "hash":
            out.append(hash_column(col(name), key).alias(name))  # type: ignore[arg-type]
        elif action == "mask":
            out.append(mask_column(kind, col(name)).alias(name))
        else:
            out.append(col(name))
    return df.select(*out)


def protect(df: DataFrame, spec: dict, key: bytes | None) -> DataFrame:
    """Silver's rule for each tagged column of ``df`` (silver and quarantine rows)."""
    actions = {c: (r["silver"], r["kind"]) for c, r in pii_rules(spec).items() if r["silver"] != "keep"}
    return _apply(df, actions, key) if actions else df


def gold_view(df: DataFrame, spec: dict, allowed: list[str], key: bytes | None) -> DataFrame:
    """Silver as gold queries see it: each tagged column as its ``gold`` rule says (``allowed``: as stored)."""
    actions = {
        c: (r["gold"], r["kind"])
        for c, r in pii_rules(spec).items()
        if c not in allowed and r["silver"] != "drop" and r["silver"] != r["gold"]
    }
    return _apply(df, actions, key) if actions else df
