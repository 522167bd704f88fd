"""Native libraries' panic reports, kept out of cron logs.

A Rust panic (delta-rs, DuckDB's extensions) prints from Rust's own hook straight to file descriptor 2,
before Python sees the exception, and a runtime shutting down after one can print hundreds (disk full during
a write: "thread 'tokio-rt-worker' panicked … Already shut down" once per task). lh360 reports the failure
itself in one line at its error boundary, so `NativeNoise` passes file descriptor 2 through a pipe and drops
the panic reports: all of them under --quiet, all but the first otherwise, with a count at the end.
--verbose shows everything (the filter is not installed).
"""

from __future__ import annotations

import os
import re
import sys
import threading

_PANIC = re.compile(rb"^thread '[^']*' panicked at ")
_NOTE = re.compile(rb"^note: run with `RUST_BACKTRACE")
_MAX_PANIC_LINES = 20  # a panic report's message lines are dropped up to its `note:` line, or this many


class NativeNoise:
    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.suppressed = 0  # panic reports dropped
        self.shown = False
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            read_end, write_end = os.pipe()
            os.dup2(write_end, 2)
            os.close(write_end)
        except OSError:  # no file descriptor 2 to filter: leave stderr as it is
            self._saved = None
            return
        self._thread = threading.Thread(target=self._pump, args=(read_end,), name="lh360-stderr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the pump reads to its end
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.suppressed and not self.quiet:
            os.write(
                self._saved, f"lh360: {self.suppressed} more native panic report(s) not shown (--verbose)\n".encode()
            )
        os.close(self._saved)
        self._saved = None

    def _pump(self, read_end: int) -> None:
        assert self._saved is not None
        out = self._saved
        dropping = 0  # lines left to drop of the current panic report
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            for line in _lines(pipe):
                if _PANIC.match(line):
                    if self.quiet or self.shown:
                        self.suppressed += 1
                        dropping = _MAX_PANIC_LINES
                        continue
                    self.shown = True  # the first report is shown (its header and message)
                elif dropping:
                    dropping = 0 if _NOTE.match(line) else dropping - 1
                    continue
                elif _NOTE.match(line):
                    continue
                try:
                    os.write(out, line)
                except OSError:
                    return


def _lines(pipe):
    buffer = b""
    while True:
        chunk = pipe.read(65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if buffer:
        yield buffer
