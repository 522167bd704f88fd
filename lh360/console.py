"""How the library tells people what is happening, without knowing how it is shown.

Library code (the context, engines) calls a `Console`; the CLI passes one that prints on a terminal, stays
quiet under --json or --quiet, and draws live lines and progress bars only on a TTY (lh360.cli.console).
Library callers get `NullConsole` by default; tests use `CaptureConsole`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class LiveLine(Protocol):
    """A status line that updates in place on a terminal (a remote run's state and elapsed time)."""

    def update(self, text: str) -> None: ...

    def close(self) -> None: ...


class Ticker(Protocol):
    """A progress bar over a known total (bytes of an ingest)."""

    def advance(self, amount: int) -> None: ...

    def close(self) -> None: ...


class Console(Protocol):
    def say(self, text: str) -> None:
        """One line for people (and cron logs): a state change, what a step did."""
        ...

    def step_finished(self, result: Any) -> None:
        """A step (an IngestResult, RefineResult or AggregateResult) committed."""
        ...

    def live(self, label: str) -> LiveLine:
        """A line that updates in place while something runs elsewhere."""
        ...

    def progress(self, label: str, total: int) -> Ticker:
        """A progress bar over `total` units."""
        ...


class Silent:
    """A live line or progress bar that shows nothing (not a terminal, or no console)."""

    def update(self, text: str) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def close(self) -> None:
        pass


class NullConsole:
    """Says nothing: the default for library callers."""

    def say(self, text: str) -> None:
        pass

    def step_finished(self, result: Any) -> None:
        pass

    def live(self, label: str) -> LiveLine:
        return Silent()

    def progress(self, label: str, total: int) -> Ticker:
        return Silent()


@dataclass
class CaptureConsole(NullConsole):
    """Keeps what it is told, for tests."""

    lines: list[str] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)

    def step_finished(self, result: Any) -> None:
        self.finished.append(result)
