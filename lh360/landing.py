"""Landing-zone health: what is pending, how old the newest file is against the SLA, what looks broken."""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.durations import format_duration
from lh360.engines.base import IngestState
from lh360.layout import landing_prefix
from lh360.listing import Candidates, landing_candidates
from lh360.spec import TableSpec
from lh360.storage import FileInfo, Upload, store_for


@dataclass
class LandingReport:
    table: str
    prefix: str
    files: int = 0  # full listing: files there; incremental: ingested + pending (those after the watermark)
    bytes: int | None = 0  # None after an incremental listing (the bytes before the watermark were not listed)
    pending_files: int = 0
    pending_bytes: int = 0
    newest_file: str | None = None
    newest_age_s: float | None = None
    max_age_s: float | None = None
    recent_files: int = 0  # landed within max_age
    min_files: int = 0
    empty_files: list[str] = field(default_factory=list)  # zero-byte objects not yet ingested
    uploading: list[dict[str, Any]] = field(default_factory=list)  # multipart uploads in progress
    late_files: list[str] = field(default_factory=list)  # found below the listing watermark
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    settling: list[dict[str, Any]] = field(default_factory=list)  # pending, written less than landing.settle ago
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # skipped by ingest until they change
    rewritten: list[dict[str, Any]] = field(default_factory=list)  # ingested, then rewritten under the same name
    symlinks: list[dict[str, Any]] = field(default_factory=list)  # not followed
    future_mtime: list[dict[str, Any]] = field(default_factory=list)  # mtime ahead of the clock: counted as first seen
    problems: list[str] = field(default_factory=list)  # SLA breaches: exit 1
    warnings: list[str] = field(default_factory=list)
    listing: dict[str, Any] = field(default_factory=dict)

    @property
    def breached(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["status"] = "breach" if self.breached else "ok"
        return d


def check_landing(
    target: ResolvedTarget,
    spec: TableSpec,
    ingested: IngestState,
    *,
    now: float | None = None,
    sample: bool = True,
    full_listing: bool | None = None,
) -> LandingReport:
    """Pending files and bytes against what the target's engine says bronze holds (`ingested`:
    Engine.ingested), the newest file's age against
    `landing.max_age`, files landed within it against `landing.min_files`, zero-byte objects, uploads still in
    progress, and a parse of the first MiB of the newest pending file. Lists incrementally where safe
    (`lh360.listing`)."""
    now = time.time() if now is None else now
    found = landing_candidates(target, spec, ingested, now=now, full_listing=full_listing)
    listing, done = found.listing, found.state.files
    files = listing.files
    report = LandingReport(
        table=spec.table, prefix=landing_prefix(target.landing, spec.source.path), min_files=spec.landing.min_files
    )
    report.warnings.extend(ingested.warnings)
    quarantined = {q["file"] for q in found.quarantined}
    pending = [f for f in files if f.rel not in done and f.rel not in quarantined]
    _report_files(report, found)
    if listing.mode == "full":
        report.files = len(files)
        report.bytes = sum(f.size for f in files)
    else:
        report.files = len(done | {f.rel for f in files})
        report.bytes = None
    report.pending_files = len(pending)
    report.pending_bytes = sum(f.size for f in pending)
    report.empty_files = sorted(f.rel for f in pending if f.size == 0)
    max_age = spec.landing.max_age.total_seconds() if spec.landing.max_age else None
    report.max_age_s = max_age
    newest = listing.state.newest
    if newest:
        report.newest_file = newest["rel"]
        report.newest_age_s = round(now - newest["mtime"], 1)
    if max_age is None:
        report.recent_files = report.files
    else:
        report.recent_files = sum(1 for m in listing.state.recent.values() if now - m <= max_age)
    if max_age is not None and (report.newest_age_s is None or report.newest_age_s > max_age):
        age = "no files" if report.newest_age_s is None else f"newest file is {_dur(report.newest_age_s)} old"
        report.problems.append(f"{age}, over the SLA of {_dur(max_age)}")
    if report.recent_files < spec.landing.min_files:
        window = f" in the last {_dur(max_age)}" if max_age else ""
        report.problems.append(
            f"{report.recent_files} file(s) landed{window}, fewer than min_files {spec.landing.min_files}"
        )
    store = store_for(target.landing, target.settings.aws)
    uploads: list[Upload]
    try:
        uploads = store.uploads_in_progress(report.prefix)
    except Exception as exc:  # e.g. no s3:ListBucketMultipartUploads permission: say so, do not fail the check
        uploads = []
        report.warnings.append(f"cannot list uploads in progress: {str(exc).splitlines()[0][:200]}")
    report.uploading = [
        {"file": u.rel, "started": u.started, "age_s": round(now - u.started, 1)}
        for u in sorted(uploads, key=lambda u: u.rel)
    ]
    if report.empty_files:
        report.warnings.append(f"{len(report.empty_files)} zero-byte file(s) pending, e.g. {report.empty_files[0]}")
    if report.uploading:
        report.warnings.append(
            f"{len(report.uploading)} upload(s) still in progress, e.g. {report.uploading[0]['file']}"
        )
    if listing.late:
        report.late_files = listing.late
        report.warnings.append(
            f"{len(listing.late)} file(s) landed with keys below the listing watermark, e.g. {listing.late[0]}: "
            "found by this full listing; incremental listing is off until keys arrive in order again"
        )
    _warn_files(report)
    report.listing = listing.as_dict()
    report.listing["upload_list_requests"] = store.stats.requests  # list_multipart_uploads pages
    non_empty = [f for f in pending if f.size > 0]
    if sample and non_empty:
        newest_pending = max(non_empty, key=lambda f: (f.mtime, f.rel))
        bad = sample_parse(target, newest_pending)
        if bad:
            report.unreadable.append(bad)
    return report


def _report_files(report: LandingReport, found: Candidates) -> None:
    report.settling = found.settling
    report.quarantined = found.quarantined
    report.rewritten = found.rewritten
    report.symlinks = [link.as_dict() for link in found.listing.links]
    report.future_mtime = found.listing.future


def _warn_files(report: LandingReport) -> None:
    """Files the ingest leaves aside, as warnings (never an SLA breach: the feed itself may be fine)."""
    if report.settling:
        report.warnings.append(
            f"{len(report.settling)} file(s) written less than landing.settle ago, e.g. {report.settling[0]['file']}: "
            "ingested once they stop changing"
        )
    if report.quarantined:
        q = report.quarantined[0]
        report.warnings.append(
            f"{len(report.quarantined)} quarantined file(s) skipped until they change, e.g. {q['file']}: {q['error']}"
        )
    if report.rewritten:
        report.warnings.append(
            f"{len(report.rewritten)} ingested file(s) rewritten since (size or mtime changed), e.g. "
            f"{report.rewritten[0]['file']}: the new content is not ingested; land it under a new name"
        )
    if report.symlinks:
        link = report.symlinks[0]
        report.warnings.append(
            f"{len(report.symlinks)} symlink(s) not followed, e.g. {link['file']} ({link['reason']})"
        )
    if report.future_mtime:
        report.warnings.append(
            f"{len(report.future_mtime)} file(s) with a modification time in the future (clock skew?), e.g. "
            f"{report.future_mtime[0]['file']}: counted as landed when first seen"
        )


def sample_parse(target: ResolvedTarget, info: FileInfo, max_bytes: int = 1 << 20) -> dict[str, Any] | None:
    """Parse the first lines of a file (one ranged read of at most `max_bytes`, decompressed when gzipped)
    to catch unreadable JSON before the ingest does."""
    if info.size == 0:
        return None
    store = store_for(target.landing, target.settings.aws)
    try:
        data, total = store.read_range(info.uri, max_bytes)
        complete = len(data) >= total
        if info.rel.lower().endswith(".gz"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, max_bytes)
            complete = complete and inflater.eof
    except Exception as exc:
        return {"file": info.rel, "error": f"cannot read: {str(exc).splitlines()[0][:200]}"}
    text = data[:max_bytes].decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("["):
        if not complete:
            return None  # a JSON array larger than the sample: only the ingest can judge it whole
        try:
            json.loads(data.decode("utf-8-sig"))
            return None
        except ValueError as exc:
            return {"file": info.rel, "error": f"JSON array does not parse: {exc}"}
    lines = text.splitlines()
    if not complete and lines:
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
    return format_duration(seconds)
