"""delta-rs helpers: open tables by URI, read them without the exit-time abort, commit idempotently."""

from __future__ import annotations

from typing import Any

from lh360.config import AwsSettings
from lh360.sql import quote_ident
from lh360.storage import delta_storage_options, to_delta_uri


def open_table(uri: str, aws: AwsSettings | None = None, version: int | None = None):
    """The DeltaTable at `uri`, or None when there is none yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = delta_storage_options(uri, aws)
    try:
        return DeltaTable(to_delta_uri(uri), version=version, storage_options=opts)
    except TableNotFoundError:
        return None


def arrow_schema(dt) -> Any:
    import pyarrow as pa

    return pa.schema(dt.schema().to_arrow())


def reader(dt, columns: list[str] | None = None, where: str | None = None):
    """A RecordBatchReader over the table through delta-rs' QueryBuilder.

    Not `to_pyarrow_table()`/`to_pyarrow_dataset()`: those abort the interpreter at exit in 10-30% of
    short-lived processes (measured; tests/test_cli.py keeps it so). QueryBuilder also applies partition values and schema evolution.
    """
    from deltalake import QueryBuilder

    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    sql = f"SELECT {cols} FROM t" + (f" WHERE {where}" if where else "")
    return QueryBuilder().register("t", dt).execute(sql)


def commit_properties(app_id: str, version: int, metadata: dict[str, str], more: dict[str, int] | None = None):
    """A commit carrying the app transaction (app_id, version), any `more` ones, and custom metadata."""
    from deltalake import CommitProperties, Transaction

    txns = [Transaction(app_id=app_id, version=version)]
    txns += [Transaction(app_id=a, version=v) for a, v in (more or {}).items()]
    return CommitProperties(app_transactions=txns, custom_metadata=metadata)


def txn_version(dt, app_id: str) -> int:
    """The last version committed by `app_id`, or -1. delta-rs does not skip a repeated (app_id, version)
    the way Spark does: callers compare against this before writing."""
    if dt is None:
        return -1
    v = dt.transaction_version(app_id)
    return -1 if v is None else int(v)
