"""Landing files as local NDJSON for DuckDB: downloaded from S3, checked whole (settled, complete, a real
gzip, not a symlink leading outside the landing zone), gunzipped, and JSON-array files turned into one
element per line. A file that cannot be read whole is a problem of that file (it is quarantined by the
ingest), never of the batch.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lh360.config import ResolvedTarget
from lh360.storage import FileInfo, is_s3, is_within, store_for


@dataclass
class Prepared:
    info: FileInfo
    local: Path
    limit: int | None = None  # read this many bytes of `local` (the size that was checked), None: all


@dataclass
class Problem:
    info: FileInfo
    kind: str  # quarantine | settling | vanished
    error: str


class FileProblem(Exception):
    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind, self.error = kind, error


def prepare(
    files: list[FileInfo], target: ResolvedTarget, tmp: Path, *, links_inside: str | None = None
) -> tuple[list[Prepared], list[Problem]]:
    """Local NDJSON files for DuckDB: downloads from S3, gunzips, and turns JSON-array files into NDJSON.
    A file that cannot be read whole comes back as a Problem instead (see the quarantine section)."""
    store = store_for(target.landing, target.settings.aws)
    s3 = is_s3(target.landing)

    def one(i_info: tuple[int, FileInfo]) -> Prepared | Problem:
        i, info = i_info
        try:
            return _prepare_one(i, info, store, tmp, s3=s3, links_inside=links_inside)
        except FileProblem as p:
            return Problem(info, p.kind, p.error)

    with ThreadPoolExecutor(max_workers=8) as pool:
        out = list(pool.map(one, enumerate(files)))
    return [p for p in out if isinstance(p, Prepared)], [p for p in out if isinstance(p, Problem)]


def _prepare_one(i: int, info: FileInfo, store, tmp: Path, *, s3: bool, links_inside: str | None) -> Prepared:
    limit: int | None = None
    if s3:
        path = _download(store, info, tmp)
    else:
        path = Path(info.uri)
        _recheck(info, links_inside)
        limit = info.size
    if info.rel.lower().endswith(".gz"):
        path = _gunzip(path, tmp / f"{i}.ndjson", limit)
        limit = None
    try:
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"["):
        array = _array_to_ndjson(path, tmp / f"{i}.array.ndjson", limit)
        if array is not None:
            return Prepared(info, array)
    if not info.rel.lower().endswith(".gz"):
        _check_complete(path, limit)
    return Prepared(info, path, limit)


def _download(store, info: FileInfo, tmp: Path) -> Path:
    """The S3 object as a local file; a vanished object is skipped, one we may not read is quarantined."""
    try:
        return store.local_copy(info.uri, tmp)
    except Exception as exc:
        text = f"{type(exc).__name__} {exc}"
        if "NoSuchKey" in text or "404" in text or "Not Found" in text:
            raise FileProblem("vanished", "deleted after it was listed") from None
        if "AccessDenied" in text or "403" in text or "Forbidden" in text:
            raise FileProblem("quarantine", f"cannot read: {str(exc).splitlines()[0][:200]}") from None
        raise


def _recheck(info: FileInfo, links_inside: str | None) -> None:
    """Right before reading a local file: it is still what the listing saw (same size and mtime, still not
    a symlink unless allowed), so that a file written since is left to settle instead of read half-way."""

    try:
        st = os.stat(info.uri)
        link = os.path.islink(info.uri)
    except FileNotFoundError:
        raise FileProblem("vanished", "deleted after it was listed") from None
    except OSError as exc:
        raise FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    if link and (links_inside is None or not _inside(info.uri, links_inside)):
        raise FileProblem("settling", "replaced by a symlink after it was listed")
    if st.st_size != info.size or st.st_mtime != info.mtime:
        raise FileProblem("settling", "changed after it was listed (still being written?)")


def _inside(uri: str, root: str) -> bool:
    return is_within(os.path.realpath(uri), root)


GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(src: Path, dst: Path, limit: int | None) -> Path:
    """Decompress a whole gzip stream (of the first `limit` bytes of `src`). A file that is not gzip, or
    whose stream ends early or is corrupt, cannot be read whole: quarantined."""

    try:
        with open(src, "rb") as raw:
            if raw.read(2) != GZIP_MAGIC:
                raise FileProblem("quarantine", "not a gzip file (a .gz name without the gzip header)")
            raw.seek(0)
            data: Any = raw if limit is None else _Limited(raw, limit)
            with gzip.open(data, "rb") as stream, open(dst, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
    except EOFError:
        raise FileProblem("quarantine", "truncated gzip: the compressed stream ends early") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise FileProblem("quarantine", f"corrupt gzip: {exc}") from None
    except PermissionError as exc:
        raise FileProblem("quarantine", f"cannot read: {exc.strerror or exc}") from None
    return dst


class _Limited:
    """A read-only file object over the first `limit` bytes of `fh` (for gzip.open)."""

    def __init__(self, fh, limit: int) -> None:
        self.fh, self.left = fh, limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.fh.read(n)
        self.left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def _check_complete(path: Path, limit: int | None) -> None:
    """An NDJSON file is complete when it ends with a newline, or when its last line is a whole JSON value
    (a producer that writes no final newline), or when the whole file is one JSON document. Otherwise its
    last line was cut (a writer that died, or is still writing after a pause longer than landing.settle):
    the file is quarantined until it changes, rather than ingested with the rest of that line lost."""

    size = os.path.getsize(path) if limit is None else limit
    if size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        last = _last_line(fh, size)
    if _whole_json(last.strip().lstrip(b"\xef\xbb\xbf")):
        return
    with open(path, "rb") as fh:
        whole = fh.read(size)
    if _whole_json(whole.strip().lstrip(b"\xef\xbb\xbf")):
        return
    raise FileProblem(
        "quarantine", "incomplete: the last line has no newline and is not a whole JSON value (a cut write)"
    )


def _last_line(fh, size: int, block: int = 1 << 16) -> bytes:
    """The bytes after the last newline among the first `size` bytes of `fh`."""
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        tail = fh.read(end - start) + tail
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return tail[cut + 1 :]
        end = start
    return tail


def _whole_json(data: bytes) -> bool:
    """Whether `data` is exactly one JSON object or array (nesting of any depth)."""
    if not data or data[:1] not in (b"{", b"["):
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    end = _value_end(text, 0)
    return end is not None and not text[end:].strip()


_WS = re.compile(r"[ \t\n\r]*")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^"\[\]{}]+', re.DOTALL)


def _value_end(text: str, start: int) -> int | None:
    """The index just past the JSON value starting at `start`, or None if none parses there. Python's
    parser is used where it can (C speed); a value nested deeper than its recursion limit is matched by
    brackets instead (DuckDB parses it later, whatever its depth)."""
    try:
        return _DECODER.raw_decode(text, start)[1]
    except RecursionError:
        return _bracket_end(text, start)
    except ValueError:
        return None


def _bracket_end(text: str, start: int) -> int | None:
    depth = 0
    for m in _TOKEN.finditer(text, start):
        tok = m.group()
        if tok in ("[", "{"):
            depth += 1
        elif tok in ("]", "}"):
            depth -= 1
            if depth == 0:
                return m.end()
        elif depth == 0:
            return None
    return None


_DECODER = json.JSONDecoder()


def _array_to_ndjson(src: Path, dst: Path, limit: int | None = None) -> Path | None:
    """A JSON-array file → one element per line (line N = element N), each element's text as the producer
    wrote it (numbers keep their digits; line breaks between tokens become spaces). None if the file is not
    one whole array: it is then read as NDJSON, so its bad lines are kept as corrupt records."""
    with open(src, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    elements = _array_elements(text)
    if elements is None:
        return None
    with open(dst, "w", encoding="utf-8") as out:
        for element in elements:
            out.write(element.replace("\r", " ").replace("\n", " ") + "\n")
    return dst


def _skip_ws(text: str, i: int) -> int:
    """The index of the first non-whitespace character at or after i (_WS always matches)."""
    m = _WS.match(text, i)
    assert m is not None
    return m.end()


def _array_elements(text: str) -> list[str] | None:
    """The raw text of each element of the one JSON array in `text`, or None."""
    i = _skip_ws(text, 0)
    if text[i : i + 1] != "[":
        return None
    i = _skip_ws(text, i + 1)
    out: list[str] = []
    if text[i : i + 1] == "]":
        return out if not text[i + 1 :].strip() else None
    while True:
        end = _value_end(text, i)
        if end is None:
            return None
        out.append(text[i:end])
        i = _skip_ws(text, end)
        sep = text[i : i + 1]
        if sep == "]":
            return out if not text[i + 1 :].strip() else None
        if sep != ",":
            return None
        i = _skip_ws(text, i + 1)


# ---- the step --------------------------------------------------------------------------------------
