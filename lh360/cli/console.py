"""The lh360.console.Console of the command line: what the library says while it works, shown as cron and
people need it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from lh360.cli._output import Output
from lh360.cli.render import step_line
from lh360.console import Silent


class _Live:
    def __init__(self, status: Any) -> None:
        self.status = status
        status.start()

    def update(self, text: str) -> None:
        self.status.update(text)

    def close(self) -> None:
        self.status.stop()


class _Bar:
    def __init__(self, bar: Any, label: str, total: int) -> None:
        self.bar = bar
        bar.start()
        self.task = bar.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        self.bar.advance(self.task, amount)

    def close(self) -> None:
        self.bar.stop()


@dataclass
class CliConsole:
    """The lh360.console.Console of the command line: plain lines (none under --json or --quiet), and a
    live status line and progress bars only on a terminal, so cron logs stay clean."""

    out: Output

    @property
    def _interactive(self) -> bool:
        return not self.out.json and not self.out.quiet and self.out.console.is_terminal

    def say(self, text: str) -> None:
        if not self.out.json:
            self.out.print(text, markup=False, highlight=False)

    def step_finished(self, result: Any) -> None:
        line = step_line(result)
        if line is not None:
            self.say(line)

    def live(self, label: str) -> Any:
        return _Live(self.out.console.status(label)) if self._interactive else Silent()

    def progress(self, label: str, total: int) -> Any:
        if not self._interactive or not sys.stdout.isatty():
            return Silent()
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=self.out.console,
            transient=True,
        )
        return _Bar(bar, label, total)
