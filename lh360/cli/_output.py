"""How the CLI talks: rich on a terminal, plain text when piped, one JSON document with --json, JSON logs."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lh360.durations import format_duration
from lh360.jsonable import jsonable

log = logging.getLogger("lh360")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(jsonable(doc), ensure_ascii=False)


def _redact_personal_data(record: logging.LogRecord) -> bool:
    """Logs never carry personal data: the message (and text fields) with lh360.pii.redact applied."""
    from lh360.pii import redact  # pii and sql: off the --help path

    record.msg, record.args = redact(record.getMessage()), None
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
    return True


def setup_logging(log_format: str, verbose: bool, quiet: bool) -> None:
    root = logging.getLogger("lh360")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
        level = logging.DEBUG if verbose else logging.INFO
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        level = logging.DEBUG if verbose else logging.WARNING
    if quiet:
        level = logging.ERROR
    handler.setLevel(level)
    handler.addFilter(_redact_personal_data)
    root.setLevel(level)
    root.addHandler(handler)
    root.propagate = False
    # sqlglot warns on stderr about dialect details it cannot carry over; lint reports what matters
    logging.getLogger("sqlglot").setLevel(logging.DEBUG if verbose else logging.ERROR)


@dataclass
class Output:
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    log_format: str = "text"
    _console: Any = field(default=None, repr=False)
    _err: Any = field(default=None, repr=False)

    @property
    def tty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def console(self):
        """rich console on stdout; colour only on a terminal. With --json, human text goes to stderr."""
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self.json else sys.stdout
            tty = stream.isatty()
            self._console = Console(
                file=stream,
                force_terminal=tty,
                no_color=not tty,
                highlight=False,
                soft_wrap=not tty,
                width=None if tty else 160,
            )
        return self._console

    @property
    def err(self):
        if self._err is None:
            from rich.console import Console

            tty = sys.stderr.isatty()
            self._err = Console(file=sys.stderr, force_terminal=tty, no_color=not tty, highlight=False, soft_wrap=True)
        return self._err

    def print(self, *objects: Any, **kw: Any) -> None:
        if not self.quiet:
            self.console.print(*objects, **kw)

    def emit(self, doc: Any) -> None:
        """The one JSON document of a --json run."""
        sys.stdout.write(json.dumps(jsonable(doc), ensure_ascii=False, indent=None) + "\n")
        sys.stdout.flush()

    def error(self, message: str, detail: str | None = None) -> None:
        from rich.markup import escape

        self.err.print(f"[bold red]error:[/] {escape(message)}")
        if detail:
            self.err.print(escape(detail))


def ago(seconds: float) -> str:
    return format_duration(seconds)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
