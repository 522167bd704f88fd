"""Every HTTP request the moto server receives, recorded at the server (WSGI) side.

delta-rs talks to S3 from Rust (object_store), boto3 and pyathena from Python, the Athena double from the
server thread itself: only the server sees all of them. `install(server)` wraps the moto server's WSGI app
once; the wrapper costs one attribute check per request while nothing records, so other tests are not
affected. `RECORDER.recording(phase)` collects the requests sent while the block runs, tagged with the phase
(the principal the test attributes them to).

What is kept per request is what IAM authorization depends on: method, path, query, the headers that change
the action or add condition keys (`x-amz-target`, `x-amz-copy-source`, `if-none-match`, `if-match`, `range`),
the SigV4 credential scope (access key, region, service), a JSON body (Athena/Glue APIs), the key list of an
S3 DeleteObjects body, the response status and, for Athena's StartQueryExecution, the query id answered (to
tie later GetQueryExecution calls to the query's workgroup).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_KEEP_HEADERS = ("x-amz-target", "x-amz-copy-source", "if-none-match", "if-match", "range", "content-type")
_BODY_LIMIT = 1 << 20  # JSON API bodies are small; S3 object bodies are never kept


@dataclass
class HttpRequest:
    phase: str
    method: str
    path: str  # URL-decoded, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names, only those in _KEEP_HEADERS
    access_key: str | None
    region: str | None
    service: str | None  # the SigV4 scope's service: s3, glue, athena, sts, ...
    body: Any = None  # parsed JSON (JSON protocol) or form (query protocol) body, or a DeleteObjects' keys
    status: int | None = None
    answer: Any = None  # parsed JSON answer of StartQueryExecution
    thread: str = ""

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" if v else k for k, v in sorted(self.query.items()))
        target = self.headers.get("x-amz-target")
        return f"{self.method} {self.path}{'?' + query if query else ''}{' ' + target if target else ''}"


@dataclass
class Recorder:
    app: Any = None
    requests: list[HttpRequest] = field(default_factory=list)
    phase: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def recording(self, phase: str) -> Iterator[list[HttpRequest]]:
        """Record the requests received while the block runs; yields the list they are appended to."""
        with self.lock:
            self.phase, start = phase, len(self.requests)
        out: list[HttpRequest] = []
        try:
            yield out
        finally:
            with self.lock:
                self.phase = None
                out.extend(self.requests[start:])
                del self.requests[start:]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        phase = self.phase
        if phase is None or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        req = _request(phase, environ)
        with self.lock:
            self.requests.append(req)

        def recording_start_response(status: str, headers: list, exc_info: Any = None):
            req.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        chunks = self.app(environ, recording_start_response)
        if req.headers.get("x-amz-target", "").endswith(".StartQueryExecution"):
            body = b"".join(chunks)
            with contextlib.suppress(ValueError):
                req.answer = json.loads(body or b"null")
            return [body]
        return chunks


def _request(phase: str, environ: dict[str, Any]) -> HttpRequest:
    headers = {
        name: environ[key] for name in _KEEP_HEADERS if (key := "HTTP_" + name.upper().replace("-", "_")) in environ
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    path = environ.get("PATH_INFO", "")
    path = unquote(path) if isinstance(path, str) else path.decode()
    body: Any = None
    form = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if "x-amz-target" in headers:
        with contextlib.suppress(ValueError):
            body = json.loads(_read_body(environ) or b"{}")
    elif form and environ["REQUEST_METHOD"] == "POST":  # query protocol (STS): Action=...&Version=...
        body = dict(parse_qsl(_read_body(environ).decode("utf-8", "replace")))
    elif environ["REQUEST_METHOD"] == "POST" and "delete" in query:  # DeleteObjects: <Key>k</Key>...
        body = [unquote(k) for k in re.findall(r"<Key>(.*?)</Key>", _read_body(environ).decode("utf-8", "replace"))]
    return HttpRequest(
        phase=phase,
        method=environ["REQUEST_METHOD"],
        path=path,
        query=query,
        headers=headers,
        access_key=scope.group(1) if scope else None,
        region=scope.group(2) if scope else None,
        service=scope.group(3) if scope else None,
        body=body,
        thread=threading.current_thread().name,
    )


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back for moto (wsgi.input is a one-shot stream)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    raw = stream.read(min(length, _BODY_LIMIT)) if length else stream.read()
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    return raw


RECORDER = Recorder()


def install(server: Any) -> Recorder:
    """Wrap a started ThreadedMotoServer's WSGI app with RECORDER (its request handler reads
    `server.app` per request, so wrapping after start is enough)."""
    wsgi = server._server
    if not isinstance(wsgi.app, Recorder):
        RECORDER.app = wsgi.app
        wsgi.app = RECORDER
    return RECORDER
