"""Signals that always work: SIGINT and SIGTERM end lh360 promptly with 130 / 143, whatever code is running.

`handled()` (the CLI runs every command inside it) makes both signals raise `Interrupted` in the main thread.
It is a BaseException, so no `except Exception` (a ledger retry, the Databricks SDK's config probe) swallows
it. Native code that notices the signal itself (DuckDB stops its query with "Query interrupted") may surface
it as another error: the CLI therefore asks `received()` and turns any outcome after a signal into 130 /
143, never 0 or 3. A second signal while the first is being handled ends the process at once: cron and
systemd escalate, and so does an operator pressing Ctrl-C twice.

Two kinds of work must not be cut in the middle, and run `deferred()`: the first import of a native library
(an exception raised inside DuckDB's or delta-rs' module initialisation leaves it half-built, and the next
call into it aborts the process with SIGABRT), and cancelling a remote run. A signal that arrives meanwhile
is raised as soon as the block ends.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lh360.errors import Interrupted

# libraries with native code whose import must finish once begun
NATIVE = frozenset({"duckdb", "_duckdb", "deltalake", "pyarrow", "pydantic_core", "pyspark", "numpy"})

_received: int | None = None
_pending: int | None = None
_deferring = 0


def _handler(signum: int, frame: Any) -> None:
    global _received, _pending
    if _received is not None:
        os.write(2, f"lh360: second {signal.Signals(signum).name}: stopping now\n".encode())
        os._exit(128 + _received)
    _received = signum
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Finish the block before a signal that arrives during it is raised (a second signal still stops)."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level == 0 and name.partition(".")[0] in NATIVE and name not in sys.modules:
        if threading.current_thread() is threading.main_thread():
            with deferred():
                return _original_import(name, globals, locals, fromlist, level)
    return _original_import(name, globals, locals, fromlist, level)


_original_import = builtins.__import__


@contextmanager
def handled() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise Interrupted (main thread only: Python delivers signals
    there), and native imports finish before one is raised; the previous handlers come back after it."""
    global _received, _pending, _deferring
    _received = _pending = None
    _deferring = 0
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    builtins.__import__ = _import
    try:
        yield
    finally:
        builtins.__import__ = _original_import
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # the signal belonged to this block: code run after it (a test, a caller in process) starts clean
        _received = _pending = None


def received() -> int | None:
    """The signal that arrived since handled() began, if any."""
    return _received


def check() -> None:
    """Raise Interrupted if a signal arrived and was swallowed by code that caught it (between steps)."""
    if _received is not None:
        raise Interrupted(_received)
