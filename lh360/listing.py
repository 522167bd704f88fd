"""Listing a table's landing prefix so that a run costs what is new, not what is there.

S3 lists keys in UTF-8 binary order, 1,000 a request, and `list_objects_v2(StartAfter=K)` skips every key
<= K. When landing keys grow with time (date-partitioned names such as `2025/06/01/clientes_000123.json`,
the common case), a listing can start after a *watermark* W instead of at the beginning of the prefix.

The watermark (stored in `<lake>/_lh360/state/<table>/listing.json`):

    W = the greatest listed key that is already ingested and sorts before every pending key, every key
        modified within the last `aws.listing_lag` (default 30 minutes), and every multipart upload still
        in progress

Invariant: every key <= W that existed when W was computed is in bronze. By induction: keys <= W_old were
covered before; a listing with StartAfter=W_old returns every key in (W_old, ...]; all of them that are
<= W_new sort before the first pending key, so they are ingested. The ingested set only grows (exactly-once
ingest), so the invariant stays true afterwards. A listing after W therefore finds every pending file that
existed when W was set, plus every file uploaded since *with a key greater than W*.

Uploads still under way are why W keeps its distance. An object is listable only once its PUT (or its
CompleteMultipartUpload) has finished, so parallel producers (`aws s3 cp --recursive`) can make K2 visible
before K1 < K2: were W to reach K2 at once, K1 would sort below it when it lands. W therefore never passes
a key younger than the lag — uploads running alongside it have finished by then — nor an upload in progress
(S3 dates a multipart object by its initiation, so its age says nothing: ListMultipartUploads does; without
that answer W does not move).

What it can still miss: a file uploaded later with a key that sorts *before* W (a late or back-filled
upload, a producer whose keys are not time-ordered). Auto Loader answers the same way we do: an occasional
full listing ("backfill"). lh360 lists the whole prefix

  * on the first listing of a table, on `--full-listing` or LH360_FULL_LISTING=1;
  * when the last full listing is older than the target's `aws.full_listing_interval` (default 24h);
  * when the state cannot be trusted: unreadable, bronze reset (its committed batch went backwards), or the
    watermark is not an ingested file;
  * while the table's keys are not in arrival order: each full listing checks that no file with a greater
    key was uploaded more than ORDER_SKEW before a file with a smaller one (within ORDER_WINDOW), and that
    no pending file sorts below the previous watermark (a "late" file, which is also reported).

A missed file is therefore delayed until the next full listing, never lost, and never ingested twice:
exactly-once rests on the bronze ingest state and the Delta commit, not on the listing, which only
proposes candidates (pending = listed - ingested). Local folders are always walked in full (no request cost,
no key order to resume from).

The state is advisory and written best-effort by whoever lists (ingest, `lh360 landing`, plan): any state
written satisfies the invariant for the ingested set of its time, which only grows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from lh360.config import ResolvedTarget
from lh360.durations import format_duration
from lh360.engines.base import IngestState
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import JSON_SUFFIXES, FileInfo, ListStats, SkippedLink, is_s3, join, store_for

log = logging.getLogger("lh360.listing")

STATE_VERSION = 1
FULL_ENV = "LH360_FULL_LISTING"
RETIRED_INTERVAL_ENV = "LH360_FULL_LISTING_INTERVAL"  # now the target's aws.full_listing_interval
ORDER_SKEW_S = 300.0  # uploads finishing out of key order within this long of each other are normal
ORDER_WINDOW_S = 7 * 86400  # arrival order is judged on the files of the last week
RECENT_CAP = 20_000
FUTURE_TOLERANCE_S = 2.0  # an mtime this far ahead of our clock is clock noise, not a future date


@dataclass
class ListingState:
    start_after: str | None = None  # the watermark, relative to the table's prefix
    bronze_batch: int = -1  # the committed ingest batch when the watermark was computed
    last_full_at: float | None = None
    ordered: bool | None = None  # keys in arrival order, as the last full listing judged
    newest: dict[str, Any] | None = None  # {rel, mtime, size}: the newest file seen
    recent: dict[str, float] = field(default_factory=dict)  # rel -> mtime, files within the SLA window
    # rel -> [mtime, first seen]: files whose mtime was in the future when first listed (see effective_mtime)
    future_seen: dict[str, list[float]] = field(default_factory=dict)
    version: int = STATE_VERSION

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ListingState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"listing state version {doc.get('version')!r}")
        return cls(
            start_after=doc.get("start_after"),
            bronze_batch=int(doc.get("bronze_batch", -1)),
            last_full_at=doc.get("last_full_at"),
            ordered=doc.get("ordered"),
            newest=doc.get("newest"),
            recent={str(k): float(v) for k, v in (doc.get("recent") or {}).items()},
            future_seen={str(k): [float(v[0]), float(v[1])] for k, v in (doc.get("future_seen") or {}).items()},
        )


@dataclass
class Listing:
    files: list[FileInfo]  # the JSON files listed: all of them, or those after the watermark
    mode: str  # full | incremental
    reason: str
    start_after: str | None  # where this listing started (None: the beginning of the prefix)
    stats: ListStats
    state: ListingState  # the state after this listing
    late: list[str] = field(default_factory=list)  # pending files below the previous watermark
    seconds: float = 0.0
    links: list[SkippedLink] = field(default_factory=list)  # symlinks not followed (local landing zones)
    future: list[dict[str, Any]] = field(default_factory=list)  # files with an mtime in the future

    def effective_mtime(self, f: FileInfo) -> float:
        """The file's mtime, or for an mtime in the future, when lh360 first saw the file (see `future_mtimes`)."""
        seen = self.state.future_seen.get(f.rel)
        return seen[1] if seen is not None and seen[0] == f.mtime else f.mtime

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "reason": self.reason,
            "start_after": self.start_after,
            "watermark": self.state.start_after,
            **self.stats.as_dict(),
            "listed_files": len(self.files),
            "late_files": self.late,
            "keys_in_arrival_order": self.state.ordered,
            "last_full_listing_at": self.state.last_full_at,
            "seconds": round(self.seconds, 3),
        }


def state_uri(target: ResolvedTarget, spec: TableSpec) -> str:
    return Lake(target.lake).state(spec.table, "listing.json")


def full_interval_s(target: ResolvedTarget) -> float:
    """How often a table's S3 landing zone is listed in full: the target's `aws.full_listing_interval`."""
    if os.environ.get(RETIRED_INTERVAL_ENV):
        log.warning(
            "%s is no longer read: set aws.full_listing_interval in the target (lh360.yaml)", RETIRED_INTERVAL_ENV
        )
    return target.settings.aws.full_listing_interval.total_seconds()


def load_state(target: ResolvedTarget, spec: TableSpec) -> ListingState | None:
    store = store_for(target.lake, target.settings.aws)
    try:
        return ListingState.from_dict(json.loads(store.read_bytes(state_uri(target, spec))))
    except FileNotFoundError:
        return None
    except Exception as exc:  # NoSuchKey, a torn or foreign file: list in full and write a fresh one
        if "NoSuchKey" not in f"{type(exc).__name__} {exc}" and "404" not in str(exc):
            log.warning("listing state of %s unreadable (%s); listing in full", spec.table, exc)
        return None


def save_state(target: ResolvedTarget, spec: TableSpec, state: ListingState) -> None:
    store = store_for(target.lake, target.settings.aws)
    try:
        store.write_bytes(state_uri(target, spec), json.dumps(asdict(state), sort_keys=True).encode())
    except Exception as exc:  # advisory: the next listing is full, never wrong
        log.warning("could not save the listing state of %s: %s", spec.table, exc)


def _is_landing_file(f: FileInfo) -> bool:
    return f.rel.lower().endswith(JSON_SUFFIXES)


def decide(
    state: ListingState | None,
    done: set[str] | None,
    committed: int,
    *,
    s3: bool,
    full: bool,
    now: float,
    interval_s: float,
) -> tuple[str, str, str | None]:
    """(mode, reason, start_after) for the next listing."""
    if not s3:
        return "full", "local folder", None
    if done is None:
        return "full", "no ingest state given", None
    if full:
        return "full", "full listing requested", None
    if state is None:
        return "full", "first listing of this table", None
    if state.bronze_batch > committed:
        return "full", "bronze was reset since the last listing", None
    if state.start_after is not None and state.start_after not in done:
        return "full", "the watermark is not an ingested file", None
    if state.ordered is False:
        return "full", "keys are not in arrival order", None
    if state.last_full_at is None or now - state.last_full_at >= interval_s:
        return "full", f"periodic full listing (every {_dur(interval_s)})", None
    if state.start_after is None:
        return "incremental", "nothing ingested yet below the first pending key", None
    return "incremental", "keys in arrival order", state.start_after


def list_table(
    target: ResolvedTarget,
    spec: TableSpec,
    done: set[str] | None = None,
    committed: int = -1,
    *,
    full: bool | None = None,
    now: float | None = None,
    keep_s: float | None = None,
    save: bool = True,
) -> Listing:
    """List the table's landing files: all of them, or only those after the watermark when that is safe.

    `done`/`committed` are the ingest state (ingested relative paths, last committed batch); without them the
    listing is a plain full one and no state is read or written.
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    if full is None:
        full = os.environ.get(FULL_ENV, "").lower() in ("1", "true", "yes")
    s3 = is_s3(target.landing)
    # a local folder keeps a state too, for the first-seen times of files dated in the future only
    loaded = load_state(target, spec) if done is not None else None
    prev = loaded if s3 else None
    mode, reason, start_after = decide(
        prev, done, committed, s3=s3, full=full, now=now, interval_s=full_interval_s(target) if s3 else 0.0
    )
    links_inside = target.landing if spec.landing.symlinks == "inside" else None
    store = store_for(target.landing, target.settings.aws, links_inside=links_inside)
    prefix = join(target.landing, spec.source.path)
    files = [f for f in store.list(prefix, start_after=start_after) if _is_landing_file(f)]
    listing = Listing(
        files=files, mode=mode, reason=reason, start_after=start_after, stats=store.stats, state=prev or ListingState()
    )
    listing.links = list(getattr(store, "skipped_links", []))
    if done is None:
        listing.seconds = time.monotonic() - started
        return listing

    pending = sorted(f.rel for f in files if f.rel not in done)
    new = ListingState(bronze_batch=committed)
    # the watermark: the greatest listed ingested key below every pending key, every key younger than the
    # lag, and every upload in progress (see the module docstring)
    lag = target.settings.aws.listing_lag.total_seconds()
    young = [f.rel for f in files if now - f.mtime < lag]
    first_pending = min([*pending[:1], *young], default=None)
    below = [f.rel for f in files if f.rel in done and (first_pending is None or f.rel < first_pending)]
    candidate = _watermark(below, store, prefix, prev) if s3 else max(below, default=None)
    if candidate is not None:
        new.start_after = candidate
    elif mode == "incremental":
        new.start_after = start_after  # nothing new below the first pending key: stay where we were
    if mode == "full":
        new.last_full_at = now
        trusted = prev is not None and prev.bronze_batch <= committed and prev.start_after in done
        if trusted and prev is not None and prev.start_after is not None:
            # pending keys that an incremental listing would have skipped: late uploads
            listing.late = [rel for rel in pending if rel <= prev.start_after]
        new.ordered = not listing.late and arrival_ordered(files, now)
        if listing.late:
            log.warning(
                "%s: %d landing file(s) arrived with keys below the listing watermark %s (e.g. %s); "
                "incremental listing is off until a full listing finds keys in arrival order",
                spec.table,
                len(listing.late),
                prev.start_after if prev else None,
                listing.late[0],
            )
    else:
        assert prev is not None
        new.last_full_at = prev.last_full_at
        new.ordered = prev.ordered
    new.future_seen, listing.future = future_mtimes(files, loaded, now)
    if mode == "incremental" and loaded is not None:  # files below the watermark were not listed: keep theirs
        listed = {f.rel for f in files}
        new.future_seen = {**{k: v for k, v in loaded.future_seen.items() if k not in listed}, **new.future_seen}
    listing.state = new  # effective_mtime reads future_seen from here
    mtime = listing.effective_mtime
    # the newest file and the recent ones (for the SLA): carried over what an incremental listing skips
    newest = max(files, key=lambda f: (mtime(f), f.rel), default=None)
    new.newest = {"rel": newest.rel, "mtime": mtime(newest), "size": newest.size} if newest else None
    if (
        mode == "incremental"
        and prev
        and prev.newest
        and (
            new.newest is None or (prev.newest["mtime"], prev.newest["rel"]) > (new.newest["mtime"], new.newest["rel"])
        )
    ):
        new.newest = prev.newest
    keep = keep_s if keep_s is not None else (spec.landing.max_age.total_seconds() if spec.landing.max_age else 0)
    recent = dict(prev.recent) if (mode == "incremental" and prev) else {}
    recent.update({f.rel: mtime(f) for f in files})
    recent = {rel: m for rel, m in recent.items() if now - m <= keep}
    if len(recent) > RECENT_CAP:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1])[-RECENT_CAP:])
    new.recent = recent
    if save and (s3 or new.future_seen or (loaded is not None and loaded.future_seen)):
        save_state(target, spec, new)
    listing.seconds = time.monotonic() - started
    return listing


def _watermark(below: list[str], store: Any, prefix: str, prev: ListingState | None) -> str | None:
    """The greatest of the `below` keys that also sorts below every multipart upload in progress (that object
    is not listable yet, and S3 will date it by its initiation). When the uploads cannot be listed (no
    s3:ListBucketMultipartUploads), the watermark does not move past where it was. The uploads are asked
    for only when the watermark would move forward."""
    candidate = max(below, default=None)
    before = prev.start_after if prev is not None else None
    if candidate is None or (before is not None and candidate <= before):
        return candidate
    try:
        uploads = store.uploads_in_progress(prefix)
    except Exception as exc:  # advisory: holding the watermark only costs a longer listing
        log.warning("cannot list multipart uploads under %s (%s); the listing watermark stays put", prefix, exc)
        return before
    smallest = min((u.rel for u in uploads), default=None)
    if smallest is None:
        return candidate
    log.info("listing watermark held below %s: its multipart upload is still in progress", smallest)
    return max((k for k in below if k < smallest), default=None)


def future_mtimes(
    files: list[FileInfo], prev: ListingState | None, now: float
) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """(state entries, report entries) for files whose mtime lies in the future.

    A future mtime (a producer's skewed clock, `touch -d 2035`) would make a file look as if it just landed
    until that date, hiding a dead feed from the SLA and keeping the file from settling. Such a file counts
    as landed when lh360 first saw it with that mtime: "clamped to now" once, remembered in the listing state,
    so it ages from then on like any other file. A file whose mtime changes is judged afresh."""
    old = prev.future_seen if prev is not None else {}
    seen: dict[str, list[float]] = {}
    report = []
    for f in files:
        if f.mtime <= now + FUTURE_TOLERANCE_S:
            continue
        first = old.get(f.rel)
        first_seen = first[1] if first is not None and first[0] == f.mtime else now
        seen[f.rel] = [f.mtime, first_seen]
        report.append({"file": f.rel, "mtime": f.mtime, "ahead_s": round(f.mtime - now, 1), "counted_as": first_seen})
    return seen, sorted(report, key=lambda d: d["file"])


def split_settled(
    listing: Listing, files: list[FileInfo], settle_s: float, now: float
) -> tuple[list[FileInfo], list[dict[str, Any]]]:
    """(settled files, files still settling) of a local or mounted landing zone.

    A producer may still be writing a file that lh360 lists (a cron box reading a shared folder cannot count
    on the upload-then-rename convention). A file is taken once unchanged for `settle_s`: every write moves
    its mtime to the writer's clock, so an mtime at least `settle_s` old (by effective_mtime: a future mtime
    counts from when it was first seen) means no write for that long. The ingest re-checks size and mtime
    right before reading and then reads exactly that many bytes, and a file must also end completely (a
    final newline, or a whole JSON value) before it is taken: see the ingest module. S3 objects appear
    whole, so an S3 landing zone is never made to wait."""
    if settle_s <= 0 or is_s3(files[0].uri if files else ""):
        return list(files), []
    ready, waiting = [], []
    for f in files:
        age = now - listing.effective_mtime(f)
        if age >= settle_s:
            ready.append(f)
        else:
            waiting.append({"file": f.rel, "age_s": round(max(age, 0.0), 1), "settle_s": settle_s})
    return ready, waiting


def arrival_ordered(
    files: list[FileInfo], now: float, skew_s: float = ORDER_SKEW_S, window_s: float = ORDER_WINDOW_S
) -> bool:
    """True when, among the files of the last `window_s`, a greater key never landed more than `skew_s`
    before a smaller one: new files get keys after the old ones, so a watermark listing finds them."""
    recent = sorted((f for f in files if now - f.mtime <= window_s), key=lambda f: f.mtime)
    if len(recent) < 2:
        return True
    # walk by arrival; a file is out of order if a file that landed > skew before it has a greater key
    waiting: deque[FileInfo] = deque()
    max_key_before: str | None = None
    for f in recent:
        waiting.append(f)
        while waiting and waiting[0].mtime < f.mtime - skew_s:
            old = waiting.popleft()
            if max_key_before is None or old.rel > max_key_before:
                max_key_before = old.rel
        if max_key_before is not None and f.rel < max_key_before:
            return False
    return True


def _dur(seconds: float) -> str:
    return format_duration(seconds)


# ---- what the next ingest takes --------------------------------------------------------------------


@dataclass
class Candidates:
    """The landing files of a table as the next ingest sees them."""

    state: IngestState
    listing: Listing
    ready: list[FileInfo]  # pending, settled, not quarantined: what an ingest takes, oldest first
    settling: list[dict[str, Any]]  # pending but written too recently (local landing zones)
    quarantined: list[dict[str, Any]]  # quarantined and unchanged since: skipped
    retried: list[str]  # quarantined before, changed since: tried again
    rewritten: list[dict[str, Any]]  # ingested before, size or mtime changed since: reported, not re-ingested
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)


def landing_candidates(
    target: ResolvedTarget,
    spec: TableSpec,
    state: IngestState,
    *,
    now: float | None = None,
    full_listing: bool | None = None,
) -> Candidates:
    """List the table's landing zone against what its engine has ingested (`state`, Engine.ingested): what
    is ready, settling, quarantined or rewritten."""
    now = time.time() if now is None else now
    listing = list_table(target, spec, state.files, state.committed, now=now, full=full_listing)
    quarantine = state.quarantined
    pending, quarantined, retried = [], [], []
    for f in listing.files:
        if f.rel in state.files:
            continue
        entry = quarantine.get(f.rel)
        if entry is not None and still_quarantined(entry, f):
            quarantined.append({"file": f.rel, "error": entry.get("error"), "since": entry.get("at")})
            continue
        if entry is not None:
            retried.append(f.rel)
        pending.append(f)
    ready, settling = split_settled(listing, pending, spec.landing.settle.total_seconds(), now)
    ready.sort(key=lambda f: (f.mtime, f.rel))
    return Candidates(
        state, listing, ready, settling, quarantined, retried, rewritten_files(listing.files, state), quarantine
    )


def rewritten_files(listed: list[FileInfo], state: IngestState) -> list[dict[str, Any]]:
    """Ingested files whose size or mtime changed since: files are identified by their path, and a rewrite
    under an ingested name is not ingested again (as Auto Loader with cloudFiles.allowOverwrites=false),
    but it is reported, never silently ignored."""
    out = []
    for f in listed:
        before = state.meta.get(f.rel)
        if before is not None and (before[0] != f.size or before[1] != f.mtime):
            out.append(
                {
                    "file": f.rel,
                    "ingested_size": before[0],
                    "size": f.size,
                    "ingested_mtime": before[1],
                    "mtime": f.mtime,
                }
            )
    return out


def still_quarantined(entry: dict[str, Any] | None, f: FileInfo) -> bool:
    """Whether the file is as it was when quarantined (a changed file is tried again)."""
    return entry is not None and entry.get("size") == f.size and entry.get("mtime") == f.mtime
