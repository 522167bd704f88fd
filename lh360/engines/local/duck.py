"""DuckDB over the lake's Delta tables: `bronze.x`, `silver.x`, `gold.x` as views pinned to one version.

DuckDB's `delta` extension is downloaded at run time, which an offline ops box cannot do, so a table is read as what delta-rs says
it is: the Parquet files of one snapshot (`file_uris()`), with partition values from the Hive-style paths
delta-rs writes and columns missing from old files filled with NULL. Anything this cannot express exactly
(deletion vectors, column mapping, a lake on S3 without httpfs) is read through delta-rs' QueryBuilder
into Arrow instead (never `to_pyarrow_table()`: it aborts 10-30% of short-lived processes at exit, measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lh360.config import ResolvedTarget
from lh360.delta import arrow_schema, open_table, reader
from lh360.layout import LEDGERS, Lake
from lh360.sql import quote_ident as q
from lh360.sql import quote_literal as lit
from lh360.storage import is_s3

SCHEMAS = ("bronze", "silver", "gold", "quarantine")


def connect(threads: int | None = None, *, lake: str | None = None):
    """A DuckDB connection with the session settings lh360 computes under.

    TimeZone UTC: Spark's session time zone on the jobs, so a timestamp string without an offset means
    the same instant on both engines.

    With `lake` (a target's lake URI) the connection is locked to it (`lock_down`): spec SQL runs on such
    connections, and this is the engine's own guard behind lh360.sql.guard.
    """
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if lake is not None:
        lock_down(con, [] if is_s3(lake) else [lake])
    return con


def lock_down(con, readable: list[str]) -> None:
    """Only the `readable` folders can be read; nothing can be written, attached, installed or loaded.

    DuckDB's `enable_external_access = false` blocks every file (read_text, read_csv, glob, ATTACH, COPY,
    extensions, Python replacement scans) except under `allowed_directories`, and neither setting can be
    changed back on that connection. Spilling to DuckDB's temp directory still works. An S3 lake is read
    through delta-rs into Arrow (`LakeCatalog`), so nothing is readable then.
    """
    folders = [str(Path(f).resolve()).rstrip("/") + "/" for f in readable]
    con.execute(f"SET allowed_directories = [{', '.join(lit(f) for f in folders)}]")
    con.execute("SET enable_external_access = false")


def duckdb_types(con, schema) -> dict[str, str]:
    """Column → DuckDB type string for an Arrow schema (through an empty table: DuckDB's own mapping)."""
    import pyarrow as pa

    name = "__lh360_types"
    con.register(name, pa.schema(schema).empty_table())
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()}
    finally:
        con.unregister(name)


def _exact_files_ok(dt, uri: str) -> bool:
    if is_s3(uri):
        return False
    features = set(getattr(dt.protocol(), "reader_features", None) or [])
    if "deletionVectors" in features or "columnMapping" in features:
        return False
    mode = (dt.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    return mode in (None, "none")


def scan_sql(con, dt, uri: str, files: list[str] | None = None, columns: list[str] | None = None) -> str | None:
    """A SELECT over the table's files (or the given subset) in the table's column order and types, or
    None when it cannot be read file by file (the caller then reads through delta-rs)."""
    if not _exact_files_ok(dt, uri):
        return None
    schema = arrow_schema(dt)
    types = duckdb_types(con, schema)
    files = dt.file_uris() if files is None else files
    wanted = columns or list(types)
    if not files:
        nulls = ", ".join(f"NULL::{types[c]} AS {q(c)}" for c in wanted)
        return f"SELECT {nulls} WHERE false"
    parts = list(dt.metadata().partition_columns)
    listing = "[" + ", ".join(lit(f) for f in files) + "]"
    if parts:
        hive = "{" + ", ".join(f"{lit(p)}: {lit(types[p])}" for p in parts) + "}"
        opts = f"union_by_name = true, hive_partitioning = true, hive_types = {hive}"
    else:
        opts = "union_by_name = true, hive_partitioning = false"
    source = f"read_parquet({listing}, {opts})"
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = []
    for c in wanted:
        # a column added by schema evolution is absent from older files; a cast keeps the table's type
        cols.append(f"CAST({q(c)} AS {types[c]}) AS {q(c)}" if c in present else f"NULL::{types[c]} AS {q(c)}")
    return f"SELECT {', '.join(cols)} FROM {source}"


@dataclass
class LakeCatalog:
    """Registers the lake's tables in one DuckDB connection as `<layer>.<name>` views.

    Each view is pinned to the version read when it was attached; `versions` records them (lineage for
    gold commits and the quality ledger). `attach` again to see a newer version.
    """

    con: Any
    target: ResolvedTarget
    versions: dict[str, int] = field(default_factory=dict)
    _arrow: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for schema in SCHEMAS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")

    @property
    def lake(self) -> Lake:
        return Lake(self.target.lake)

    def attach(self, layer: str, name: str, version: int | None = None, wrap: Any = None) -> int | None:
        """Create or replace the view `layer.name`; returns its version, or None if the table does not exist.
        `wrap(layer, name, sql)` may rewrite the view's SELECT (gold's view of personal data, lh360.pii)."""
        uri = self.lake.table(layer, name)
        dt = open_table(uri, self.target.settings.aws, version=version)
        relation = f"{layer}.{name}"
        if dt is None:
            self.versions.pop(relation, None)
            return None
        sql = scan_sql(self.con, dt, uri)
        if sql is None:
            arrow_name = f"__lh360_arrow_{layer}_{name}"
            self._arrow[relation] = reader(dt).read_all()
            self.con.register(arrow_name, self._arrow[relation])
            sql = f"SELECT * FROM {q(arrow_name)}"
        if wrap is not None:
            sql = wrap(layer, name, sql)
        self.con.execute(f"CREATE OR REPLACE VIEW {q(layer)}.{q(name)} AS {sql}")
        self.versions[relation] = dt.version()
        return dt.version()

    def attach_ledgers(self) -> None:
        """`lh360.runs` and `lh360.checks`, for ad-hoc SQL over the ledgers."""

        self.con.execute('CREATE SCHEMA IF NOT EXISTS "lh360"')
        for name in LEDGERS:
            uri = Lake(self.target.lake).ledger(name)
            dt = open_table(uri, self.target.settings.aws)
            if dt is None:
                continue
            sql = scan_sql(self.con, dt, uri)
            if sql is None:
                self._arrow[f"lh360.{name}"] = reader(dt).read_all()
                self.con.register(f"__lh360_arrow_ledger_{name}", self._arrow[f"lh360.{name}"])
                sql = f"SELECT * FROM {q('__lh360_arrow_ledger_' + name)}"
            self.con.execute(f'CREATE OR REPLACE VIEW "lh360".{q(name)} AS {sql}')

    def attach_project(self, specs) -> dict[str, int]:
        """Every relation the specs define that exists, plus quarantine tables: for `lh360 sql`."""
        for spec in specs:
            for relation in spec.relations():
                layer, name = relation.split(".", 1)
                self.attach(layer, name)
            if spec.silver is not None:
                self.attach("quarantine", spec.table)
        return dict(self.versions)
