"""Injected AWS faults, at the moto server: the next N requests of an API action answer with an error.

Like the recorder (recorder.py), this wraps the moto server's WSGI app, so it sees every request — boto3,
pyathena and delta-rs alike, from the test process or a CLI subprocess. `FAULTS.inject("athena:GetQueryExecution",
times=2)` makes the next two GetQueryExecution calls fail with HTTP 500 InternalServerException, as AWS
answers a transient fault; `FAULTS.injected` lists what was answered with a fault. Idle (one list check per
request) while nothing is injected.

Actions are named `service:Action`: the JSON protocols (Athena, Glue) by their X-Amz-Target, S3 by its
REST form (ListObjectsV2, ListMultipartUploads, GetObject, HeadObject, PutObject, DeleteObject).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

S3_ERRORS = {500: "InternalError", 503: "SlowDown"}


@dataclass
class Fault:
    action: str
    times: int
    status: int = 500
    code: str | None = None  # default: InternalServerException (JSON APIs), InternalError / SlowDown (S3)


@dataclass
class Faults:
    app: Any = None
    pending: list[Fault] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, action: str, times: int = 1, status: int = 500, code: str | None = None) -> None:
        with self.lock:
            self.pending.append(Fault(action, times, status, code))

    def reset(self) -> None:
        with self.lock:
            self.pending.clear()
            self.injected.clear()

    def _take(self, action: str | None) -> Fault | None:
        if action is None:
            return None
        with self.lock:
            for fault in self.pending:
                if fault.action == action:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.pending.remove(fault)
                    self.injected.append(action)
                    return fault
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.pending:
            return self.app(environ, start_response)
        fault = self._take(action_of(environ))
        if fault is None:
            return self.app(environ, start_response)
        if fault.action.startswith("s3:"):
            code = fault.code or S3_ERRORS.get(fault.status, "InternalError")
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>injected fault</Message><RequestId>f</RequestId></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml")]
        else:
            code = fault.code or "InternalServerException"
            body = json.dumps({"__type": code, "message": "injected fault"}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
        start_response(f"{fault.status} Injected", [*headers, ("Content-Length", str(len(body)))])
        return [body]


def action_of(environ: dict[str, Any]) -> str | None:
    """`service:Action` of a request (None when it cannot be told)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, action = target.partition(".")
        service = {"AmazonAthena": "athena", "AWSGlue": "glue"}.get(prefix, prefix.lower())
        return f"{service}:{action}"
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "/s3/aws4_request" not in auth:
        return None
    method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
    path = environ.get("PATH_INFO", "").lstrip("/")
    has_key = "/" in path.strip("/")
    if method == "GET" and not has_key:
        if "uploads" in query.split("&"):
            return "s3:ListMultipartUploads"
        return "s3:ListObjectsV2" if "list-type=2" in query else "s3:ListObjects"
    return {"GET": "s3:GetObject", "HEAD": "s3:HeadObject", "PUT": "s3:PutObject", "DELETE": "s3:DeleteObject"}.get(
        method
    )


FAULTS = Faults()


def install(server: Any) -> Faults:
    """Wrap a started ThreadedMotoServer's WSGI app (outermost, so a fault answers before anything records)."""
    wsgi = server._server
    if not isinstance(wsgi.app, Faults):
        FAULTS.app = wsgi.app
        wsgi.app = FAULTS
    return FAULTS
