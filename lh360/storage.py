"""Files by URI: a local folder or `s3://bucket/prefix`, for landing zones, state files and Delta options.

Landing files are immutable and identified by their path (Auto Loader's contract). Names starting with
`.` or `_` are ignored, as Spark ignores them: writers upload to a hidden name and rename.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lh360.config import AwsSettings

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


class Store(Protocol):
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[FileInfo]: ...
    def read_bytes(self, uri: str) -> bytes: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def exists(self, uri: str) -> bool: ...
    def delete(self, uri: str) -> None: ...
    def local_copy(self, uri: str, folder: Path) -> Path: ...


class LocalStore:
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[FileInfo]:
        root = Path(prefix)
        if not root.is_dir():
            return
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith((".", "_")):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    rel = Path(entry.path).relative_to(root).as_posix()
                    yield FileInfo(uri=entry.path, rel=rel, size=st.st_size, mtime=st.st_mtime)

    def read_bytes(self, uri: str) -> bytes:
        return Path(uri).read_bytes()

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


def split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


class S3Store:
    def __init__(self, aws: AwsSettings) -> None:
        self.aws = aws
        self._client = None

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
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(key_prefix) :]
                if not rel or rel.endswith("/") or is_hidden(rel):
                    continue
                yield FileInfo(
                    uri=f"s3://{bucket}/{obj['Key']}", rel=rel, size=obj["Size"], mtime=obj["LastModified"].timestamp()
                )

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

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


def s3_client(aws: AwsSettings):
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=aws.profile, region_name=aws.region)
    endpoint = aws.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # one retry layer, set explicitly (botocore's legacy default differs between versions)
    cfg = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    return session.client("s3", endpoint_url=endpoint, config=cfg)


def store_for(uri: str, aws: AwsSettings | None = None) -> Store:
    return S3Store(aws or AwsSettings()) if is_s3(uri) else LocalStore()


def delta_storage_options(uri: str, aws: AwsSettings | None = None) -> dict[str, str] | None:
    """Options for delta-rs: region, endpoint and profile credentials for S3; None for local folders."""
    if not is_s3(uri):
        return None
    aws = aws or AwsSettings()
    opts: dict[str, str] = {}
    endpoint = aws.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    if aws.region:
        opts["AWS_REGION"] = aws.region
    if aws.profile:
        # delta-rs reads the default chain itself; resolve a named profile through boto3 to hand it over
        import boto3

        creds = boto3.Session(profile_name=aws.profile).get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            opts["AWS_ACCESS_KEY_ID"], opts["AWS_SECRET_ACCESS_KEY"] = frozen.access_key, frozen.secret_key
            if frozen.token:
                opts["AWS_SESSION_TOKEN"] = frozen.token
    return opts


def to_delta_uri(uri: str) -> str:
    return uri.replace("s3a://", "s3://")
