"""Landing files the Databricks job cannot read as the local engine does: JSON arrays written over several
lines (pretty-printed).

Auto Loader reads JSON Lines (`multiLine` false, what lets it split large files): each line is one record.
A one-line array is read as one row per element, like the local engine; an array over several lines is
not: each of its lines (`[`, `  {"id": 1,` …) becomes a row of NULLs, and the records are lost to bronze.
The local engine reads both forms. So on a `databricks` target lh360 refuses to ingest such files (exit 2,
naming them) and `lh360 landing` warns about them, instead of ingesting garbage.

Only the files bronze does not hold yet are looked at, and of each only its first 64 KiB (a ranged read).
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor

from lh360.config import ResolvedTarget
from lh360.layout import landing_prefix
from lh360.spec import TableSpec
from lh360.storage import store_for

HEAD_BYTES = 64 * 1024
SHOWN = 5


def multiline_array(head: bytes, gzipped: bool = False) -> bool:
    """Whether a file starting with `head` is a JSON array written over several lines: its first line opens
    an array and does not close it. (A first line longer than `head` is one long line: not this case.)"""
    if gzipped:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, HEAD_BYTES)
        except zlib.error:
            return False
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"["):
        return False
    first, newline, _ = text.partition(b"\n")
    return bool(newline) and not first.rstrip().endswith(b"]")


def pending_multiline_arrays(target: ResolvedTarget, spec: TableSpec, ingested: set[str]) -> list[str]:
    """The landing files (relative to the table's prefix) not in bronze yet that hold a multi-line array."""
    prefix = landing_prefix(target.landing, spec.source.path)
    store = store_for(prefix, target.settings.aws)
    pending = [f for f in store.list(prefix) if f.rel not in ingested and f.size > 0]

    def check(f) -> str | None:
        head, _ = store.read_range(f.uri, HEAD_BYTES)
        return f.rel if multiline_array(head, f.rel.endswith(".gz")) else None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return sorted(rel for rel in pool.map(check, pending) if rel)


def describe(files: list[str]) -> str:
    shown = ", ".join(files[:SHOWN]) + (f" and {len(files) - SHOWN} more" if len(files) > SHOWN else "")
    return (
        f"{len(files)} landing file(s) hold a JSON array written over several lines ({shown}): Auto Loader on "
        "Databricks reads one record per line and would turn each of their lines into an empty row. Write them "
        "as JSON Lines (one object per line) or as a one-line array, or ingest them on a local target"
    )
