"""Landing files → numbered lines, in bounded chunks, as Arrow tables DuckDB can scan in parallel.

Splitting is done by pyarrow's C++ kernels (about 1 GB/s here), which keeps every line's number — what a
rescued value or a corrupt record must carry — at a fraction of the cost of numbering lines in SQL.
Memory stays flat: a couple of chunks (`chunk_bytes` of input each) are in flight at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 32 << 20


def _file_lines(path: Path, limit: int | None = None):
    """(lines as large_string array, count) for one file (its first `limit` bytes: the size the ingest
    checked, so bytes appended since are not read half-way); lines that are not UTF-8 become their
    backslash-escaped text (still kept, as corrupt records)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if limit is None:
        data = path.read_bytes()
    else:
        with open(path, "rb") as fh:
            data = fh.read(limit)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if not data:
        return pa.array([], pa.large_string())
    lines = pc.split_pattern(pa.array([data], pa.large_binary()), b"\n").flatten()
    try:
        return lines.cast(pa.large_string())
    except (pa.ArrowInvalid, UnicodeDecodeError):
        texts = [b.decode("utf-8", "backslashreplace") for b in data.split(b"\n")]
        return pa.array(texts, pa.large_string())


def chunks(paths: list[Path], chunk_bytes: int = CHUNK_BYTES, limits: list[int | None] | None = None) -> Iterator:
    """Arrow tables (fi int32: index into `paths`, _line int64: 1-based, line0: the line's text).

    `line0` carries Arrow's JSON extension type over the same buffer (zero-copy): DuckDB then sees a JSON
    column without validating it, so casting it to the table's STRUCT is the one parse of a clean line.
    Its text is read as VARCHAR for everything else (corrupt lines included)."""
    import pyarrow as pa

    as_json = pa.json_(pa.large_string())

    numbers = pa.array([], pa.int64())  # 1..n, grown on demand and sliced zero-copy per file
    parts: list = []
    size = 0
    for fi, path in enumerate(paths):
        lines = _file_lines(path, limits[fi] if limits else None)
        n = len(lines)
        if n:
            if len(numbers) < n:
                numbers = pa.array(range(1, max(n, 2 * len(numbers)) + 1), pa.int64())
            fis = pa.repeat(pa.scalar(fi, pa.int32()), n)
            text = pa.ExtensionArray.from_storage(as_json, lines)
            parts.append(pa.table({"fi": fis, "_line": numbers.slice(0, n), "line0": text}))
            size += path.stat().st_size
        if size >= chunk_bytes:
            yield pa.concat_tables(parts)
            parts, size = [], 0
    if parts:
        yield pa.concat_tables(parts)


def sample(paths: list[Path], max_lines: int = 4096, max_files: int = 32, head_bytes: int = 1 << 18):
    """A table shaped like `chunks`' of the first lines of the first files (whole lines only): what a
    batch's lines look like, read in milliseconds whatever the batch's size."""
    import pyarrow as pa

    files = paths[:max_files]
    per_file = max(1, max_lines // max(1, len(files)))
    fis, numbers, texts = [], [], []
    for fi, path in enumerate(files):
        with open(path, "rb") as fh:
            data = fh.read(head_bytes)
        if data.startswith(BOM):
            data = data[len(BOM) :]
        lines = data.split(b"\n")
        if len(data) >= head_bytes - len(BOM):
            lines = lines[:-1]  # the head ends inside a line
        for number, raw in enumerate(lines[:per_file], start=1):
            fis.append(fi)
            numbers.append(number)
            texts.append(raw.decode("utf-8", "backslashreplace"))
    text = pa.ExtensionArray.from_storage(pa.json_(pa.large_string()), pa.array(texts, pa.large_string()))
    return pa.table({"fi": pa.array(fis, pa.int32()), "_line": pa.array(numbers, pa.int64()), "line0": text})


def empty():
    import pyarrow as pa

    text = pa.ExtensionArray.from_storage(pa.json_(pa.large_string()), pa.array([], pa.large_string()))
    return pa.table({"fi": pa.array([], pa.int32()), "_line": pa.array([], pa.int64()), "line0": text})


def reader(paths: list[Path], limits: list[int | None] | None = None):
    """(RecordBatchReader over every line of `paths`, close): one stream DuckDB scans with all its threads,
    while a background thread splits the next chunk. Call `close` when the query ends, however it ends."""
    import pyarrow as pa

    chunked = prefetch(chunks(paths, limits=limits), depth=1)

    def batches() -> Iterator:
        for chunk in chunked:
            yield from chunk.to_batches()

    return pa.RecordBatchReader.from_batches(empty().schema, batches()), chunked.close


def prefetch(items: Iterator, depth: int = 1) -> Generator[Any, None, None]:
    """Iterate `items` in a background thread, `depth` items ahead, so reading, computing and writing overlap
    (DuckDB, pyarrow and delta-rs release the GIL while they work). Exceptions surface in the consumer; a
    consumer that stops early stops the producer."""

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="lh360-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so a blocked put wakes up, then let it finish
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
