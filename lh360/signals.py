"""Signals that always work: SIGINT and SIGTERM end lh360 promptly with 130 / 143, whatever code is running.

`handled()` (the CLI runs every command inside it) makes both signals raise `Interrupted` in the main thread. It is
a BaseException, so no `except Exception` (a ledger retry, the Databricks SDK's config probe) swallows it;
work that must not be abandoned half-way (cancelling a remote run) holds signals back meanwhile.
Native code that notices the signal itself (DuckDB stops its query with "Query interrupted") may surface it
as another error: the CLI therefore asks `received()` and turns any outcome after a signal into 130 / 143,
never 0 or 3. A second signal while the first is being handled ends the process at once: cron and systemd
escalate, and so does an operator pressing Ctrl-C twice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lh360.errors import Interrupted

_received: int | None = None


def _handler(signum: int, frame: Any) -> None:
    global _received
    if _received is not None:
        os.write(2, f"lh360: second {signal.Signals(signum).name}: stopping now\n".encode())
        os._exit(128 + _received)
    _received = signum
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise Interrupted (main thread only: Python delivers signals
    there); the previous handlers come back after it."""
    global _received
    _received = None
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def received() -> int | None:
    """The signal that arrived since handled() began, if any."""
    return _received


def check() -> None:
    """Raise Interrupted if a signal arrived and was swallowed by code that caught it (between steps)."""
    if _received is not None:
        raise Interrupted(_received)
