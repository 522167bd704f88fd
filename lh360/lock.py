"""One run per table at a time on this machine: a kernel `flock`, released by the kernel when the holder dies.

Across machines the Delta commit protocol decides: a writer that loses the commit race gets
`CommitFailedError`, which lh360 reports as LockBusy (exit 75) having written nothing visible.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lh360.errors import LockBusy
from lh360.storage import is_s3


def lock_dir(lake: str) -> Path:
    if is_s3(lake):
        # an S3 lake has no place for a kernel lock: keep it on the ops box, keyed by the lake URI
        import hashlib

        key = hashlib.sha1(lake.encode()).hexdigest()[:16]
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp")
        return base / f"lh360-locks-{key}"
    return Path(lake) / "_lh360" / "locks"


@contextmanager
def table_lock(lake: str, table: str, *, wait: float = 0.0, poll: float = 0.2) -> Iterator[Path]:
    """Hold the table's lock for the block; raise LockBusy after `wait` seconds if another run holds it."""
    folder = lock_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(path)
                    raise LockBusy(
                        f"{table}: another lh360 run holds the lock{holder}; try again later or pass --wait-lock SECONDS"
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
        return f" (pid {pid})" if pid else ""
    except OSError:
        return ""
