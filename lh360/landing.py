"""Landing-zone health: what is pending, how old the newest file is against the SLA, what looks broken."""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.spec import TableSpec
from lh360.storage import FileInfo, store_for


@dataclass
class LandingReport:
    table: str
    prefix: str
    files: int = 0
    bytes: int = 0
    pending_files: int = 0
    pending_bytes: int = 0
    newest_file: str | None = None
    newest_age_s: float | None = None
    max_age_s: float | None = None
    recent_files: int = 0  # landed within max_age
    min_files: int = 0
    empty_files: list[str] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["status"] = "breach" if self.breached else "ok"
        return d


def check_landing(target: ResolvedTarget, spec: TableSpec, *, now: float | None = None, sample: bool = True) -> LandingReport:
    from lh360.engines.local.ingest import ingested_files, landing_prefix, list_landing

    now = time.time() if now is None else now
    files = list_landing(target, spec)
    _, done = ingested_files(target, spec)
    report = LandingReport(table=spec.table, prefix=landing_prefix(target, spec), min_files=spec.landing.min_files)
    report.files = len(files)
    report.bytes = sum(f.size for f in files)
    pending = [f for f in files if f.rel not in done]
    report.pending_files = len(pending)
    report.pending_bytes = sum(f.size for f in pending)
    report.empty_files = [f.rel for f in files if f.size == 0 and f.rel not in done]
    max_age = spec.landing.max_age.total_seconds() if spec.landing.max_age else None
    report.max_age_s = max_age
    if files:
        newest = max(files, key=lambda f: (f.mtime, f.rel))
        report.newest_file = newest.rel
        report.newest_age_s = round(now - newest.mtime, 1)
    report.recent_files = sum(1 for f in files if max_age is None or now - f.mtime <= max_age)
    if max_age is not None and (report.newest_age_s is None or report.newest_age_s > max_age):
        age = "no files" if report.newest_age_s is None else f"newest file is {_dur(report.newest_age_s)} old"
        report.problems.append(f"{age}, over the SLA of {_dur(max_age)}")
    if report.recent_files < spec.landing.min_files:
        window = f" in the last {_dur(max_age)}" if max_age else ""
        report.problems.append(f"{report.recent_files} file(s) landed{window}, fewer than min_files {spec.landing.min_files}")
    if sample and pending:
        newest_pending = max(pending, key=lambda f: (f.mtime, f.rel))
        bad = sample_parse(target, newest_pending)
        if bad:
            report.unreadable.append(bad)
    return report


def sample_parse(target: ResolvedTarget, info: FileInfo, max_bytes: int = 1 << 20) -> dict[str, Any] | None:
    """Parse the first lines of a file to catch unreadable JSON before the ingest does."""
    if info.size == 0:
        return None
    store = store_for(target.landing, target.settings.aws)
    try:
        data = store.read_bytes(info.uri)
        if info.rel.endswith(".gz"):
            data = gzip.decompress(data)
    except Exception as exc:
        return {"file": info.rel, "error": f"cannot read: {exc}"}
    text = data[:max_bytes].decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("["):
        try:
            json.loads(data.decode("utf-8-sig"))
            return None
        except ValueError as exc:
            return {"file": info.rel, "error": f"JSON array does not parse: {exc}"}
    lines = text.splitlines()
    if len(data) > max_bytes and lines:
        lines = lines[:-1]  # the cut may split the last line
    for number, line in enumerate(lines[:1000], start=1):
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                return {"file": info.rel, "line": number, "error": "line is not a JSON object"}
        except ValueError as exc:
            return {"file": info.rel, "line": number, "error": f"malformed JSON: {exc}"}
    return None


def _dur(seconds: float) -> str:
    from lh360.durations import format_duration

    return format_duration(seconds)
