"""Rewrite only the Parquet files of a Delta table that hold given rows, and purge what a table remembers.

`TableFiles` is one table's snapshot as files: each file's path, size, partition values and statistics
(from the add actions). `scan` finds the rows matching a DuckDB predicate: partition values and the
min/max statistics first rule files out (`Prune`), DuckDB reads the rest (its own row-group statistics
prune again). `delete` rewrites each file holding a match without those rows (DuckDB writes the new
file, the old one is removed) and commits all removes and adds in ONE Delta commit through delta-rs'
`create_write_transaction`. Unlike delta-rs' `delete`, that commit records no predicate: nothing of the
erased values enters the log (its metadata is what the caller passes). A table created append-only
(bronze) is switched off append-only for that commit and back, each a commit of its own.

`purge` makes a table forget its past: VACUUM of every file no longer in the snapshot (retention 0), a
checkpoint of the current version, and the deletion of every older log entry and checkpoint, whose add
actions carry min/max statistics of removed files. Time travel before that point is gone with them, and
on a versioned S3 bucket the noncurrent versions of what was deleted go too.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lh360.config import AwsSettings
from lh360.delta import arrow_schema, open_table
from lh360.engines.local import bronze_files
from lh360.engines.local.duck import duckdb_types
from lh360.errors import LockBusy, first_line
from lh360.sql import quote_ident as q
from lh360.sql import quote_literal as lit
from lh360.storage import delete_noncurrent, is_s3, join, store_for

APPEND_ONLY = "delta.appendOnly"


@dataclass
class Prune:
    """Rows can only match where `column` (a stored column, or a partition column) equals one of `values`:
    files whose partition value or min/max statistics exclude every value are not read. With `present`,
    rows can match wherever `column` is not NULL: only files whose statistics say it is NULL in every row
    are left out (a malformed line's raw text is searched, not compared)."""

    column: str
    values: list[Any]
    present: bool = False


@dataclass
class FileEntry:
    rel: str  # path relative to the table, as the log names it
    size: int
    partition: dict[str, str | None]
    mins: dict[str, Any] = field(default_factory=dict)
    maxs: dict[str, Any] = field(default_factory=dict)
    all_null: set[str] = field(default_factory=set)  # columns the statistics say are NULL in every row

    def may_hold(self, prune: Prune, integer: bool) -> bool:
        if prune.present:
            return prune.column not in self.all_null
        if prune.column in self.partition:
            return any(_same(self.partition[prune.column], v) for v in prune.values)
        lo, hi = self.mins.get(prune.column), self.maxs.get(prune.column)
        if lo is None or hi is None:
            return True
        for v in prune.values:
            try:
                value = int(v) if integer else str(v)
            except (TypeError, ValueError):
                return True
            # a string maximum may be a truncated prefix: only trust it when it is short
            if value >= lo and (value <= hi or (not integer and len(str(hi)) >= 32)):
                return True
        return False


def _same(partition_value: str | None, value: Any) -> bool:
    return partition_value is not None and str(partition_value) == str(value)


@dataclass
class Deleted:
    rows: int = 0
    files: int = 0  # files rewritten (or removed when nothing of them was left)
    version: int | None = None
    files_read: int = 0  # files read to find the rows (after pruning)


class TableFiles:
    """One Delta table's snapshot, file by file, on a DuckDB connection (see the module docstring)."""

    def __init__(self, con, uri: str, aws: AwsSettings | None, tmp: Path) -> None:
        self.con, self.uri, self.aws, self.tmp = con, uri, aws, tmp
        self.dt = open_table(uri, aws)
        self.entries: list[FileEntry] = []
        self._local: dict[str, Path] = {}
        if self.dt is None:
            return
        import pyarrow as pa

        self.schema = arrow_schema(self.dt)
        self.types = duckdb_types(con, self.schema)
        self.partition_by = list(self.dt.metadata().partition_columns)
        self.integer = {f.name for f in self.schema if pa.types.is_integer(f.type)}
        adds = pa.table(self.dt.get_add_actions(flatten=True)).to_pylist()
        for a in adds:
            self.entries.append(
                FileEntry(
                    rel=a["path"],
                    size=int(a["size_bytes"]),
                    partition={p: a.get(f"partition.{p}") for p in self.partition_by},
                    mins={k[4:]: v for k, v in a.items() if k.startswith("min.") and v is not None},
                    maxs={k[4:]: v for k, v in a.items() if k.startswith("max.") and v is not None},
                    all_null={
                        k[len("null_count.") :]
                        for k, v in a.items()
                        if k.startswith("null_count.") and v is not None and v == a.get("num_records")
                    },
                )
            )

    @property
    def exists(self) -> bool:
        return self.dt is not None

    @property
    def append_only(self) -> bool:
        return self.exists and (self.dt.metadata().configuration or {}).get(APPEND_ONLY) == "true"

    def reopen(self):
        """The table at its newest version (after a commit)."""
        return open_table(self.uri, self.aws)

    @property
    def columns(self) -> list[str]:
        return list(self.types) if self.exists else []

    def candidates(self, prunes: list[Prune] | None) -> list[FileEntry]:
        """The files that may hold a row matching any of `prunes` (all files when None)."""
        if prunes is None:
            return list(self.entries)
        return [e for e in self.entries if any(e.may_hold(p, p.column in self.integer) for p in prunes)]

    def _path(self, entry: FileEntry) -> Path:
        """A local path DuckDB can read (an S3 object is downloaded once)."""
        if entry.rel not in self._local:
            if is_s3(self.uri):
                folder = self.tmp / uuid.uuid4().hex
                folder.mkdir(parents=True)
                self._local[entry.rel] = store_for(self.uri, self.aws).local_copy(join(self.uri, entry.rel), folder)
            else:
                self._local[entry.rel] = Path(self.uri) / entry.rel
        return self._local[entry.rel]

    def _rows_sql(self, entries: list[FileEntry]) -> str:
        """Every row of `entries` in the table's columns and types (partition values from the log, columns a
        file lacks as NULL), with `__lh360_file`: the index of its file in `entries`."""
        paths = "[" + ", ".join(lit(str(self._path(e))) for e in entries) + "]"
        present = {
            r[0]
            for r in self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({paths}, union_by_name = true)").fetchall()
        }
        cols = []
        for c, t in self.types.items():
            if c in self.partition_by:
                cases = " ".join(
                    f"WHEN {i} THEN {lit(e.partition[c])}" for i, e in enumerate(entries) if e.partition[c] is not None
                )
                value = f"CASE __lh360_file {cases} END" if cases else "NULL"
                cols.append(f"CAST({value} AS {t}) AS {q(c)}")
            elif c in present:
                cols.append(f"CAST({q(c)} AS {t}) AS {q(c)}")
            else:
                cols.append(f"NULL::{t} AS {q(c)}")
        return (
            f"SELECT {', '.join(cols)}, __lh360_file FROM (SELECT *, list_position({paths}, filename) - 1 AS __lh360_file "
            f"FROM read_parquet({paths}, union_by_name = true, filename = true, hive_partitioning = false))"
        )

    def scan(self, predicate: str, select: list[str], prunes: list[Prune] | None = None) -> list[tuple]:
        """(file rel, *select) of every row matching `predicate` (DuckDB SQL over the table's columns)."""
        entries = self.candidates(prunes)
        if not entries:
            return []
        extra = "".join(f", {s}" for s in select)
        rows = self.con.execute(
            f"SELECT __lh360_file{extra} FROM ({self._rows_sql(entries)}) WHERE coalesce(({predicate}), false)"
        ).fetchall()
        return [(entries[r[0]].rel, *r[1:]) for r in rows]

    def delete(
        self,
        predicate: str,
        prunes: list[Prune] | None,
        metadata: dict[str, str],
        *,
        what: str,
        hits: dict[str, int] | None = None,
    ) -> Deleted:
        """Rewrite the files holding rows that match `predicate` without them, in one commit (see the module
        docstring); nothing is committed when no row matches. `hits` (file → matching rows) when a scan of
        this snapshot with the same predicate already counted them."""
        out = Deleted()
        if not self.exists:
            return out
        entries = self.candidates(prunes)
        out.files_read = len(entries)
        if hits is None:
            hits = {}
            for rel, *_ in self.scan(predicate, [], prunes):
                hits[rel] = hits.get(rel, 0) + 1
        if not hits:
            out.version = self.dt.version()
            return out
        actions = self._rewrite([e for e in self.entries if e.rel in hits], predicate)
        out.rows, out.files = sum(hits.values()), len(hits)
        out.version = self._commit(actions, metadata, what)
        return out

    def _rewrite(self, entries: list[FileEntry], predicate: str) -> list[Any]:
        """Each file without the matching rows, published beside it; the remove and add actions."""
        from deltalake.transaction import RemoveAction

        now_ms = int(time.time() * 1000)
        actions: list[Any] = []
        folder = bronze_files.staging_folder(self.uri, self.tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store = store_for(self.uri, self.aws)
        try:
            for entry in entries:
                own = [
                    r[0]
                    for r in self.con.execute(
                        f"DESCRIBE SELECT * FROM read_parquet({lit(str(self._path(entry)))})"
                    ).fetchall()
                ]
                keep = ", ".join(q(c) for c in own if c not in self.partition_by)
                sql = f"SELECT {keep} FROM ({self._rows_sql([entry])}) WHERE NOT coalesce(({predicate}), false)"
                cur = self.con.cursor()
                try:
                    staged = bronze_files.copy(cur, sql, folder / uuid.uuid4().hex)
                finally:
                    cur.close()
                actions.append(RemoveAction(entry.rel, True, now_ms, entry.size, dict(entry.partition)))
                prefix = entry.rel.rsplit("/", 1)[0] + "/" if "/" in entry.rel else ""
                for f in staged:
                    rel = f"{prefix}{f.path.name}"
                    store.upload(f.path, join(self.uri, rel))
                    (add,) = bronze_files.add_actions([f], self.schema)
                    actions.append(
                        replace(add, path=rel, partition_values=dict(entry.partition), modification_time=now_ms)
                    )
        finally:
            bronze_files.discard(folder)
        return actions

    def transform(self, rels: list[str], fn: Any, metadata: dict[str, str], *, what: str) -> Deleted:
        """Rewrite the files `rels` through `fn(pyarrow.Table) -> pyarrow.Table | None` (None: unchanged), in
        one commit. For small tables (the ledgers): each file is read whole."""
        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction, RemoveAction

        out = Deleted()
        if not self.exists:
            return out
        now_ms = int(time.time() * 1000)
        actions: list[Any] = []
        store = store_for(self.uri, self.aws)
        for entry in [e for e in self.entries if e.rel in set(rels)]:
            new = fn(pq.read_table(self._path(entry)))
            if new is None:
                continue
            actions.append(RemoveAction(entry.rel, True, now_ms, entry.size, dict(entry.partition)))
            out.files += 1
            if new.num_rows:
                local = self.tmp / f"part-{uuid.uuid4().hex}.parquet"
                pq.write_table(new, local)
                prefix = entry.rel.rsplit("/", 1)[0] + "/" if "/" in entry.rel else ""
                rel = f"{prefix}{local.name}"
                size = local.stat().st_size
                store.upload(local, join(self.uri, rel))
                stats = json.dumps(arrow_stats(new))
                actions.append(AddAction(rel, size, dict(entry.partition), now_ms, True, stats))
        if actions:
            out.version = self._commit(actions, metadata, what)
        return out

    def _commit(self, actions: list[Any], metadata: dict[str, str], what: str) -> int:
        from deltalake import CommitProperties
        from deltalake.exceptions import CommitFailedError

        props = CommitProperties(custom_metadata=metadata)
        append_only = self.append_only
        dt, before = self.dt, self.dt.version()
        try:
            if append_only:  # an erasure is the one change an append-only bronze accepts
                dt.alter.set_table_properties({APPEND_ONLY: "false"}, commit_properties=props)
                dt = self.reopen()
                if dt.version() != before + 1:  # someone committed in between: start over
                    raise LockBusy(f"{what}: another writer committed meanwhile; nothing was erased; try again")
            dt.create_write_transaction(
                actions, "append", dt.schema(), partition_by=self.partition_by or None, commit_properties=props
            )
        except CommitFailedError as exc:
            raise LockBusy(
                f"{what}: another writer committed first ({first_line(exc)}); nothing was erased; try again"
            ) from None
        if append_only:
            set_append_only(self.reopen(), metadata)
        return open_table(self.uri, self.aws).version()


def arrow_stats(table) -> dict[str, Any]:
    """Delta file statistics of an Arrow table: row count, null counts of scalar columns, min/max of
    integer columns (as lh360.engines.local.bronze_files.add_actions writes them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stats: dict[str, Any] = {"numRecords": table.num_rows, "nullCount": {}, "minValues": {}, "maxValues": {}}
    for f in table.schema:
        if pa.types.is_nested(f.type):
            continue
        stats["nullCount"][f.name] = table.column(f.name).null_count
        if pa.types.is_integer(f.type) and table.num_rows > table.column(f.name).null_count:
            mm = pc.min_max(table.column(f.name)).as_py()
            stats["minValues"][f.name], stats["maxValues"][f.name] = mm["min"], mm["max"]
    return stats


def set_append_only(dt, metadata: dict[str, str]) -> None:
    """Switch a table back to append-only (after an erasure; also when one was interrupted half-way)."""
    from deltalake import CommitProperties

    if (dt.metadata().configuration or {}).get(APPEND_ONLY) != "true":
        dt.alter.set_table_properties(
            {APPEND_ONLY: "true"}, commit_properties=CommitProperties(custom_metadata=metadata)
        )


# ---- purge -------------------------------------------------------------------------------------------------


@dataclass
class Purged:
    files: int = 0  # data files deleted by VACUUM
    log_entries: int = 0  # commit files and checkpoints deleted
    noncurrent_versions: int = 0  # S3 object versions deleted


def purge(uri: str, aws: AwsSettings | None, metadata: dict[str, str]) -> Purged:
    """VACUUM (retention 0), a checkpoint, and every older log entry deleted: see the module docstring."""
    from deltalake import CommitProperties

    out = Purged()
    dt = open_table(uri, aws)
    if dt is None:
        return out
    deleted = dt.vacuum(
        retention_hours=0,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,
        commit_properties=CommitProperties(custom_metadata=metadata),
    )
    out.files = len(deleted)
    dt = open_table(uri, aws)
    dt.create_checkpoint()
    version = dt.version()
    store = store_for(uri, aws)
    log = join(uri, "_delta_log")
    gone = [join(uri, d) if not d.startswith(("/", "s3://")) else d for d in deleted]
    for f in list(store.list(log)):
        number = f.rel.split(".", 1)[0]
        if "/" in f.rel or not number.isdigit() or int(number) >= version:
            continue
        store.delete(f.uri)
        gone.append(f.uri)
        out.log_entries += 1
    out.noncurrent_versions = delete_noncurrent(gone, aws)
    return out


def commit_metadata(step: str, request: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The metadata of an erasure's commits: the step and the erasure's id (an HMAC), never a value."""
    return {"lh360.step": step, "lh360.erasure": request, **(extra or {})}


def carried(dt, keys: tuple[str, ...]) -> dict[str, str]:
    """Commit metadata lh360 reads back from a table's newest commits (silver's watermark, bronze's last batch
    and nonce), copied into a maintenance commit so that it is still the newest record after log cleanup."""
    out: dict[str, str] = {}
    for commit in dt.history(50):
        if any(k in commit for k in keys):
            return {k: str(commit[k]) for k in keys if k in commit and commit[k] is not None}
    return out
