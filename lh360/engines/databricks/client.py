"""What every Databricks caller of lh360 shares: the SDK client (unified auth), deadlines, and polling
that cancels the remote work when lh360 is interrupted or runs out of time.

The SDK is imported inside functions (`import databricks.sdk` takes ~0.8 s; `lh360 --help` must stay fast).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from lh360.config import ResolvedTarget
from lh360.errors import ConfigError, EngineError, Interrupted

log = logging.getLogger("lh360.databricks")

T = TypeVar("T")

# environment variables that select credentials by themselves: when one is set, the environment wins over
# the target's `databricks.profile` (CI and cron set variables; a laptop has a ~/.databrickscfg profile)
ENV_AUTH = ("DATABRICKS_HOST", "DATABRICKS_CONFIG_PROFILE")
SDK_RETRY_SECONDS = 300  # the SDK's own budget for retrying 429/503/connection errors on one call
SDK_HTTP_SECONDS = 60  # the SDK's default timeout of one HTTP request
PROBE_SECONDS = 8  # retry budget and request timeout while the SDK resolves its config
CONNECT_SECONDS = 25  # first contact with a workspace (config, probe, auth) ends within this, or exit 3
CANCEL_ON_SIGNAL_SECONDS = 15  # after SIGINT/SIGTERM, how long lh360 tries to cancel its run before exiting
POLL_ENV = "LH360_POLL_INTERVAL"  # seconds between status polls of runs and statements (tuning, tests)


def workspace_dir_api(workspace_dir: str) -> str:
    """The Workspace API path of a `/Workspace/...` folder (the API names objects without the prefix)."""
    d = workspace_dir.rstrip("/") or "/"
    if d == "/Workspace" or d.startswith("/Workspace/"):
        return d[len("/Workspace") :] or "/"
    return d


def workspace_dir_fs(workspace_dir: str) -> str:
    """The same folder as a file path on the compute (`/Workspace/...`), for python_file and open()."""
    d = workspace_dir.rstrip("/")
    return d if d.startswith("/Workspace/") else "/Workspace" + d


def poll_seconds(explicit: float | None, default: float) -> float:
    """The poll interval: explicit, else $LH360_POLL_INTERVAL, else the caller's default."""
    if explicit is not None:
        return explicit
    text = os.environ.get(POLL_ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{POLL_ENV}={text!r} is not a number of seconds") from None
        if value > 0:
            return value
    return default


def settings_of(target: ResolvedTarget):
    s = target.settings.databricks
    if s is None:
        raise ConfigError(
            f"target {target.name!r} has no databricks section", field=f"targets.{target.name}.databricks"
        )
    return s


def workspace_client(target: ResolvedTarget, *, retry_seconds: float | None = None):
    """A `WorkspaceClient` by the SDK's unified auth.

    The environment (`DATABRICKS_HOST`/`DATABRICKS_TOKEN`, `DATABRICKS_CONFIG_PROFILE`, OAuth variables …)
    wins when it names a workspace; otherwise the target's `databricks.profile` from ~/.databrickscfg.
    `databricks.host` in the target pins the host either way. Credentials never come from lh360.yaml.
    `retry_seconds` bounds the SDK's own retries of 429/503/connection errors (default 300 s).

    First contact is bounded: the SDK resolves its config (the `/.well-known/databricks-config` probe, OAuth
    endpoints) with retries of up to `retry_timeout_seconds` each, which against an unreachable host means
    minutes before the first API call. lh360 resolves it with a short budget, in a worker thread it waits
    for at most CONNECT_SECONDS (SIGINT/SIGTERM still end the wait at once), and an unreachable workspace
    is one line naming the host, exit 3.
    """
    from databricks.sdk import WorkspaceClient

    route_sdk_logs()
    s = settings_of(target)
    kwargs: dict[str, Any] = {}
    if s.host:
        kwargs["host"] = s.host
    if s.profile and not any(os.environ.get(v) for v in ENV_AUTH):
        kwargs["profile"] = s.profile
    budget = SDK_RETRY_SECONDS if retry_seconds is None else max(1, min(SDK_RETRY_SECONDS, math.ceil(retry_seconds)))
    where = kwargs.get("host") or os.environ.get("DATABRICKS_HOST") or f"profile {kwargs.get('profile')!r}"
    try:
        cfg = bounded(lambda: _resolve_config(kwargs), CONNECT_SECONDS, f"the Databricks workspace {where}")
    except ValueError as exc:  # the SDK masks secrets in its messages (token=***)
        how = f"profile {kwargs['profile']!r}" if "profile" in kwargs else "the DATABRICKS_* environment"
        raise ConfigError(
            f"Databricks authentication for target {target.name!r} failed ({how}): {_first_line(exc)}",
            field=f"targets.{target.name}.databricks.profile",
        ) from None
    cfg.retry_timeout_seconds = budget  # the ApiClient reads both when it is built, below
    cfg.http_timeout_seconds = SDK_HTTP_SECONDS
    return WorkspaceClient(config=cfg)


def _resolve_config(kwargs: dict[str, Any]):
    """The SDK's Config with a short retry budget, then proof that its host answers HTTP at all."""
    from databricks.sdk.config import Config

    cfg = Config(**kwargs, retry_timeout_seconds=PROBE_SECONDS, http_timeout_seconds=PROBE_SECONDS)
    if cfg.host and not cfg.workspace_id:  # the metadata probe failed (or the host has none): is it there?
        check_reachable(cfg.host)
    return cfg


def check_reachable(host: str) -> None:
    """One HTTP request to the host's root (any answer will do: a redirect to the login page, 401, 404),
    through the same proxies the SDK uses; no answer is an EngineError naming the host."""
    import requests

    try:
        requests.get(f"{host.rstrip('/')}/", timeout=(5, 5), allow_redirects=False)
    except requests.RequestException as exc:
        raise EngineError(
            f"cannot reach the Databricks workspace at {host}: {_reason(exc)} "
            "(check DATABRICKS_HOST or the profile's host, and the network)"
        ) from None


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, short: 'Connection refused', 'timed out'."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "Network is unreachable",
                   "closed connection without response"):  # fmt: skip
        if marker in text:
            return marker
    return _first_line(exc)[:200]


def bounded(fn: Callable[[], T], seconds: float, what: str) -> T:
    """fn() in a daemon thread, waited for at most `seconds` (an EngineError naming `what` after that).
    Its exception is re-raised here. The main thread's wait is interruptible: a signal ends it at once,
    whatever the library in the thread is doing (its sleeps, its retries, its own `except` clauses)."""

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="lh360-databricks-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise EngineError(f"{what} did not answer within {seconds:.0f}s (check the host and the network)")
    if "error" in box:
        raise box["error"]
    return box["value"]


class _ToLh360Logging(logging.Handler):
    """Hands the SDK's log records to lh360's logger tree, so they come out with lh360's handler and format
    (`--log-format json` stays one JSON object per line) instead of Python's bare last-resort printer."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("lh360.databricks.sdk").handle(record)


def route_sdk_logs() -> None:
    """Route the `databricks.sdk` logger through lh360's logging, at lh360's level (once)."""
    sdk = logging.getLogger("databricks.sdk")
    if not any(isinstance(h, _ToLh360Logging) for h in sdk.handlers):
        sdk.addHandler(_ToLh360Logging())
    sdk.propagate = False
    level = logging.getLogger("lh360").getEffectiveLevel()
    sdk.setLevel(max(level, logging.INFO) if level > logging.DEBUG else logging.DEBUG)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def api_error(what: str, exc: BaseException) -> EngineError:
    """An SDK/HTTP failure as an EngineError (exit 3) naming what lh360 was doing."""
    code = getattr(exc, "error_code", None)
    msg = _first_line(exc)
    if isinstance(exc, TimeoutError):
        msg = f"the workspace did not answer successfully in time ({msg}; the SDK retries 429/503 and lost connections)"
    return EngineError(f"{what}: {msg}" + (f" [{code}]" if code and code not in msg else ""))


def is_not_found(exc: BaseException) -> bool:
    from databricks.sdk.errors import NotFound, ResourceDoesNotExist

    return isinstance(exc, (NotFound, ResourceDoesNotExist)) or getattr(exc, "error_code", None) in (
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "SCHEMA_DOES_NOT_EXIST",
        "TABLE_DOES_NOT_EXIST",
    )


class Deadline:
    """A point in time after which lh360 gives up waiting (None: wait as long as it takes)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


class Expired(Exception):
    """poll() ran out of time; carries the last value seen."""

    def __init__(self, last: Any) -> None:
        super().__init__("deadline passed")
        self.last = last


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    deadline: Deadline,
    interval: float,
    on_value: Callable[[T], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """fetch() every `interval` seconds until done(value); raise Expired once the deadline has passed."""
    while True:
        value = fetch()
        if on_value is not None:
            on_value(value)
        if done(value):
            return value
        if deadline.expired():
            raise Expired(value)
        left = deadline.remaining()
        (sleep or time.sleep)(interval if left is None else max(0.0, min(interval, left)))


@contextmanager
def cancel_on_interrupt(cancel: Callable[[], None], limit: float | None = None) -> Iterator[None]:
    """On SIGINT (KeyboardInterrupt) or SIGTERM (Interrupted, raised by the CLI's handler), run `cancel`
    with both signals held back — a second Ctrl-C must not abandon the cancel half-way — for at most
    `limit` seconds (default CANCEL_ON_SIGNAL_SECONDS: cron and systemd expect a stop within seconds, and
    a failing workspace would otherwise hold lh360 for the SDK's whole retry budget), then re-raise."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted):
        seconds = CANCEL_ON_SIGNAL_SECONDS if limit is None else limit
        with signals_held():
            try:
                bounded(cancel, seconds, "cancelling the remote work")
            except Exception as exc:  # noqa: BLE001 - report, then still exit 130/143
                log.warning("could not cancel the remote work: %s", _first_line(exc))
        raise


@contextmanager
def signals_held() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
