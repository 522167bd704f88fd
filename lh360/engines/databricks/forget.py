"""`lh360 forget` on a Databricks target: bronze, silver and quarantine through the SQL warehouse, the landing
files from the ops box (the same code as the local engine's: lh360.engines.local.forget.landing).

Who the subject is follows the local engine (its module docstring): the key as silver.columns computes it
from each bronze row (Spark SQL, the spec's own text), or as silver computes it from the value landed raw;
then every row of the same silver keys. Values never enter a statement's text: they travel as named
parameters. Rows are deleted with `MERGE … USING (VALUES …) … WHEN MATCHED THEN DELETE`, whose commit in
the Delta log records the join condition, not the values (a `DELETE … WHERE cpf = '…'` would write the
value into the table's history). `purge` runs VACUUM with the table's deleted-file retention at zero for
the statement; Databricks expires older log entries (their statistics) by `delta.logRetentionDuration`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from lh360 import pii
from lh360.engines.base import ForgetResult, RemoteRun
from lh360.engines.databricks.requests import quarantine_table
from lh360.engines.databricks.statements import DatabricksSQLRunner
from lh360.engines.local.duck import connect
from lh360.engines.local.forget import _relative, landing, predicates, purge_relation
from lh360.engines.local.rewrite import TableFiles
from lh360.erasure import Journal, Subject, fingerprint
from lh360.errors import EngineError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.sql import parse_expression

DELETED = ("num_deleted_rows", "num_affected_rows")


def _text(sql: str) -> str:
    return f"CAST(({sql}) AS STRING)"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class _Params:
    """Named parameters of one statement: values in, `:p0` markers out."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, value: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = str(value)
        return f":{name}"

    def many(self, values) -> str:
        return ", ".join(self.add(v) for v in values)


def forget(engine: Any, spec: TableSpec, subject: Subject, journal: Journal) -> ForgetResult:
    started = time.monotonic()
    target, t = engine.target, spec.table
    result = ForgetResult(table=t, engine="databricks", request=subject.request, key_columns=subject.columns)
    result.resumed = journal.resumed
    runner = DatabricksSQLRunner(
        target, timeout=engine.timeout, poll_interval=engine.poll_interval, client=engine.client
    )
    key = pii.key_bytes("lh360 forget") if pii.needs_key(pii.silver_rules(spec)) else None
    tables = {
        "bronze": runner.table_name("bronze", t),
        "silver": runner.table_name("silver", t),
        "quarantine": quarantine_table(engine.settings.catalog, t),
    }
    columns = spec.silver.columns if spec.silver is not None else {}
    keys = list(spec.silver.keys) if spec.silver is not None else []
    con = connect()
    try:
        with tempfile.TemporaryDirectory(prefix="lh360-forget-") as tmp_dir:
            bronze = TableFiles(con, Lake(target.lake).table("bronze", t), target.settings.aws, Path(tmp_dir))
            p = predicates(con, spec, subject, key, bronze.types if bronze.exists else {})
            # 1. the subject's entities (silver keys) and landing files, from bronze
            params = _Params()
            own = " AND ".join(f"{_text(columns.get(c, _q(c)))} IN ({params.many(v)})" for c, v in p.values.items())
            select = ", ".join([*(_text(columns.get(k, _q(k))) for k in keys), "_source_file"])
            rows = runner.execute(
                f"SELECT DISTINCT {select} FROM {tables['bronze']} WHERE {own}", parameters=params.values
            ).rows
            entities = {tuple(r[: len(keys)]) for r in rows}
            sources = {r[-1] for r in rows if r[-1]}
            stored = {p.protect_entity(e) for e in entities}
            journal.add_fingerprints({c: {fingerprint(v) for v in vs} for c, vs in p.values.items()})
            journal.add_fingerprints(
                {k: {fingerprint(str(e[i])) for e in entities if e[i] is not None} for i, k in enumerate(keys)}
            )

            state = engine.ingested(spec)
            journal.data["landing_files"] = sorted(
                {*journal.data.get("landing_files", []), *_relative(target, spec, sources, state.files)}
            )
            journal.save()
            # 2. silver and quarantine (columns as stored), then the landing files, then bronze
            for layer in ("silver", "quarantine"):
                n = _merge_delete(runner, tables[layer], _stored_sources(p, keys, stored))
                journal.count(f"{layer}.{t}", n, 1 if n else 0)
            lines, files, versions = landing(
                target, spec, p, entities, journal, bronze, Path(tmp_dir), con, state=state
            )
            journal.count(f"landing.{t}", lines, files)
            result.noncurrent_versions += versions
            n = _merge_delete(runner, tables["bronze"], _bronze_sources(p, columns, keys, entities))
            journal.count(f"bronze.{t}", n, 1 if n else 0)
    finally:
        con.close()
    for relation in (f"landing.{t}", f"bronze.{t}", f"silver.{t}", f"quarantine.{t}"):
        result.layers[relation] = journal.counted(relation)
    result.run = _remote(runner)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _stored_sources(p: Any, keys: list[str], stored: set[tuple]) -> list[tuple[str, str, str]]:
    """(kind, value, condition over t) rows identifying the subject in silver/quarantine as stored."""
    out = []
    if len(p.values) == 1:
        ((column, values),) = p.values.items()
        if p._action(column) in ("keep", "hash"):
            out += [(column, p.protect(column, v), f"CAST(t.{_q(column)} AS STRING)") for v in values]
    if len(keys) == 1:
        out += [(keys[0], e[0], f"CAST(t.{_q(keys[0])} AS STRING)") for e in stored if e[0] is not None]
    return out


def _bronze_sources(
    p: Any, columns: dict[str, str], keys: list[str], entities: set[tuple]
) -> list[tuple[str, str, str]]:
    """The same for bronze: the spec's column expressions over the bronze row (t)."""
    out = []
    if len(p.values) == 1:
        ((column, values),) = p.values.items()
        out += [(column, v, _text(_qualified(columns.get(column, _q(column))))) for v in values]
    if len(keys) == 1:
        out += [
            (keys[0], e[0], _text(_qualified(columns.get(keys[0], _q(keys[0]))))) for e in entities if e[0] is not None
        ]
    return out


def _qualified(expression: str) -> str:
    """A spec column expression with its columns read from the MERGE target `t`."""
    from sqlglot import exp

    tree = parse_expression(expression)
    for column in list(tree.find_all(exp.Column)):
        if not column.table:
            column.set("table", exp.to_identifier("t"))
    return tree.sql(dialect="databricks")


def _merge_delete(runner: Any, table: str, sources: list[tuple[str, str, str]]) -> int:
    """Delete the rows of `table` matching any (kind, value, expression) in one MERGE; rows deleted."""
    if not sources:
        return 0
    params = _Params()
    values = ", ".join(f"('{kind}', {params.add(v)})" for kind, v, _ in sources)
    conds = {kind: expression for kind, _, expression in sources}
    on = " OR ".join(f"(s.kind = '{kind}' AND {expression} = s.v)" for kind, expression in conds.items())

    try:
        res = runner.execute(
            f"MERGE INTO {table} AS t USING (SELECT * FROM VALUES {values} AS s(kind, v)) AS s ON {on} "
            "WHEN MATCHED THEN DELETE",
            parameters=params.values,
        )
    except EngineError as exc:
        if "TABLE_OR_VIEW_NOT_FOUND" in exc.message:  # a table the spec has not written yet (quarantine)
            return 0
        raise
    row = dict(zip(res.columns, res.rows[0], strict=False)) if res.rows else {}
    for name in DELETED:
        if row.get(name) is not None:
            return int(row[name])
    return 0


def purge(engine: Any, relations: list[str]) -> dict[str, dict[str, int]]:
    """VACUUM each table with its deleted-file retention at zero for that statement (then restored)."""

    runner = DatabricksSQLRunner(
        engine.target, timeout=engine.timeout, poll_interval=engine.poll_interval, client=engine.client
    )
    out = {}
    for relation in relations:
        layer, name = relation.split(".", 1)
        if layer == "lh360":
            out[relation] = purge_relation(engine.target, relation)  # the ledgers are lh360's own tables
            continue
        table = (
            quarantine_table(engine.settings.catalog, name) if layer == "quarantine" else runner.table_name(layer, name)
        )
        prop = "delta.deletedFileRetentionDuration"
        runner.execute(f"ALTER TABLE {table} SET TBLPROPERTIES ('{prop}' = 'interval 0 hours')")
        try:
            runner.execute(f"VACUUM {table} RETAIN 0 HOURS")
        finally:
            runner.execute(f"ALTER TABLE {table} UNSET TBLPROPERTIES IF EXISTS ('{prop}')")
        out[relation] = {"files": 0, "log_entries": 0, "versions": 0}
    return out


def _remote(runner: Any):
    return RemoteRun(state="TERMINATED", result_state="SUCCESS", statements=list(runner.statements))
