"""Files by URI: a local folder or `s3://bucket/prefix`, for landing zones, state files and Delta options.

Landing files are identified by their path (Auto Loader's contract). Names starting with `.` or `_` are
ignored, as Spark ignores them: writers upload to a hidden name and rename. Local symlinks are not followed.
"""

from __future__ import annotations

import builtins
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from lh360.aws_credentials import delta_credentials, profile_session
from lh360.config import AwsSettings
from lh360.errors import EngineError

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True)
class FileInfo:
    uri: str  # absolute path or s3://bucket/key: what _source_file records
    rel: str  # path relative to the table's landing prefix: the file's identity in the ingest state
    size: int
    mtime: float  # epoch seconds


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://") or uri.startswith("s3a://")


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return posixpath.join(base.rstrip("/"), *[p.strip("/") for p in parts])
    return str(Path(base, *parts))


def is_hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


@dataclass
class ListStats:
    """What listings cost: S3 bills LIST per request (1,000 keys a page)."""

    requests: int = 0
    objects: int = 0  # keys returned, hidden and non-JSON ones included

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "objects": self.objects}


@dataclass(frozen=True)
class Upload:
    """An object still being written: an S3 multipart upload not yet completed (or a local hidden temp file)."""

    rel: str
    started: float  # epoch seconds


class Store(Protocol):
    stats: ListStats

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[FileInfo]: ...
    def uploads_in_progress(self, prefix: str) -> builtins.list[Upload]: ...
    def read_bytes(self, uri: str) -> bytes: ...
    def read_range(self, uri: str, length: int) -> tuple[bytes, int]: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def exists(self, uri: str) -> bool: ...
    def delete(self, uri: str) -> None: ...
    def local_copy(self, uri: str, folder: Path) -> Path: ...
    def upload(self, path: Path, uri: str) -> None: ...


@dataclass(frozen=True)
class SkippedLink:
    """A symlink the listing did not follow: whoever can write the landing zone must not be able to make
    lh360 copy any file it can read (`~/.aws/credentials`, `/etc/passwd`) into the lake."""

    rel: str
    target: str  # where it resolves to
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.rel, "target": self.target, "reason": self.reason}


def is_within(path: str, root: str) -> bool:
    """Whether `path` (already resolved) lies inside the folder `root`."""
    base = os.path.realpath(root)
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


class LocalStore:
    def __init__(self, links_inside: str | None = None) -> None:
        """`links_inside`: follow file symlinks that resolve inside this folder; every other symlink is
        skipped and recorded in `skipped_links`."""
        self.stats = ListStats()
        self.links_inside = links_inside
        self.skipped_links: list[SkippedLink] = []

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[FileInfo]:
        """Every visible regular file under `prefix`. `start_after` is ignored: a folder walk has no key order to
        resume from, and costs nothing per request. Symlinks are not followed (see `links_inside`)."""
        root = Path(prefix)
        if not root.is_dir():
            return
        # strings, not Path objects: a landing zone holds tens of thousands of files (Path cost 30 µs each)
        stack = [(str(root), "")]
        while stack:
            folder, rel_folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith((".", "_")):
                    continue
                rel = rel_folder + entry.name
                if entry.is_symlink():
                    info = self._link(entry, rel)
                    if info is not None:
                        self.stats.objects += 1
                        yield info
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    self.stats.objects += 1
                    st = entry.stat(follow_symlinks=False)
                    yield FileInfo(uri=entry.path, rel=rel, size=st.st_size, mtime=st.st_mtime)

    def _link(self, entry: os.DirEntry, rel: str) -> FileInfo | None:
        """A symlink: its target's FileInfo when allowed (a file inside `links_inside`), else None, recorded."""
        target = os.path.realpath(entry.path)
        if self.links_inside is None:
            reason = "symlinks are not followed (landing.symlinks: skip)"
        elif not is_within(target, self.links_inside):
            reason = "resolves outside the landing zone"
        elif not os.path.isfile(target):
            reason = "not a file (directory symlinks are never followed)"
        else:
            st = os.stat(target)
            return FileInfo(uri=entry.path, rel=rel, size=st.st_size, mtime=st.st_mtime)
        self.skipped_links.append(SkippedLink(rel, target, reason))
        return None

    def uploads_in_progress(self, prefix: str) -> builtins.list[Upload]:
        """Hidden temporary files (`.name.tmp`): writers upload to a hidden name, then rename."""
        root = Path(prefix)
        if not root.is_dir():
            return []
        out = []
        for path in root.rglob(".*"):
            if path.is_file() and path.name.endswith((".tmp", ".part")):
                try:
                    out.append(Upload(rel=path.relative_to(root).as_posix(), started=path.stat().st_mtime))
                except FileNotFoundError:
                    continue
        return out

    def read_bytes(self, uri: str) -> bytes:
        return Path(uri).read_bytes()

    def read_range(self, uri: str, length: int) -> tuple[bytes, int]:
        """The first `length` bytes and the file's full size."""
        with open(uri, "rb") as fh:
            return fh.read(length), os.fstat(fh.fileno()).st_size

    def write_bytes(self, uri: str, data: bytes) -> None:
        # write-then-rename: a reader never sees half a file, a crash leaves at most a hidden temp file
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, uri: str) -> bool:
        return Path(uri).exists()

    def delete(self, uri: str) -> None:
        Path(uri).unlink(missing_ok=True)

    def local_copy(self, uri: str, folder: Path) -> Path:
        return Path(uri)

    def upload(self, path: Path, uri: str) -> None:
        """Move a finished local file to `uri` (a rename on the same filesystem)."""
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, uri)


def split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


class S3Store:
    def __init__(self, aws: AwsSettings) -> None:
        self.aws = aws
        self._client = None
        self.stats = ListStats()

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client(self.aws)
        return self._client

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[FileInfo]:
        bucket, key_prefix = split_s3(prefix)
        key_prefix = key_prefix.rstrip("/") + "/" if key_prefix else ""
        kwargs = {"Bucket": bucket, "Prefix": key_prefix}
        if start_after:
            kwargs["StartAfter"] = key_prefix + start_after
        # list_objects_v2 returns keys in UTF-8 binary order, 1,000 a page; StartAfter skips every key <= it
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            self.stats.requests += 1
            self.stats.objects += page.get("KeyCount", len(page.get("Contents", [])))
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(key_prefix) :]
                if not rel or rel.endswith("/") or is_hidden(rel):
                    continue
                yield FileInfo(
                    uri=f"s3://{bucket}/{obj['Key']}", rel=rel, size=obj["Size"], mtime=obj["LastModified"].timestamp()
                )

    def uploads_in_progress(self, prefix: str) -> builtins.list[Upload]:
        """Multipart uploads started under `prefix` and not yet completed or aborted: objects still being
        written (invisible to list_objects_v2 until completed)."""
        bucket, key_prefix = split_s3(prefix)
        key_prefix = key_prefix.rstrip("/") + "/" if key_prefix else ""
        out = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key_prefix):
            self.stats.requests += 1
            for up in page.get("Uploads", []):
                out.append(Upload(rel=up["Key"][len(key_prefix) :], started=up["Initiated"].timestamp()))
        return out

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_range(self, uri: str, length: int) -> tuple[bytes, int]:
        """The first `length` bytes (one ranged GET, not the whole object) and the object's full size."""
        bucket, key = split_s3(uri)
        resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max(length, 1) - 1}")
        data = resp["Body"].read()
        total = resp.get("ContentRange", "").rpartition("/")[2]
        return data, int(total) if total.isdigit() else len(data)

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = split_s3(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def local_copy(self, uri: str, folder: Path) -> Path:
        bucket, key = split_s3(uri)
        dest = folder / key.replace("/", "__")
        self.client.download_file(bucket, key, str(dest))
        return dest

    def upload(self, path: Path, uri: str) -> None:
        """Upload a finished local file (multipart when large, by boto3's transfer manager)."""
        bucket, key = split_s3(uri)
        self.client.upload_file(str(path), bucket, key)


def s3_client(aws: AwsSettings):
    return aws_client("s3", aws, max_pool_connections=32)


def endpoint_for(service: AwsService, aws: AwsSettings) -> str | None:
    """The target's endpoint for `service`: `aws.endpoint_url` for S3 (an S3-compatible store such as MinIO, which
    serves neither Athena nor Glue), `aws.endpoints.<service>` for the others; else botocore's own
    AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL, else None (the real AWS endpoint)."""
    configured = aws.endpoint_url if service == "s3" else aws.endpoints.get(service)
    env = f"AWS_ENDPOINT_URL_{service.upper()}"
    return configured or os.environ.get(env) or os.environ.get("AWS_ENDPOINT_URL") or None


AwsService = Literal["s3", "athena", "glue", "sts"]
_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


def aws_client(service: AwsService, aws: AwsSettings, *, max_attempts: int = 5, **config: object):
    """A boto3 client with the target's region/profile (else the default credential chain; an unknown profile is
    a ConfigError) and botocore `standard` retries set explicitly: `max_attempts` calls in all, the first
    included (botocore's own `max_attempts` key counts the retries only, so lh360 sets `total_max_attempts`);
    HTTP 500/502/503/504, dropped connections and throttling are retried with backoff. Clients are cached per
    settings: building one loads botocore's JSON models (~0.3-0.7 s), and boto3 clients are thread-safe."""
    endpoint = endpoint_for(service, aws)
    key = (service, aws.profile, aws.region, endpoint, max_attempts, tuple(sorted(config.items())), os.getpid())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            from botocore.config import Config

            session = profile_session(aws.profile, aws.region)
            cfg = Config(retries={"mode": "standard", "total_max_attempts": max_attempts}, **config)
            client = _CLIENTS[key] = session.client(service, endpoint_url=endpoint, config=cfg)
        return client


def store_for(uri: str, aws: AwsSettings | None = None, *, links_inside: str | None = None) -> Store:
    """`links_inside`: for a local folder, follow file symlinks resolving inside this folder (LocalStore)."""
    return S3Store(aws or AwsSettings()) if is_s3(uri) else LocalStore(links_inside)


def delta_storage_options(uri: str, aws: AwsSettings | None = None) -> dict[str, str] | None:
    """Options for delta-rs: region and endpoint for S3; None for local folders.

    Credentials: without a profile, none: delta-rs (object_store) uses its own chain (environment keys, web
    identity, container credentials, the EC2 instance role) and refreshes them. A named profile, which
    object_store cannot read, is handed over by `lh360.aws_credentials` in a form that refreshes too."""
    if not is_s3(uri):
        return None
    aws = aws or AwsSettings()
    opts: dict[str, str] = {}
    endpoint = endpoint_for("s3", aws)
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    region = aws.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        opts["AWS_REGION"] = region
    if aws.profile:
        opts.update(delta_credentials(aws.profile))
    return opts


def to_delta_uri(uri: str) -> str:
    return uri.replace("s3a://", "s3://")


def delete_noncurrent(uris: list[str], aws: AwsSettings | None, keep_latest: bool = False) -> int:
    """On a versioned S3 bucket, delete every stored version of each object in `uris` (all of them, or all
    but the current one with `keep_latest`), delete markers included. Nothing to do on a local folder or an
    unversioned bucket (its only version is the current one, already deleted or kept)."""
    s3_uris = [u for u in uris if is_s3(u)]
    if not s3_uris:
        return 0
    client = s3_client(aws or AwsSettings())
    n = 0
    for uri in s3_uris:
        bucket, key = split_s3(uri)
        try:
            pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if v["Key"] != key or v.get("VersionId") in (None, "null") or (keep_latest and v.get("IsLatest")):
                        continue
                    client.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
                    n += 1
        except Exception as exc:
            if "AccessDenied" in f"{type(exc).__name__} {exc}":
                raise EngineError(
                    f"cannot delete the old versions of {uri} (s3:ListBucketVersions, s3:DeleteObjectVersion): "
                    f"{str(exc).splitlines()[0][:200]}"
                ) from None
            raise
    return n
