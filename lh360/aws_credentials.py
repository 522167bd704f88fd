"""AWS credentials for delta-rs that refresh, when a target names a profile.

delta-rs (deltalake 1.6) signs S3 requests with object_store's own credential chain: environment keys, web
identity, container credentials and EC2 instance metadata, each refreshed before it expires; it reads no
named profile from ~/.aws. So (`lh360.storage.delta_storage_options`):

* no profile: lh360 passes no keys at all, and object_store's chain finds and refreshes them (an instance
  role, environment keys, IRSA ...);
* a profile with long-lived keys: those keys (they never expire);
* a profile with temporary credentials (SSO, assume-role, credential_process): a small credential server, in
  a child process, serves boto3's refreshed credentials of that profile through the container-credentials
  protocol that object_store speaks (AWS_CONTAINER_CREDENTIALS_FULL_URI plus a bearer token file only this
  user can read). A write that outlives one session keeps working, where a frozen copy of the session's keys
  would fail with ExpiredToken.

A child process rather than a thread: some delta-rs calls keep the GIL while they wait on S3, and a thread of
this process could then never answer. The child listens on 127.0.0.1 only, answers only the token, ignores
SIGINT/SIGTERM (the parent may still write its ledgers while it stops) and exits when the parent's pipe closes
(its exit, even a kill -9).
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lh360.errors import ConfigError, EngineError

UNKNOWN_EXPIRY = timedelta(minutes=10)  # announced when boto3 does not say (it refreshes 10-15 min ahead)
START_TIMEOUT_S = 30.0

_SERVERS: dict[str, tuple[subprocess.Popen, dict[str, str]]] = {}
_LOCK = threading.Lock()


def profile_session(profile: str | None, region: str | None = None):
    """A boto3 session for `profile` (None: the default chain); an unknown profile is a config error."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile {profile!r} is not in the AWS config files; unset aws.profile (LH360_AWS_PROFILE) to use "
            "the default credential chain (instance role, environment variables)",
            field="aws.profile",
        ) from None


def delta_credentials(profile: str) -> dict[str, str]:
    """delta-rs storage options that give it `profile`'s credentials (see the module docstring)."""
    from botocore.credentials import RefreshableCredentials

    creds = profile_session(profile).get_credentials()
    if creds is None:
        return {}
    if not isinstance(creds, RefreshableCredentials):
        frozen = creds.get_frozen_credentials()
        opts = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            opts["AWS_SESSION_TOKEN"] = frozen.token
        return opts
    return dict(_server(profile))


def _server(profile: str) -> dict[str, str]:
    with _LOCK:
        known = _SERVERS.get(profile)
        if known is not None and known[0].poll() is None:
            return known[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "lh360.aws_credentials", profile],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _first_line(proc)
        try:
            address = json.loads(line)
        except ValueError:
            proc.kill()
            err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            detail = err[-1] if err else (line or "no answer")
            raise EngineError(f"the AWS credential helper for profile {profile!r} did not start: {detail}") from None
        opts = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": address["url"],
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": address["token_file"],
        }
        _SERVERS[profile] = (proc, opts)
        return opts


def _first_line(proc: subprocess.Popen) -> str:
    out: list[str] = []
    stdout = proc.stdout
    assert stdout is not None  # started with stdout=PIPE
    reader = threading.Thread(target=lambda: out.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    return out[0].strip() if out else ""


@atexit.register
def _stop_servers() -> None:
    for proc, _ in list(_SERVERS.values()):
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the child exits at EOF
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - exiting anyway; the child also exits on its own at EOF
            proc.kill()
    _SERVERS.clear()


# ---- the child process ------------------------------------------------------------------------------------------


def credentials_document(creds: Any, now: datetime | None = None) -> dict[str, str]:
    """The container-credentials JSON for boto3 credentials (refreshed by boto3 as needed)."""
    now = now or datetime.now(UTC)
    frozen = creds.get_frozen_credentials()
    expiry = getattr(creds, "_expiry_time", None)  # botocore keeps it private; refreshed by the line above
    if not isinstance(expiry, datetime):
        expiry = now + UNKNOWN_EXPIRY
    doc = {
        "AccessKeyId": frozen.access_key,
        "SecretAccessKey": frozen.secret_key,
        "Expiration": expiry.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if frozen.token:
        doc["Token"] = frozen.token
    return doc


def serve(profile: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    creds = profile_session(profile).get_credentials()
    folder = tempfile.mkdtemp(prefix="lh360-aws-")  # mode 0700
    token = secrets.token_urlsafe(32)
    token_file = os.path.join(folder, "token")
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if not secrets.compare_digest(self.headers.get("Authorization", ""), token):
                self.send_error(403)
                return
            with lock:
                body = json.dumps(credentials_document(creds)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = {"url": f"http://127.0.0.1:{server.server_address[1]}/", "token_file": token_file}
    print(json.dumps(address), flush=True)
    try:
        sys.stdin.read()  # until the parent closes the pipe or exits
    finally:
        server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    serve(sys.argv[1])
