"""Durations as users write them in specs: 26h, 30m, 2d, 90s, 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta

from lh360.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# Longer than this cannot be subtracted from a date (ages are compared with now - max_age) and means nothing
MAX_DAYS = 36500


def parse_duration(text: str | int | float) -> timedelta:
    if isinstance(text, bool):
        raise ValueError("expected a duration like 26h, 30m, 2d")
    if isinstance(text, (int, float)):
        return _bounded(float(text), text)
    s = str(text).strip().lower().replace(" ", "")
    if not s or _PART.sub("", s):
        raise ValueError(f"{text!r} is not a duration (write e.g. 26h, 30m, 2d, 90s)")
    return _bounded(sum(float(n) * _UNITS[u] for n, u in _PART.findall(s)), text)


def _bounded(seconds: float, text: str | int | float) -> timedelta:
    if not 0 <= seconds <= MAX_DAYS * 86400:  # also NaN and inf
        raise ValueError(f"{text!r} is not a duration lh360 can use (at most {MAX_DAYS}d)")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta | float) -> str:
    seconds = int(td.total_seconds() if isinstance(td, timedelta) else td)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s and not d else ""]
    return sign + ("".join(parts) or "0s")


def parse_timeout(value: float | str | None) -> float | None:
    """A timeout in seconds from a number or a duration (45m, 2h); None or "" stays None (no limit).
    A bad or non-positive value is a UsageError naming `timeout`."""

    if value is None or value == "":
        return None
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        raise UsageError(f"timeout: {exc}") from None
    if seconds <= 0:
        raise UsageError("timeout: must be more than 0 seconds")
    return seconds


def format_elapsed(seconds: float | None) -> str:
    """An elapsed time for messages: 1m30s, 0.25s; "?" when unknown."""
    if seconds is None:
        return "?"
    return format_duration(seconds) if seconds >= 1 else f"{seconds:.2f}s"
