"""A fake Databricks workspace on loopback, for contract tests with the REAL databricks-sdk.

    with FakeWorkspace() as ws:
        ws.script_run("failed", error="ValueError: boom", logs='{"lh360_job": 1, ...}')
        w = ws.client()                                   # WorkspaceClient(host=ws.host, token=ws.token)
        with fast_sdk_polling():                          # the SDK's run waiter sleeps 1 s, 2 s, ... otherwise
            run = w.jobs.submit(run_name="x", tasks=[...]).result(timeout=timedelta(seconds=10))

What it serves (JSON shapes as the real API, enough for databricks-sdk 0.162 to parse them):

* ``GET /.well-known/databricks-config`` (host metadata the SDK fetches at ``Config()``): ``ws.well_known``
  ``ok`` | ``404`` | ``drop`` (the connection closes unanswered), ``ws.well_known_delay`` seconds first.
  Everything else needs ``Authorization: Bearer <ws.token>`` (else 401).
* Jobs (``/api/2.0|2.1|2.2/jobs/runs/...``): ``submit`` (``idempotency_token``: one run per token, like
  the service; refused with 400 like the service: a key or enum value the SDK's dataclasses do not have, an
  environment without ``environment_version``, a task naming an unknown ``environment_key``, serverless mixed
  with cluster fields), ``get`` (every poll advances the run's scripted life cycle: QUEUED, BLOCKED,
  WAITING_FOR_RETRY, states the service may add later, ``status`` with or without the deprecated ``state``),
  ``get-output`` (of a TASK run: on the parent of a multi-task run it answers 400 like the service),
  ``cancel``, ``list``. ``ws.requests[i].raw`` holds each body's bytes as sent.
* Workspace (``/api/2.0/workspace/...``): ``import`` (JSON+base64 or multipart, as ``w.workspace.upload``
  sends), ``get-status``, ``mkdirs``, ``export`` (JSON or ``direct_download``), ``list``, ``delete``.
  Like the service, an import needs its parent folder (``mkdirs`` first) and ``overwrite`` to replace.
* SQL statements (``/api/2.0/sql/statements``): execute, get, cancel, result chunks (``ws.sql_chunk_rows``
  rows each, ``next_chunk_index`` on all but the last); results come from
  ``ws.sql_handler(statement, parameters) -> (columns, rows)``; ``GET /api/2.0/sql/warehouses/{id}``.
* ``GET /api/2.1/clusters/get``: the clusters in ``ws.clusters`` (id -> the fields clusters/get returns); an
  unknown id answers 400 ``INVALID_PARAMETER_VALUE`` "Cluster ... does not exist", as the service does.
* Unity Catalog ``schemas`` and ``tables``: create / get / list / delete / ``tables/{name}/exists``.
* ``GET /api/2.0/preview/scim/v2/Me`` (``w.current_user.me()``).

Anything else answers 404 ``ENDPOINT_NOT_FOUND`` naming the method and path.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

OUTCOMES = ("success", "failed", "timedout", "internal_error", "canceled", "never_ends")
TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
# RunLifeCycleState (deprecated `state`) → RunLifecycleStateV2State (`status.state`)
V2_OF_V1 = {
    "TERMINATED": "TERMINATED",
    "SKIPPED": "TERMINATED",
    "INTERNAL_ERROR": "TERMINATED",
    "WAITING_FOR_RETRY": "WAITING",
}
STATEMENT_FINAL = ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED")
MULTI_TASK_OUTPUT_ERROR = (
    "Retrieving the output of runs with multiple tasks is not supported. "
    "Please retrieve the output of each individual task run instead."
)


class Request(NamedTuple):
    """One request the fake received (injected errors included)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, the multipart form fields (dict), or None
    headers: dict[str, str]
    raw: bytes = b""  # the body's bytes as they came over the wire


class SqlError(Exception):
    """Raise from ``ws.sql_handler`` to make a statement FAILED with this error code."""

    def __init__(self, message: str, error_code: str = "BAD_REQUEST", sql_state: str | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.sql_state = sql_state


class _HttpError(Exception):
    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_code, self.message, self.headers = status, error_code, message, headers or {}


@dataclass
class ScriptedRun:
    outcome: str = "success"
    pending_polls: int = 1
    running_polls: int = 1
    terminating_polls: int = 1
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    state_message: str | None = None
    states: list[str] | None = None  # life-cycle states before RUNNING, one per poll (replaces pending_polls)
    legacy_state: bool = True  # also answer the deprecated `state` (RunLifeCycleState) next to `status`


@dataclass
class FakeRun:
    run_id: int
    job_id: int
    body: dict
    script: ScriptedRun
    task_run_ids: dict[str, int]
    created_ms: int
    polls: int = 0
    cancel_at: int | None = None  # the poll count when cancel arrived
    ended_ms: int | None = None
    gets: int = 0


@dataclass
class FakeStatement:
    statement_id: str
    body: dict
    delay: int
    observations: int = 0
    state: str = "PENDING"
    result: tuple[list, list] | None = None
    error: dict | None = None


@dataclass
class _Injection:
    statuses: deque
    method: str | None
    process: bool
    retry_after: str | None


@dataclass
class WorkspaceObject:
    path: str
    object_type: str  # DIRECTORY | FILE | NOTEBOOK
    content: bytes = b""
    language: str | None = None
    object_id: int = 0
    created_at: int = field(default_factory=lambda: int(time.time() * 1000))
    modified_at: int = field(default_factory=lambda: int(time.time() * 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _norm(path: str) -> str:
    path = "/" + path.strip("/") if path else "/"
    return re.sub(r"/+", "/", path)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _sql_type(values: list) -> str:
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "BOOLEAN"
        if isinstance(v, int):
            return "LONG"
        if isinstance(v, float):
            return "DOUBLE"
        if isinstance(v, decimal.Decimal):
            return "DECIMAL"
        if isinstance(v, dt.datetime):
            return "TIMESTAMP"
        if isinstance(v, dt.date):
            return "DATE"
        return "STRING"
    return "STRING"


def _sql_value(v: Any) -> str | None:
    """JSON_ARRAY results carry every value as a string (or null), like the service."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    return str(v)


class FakeWorkspace:
    """A fake Databricks workspace on ``127.0.0.1`` (port 0) in a background thread.

    Attributes: ``host`` ("http://127.0.0.1:PORT"), ``token`` ("dapi-fake"), ``requests`` (every
    :class:`Request`, in order), ``responses`` (the status answered to each request, same order),
    ``runs`` {run_id: FakeRun}, ``objects`` {path: WorkspaceObject}, ``statements`` {id: FakeStatement},
    ``schemas`` / ``tables`` {full_name: info}, ``sql_handler``, ``sql_delay_polls``, ``default_outcome``.
    """

    def __init__(self, *, workspace_id: str = "1234567890123456", token: str = "dapi-fake"):
        self.workspace_id = workspace_id
        self.account_id = "00000000-0000-0000-0000-00000000fake"
        self.token = token
        self.host = ""
        self.requests: list[Request] = []
        self.responses: list[int] = []
        self.runs: dict[int, FakeRun] = {}
        self.objects: dict[str, WorkspaceObject] = {"/": WorkspaceObject("/", "DIRECTORY", object_id=1)}
        for d in ("/Shared", "/Users", "/Workspace"):
            self.objects[d] = WorkspaceObject(d, "DIRECTORY", object_id=len(self.objects) + 1)
        self.statements: dict[str, FakeStatement] = {}
        self.schemas: dict[str, dict] = {}
        self.tables: dict[str, dict] = {}
        self.warehouses: dict[str, dict] = {}
        self.clusters: dict[str, dict] = {}
        # called with each accepted runs/submit body: a test's stand-in for what the job would write
        self.on_submit: Callable[[dict], None] | None = None
        self.default_outcome = "success"
        self.sql_handler: Callable[[str, list], tuple[list, list]] = lambda statement, parameters: ([], [])
        self.sql_delay_polls = 0
        self.sql_chunk_rows: int | None = None  # rows per result chunk (None: one chunk), like large results
        self.well_known = "ok"  # ok | 404 | drop: how /.well-known/databricks-config answers
        self.well_known_delay = 0.0  # seconds before it answers (a slow host)
        self.well_known_arrivals = 0  # probes received so far (counted before the delay)
        self._scripts: deque[ScriptedRun] = deque()
        self._injections: dict[str, _Injection] = {}
        self._tokens: dict[str, int] = {}
        self._ids = itertools.count(1001)
        self._object_ids = itertools.count(100)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeWorkspace:
        ws = self

        class Handler(_Handler):
            workspace = ws

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-databricks", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FakeWorkspace:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, *, retry_timeout_seconds: int = 5, **kwargs):
        """A real ``WorkspaceClient`` for this fake (PAT auth, no config file, short retry budget)."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        cfg = Config(
            host=self.host,
            token=self.token,
            auth_type="pat",
            retry_timeout_seconds=retry_timeout_seconds,
            http_timeout_seconds=kwargs.pop("http_timeout_seconds", 10),
            **kwargs,
        )
        return WorkspaceClient(config=cfg)

    # ------------------------------------------------------------------ scripting

    def script_run(
        self,
        outcome: str = "success",
        *,
        pending_polls: int = 1,
        running_polls: int = 1,
        terminating_polls: int = 1,
        error: str | None = None,
        error_trace: str | None = None,
        logs: str | None = None,
        state_message: str | None = None,
        states: list[str] | None = None,
        legacy_state: bool = True,
    ) -> None:
        """Queue the outcome of the next submitted run (FIFO; unscripted runs use ``default_outcome``).

        Every ``runs/get`` of the run (or of its task runs) is one poll: the run is PENDING for
        ``pending_polls`` polls, RUNNING for ``running_polls`` polls, then ends by ``outcome``:

        * ``success`` -- TERMINATED / SUCCESS;
        * ``failed`` -- TERMINATED / FAILED; the task's get-output has ``error`` and ``error_trace``;
        * ``timedout`` -- TERMINATED / TIMEDOUT (``user_cancelled_or_timedout``);
        * ``internal_error`` -- life cycle INTERNAL_ERROR / FAILED (the SDK waiter raises OperationFailed);
        * ``canceled`` -- TERMINATED / CANCELED (cancelled from elsewhere, e.g. the UI);
        * ``never_ends`` -- RUNNING until ``runs/cancel``.

        Any active run that gets ``runs/cancel`` turns TERMINATING for ``terminating_polls`` polls,
        then TERMINATED / CANCELED. ``logs`` is the task's stdout in get-output (e.g. the job's JSON
        summary line), for every outcome.

        ``states`` replaces the PENDING polls with these life-cycle states, one per poll: QUEUED,
        BLOCKED, WAITING_FOR_RETRY (``status.state`` WAITING), PENDING, or any other name, which the
        fake answers as is in both ``state`` and ``status`` (a state added to the service later).
        ``legacy_state=False`` answers only ``status`` (RunLifecycleStateV2State), not the deprecated
        ``state``.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        if outcome == "failed" and error is None:
            error = "Exception: scripted failure"
            error_trace = (
                error_trace
                or 'Traceback (most recent call last):\n  File "job.py", line 1\nException: scripted failure'
            )
        with self._lock:
            self._scripts.append(
                ScriptedRun(
                    outcome, pending_polls, running_polls, terminating_polls, error, error_trace, logs,
                    state_message, list(states) if states is not None else None, legacy_state,
                )
            )  # fmt: skip

    def inject_http_errors(
        self,
        path_prefix: str,
        statuses: list[int],
        *,
        method: str | None = None,
        process: bool = False,
        retry_after: str | None = "0",
    ) -> None:
        """Answer the next requests whose path starts with ``path_prefix`` (and ``method``, if given)
        with these statuses, one each, then serve normally. 429 and 503 carry ``Retry-After``
        (``retry_after``; None omits it, and the SDK then waits 1 s). ``process=True`` handles the
        request first and only then answers the error: a lost response (e.g. a submit that did
        create its run)."""
        with self._lock:
            self._injections[path_prefix] = _Injection(deque(statuses), method, process, retry_after)

    # ------------------------------------------------------------------ inspection helpers

    def requests_to(self, path_fragment: str, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if path_fragment in r.path and (method is None or r.method == method)]

    @property
    def submitted(self) -> list[dict]:
        """The bodies of the submits that created a run, in order."""
        return [r.body for r in sorted(self.runs.values(), key=lambda r: r.run_id)]

    def run(self, run_id: int) -> FakeRun:
        return self.runs[int(run_id)]

    def file(self, path: str) -> bytes:
        return self.objects[_norm(path)].content

    # ------------------------------------------------------------------ dispatch

    def _handle(
        self, method: str, path: str, query: dict, body: Any, headers: dict, raw: bytes = b""
    ) -> tuple[int, Any, dict]:
        with self._lock:
            self.requests.append(Request(method, path, query, body, headers, raw))
            out = self._answer(method, path, query, body, headers)
            self.responses.append(out[0])
            return out

    def _answer(self, method: str, path: str, query: dict, body: Any, headers: dict) -> tuple[int, Any, dict]:
        with self._lock:
            injection = self._take_injection(method, path)
            if injection and not injection[1]:
                return self._injected(injection)
            try:
                if path != "/.well-known/databricks-config":
                    self._check_auth(headers)
                status, payload = self._route(method, path.rstrip("/") or "/", query, body)
                out = (status, payload, {})
            except _HttpError as e:
                out = (e.status, {"error_code": e.error_code, "message": e.message}, e.headers)
            if injection:
                return self._injected(injection)
            return out

    def _take_injection(self, method: str, path: str):
        for prefix, inj in self._injections.items():
            if path.startswith(prefix) and inj.statuses and (inj.method is None or inj.method == method):
                return inj.statuses.popleft(), inj.process, inj.retry_after
        return None

    @staticmethod
    def _injected(injection) -> tuple[int, Any, dict]:
        status, _, retry_after = injection
        codes = {429: "TOO_MANY_REQUESTS", 503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY"}
        hdrs = {"Retry-After": retry_after} if status in (429, 503) and retry_after is not None else {}
        msg = "Too many requests. Please wait a moment and try again." if status == 429 else f"injected HTTP {status}"
        return status, {"error_code": codes.get(status, "INJECTED_ERROR"), "message": msg}, hdrs

    def _check_auth(self, headers: dict) -> None:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {self.token}":
            raise _HttpError(401, "UNAUTHENTICATED", "Invalid access token.")

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if path == "/.well-known/databricks-config" and method == "GET":
            if self.well_known == "404":
                raise _HttpError(404, "ENDPOINT_NOT_FOUND", "No API found for 'GET /.well-known/databricks-config'")
            return 200, {
                "oidc_endpoint": f"{self.host}/oidc",
                "workspace_id": self.workspace_id,
                "account_id": self.account_id,
                "cloud": "aws",
            }
        if path == "/api/2.0/preview/scim/v2/Me" and method == "GET":
            return 200, {
                "id": "4242",
                "userName": "lh360-fake@example.com",
                "active": True,
                "displayName": "lh360 fake",
            }
        m = re.fullmatch(r"/api/2\.[012]/jobs/runs/(submit|get|get-output|cancel|list)", path)
        if m:
            return self._jobs(m.group(1), method, query, body)
        m = re.fullmatch(r"/api/2\.0/workspace/(import|get-status|mkdirs|export|list|delete)", path)
        if m:
            return self._workspace(m.group(1), method, query, body)
        m = re.fullmatch(r"/api/2\.0/sql/statements(?:/([^/]+)(?:/(cancel|result/chunks/\d+))?)?", path)
        if m:
            return self._sql(m.group(1), m.group(2), method, body)
        m = re.fullmatch(r"/api/2\.0/sql/warehouses/([^/]+)", path)
        if m and method == "GET":
            wid = m.group(1)
            return 200, self.warehouses.get(wid) or {"id": wid, "name": f"warehouse {wid}", "state": "RUNNING"}
        if path == "/api/2.1/clusters/get" and method == "GET":
            cluster = self.clusters.get(query.get("cluster_id", ""))
            if cluster is None:
                raise _HttpError(400, "INVALID_PARAMETER_VALUE", f"Cluster {query.get('cluster_id')} does not exist")
            return 200, {"cluster_id": query["cluster_id"], "state": "RUNNING", **cluster}
        m = re.fullmatch(r"/api/2\.1/unity-catalog/(schemas|tables)(?:/([^/]+)(/exists)?)?", path)
        if m:
            return self._uc(m.group(1), unquote(m.group(2) or ""), bool(m.group(3)), method, query, body)
        raise _HttpError(404, "ENDPOINT_NOT_FOUND", f"FakeWorkspace does not implement {method} {path}")

    # ------------------------------------------------------------------ jobs

    def _jobs(self, verb: str, method: str, query: dict, body: Any) -> tuple[int, Any]:
        if verb == "submit" and method == "POST":
            return 200, {"run_id": self._submit(body or {})}
        if verb == "cancel" and method == "POST":
            self._cancel(self._find_run((body or {}).get("run_id"))[0])
            return 200, {}
        if verb == "get" and method == "GET":
            run, task_key = self._find_run(query.get("run_id"))
            run.polls += 1
            run.gets += 1
            if task_key is None:
                return 200, self._run_json(run)
            return 200, self._task_json(run, task_key, with_run_fields=True)
        if verb == "get-output" and method == "GET":
            run, task_key = self._find_run(query.get("run_id"))
            if task_key is None:
                if run.task_run_ids:
                    raise _HttpError(400, "INVALID_PARAMETER_VALUE", MULTI_TASK_OUTPUT_ERROR)
                return 200, self._output(run, self._run_json(run))
            return 200, self._output(run, self._task_json(run, task_key, with_run_fields=True))
        if verb == "list" and method == "GET":
            runs = sorted(self.runs.values(), key=lambda r: -r.run_id)
            return 200, {"runs": [self._run_json(r) for r in runs], "has_more": False}
        raise _HttpError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on jobs/runs/{verb}")

    def _submit(self, body: dict) -> int:
        token = body.get("idempotency_token")
        if token is not None:
            if len(str(token)) > 64:
                raise _HttpError(400, "INVALID_PARAMETER_VALUE", "idempotency_token must be at most 64 characters")
            if token in self._tokens:
                return self._tokens[token]
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "At least one task is required.")
        keys = [t.get("task_key") for t in tasks]
        if any(not k for k in keys) or len(set(keys)) != len(keys):
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "Every task needs a unique task_key.")
        problems = submit_contract_errors(body) + _compute_errors(body)
        if problems:
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "; ".join(problems))
        script = self._scripts.popleft() if self._scripts else ScriptedRun(self.default_outcome)
        run_id, job_id = next(self._ids), next(self._ids) + 500_000
        task_ids = {k: next(self._ids) for k in keys}
        run = FakeRun(run_id, job_id, body, script, task_ids, _now_ms())
        self.runs[run_id] = run
        if self.on_submit is not None:
            self.on_submit(body)
        if token is not None:
            self._tokens[token] = run_id
        return run_id

    def _find_run(self, run_id: Any) -> tuple[FakeRun, str | None]:
        try:
            rid = int(run_id)
        except (TypeError, ValueError):
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "run_id is required") from None
        if rid in self.runs:
            return self.runs[rid], None
        for run in self.runs.values():
            for key, tid in run.task_run_ids.items():
                if tid == rid:
                    return run, key
        raise _HttpError(400, "INVALID_PARAMETER_VALUE", f"Run {rid} does not exist.")

    def _phase(self, run: FakeRun) -> tuple[str, str | None]:
        """(life_cycle_state, result_state) of ``run`` at its current poll count."""
        s, k = run.script, run.polls
        if run.cancel_at is not None:
            return ("TERMINATING", None) if k - run.cancel_at <= s.terminating_polls else ("TERMINATED", "CANCELED")
        before = s.states if s.states is not None else ["PENDING"] * s.pending_polls
        if k <= len(before):
            return before[k - 1], None
        if s.outcome == "never_ends" or k <= len(before) + s.running_polls:
            return "RUNNING", None
        return {
            "success": ("TERMINATED", "SUCCESS"),
            "failed": ("TERMINATED", "FAILED"),
            "timedout": ("TERMINATED", "TIMEDOUT"),
            "internal_error": ("INTERNAL_ERROR", "FAILED"),
            "canceled": ("TERMINATED", "CANCELED"),
        }[s.outcome]

    def _cancel(self, run: FakeRun) -> None:
        life, _ = self._phase(run)
        if life not in TERMINAL and life != "TERMINATING" and run.cancel_at is None:
            run.cancel_at = run.polls

    def _state_json(self, run: FakeRun) -> tuple[dict, dict]:
        life, result = self._phase(run)
        if (life in TERMINAL) and run.ended_ms is None:
            run.ended_ms = _now_ms()
        s = run.script
        cancelled = run.cancel_at is not None and result == "CANCELED"
        message = s.state_message
        if message is None:
            message = {
                "PENDING": "Waiting for cluster",
                "RUNNING": "In run",
                "TERMINATING": "Run cancellation requested" if run.cancel_at is not None else "",
                "INTERNAL_ERROR": "Run failed with an internal error",
            }.get(life, "")
            if result == "FAILED" and life == "TERMINATED":
                message = "Workload failed, see run output for details"
            elif result == "TIMEDOUT":
                message = "Run timed out"
            elif result == "CANCELED":
                message = "Run cancelled." if cancelled else "Run was cancelled"
        state = {
            "life_cycle_state": life,
            "state_message": message,
            "user_cancelled_or_timedout": result in ("CANCELED", "TIMEDOUT"),
        }
        if result is not None:
            state["result_state"] = result
        status: dict[str, Any] = {"state": V2_OF_V1.get(life, life)}
        if life == "QUEUED":
            status["queue_details"] = {
                "code": "ACTIVE_RUNS_LIMIT_REACHED",
                "message": "The workspace reached its limit of active task runs.",
            }
        if life in TERMINAL:
            code, kind = {
                "SUCCESS": ("SUCCESS", "SUCCESS"),
                "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                "TIMEDOUT": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                "CANCELED": ("USER_CANCELED" if cancelled else "CANCELED", "SUCCESS"),
            }[result]
            if life == "INTERNAL_ERROR":
                code, kind = "INTERNAL_ERROR", "INTERNAL_ERROR"
            status["termination_details"] = {"code": code, "type": kind, "message": message}
        return state, status

    def _times(self, run: FakeRun) -> dict:
        end = run.ended_ms or 0
        return {
            "start_time": run.created_ms,
            "end_time": end,
            "setup_duration": 0,
            "execution_duration": (end - run.created_ms) if end else 0,
            "cleanup_duration": 0,
            "run_duration": (end - run.created_ms) if end else 0,
        }

    def _page_url(self, run: FakeRun, run_id: int) -> str:
        return f"{self.host}/?o={self.workspace_id}#job/{run.job_id}/run/{run_id}"

    def _task_json(self, run: FakeRun, task_key: str, *, with_run_fields: bool = False) -> dict:
        spec = next(t for t in run.body["tasks"] if t["task_key"] == task_key)
        state, status = self._state_json(run)
        tid = run.task_run_ids[task_key]
        out = {**spec, "run_id": tid, "task_key": task_key, "state": state, "status": status, "attempt_number": 0}
        if not run.script.legacy_state:
            del out["state"]
        out.update(self._times(run), run_page_url=self._page_url(run, tid))
        if with_run_fields:  # runs/get or get-output metadata of a task run: a Run-shaped object
            out.update(
                job_id=run.job_id,
                run_name=run.body.get("run_name") or "Untitled",
                run_type="SUBMIT_RUN",
                parent_run_id=run.run_id,
            )
        return out

    def _run_json(self, run: FakeRun) -> dict:
        state, status = self._state_json(run)
        out = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "number_in_job": run.run_id,
            "original_attempt_run_id": run.run_id,
            "creator_user_name": "lh360-fake@example.com",
            "run_name": run.body.get("run_name") or "Untitled",
            "run_type": "SUBMIT_RUN",
            "format": "MULTI_TASK",
            "state": state,
            "status": status,
            **self._times(run),
            "tasks": [self._task_json(run, k) for k in run.task_run_ids],
            "run_page_url": self._page_url(run, run.run_id),
        }
        if not run.script.legacy_state:
            del out["state"]
        return out

    def _output(self, run: FakeRun, metadata: dict) -> dict:
        out: dict[str, Any] = {"metadata": metadata}
        life, result = self._phase(run)
        if life in TERMINAL:
            if run.script.logs is not None:
                out["logs"] = run.script.logs
                out["logs_truncated"] = False
            error = run.script.error
            if life == "INTERNAL_ERROR" and error is None:
                error = "Internal error: the run could not be executed"
            if result == "FAILED" and error is not None:
                out["error"] = error
                if run.script.error_trace is not None:
                    out["error_trace"] = run.script.error_trace
        return out

    # ------------------------------------------------------------------ workspace

    def _workspace(self, verb: str, method: str, query: dict, body: Any) -> tuple[int, Any]:
        body = body or {}
        if verb == "import" and method == "POST":
            return 200, self._import(body)
        if verb == "mkdirs" and method == "POST":
            path = _norm(body.get("path") or "")
            parts = path.strip("/").split("/") if path != "/" else []
            for i in range(1, len(parts) + 1):
                p = "/" + "/".join(parts[:i])
                obj = self.objects.get(p)
                if obj is None:
                    self.objects[p] = WorkspaceObject(p, "DIRECTORY", object_id=next(self._object_ids))
                elif obj.object_type != "DIRECTORY":
                    raise _HttpError(
                        400, "RESOURCE_ALREADY_EXISTS", f"Path ({p}) already exists and is not a directory."
                    )
            return 200, {}
        if verb == "get-status" and method == "GET":
            return 200, self._info(self._get_obj(query.get("path")))
        if verb == "export" and method == "GET":
            obj = self._get_obj(query.get("path"))
            if obj.object_type == "DIRECTORY":
                raise _HttpError(
                    400, "INVALID_PARAMETER_VALUE", "Exporting a directory is only supported with format=DBC/AUTO"
                )
            if str(query.get("direct_download", "")).lower() == "true":
                return 200, obj.content  # raw bytes
            return 200, {
                "content": base64.b64encode(obj.content).decode(),
                "file_type": obj.path.rsplit(".", 1)[-1] if "." in obj.path else "",
            }
        if verb == "list" and method == "GET":
            obj = self._get_obj(query.get("path"))
            prefix = obj.path.rstrip("/") + "/"
            kids = [
                o
                for p, o in sorted(self.objects.items())
                if p.startswith(prefix) and "/" not in p[len(prefix) :] and p != obj.path
            ]
            return 200, {"objects": [self._info(o) for o in kids]} if kids else {}
        if verb == "delete" and method == "POST":
            obj = self._get_obj(body.get("path"))
            prefix = obj.path.rstrip("/") + "/"
            kids = [p for p in self.objects if p.startswith(prefix)]
            if kids and not body.get("recursive"):
                raise _HttpError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({obj.path}) is not empty.")
            for p in [*kids, obj.path]:
                self.objects.pop(p, None)
            return 200, {}
        raise _HttpError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on workspace/{verb}")

    def _get_obj(self, path: Any) -> WorkspaceObject:
        if not path:
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "path is required")
        obj = self.objects.get(_norm(str(path)))
        if obj is None:
            raise _HttpError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        return obj

    @staticmethod
    def _info(obj: WorkspaceObject) -> dict:
        out = {"path": obj.path, "object_type": obj.object_type, "object_id": obj.object_id}
        if obj.object_type != "DIRECTORY":
            out.update(created_at=obj.created_at, modified_at=obj.modified_at, size=len(obj.content))
        if obj.language:
            out["language"] = obj.language
        return out

    def _import(self, body: dict) -> dict:
        path = body.get("path")
        if not path:
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "path is required")
        path = _norm(str(path))
        content = body.get("content", b"")
        if isinstance(content, str):  # JSON form: base64
            try:
                content = base64.b64decode(content, validate=True)
            except ValueError:
                raise _HttpError(400, "INVALID_PARAMETER_VALUE", "content is not valid base64") from None
        fmt = (body.get("format") or "SOURCE").upper()
        language = body.get("language")
        overwrite = str(body.get("overwrite", "false")).lower() == "true"
        if fmt == "SOURCE" and not language:
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "The language field is required for format SOURCE.")
        is_notebook = fmt in ("SOURCE", "JUPYTER", "HTML", "DBC", "R_MARKDOWN") or (
            fmt == "AUTO"
            and content.lstrip().startswith((b"# Databricks notebook source", b"-- Databricks notebook source"))
        )
        if is_notebook and fmt == "AUTO":
            path = re.sub(r"\.(py|sql|scala|r|ipynb)$", "", path, flags=re.I)
        parent = self.objects.get(_parent(path))
        if parent is None or parent.object_type != "DIRECTORY":
            raise _HttpError(404, "RESOURCE_DOES_NOT_EXIST", f"The parent folder ({_parent(path)}) does not exist.")
        existing = self.objects.get(path)
        if existing is not None and (not overwrite or existing.object_type == "DIRECTORY"):
            raise _HttpError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        self.objects[path] = WorkspaceObject(
            path,
            "NOTEBOOK" if is_notebook else "FILE",
            content,
            language=language if is_notebook else None,
            object_id=existing.object_id if existing else next(self._object_ids),
            created_at=existing.created_at if existing else _now_ms(),
        )
        return {}

    # ------------------------------------------------------------------ SQL statements

    def _sql(self, statement_id: str | None, action: str | None, method: str, body: Any) -> tuple[int, Any]:
        if statement_id is None:
            if method != "POST":
                raise _HttpError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on sql/statements")
            return 200, self._execute(body or {})
        st = self.statements.get(statement_id)
        if st is None:
            raise _HttpError(404, "NOT_FOUND", f"Statement {statement_id} not found")
        if action == "cancel" and method == "POST":
            if st.state not in STATEMENT_FINAL:
                st.state = "CANCELED"
            return 200, {}
        if action and action.startswith("result/chunks/") and method == "GET":
            chunks = self._chunks(st) if st.state == "SUCCEEDED" else []
            index = int(action.rsplit("/", 1)[1])
            if not 0 <= index < len(chunks):
                raise _HttpError(400, "INVALID_PARAMETER_VALUE", f"No such result chunk: {index}")
            return 200, chunks[index]
        if action is None and method == "GET":
            st.observations += 1
            self._advance(st)
            return 200, self._statement_json(st)
        raise _HttpError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed here")

    def _execute(self, body: dict) -> dict:
        if not body.get("warehouse_id"):
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "warehouse_id is required")
        if not body.get("statement"):
            raise _HttpError(400, "INVALID_PARAMETER_VALUE", "statement is required")
        wait = str(body.get("wait_timeout") or "10s")
        m = re.fullmatch(r"(\d+)s", wait)
        if not m or not (int(m.group(1)) == 0 or 5 <= int(m.group(1)) <= 50):
            raise _HttpError(
                400, "INVALID_PARAMETER_VALUE", f"wait_timeout must be 0s or between 5s and 50s, got {wait!r}"
            )
        st = FakeStatement(f"01f0{uuid.uuid4().hex[:28]}", body, max(0, int(self.sql_delay_polls)))
        self.statements[st.statement_id] = st
        self._advance(st)
        if st.state not in STATEMENT_FINAL and int(m.group(1)) > 0 and body.get("on_wait_timeout") == "CANCEL":
            st.state = "CANCELED"  # did not finish within wait_timeout
        return self._statement_json(st)

    def _advance(self, st: FakeStatement) -> None:
        if st.state in STATEMENT_FINAL:
            return
        if st.observations < st.delay:
            st.state = "PENDING" if st.observations == 0 else "RUNNING"
            return
        try:
            columns, rows = self.sql_handler(st.body["statement"], st.body.get("parameters") or [])
            st.result = (list(columns or []), [list(r) for r in rows or []])
            st.state = "SUCCEEDED"
        except SqlError as e:
            st.state, st.error = "FAILED", {"error_code": e.error_code, "message": str(e)}
            if e.sql_state:
                st.error["sql_state"] = e.sql_state
        except Exception as e:  # noqa: BLE001 - any handler error is a failed statement
            st.state, st.error = "FAILED", {"error_code": "BAD_REQUEST", "message": f"{type(e).__name__}: {e}"}

    def _statement_json(self, st: FakeStatement) -> dict:
        out: dict[str, Any] = {"statement_id": st.statement_id, "status": {"state": st.state}}
        if st.state == "FAILED":
            out["status"]["error"] = st.error
        if st.state != "SUCCEEDED":
            return out
        columns, rows = st.result
        limit = st.body.get("row_limit")
        truncated = limit is not None and len(rows) > int(limit)
        if truncated:
            rows = rows[: int(limit)]
        cols = []
        for i, c in enumerate(columns):
            name, type_name = c if isinstance(c, (tuple, list)) else (c, _sql_type([r[i] for r in rows]))
            cols.append({"name": name, "position": i, "type_name": type_name, "type_text": type_name})
        chunks = self._chunks(st)
        out["manifest"] = {
            "format": st.body.get("format") or "JSON_ARRAY",
            "schema": {"column_count": len(cols), "columns": cols},
            "total_chunk_count": len(chunks),
            "chunks": [{k: c[k] for k in ("chunk_index", "row_offset", "row_count")} for c in chunks],
            "total_row_count": len(rows),
            "truncated": truncated,
        }
        out["result"] = chunks[0]
        return out

    def _chunks(self, st: FakeStatement) -> list[dict]:
        """The statement's INLINE result chunks: each a ResultData (data_array as strings, next_chunk_index
        and next_chunk_internal_link on all but the last), ``sql_chunk_rows`` rows each."""
        _, rows = st.result
        limit = st.body.get("row_limit")
        if limit is not None:
            rows = rows[: int(limit)]
        size = self.sql_chunk_rows or max(1, len(rows))
        starts = list(range(0, len(rows), size)) or [0]
        out = []
        for i, start in enumerate(starts):
            part = rows[start : start + size]
            chunk: dict[str, Any] = {"chunk_index": i, "row_offset": start, "row_count": len(part)}
            if part:  # like the service, an empty result has no data_array
                chunk["data_array"] = [[_sql_value(v) for v in r] for r in part]
            if i + 1 < len(starts):
                chunk["next_chunk_index"] = i + 1
                chunk["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{st.statement_id}/result/chunks/{i + 1}"
            out.append(chunk)
        return out

    # ------------------------------------------------------------------ Unity Catalog

    def _uc(self, kind: str, name: str, exists: bool, method: str, query: dict, body: Any) -> tuple[int, Any]:
        store = self.schemas if kind == "schemas" else self.tables
        noun = "SCHEMA" if kind == "schemas" else "TABLE"
        if not name and method == "POST":
            body = body or {}
            if kind == "schemas":
                full = f"{body.get('catalog_name')}.{body.get('name')}"
            else:
                parent = f"{body.get('catalog_name')}.{body.get('schema_name')}"
                if parent not in self.schemas:
                    raise _HttpError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{parent}' does not exist.")
                full = f"{parent}.{body.get('name')}"
            if not body.get("name") or not body.get("catalog_name"):
                raise _HttpError(400, "INVALID_PARAMETER_VALUE", "name and catalog_name are required")
            if full in store:
                raise _HttpError(409, f"{noun}_ALREADY_EXISTS", f"{noun.title()} '{full}' already exists")
            info = {
                **body,
                "full_name": full,
                "owner": "lh360-fake@example.com",
                "created_at": _now_ms(),
                "updated_at": _now_ms(),
            }
            info[f"{kind[:-1]}_id"] = str(uuid.uuid4())
            store[full] = info
            return 200, info
        if not name and method == "GET":
            items = [
                v
                for v in store.values()
                if v.get("catalog_name") == query.get("catalog_name")
                and (kind == "schemas" or v.get("schema_name") == query.get("schema_name"))
            ]
            return 200, {kind: items}
        if exists and method == "GET":
            return 200, {"table_exists": name in self.tables}
        if name and method == "GET":
            if name not in store:
                raise _HttpError(404, f"{noun}_DOES_NOT_EXIST", f"{noun.title()} '{name}' does not exist.")
            return 200, store[name]
        if name and method == "DELETE":
            if name not in store:
                raise _HttpError(404, f"{noun}_DOES_NOT_EXIST", f"{noun.title()} '{name}' does not exist.")
            del store[name]
            return 200, {}
        raise _HttpError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on unity-catalog/{kind}")


CLUSTER_FIELDS = ("new_cluster", "existing_cluster_id", "job_cluster_key", "libraries")


def _compute_errors(body: dict) -> list[str]:
    """What runs/submit refuses about compute: environments without a version, a task naming an unknown
    environment, serverless (environment_key) mixed with cluster fields."""
    out = []
    envs = {}
    for i, env in enumerate(body.get("environments") or []):
        key = env.get("environment_key") if isinstance(env, dict) else None
        spec = (env.get("spec") if isinstance(env, dict) else None) or {}
        if not key:
            out.append(f"environments[{i}].environment_key is required")
        if not (spec.get("environment_version") or spec.get("base_environment") or spec.get("client")):
            out.append(f"environments[{i}].spec: either environment_version or base_environment must be provided")
        envs[key] = env
    for t in body.get("tasks") or []:
        key = t.get("environment_key")
        if key is not None and key not in envs:
            out.append(f"task {t.get('task_key')}: environment_key {key!r} is not defined in environments")
        mixed = [f for f in CLUSTER_FIELDS if f in t]
        if key is not None and mixed:
            out.append(f"task {t.get('task_key')}: environment_key (serverless) cannot be used with {', '.join(mixed)}")
        if "new_cluster" in t and "existing_cluster_id" in t:
            out.append(f"task {t.get('task_key')}: new_cluster and existing_cluster_id are mutually exclusive")
    return out


def submit_contract_errors(body: dict) -> list[str]:
    """Every key of a runs/submit body that the SDK's dataclasses (generated from the API's specification)
    do not have, and every enum value they do not list: the service refuses them. Written apart from lh360's
    own check (lh360/engines/databricks/contract.py) so that a mistake in one is caught by the other."""
    import dataclasses
    import enum
    import inspect
    import typing

    from databricks.sdk.service.jobs import JobsAPI

    def strip(hint):
        while typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        return hint

    def walk(value, hint, path, out):
        hint = strip(hint)
        origin = typing.get_origin(hint)
        if value is None:
            return
        if origin is list:
            for i, v in enumerate(value if isinstance(value, list) else []):
                walk(v, typing.get_args(hint)[0], f"{path}[{i}]", out)
        elif origin is dict:
            for k, v in (value if isinstance(value, dict) else {}).items():
                walk(v, typing.get_args(hint)[1], f"{path}.{k}", out)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            if value not in {e.value for e in hint}:
                out.append(f"{path}: invalid value {value!r}")
        elif dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                out.append(f"{path}: expected an object")
                return
            names = {f.name for f in dataclasses.fields(hint)}
            hints = typing.get_type_hints(hint)
            for k, v in value.items():
                if k not in names:
                    out.append(f"{path}.{k}: unknown field")
                else:
                    walk(v, hints[k], f"{path}.{k}", out)

    params = set(inspect.signature(JobsAPI.submit).parameters) - {"self"}
    hints = typing.get_type_hints(JobsAPI.submit)
    out: list[str] = []
    for k, v in body.items():
        if k not in params:
            out.append(f"{k}: unknown field")
        else:
            walk(v, hints[k], k, out)
    return out


class _Handler(BaseHTTPRequestHandler):
    workspace: FakeWorkspace
    protocol_version = "HTTP/1.1"
    server_version = "FakeDatabricks/1.0"
    disable_nagle_algorithm = True  # headers and body are two writes: without it each request waits ~40 ms for an ACK

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        body: Any = None
        if raw and ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            body = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                body[name] = data if name == "content" else data.decode()
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        ws = self.workspace
        if parts.path == "/.well-known/databricks-config":
            ws.well_known_arrivals += 1  # counted on arrival, before any delay
            if ws.well_known_delay:  # outside the workspace's lock: other requests go on meanwhile
                time.sleep(ws.well_known_delay)
            if ws.well_known == "drop":  # the connection closes with no answer (as a dead proxy or LB does)
                with ws._lock:
                    ws.requests.append(Request(self.command, parts.path, query, body, dict(self.headers.items()), raw))
                    ws.responses.append(0)
                self.close_connection = True
                return
        status, payload, headers = ws._handle(self.command, parts.path, query, body, dict(self.headers.items()), raw)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve


# ---------------------------------------------------------------------- test helpers


@contextlib.contextmanager
def fast_sdk_polling(max_sleep: float = 0.01) -> Iterator[None]:
    """Cap the sleeps of the SDK's long-running-operation waiters (``jobs ... .result()`` sleeps 1 s,
    2 s, ... up to 10 s plus jitter between polls) so scripted life cycles take milliseconds."""
    import databricks.sdk.service.jobs as jobs_module

    real = jobs_module.time

    class _FastTime:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def sleep(seconds):
            real.sleep(min(seconds, max_sleep))

    jobs_module.time = _FastTime()
    try:
        yield
    finally:
        jobs_module.time = real


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _is_ip_literal(host: Any) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
        return True
    except ValueError:
        return False


def isolate_databricks_env(monkeypatch, tmp_path) -> None:
    """For a pytest test: no DATABRICKS_* variables, a nonexistent config file, and any socket or DNS
    lookup to a non-loopback host raises (the SDK must only ever talk to the fake)."""
    import os

    for k in list(os.environ):
        if k.startswith("DATABRICKS_"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-such-databrickscfg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and sock.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise OSError(f"test isolation: connection to non-loopback host {host!r} refused")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and str(host) not in LOOPBACK and not _is_ip_literal(host):
            raise OSError(f"test isolation: DNS lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


__all__ = [
    "OUTCOMES",
    "FakeRun",
    "FakeStatement",
    "FakeWorkspace",
    "Request",
    "SqlError",
    "WorkspaceObject",
    "fast_sdk_polling",
    "isolate_databricks_env",
]
