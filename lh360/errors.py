"""Every error lh360 raises on purpose, and the exit code each one means.

    LH360Error                     exit 3 unless a subclass says otherwise
     ├── UsageError                2  bad command line
     ├── ConfigError               2  bad config or spec: names file, line and field
     ├── CheckFailed               1  a data check of severity error, a `fail` expectation, an SLA breach
     ├── EngineError               3  a run failed on its engine (local step, Databricks run, Athena query)
     │    └── SchemaChangeError    3  new columns under `failOnNewColumns`
     ├── RunTimeout                4  a run or query exceeded its timeout
     └── LockBusy                  75 another run holds the table's lock or won the commit race
    Interrupted (a BaseException)  130 / 143  SIGINT / SIGTERM (lh360.signals)

The CLI is the one place that turns them into exit codes (`lh360.cli`); library callers catch them.
"""

from __future__ import annotations

import signal

from lh360.redact import redact


class LH360Error(Exception):
    """Its message and detail never carry what looks like personal data (lh360.redact): an engine error may
    quote a value, and these texts reach terminals, logs, `--json` and the run ledger."""

    exit_code = 3

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        message = redact(message) or ""
        super().__init__(message)
        self.message = message
        self.detail = redact(detail)  # longer text (a remote trace, sample rows) shown under the one-line message


class UsageError(LH360Error):
    exit_code = 2


class ConfigError(LH360Error):
    """A config or spec problem, located as precisely as we know: file, line, field path."""

    exit_code = 2

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.file, self.line, self.field = file, line, field
        where = file or "<config>"
        if line:
            where += f":{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text)
        self.reason = message


class CheckFailed(LH360Error):
    exit_code = 1


class EngineError(LH360Error):
    exit_code = 3


class SchemaChangeError(EngineError):
    pass


class RunTimeout(LH360Error):
    exit_code = 4


class LockBusy(LH360Error):
    exit_code = 75


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (lh360.signals raises it in the main thread). A BaseException, like
    KeyboardInterrupt, so that no `except Exception` in lh360 or in a library (housekeeping retries, the
    Databricks SDK's config probe) can swallow it: it always reaches the CLI's boundary (exit 130 / 143)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.message = f"interrupted by {signal.Signals(signum).name}"
        self.detail: str | None = None
        self.exit_code = 128 + signum
        super().__init__(self.message)


def first_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of an error or message (library errors are often a page long), shortened."""
    for line in str(text or "").strip().splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(text).__name__ if isinstance(text, BaseException) else ""
