"""One run per table at a time, on one machine or on many.

A lake on a local folder: a kernel `flock` on `<lake>/_lh360/locks/<table>.lock`, released by the kernel
when its holder dies, even by `kill -9`.

A lake on S3: the lock lives in the lake, where every machine sees it, as the object
`<lake>/_lh360/locks/<table>.lock`. It is created with a conditional put (`If-None-Match: *`): of two
runs, S3 lets exactly one create it. It names its owner (host, pid, run id, lock id) and holds a lease,
renewed by a background heartbeat (a put conditional on the object's ETag) while the run goes on, and it
is deleted when the run ends. A holder killed with `kill -9`, or cut off, stops renewing: once its lease
has run out the lock is stale, and the next run replaces it with a put conditional on the stale object's
ETag, so of two runs breaking it only one succeeds. A lease is measured on S3's clock (the object's
Last-Modified against the Date of the response that read it), never by comparing two hosts' clocks.
`LH360_LOCK_LEASE` sets the lease in seconds (default 60); a run that dies holds its tables that long.

The lock is the polite half. Independently of it, two runs that write one table cannot both commit: their
Delta commits carry the same app transaction, and the loser gets a commit conflict, reported as LockBusy
(exit 75), having written nothing visible (lh360.engines.local.refine, lh360.engines.local.ingest).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from lh360.config import AwsSettings
from lh360.errors import LockBusy
from lh360.layout import Lake
from lh360.storage import is_s3, s3_client, split_s3

log = logging.getLogger("lh360.lock")

DEFAULT_LEASE = 60.0


def lock_dir(lake: str) -> Path:
    """The folder of a local lake's lock files."""
    return Path(Lake(lake).locks())


def lock_uri(lake: str, table: str) -> str:
    """Where a table's lock lives: the object of an S3 lake, the file of a local one."""
    return Lake(lake).lock(table)


def lease_seconds() -> float:
    try:
        return max(float(os.environ.get("LH360_LOCK_LEASE") or DEFAULT_LEASE), 2.0)
    except ValueError:
        return DEFAULT_LEASE


@contextmanager
def table_lock(
    lake: str,
    table: str,
    *,
    wait: float = 0.0,
    poll: float = 0.2,
    aws: AwsSettings | None = None,
    run_id: str | None = None,
) -> Iterator[Path | str]:
    """Hold the table's lock for the block; raise LockBusy after `wait` seconds if another run holds it."""
    if is_s3(lake):
        with _lake_lock(lake, table, wait=wait, poll=max(poll, 0.5), aws=aws or AwsSettings(), run_id=run_id) as uri:
            yield uri
        return
    folder = lock_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(path)
                    raise LockBusy(
                        f"{table}: another lh360 run holds the lock{holder}; try again later or pass --wait-lock SECONDS"
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
        return f" (pid {pid})" if pid else ""
    except OSError:
        return ""


# ---- S3: a lease object in the lake ----------------------------------------------------------------


@dataclass
class _Seen:
    """A lock object as read: its owner document, ETag, and whether its lease has run out."""

    doc: dict[str, Any]
    etag: str
    stale: bool


class _Lease:
    """The lock object of one table, as held (or tried) by this process."""

    def __init__(self, lake: str, table: str, aws: AwsSettings, run_id: str | None) -> None:
        self.table = table
        self.uri = lock_uri(lake, table)
        self.bucket, self.key = split_s3(self.uri)
        self.client = s3_client(aws)
        self.lease = lease_seconds()
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_id": run_id,
            "lock_id": uuid.uuid4().hex,
        }
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _body(self) -> bytes:
        now = datetime.now(UTC)
        doc = {
            "table": self.table,
            "owner": self.owner,
            "lease_seconds": self.lease,
            "renewed_at": now.isoformat(timespec="seconds"),
            "expires_at": datetime.fromtimestamp(now.timestamp() + self.lease, UTC).isoformat(timespec="seconds"),
        }
        return json.dumps(doc).encode()

    def _put(self, **condition: str) -> bool:
        """A conditional put of our owner document; False when the condition does not hold."""
        try:
            resp = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), ContentType="application/json", **condition
            )
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"):
                return False
            raise
        self.etag = resp["ETag"]
        return True

    def read(self) -> _Seen | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key)
            body = resp["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        lease = float(doc.get("lease_seconds") or DEFAULT_LEASE)
        server_now = _server_date(resp) or datetime.now(UTC)
        modified = resp["LastModified"]
        # both times come in whole seconds: one more second, so a live lock is never taken for a stale one
        return _Seen(doc=doc, etag=resp["ETag"], stale=modified.timestamp() + lease + 1 < server_now.timestamp())

    def try_acquire(self) -> _Seen | None:
        """Take the lock (None) or return what holds it."""
        for _ in range(2):
            if self._put(IfNoneMatch="*"):
                return None
            seen = self.read()
            if seen is None:  # released between our put and our read: once more
                continue
            if seen.stale and self._put(IfMatch=seen.etag):
                log.warning(
                    f"{self.table}: broke a stale lock (its lease of {seen.doc.get('lease_seconds')} s ran out)",
                    extra={"fields": {"table": self.table, "stale_owner": seen.doc.get("owner")}},
                )
                return None
            return seen
        return _Seen({}, "", False)

    def start_heartbeat(self) -> None:
        self._beat = threading.Thread(target=self._heartbeat, name=f"lh360-lock-{self.table}", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        interval = self.lease / 3
        while not self._stop.wait(interval):
            try:
                if not self._put(IfMatch=self.etag or ""):
                    self.lost = True
                    log.error(
                        f"{self.table}: lost the table lock (another run broke it as stale); the Delta commit "
                        "still refuses a second writer",
                        extra={"fields": {"table": self.table}},
                    )
                    return
            except Exception as exc:  # a network blip: the lease has room for two more tries
                log.warning(
                    f"{self.table}: could not renew the table lock: {exc}", extra={"fields": {"table": self.table}}
                )

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        if self.lost or self.etag is None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except Exception as exc:
            code = _code(exc)
            if code in ("PreconditionFailed", "NoSuchKey", "412", "404"):
                return  # no longer ours
            # a store (or an old botocore) without conditional deletes: delete only what is still ours
            if code in ("NotImplemented", "InvalidArgument", "501") or type(exc).__name__ == "ParamValidationError":
                seen = self.read()
                if seen is not None and seen.etag == self.etag:
                    self.client.delete_object(Bucket=self.bucket, Key=self.key)
                return
            log.warning(
                f"{self.table}: could not release the table lock: {exc}", extra={"fields": {"table": self.table}}
            )


@contextmanager
def _lake_lock(
    lake: str, table: str, *, wait: float, poll: float, aws: AwsSettings, run_id: str | None
) -> Iterator[str]:
    lease = _Lease(lake, table, aws, run_id)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        holder = lease.try_acquire()
        if holder is None:
            break
        if time.monotonic() >= deadline:
            raise LockBusy(
                f"{table}: another lh360 run holds the lock{_describe(holder)}; try again later or pass --wait-lock SECONDS"
            )
        time.sleep(poll)
    lease.start_heartbeat()
    try:
        yield lease.uri
    finally:
        lease.release()


def _describe(seen: _Seen) -> str:
    owner = seen.doc.get("owner") or {}
    parts = [f"host {owner['host']}" if owner.get("host") else "", f"pid {owner['pid']}" if owner.get("pid") else ""]
    if owner.get("run_id"):
        parts.append(f"run {owner['run_id']}")
    if seen.doc.get("expires_at"):
        parts.append(f"lease until {seen.doc['expires_at']}")
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code") or "")
    status = (
        str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "") if isinstance(response, dict) else ""
    )
    return code or status


def _server_date(resp: dict) -> datetime | None:
    """The Date header of an S3 response: S3's own clock."""
    headers = (resp.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return parsedate_to_datetime(headers["date"]) if "date" in headers else None
    except (TypeError, ValueError):
        return None
