"""The Databricks engine: each step of a table is one one-time run (`jobs.submit`) of lh360's Spark job.

    ingest     landing → bronze   Auto Loader (cloudFiles, availableNow) in lh360/spark/job.py
    refine     bronze → silver    Delta stream → expectations → MERGE
    aggregate  silver → gold      CREATE OR REPLACE TABLE … AS <gold SQL>; on the job, or on the SQL
                                  warehouse with `databricks.aggregate_on: warehouse`

A run is a `spark_python_task` on `<workspace_dir>/lh360_job.py` (uploaded by `lh360 deploy`) with
`--step` and `--payload` (or `--payload-file` when the payload is too large for a parameter), on
serverless compute (an `environments` entry) unless the target names `existing_cluster_id` or a
`new_cluster`. lh360 polls `jobs.get_run` itself: it shows state changes, elapsed time and the run page,
judges TERMINATED by `result_state`, shows the task's error and trace on failure (exit 3; exit 1 for a
`fail` expectation; exit 4 on a timeout), and cancels the run it started on SIGINT/SIGTERM or timeout.
Idempotency tokens: see `lh360.engines.databricks_runs`.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from functools import cached_property, partial
from importlib import resources
from typing import Any

from lh360 import __version__
from lh360.config import ExistingCluster, ResolvedTarget
from lh360.engines.base import Progress
from lh360.engines.databricks_client import (
    Deadline,
    Expired,
    api_error,
    cancel_on_interrupt,
    is_not_found,
    poll,
    poll_seconds,
    settings_of,
    workspace_client,
    workspace_dir_api,
    workspace_dir_fs,
)
from lh360.engines.databricks_runs import Entry, Journal
from lh360.errors import CheckFailed, EngineError, RunTimeout, UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import join

log = logging.getLogger("lh360.databricks")

JOB_FILE = "lh360_job.py"  # lh360/spark/job.py, uploaded under this name
CODE_FILES = {JOB_FILE: "job.py", "transforms.py": "transforms.py"}  # uploaded name → lh360/spark/<file>
MANIFEST_FILE = "lh360_code.json"  # {"sha256": …} of the uploaded code, written last by deploy
PAYLOADS_DIR = "payloads"
ENVIRONMENT_KEY = "lh360"
ENVIRONMENT_VERSION = "2"  # serverless environment: Python 3.11, pyspark via Spark Connect
MAX_INLINE_PAYLOAD = 8000  # bytes of --payload JSON; larger payloads go to a workspace file
SERVER_TIMEOUT_GRACE = 60  # the run's own timeout_seconds = lh360's timeout + this (a dead ops box still stops it)
DEFAULT_POLL_SECONDS = 5.0
DEFAULT_CANCEL_WAIT = 30.0
TERMINAL_LIFE_CYCLE = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}


# ---- the job code ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeBundle:
    files: dict[str, bytes]  # uploaded name → content

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    def manifest(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "lh360_version": __version__,
            "files": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(self.files.items())},
        }


def code_bundle() -> CodeBundle:
    pkg = resources.files("lh360.spark")
    return CodeBundle({name: pkg.joinpath(src).read_bytes() for name, src in CODE_FILES.items()})


# ---- payloads and requests ------------------------------------------------------------------------


def gold_sql_databricks(sql: str, catalog: str) -> str:
    """Spec gold SQL (Spark SQL over silver.x / gold.x) with every table as `catalog`.`layer`.`name`."""
    from sqlglot import exp

    from lh360.sql import parse_query, resolve, to_sql

    def qualify(layer: str, name: str):
        return exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier(layer, quoted=True),
            catalog=exp.to_identifier(catalog, quoted=True),
        )

    return to_sql(resolve(parse_query(sql), qualify), "databricks")


def gold_owner(project: Any, relation: str) -> tuple[TableSpec, str]:
    """The spec that defines `relation` (gold.<name>), and <name>."""
    layer, _, name = relation.partition(".")
    for spec in project.specs.values():
        if layer == "gold" and name in spec.gold:
            return spec, name
    raise UsageError(f"no spec defines {relation!r} (a gold relation is gold.<name>)")


def quarantine_table(catalog: str, table: str) -> str:
    from lh360.sql import quote

    return ".".join(quote(p, "databricks") for p in (catalog, "silver", f"{table}_quarantine"))


def step_payload(
    target: ResolvedTarget, spec: TableSpec, step: str, logical_id: str, gold_name: str | None = None
) -> dict[str, Any]:
    """The job's payload (lh360/spark/job.py's format) for one step of one table (aggregate: one gold table)."""
    s = settings_of(target)
    lake = Lake(target.lake)
    t = spec.table
    paths = {
        "landing": join(target.landing, spec.source.path) + "/",
        "state": lake.state(t),
        "bronze": lake.table("bronze", t),
    }
    if step in ("refine", "aggregate"):
        paths.update(silver=lake.table("silver", t), quarantine=lake.table("quarantine", t))
    payload: dict[str, Any] = {
        "step": step,
        "table": t,
        "run_id": logical_id,
        "catalog": s.catalog,
        "spec": spec.model_dump(mode="json", exclude={"checks"}),
        "paths": paths,
    }
    if step == "refine":
        payload["tables"] = {"quarantine": quarantine_table(s.catalog, t)}
    if step == "aggregate":
        names = [gold_name] if gold_name else list(spec.gold)
        payload["gold"] = {
            n: {"sql": gold_sql_databricks(spec.gold[n].sql, s.catalog), "path": lake.table("gold", n)} for n in names
        }
    return payload


def payload_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def payload_file(target: ResolvedTarget, token: str) -> str:
    """Where a payload too large for a task parameter is uploaded (a file path on the compute)."""
    return f"{workspace_dir_fs(settings_of(target).workspace_dir)}/{PAYLOADS_DIR}/{token}.json"


def submit_body(
    target: ResolvedTarget,
    spec: TableSpec,
    step: str,
    entry: Entry,
    *,
    timeout: float | None,
    gold_name: str | None = None,
) -> dict[str, Any]:
    """The exact JSON body of `POST /api/2.2/jobs/runs/submit` for one step (what `lh360 plan` shows)."""
    s = settings_of(target)
    payload = payload_json(step_payload(target, spec, step, entry.logical_id, gold_name))
    if len(payload.encode()) <= MAX_INLINE_PAYLOAD:
        params = ["--step", step, "--payload", payload]
    else:
        params = ["--step", step, "--payload-file", payload_file(target, entry.token)]
    task: dict[str, Any] = {
        "task_key": f"lh360_{step}",
        "spark_python_task": {"python_file": f"{workspace_dir_fs(s.workspace_dir)}/{JOB_FILE}", "parameters": params},
    }
    body: dict[str, Any] = {"run_name": f"lh360 {step} {gold_name or spec.table}", "idempotency_token": entry.token}
    compute = s.compute
    if compute == "serverless":
        task["environment_key"] = ENVIRONMENT_KEY
        body["environments"] = [
            {"environment_key": ENVIRONMENT_KEY, "spec": {"environment_version": ENVIRONMENT_VERSION}}
        ]
    elif isinstance(compute, ExistingCluster):
        task["existing_cluster_id"] = compute.existing_cluster_id
    else:
        task["new_cluster"] = dict(compute.new_cluster)
    body["tasks"] = [task]
    if timeout is not None:
        body["timeout_seconds"] = int(math.ceil(timeout)) + SERVER_TIMEOUT_GRACE
    return body


def _sdk_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """submit_body → keyword arguments of `w.jobs.submit` (SDK dataclasses); the SDK sends back `body`."""
    from databricks.sdk.service.jobs import JobEnvironment, SubmitTask

    kw = dict(body)
    kw["tasks"] = [SubmitTask.from_dict(t) for t in body["tasks"]]
    if "environments" in body:
        kw["environments"] = [JobEnvironment.from_dict(e) for e in body["environments"]]
    return kw


def plan_steps(project: Any, target: ResolvedTarget, tables: list[str] | None = None, to: str = "gold") -> list:
    """What `lh360 plan` shows for a databricks target (lh360.plan.build_plan calls this): see databricks_plan."""
    from lh360.engines.databricks_plan import plan_steps as steps

    return steps(project, target, tables, to)


# ---- results --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One step on Databricks: the run, how it ended, and the job's counters.

    `as_dict()` also carries the keys lh360's local results have (files, rows, rows_in, rows_out, …), so the
    run ledger and the reports treat both engines alike; what the job does not report is 0 or None. Those
    keys read as attributes too (`result.rows_in`).
    """

    step: str
    table: str  # the spec table (for aggregate, the gold table's owner)
    target: str
    relation: str  # what the step writes: bronze.x, silver.x, gold.y
    run_id: int | None = None
    run_page_url: str | None = None
    idempotency_token: str | None = None
    logical_id: str | None = None
    state: str | None = None  # life cycle state
    result_state: str | None = None
    seconds: float = 0.0
    attached: bool = False  # an earlier invocation had started this run (its token was reused); lh360 waited for it
    detached: bool = False  # --detach: submitted, not waited for
    summary: dict[str, Any] = field(default_factory=dict)  # the job's last-line JSON summary
    statements: list[str] = field(default_factory=list)  # SQL statement ids (aggregate_on: warehouse)

    @property
    def ok(self) -> bool:
        return self.detached or self.result_state == "SUCCESS"

    def as_dict(self) -> dict[str, Any]:
        job = {k: v for k, v in self.summary.items() if k not in ("lh360_job", "step", "table", "run_id")}
        d: dict[str, Any] = {
            "step": self.step,
            "table": self.table,
            "target": self.target,
            "relation": self.relation,
            "engine": "databricks",
            "run_id": self.run_id,
            "run_page_url": self.run_page_url,
            "idempotency_token": self.idempotency_token,
            "logical_id": self.logical_id,
            "state": self.state,
            "result_state": self.result_state,
            "seconds": round(self.seconds, 3),
            "attached": self.attached,
            "detached": self.detached,
            "job": job,
        }
        if self.statements:
            d["statements"] = list(self.statements)

        def n(key: str) -> int:
            v = job.get(key)
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

        if self.step == "ingest":
            d.update(
                files=n("files"), bytes=n("bytes"), rows=n("rows_in"), rescued=n("rescued"), malformed=n("malformed"),
                batches=[{"batch_id": i} for i in range(n("batches"))], bronze_version=None,
                new_columns=list(job.get("new_columns") or []),
            )  # fmt: skip
        elif self.step == "refine":
            d.update(
                rows_in=n("rows_in"), kept=n("kept"), rows_out=n("rows_out"), inserted=n("inserted"),
                updated=n("updated"), closed=n("closed"), quarantined=n("quarantined"), dropped=n("dropped"),
                warned=dict(job.get("warned") or {}), rule_failures=dict(job.get("failed") or {}),
                noop=not self.detached and "rows_in" in job and n("rows_in") == 0,
                bronze_from=None, bronze_to=None, silver_version=None,
            )  # fmt: skip
        else:
            d.update(rows_out=n("rows_out"), version=None, sources={})
        return d

    def __getattr__(self, name: str) -> Any:  # result.rows_in etc., as on the local engine's results
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.as_dict()
        if name in d:
            return d[name]
        raise AttributeError(name)


# ---- live status ----------------------------------------------------------------------------------


class _Status:
    """State changes as plain lines (cron logs); on a terminal also a live line with the elapsed time."""

    def __init__(self, out: Any, label: str) -> None:
        self.out = out
        self.label = label
        self.started = time.monotonic()
        self.last: str | None = None
        self.url: str | None = None
        self._live = None
        if out is not None and not out.json and not out.quiet and out.console.is_terminal:
            self._live = out.console.status(label)
            self._live.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, run: Any) -> None:
        state = describe_state(run)
        self.url = run.run_page_url or self.url
        if state != self.last:
            first = self.last is None
            self.last = state
            fields = {"run": self.label, "run_id": run.run_id, "state": state, "elapsed_s": round(self.elapsed(), 1)}
            log.info("run state", extra={"fields": fields})
            if first:
                _print(self.out, f"{self.label}: run {run.run_id} {state}" + (f"  {self.url}" if self.url else ""))
            else:
                _print(self.out, f"{self.label}: run {run.run_id} {state} after {_fmt(self.elapsed())}")
        if self._live is not None:
            self._live.update(f"{self.label}: run {run.run_id} {state} · {_fmt(self.elapsed())} · {self.url or ''}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _print(out: Any, text: str) -> None:
    if out is not None:
        out.print(text, markup=False, highlight=False)


def _value(enum: Any) -> str | None:
    return None if enum is None else getattr(enum, "value", str(enum))


def life_cycle(run: Any) -> str:
    return _value(getattr(run.state, "life_cycle_state", None)) or "PENDING"


def result_state(run: Any) -> str | None:
    return _value(getattr(run.state, "result_state", None)) if run.state else None


def describe_state(run: Any) -> str:
    lc, rs = life_cycle(run), result_state(run)
    return f"{lc}/{rs}" if rs and lc in TERMINAL_LIFE_CYCLE else lc


def is_terminal(run: Any) -> bool:
    return life_cycle(run) in TERMINAL_LIFE_CYCLE


# ---- the engine -----------------------------------------------------------------------------------

# Options set for the commands of one CLI invocation (`lh360.cli._databricks_options.engine_context`),
# used by every DatabricksEngine built meanwhile when the caller did not pass them itself.
CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "lh360_databricks_options", default=None
)


class DatabricksEngine:
    """Runs ingest / refine / aggregate of a `databricks` target as one-time runs, from the ops box.

    `timeout` (seconds or a duration like 45m; default the target's `databricks.timeout`, else none): a run
    still going after it is cancelled and the step exits 4. `detach`: submit and return at once (the result
    carries the run id). `run_id`: the logical id of this run for the idempotency tokens (see
    databricks_runs). `status_out` (or `out`): the CLI's Output, for the live status. `client`: a ready
    WorkspaceClient (tests). Options not given come from CONTEXT, then from the target.
    """

    def __init__(
        self,
        target: ResolvedTarget,
        *,
        timeout: float | str | None = None,
        detach: bool | None = None,
        run_id: str | None = None,
        out: Any = None,
        status_out: Any = None,
        poll_interval: float | None = None,
        cancel_wait: float = DEFAULT_CANCEL_WAIT,
        client: Any = None,
        journal: Journal | None = None,
    ) -> None:
        ctx = CONTEXT.get() or {}
        self.target = target
        self.settings = settings_of(target)
        timeout = next((v for v in (timeout, ctx.get("timeout"), self.settings.timeout) if v is not None), None)
        self.timeout = _seconds(timeout)
        self.detach = bool(detach if detach is not None else ctx.get("detach", False))
        self.run_id = run_id if run_id is not None else ctx.get("run_id")
        self.out = next((v for v in (status_out, out, ctx.get("status_out")) if v is not None), None)
        self.poll_interval = poll_seconds(poll_interval, DEFAULT_POLL_SECONDS)
        self.cancel_wait = cancel_wait
        self._client = client
        self.journal = journal or Journal(target)
        self._code_checked = False

    # ---- Engine protocol ------------------------------------------------------------------------

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None, **_: Any) -> RunResult:
        """landing → bronze: one run of the job's Auto Loader step."""
        return self.run_step("ingest", spec)

    def refine(self, spec: TableSpec, **_: Any) -> RunResult:
        """bronze → silver: one run of the job's refine step (expectations, dedupe, MERGE)."""
        if spec.silver is None:
            raise UsageError(f"{spec.table}: the spec has no silver section; nothing to refine")
        return self.run_step("refine", spec)

    def aggregate(self, project: Any, relation: str, **_: Any) -> RunResult:
        """Recompute `relation` (gold.<name>): one run of the job's aggregate step, or one statement on the
        SQL warehouse with `databricks.aggregate_on: warehouse`."""
        spec, name = gold_owner(project, relation)
        if self.settings.aggregate_on == "warehouse":
            return self.aggregate_on_warehouse(spec, name)
        return self.run_step("aggregate", spec, gold_name=name)

    # ---- pieces ---------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = workspace_client(self.target, retry_seconds=self.timeout)
        return self._client

    def check_code(self) -> None:
        """The job code in the workspace must be this lh360's (deploy uploads it; runs never do)."""
        if self._code_checked:
            return
        from databricks.sdk.errors import DatabricksError

        local = code_bundle().sha256
        path = f"{workspace_dir_api(self.settings.workspace_dir)}/{MANIFEST_FILE}"
        hint = f"run `lh360 -t {self.target.name} deploy`"
        try:
            remote = read_workspace_json(self.client, path) or {}
        except DatabricksError as exc:
            if is_not_found(exc):
                raise UsageError(f"the Spark job is not deployed to {self.settings.workspace_dir}: {hint}") from None
            raise api_error(f"reading {path}", exc) from None
        if remote.get("sha256") != local:
            raise UsageError(
                f"the Spark job in {self.settings.workspace_dir} (sha256 {str(remote.get('sha256'))[:12]}, "
                f"lh360 {remote.get('lh360_version')}) is not this lh360's (sha256 {local[:12]}, "
                f"lh360 {__version__}): {hint}"
            )
        self._code_checked = True

    def run_step(self, step: str, spec: TableSpec, gold_name: str | None = None) -> RunResult:
        """Submit one step (or find the run an earlier invocation submitted), wait for it, judge it."""
        from databricks.sdk.errors import DatabricksError

        name = gold_name or spec.table  # what the run is about: the table, or the gold table
        layer = "gold" if gold_name else ("bronze" if step == "ingest" else "silver")
        label = f"{step} {name}"
        started = time.monotonic()
        self.check_code()
        for _ in range(2):  # at most: a stale run of an earlier invocation reported, then a fresh one
            entry, resumed = self.journal.next_entry(step, name, self.run_id)
            body = submit_body(self.target, spec, step, entry, timeout=self.timeout, gold_name=gold_name)
            result = RunResult(
                step, spec.table, self.target.name, f"{layer}.{name}", idempotency_token=entry.token,
                logical_id=entry.logical_id, attached=resumed,
            )  # fmt: skip
            try:
                if "--payload-file" in body["tasks"][0]["spark_python_task"]["parameters"]:
                    self._upload_payload(step, spec, entry, gold_name)
                self.journal.submitted(step, name, entry)  # before the POST: a crash after it reuses the token
                log.info("submit", extra={"fields": {"run": label, "token": entry.token, "resumed": resumed}})
                with cancel_on_interrupt(partial(self._cancel_by_token, body, label, step, name, entry, started)):
                    run_id = int(self.client.jobs.submit(**_sdk_kwargs(body)).run_id)
                entry.run_id = run_id
                self.journal.save(step, name, entry)
                run = self.client.jobs.get_run(run_id)
            except (DatabricksError, TimeoutError) as exc:
                raise api_error(f"{label}: submitting the run", exc) from None
            result.run_id, result.run_page_url = run_id, run.run_page_url
            # a run this invocation did not start: a resumed token, or an explicit --run-id that already had one
            earlier = resumed or (self.run_id is not None and (is_terminal(run) or _started_before(run, started)))
            if earlier and is_terminal(run):
                if self.run_id is None:
                    # the run of an invocation that died ended while nobody watched: report it, then run anew
                    outcome = describe_state(run)
                    self._say(
                        f"{label}: run {run_id} of an earlier invocation (same token) had already ended {outcome}; "
                        "submitting a new run"
                    )
                    self.journal.finished(step, name, entry, outcome)
                    continue
                result.attached = True
                self._say(f"{label}: run {run_id} of --run-id {self.run_id} already ended {describe_state(run)}")
                return self._finish(run, result, entry, name, started)
            if earlier:
                result.attached = True
                self._say(f"{label}: attached to run {run_id}, started by an earlier invocation (same token)")
            if self.detach:
                result.state, result.detached = life_cycle(run), True
                result.seconds = time.monotonic() - started
                self._say(f"{label}: submitted run {run_id} (detached)  {run.run_page_url or ''}".rstrip())
                return result
            # a run another live invocation may be waiting for (an explicit --run-id it started) is not ours
            # to cancel; a run this invocation started, or resumed from one that died, is
            owned = not (earlier and self.run_id is not None)
            run = self._wait(run, label, step, name, entry, owned=owned)
            return self._finish(run, result, entry, name, started)
        raise EngineError(f"{label}: could not start a fresh run")  # pragma: no cover - the loop returns

    def _cancel_by_token(self, body: dict, label: str, step: str, name: str, entry: Entry, started: float) -> None:
        """Interrupted while submitting: the run may exist without lh360 knowing its id. The same token
        names it (or starts it, at most once): cancel it unless it was there before this invocation."""
        run_id = int(self.client.jobs.submit(**_sdk_kwargs(body)).run_id)
        if self.run_id is not None and _started_before(self.client.jobs.get_run(run_id), started):
            return
        self._say(f"{label}: interrupted while submitting; cancelling run {run_id}")
        self._cancel(run_id)
        entry.run_id = run_id
        self.journal.finished(step, name, entry, "CANCELED_BY_LH360")

    def _wait(self, run: Any, label: str, step: str, name: str, entry: Entry, *, owned: bool = True) -> Any:
        """Poll until the run ends; cancel it (if `owned`) on SIGINT/SIGTERM (re-raised) or at the deadline
        (RunTimeout)."""
        from databricks.sdk.errors import DatabricksError

        run_id = run.run_id
        status = _Status(self.out, label)
        deadline = Deadline(self.timeout)

        def cancel() -> None:
            if not owned:
                self._say(
                    f"{label}: leaving run {run_id} running (another invocation of --run-id {self.run_id} started it)"
                )
                return
            self._say(f"{label}: cancelling run {run_id}")
            self._cancel(run_id)
            self.journal.finished(step, name, entry, "CANCELED_BY_LH360")

        try:
            with cancel_on_interrupt(cancel):
                status.update(run)
                if is_terminal(run):
                    return run
                return poll(
                    lambda: self.client.jobs.get_run(run_id),
                    is_terminal,
                    deadline=deadline,
                    interval=self.poll_interval,
                    on_value=status.update,
                )
        except Expired:
            cancel()
            raise RunTimeout(
                f"{label}: Databricks run {run_id} did not finish within {_fmt(self.timeout)}"
                + ("; lh360 cancelled it" if owned else "; it goes on"),
                detail=f"run page: {status.url}" if status.url else None,
            ) from None
        except (DatabricksError, TimeoutError) as exc:
            if not deadline.expired():
                raise api_error(f"{label}: watching run {run_id}", exc) from None
            try:
                cancel()
            except Exception as cancel_exc:  # noqa: BLE001 - the workspace is failing: say so, still exit 4
                log.warning("could not cancel run %s: %s", run_id, _first_line(cancel_exc))
            raise RunTimeout(
                f"{label}: gave up on run {run_id} after {_fmt(self.timeout)}: {_first_line(exc)}"
            ) from None
        finally:
            status.close()

    def _cancel(self, run_id: int) -> None:
        """Cancel the run and wait (at most cancel_wait seconds) until Databricks says it ended."""
        self.client.jobs.cancel_run(run_id)
        try:
            poll(
                lambda: self.client.jobs.get_run(run_id),
                is_terminal,
                deadline=Deadline(self.cancel_wait),
                interval=min(self.poll_interval, 2.0),
            )
        except Expired:
            log.warning("run %s was asked to cancel and had not ended %ss later", run_id, self.cancel_wait)

    def _finish(self, run: Any, result: RunResult, entry: Entry, name: str, started: float) -> RunResult:
        """Judge a terminal run by its result_state, record it, and raise with the task's error if it failed."""
        label = f"{result.step} {name}"
        lc, rs = life_cycle(run), result_state(run)
        result.state, result.result_state = lc, rs
        result.run_page_url = run.run_page_url or result.run_page_url
        result.seconds = time.monotonic() - started
        self.journal.finished(result.step, name, entry, describe_state(run))
        output = self._output(run)
        result.summary = output.get("summary") or {}
        if lc == "TERMINATED" and rs == "SUCCESS":
            fields = {"run": label, "run_id": result.run_id, **_scalars(result.summary)}
            log.info("run succeeded", extra={"fields": fields})
            return result
        msg = (getattr(run.state, "state_message", None) or "").strip()
        error = output.get("error") or result.summary.get("error") or msg or "no error message"
        page = f"run page: {result.run_page_url}" if result.run_page_url else ""
        detail = "\n".join(x for x in (output.get("error_trace") or "", page) if x) or None
        where = f"{label}: Databricks run {result.run_id}"
        if rs == "TIMEDOUT":
            raise RunTimeout(f"{where} TIMEDOUT on Databricks (its timeout_seconds): {msg or error}", detail=detail)
        if result.summary.get("error_kind") == "expectation_failed":
            raise CheckFailed(f"{where} FAILED: {result.summary.get('error') or error}", detail=detail)
        if lc == "INTERNAL_ERROR":
            raise EngineError(f"{where} INTERNAL_ERROR: {_first_line(msg or error)}", detail=detail)
        if lc == "SKIPPED":
            raise EngineError(f"{where} was SKIPPED: {_first_line(msg or error)}", detail=detail)
        if rs == "CANCELED":
            raise EngineError(f"{where} was CANCELED (not by this lh360): {_first_line(msg or error)}", detail=detail)
        raise EngineError(f"{where} {rs or lc}: {_first_line(error)}", detail=detail)

    def _output(self, run: Any) -> dict[str, Any]:
        """The task's error, trace and the job's JSON summary (get_run_output of the TASK run)."""
        from lh360.spark.job import parse_summary

        task_run_id = run.tasks[0].run_id if run.tasks and run.tasks[0].run_id else run.run_id
        try:
            out = self.client.jobs.get_run_output(task_run_id)
        except Exception as exc:  # noqa: BLE001 - the run's state is the verdict; its output is a bonus
            log.warning("could not read the output of run %s: %s", task_run_id, _first_line(exc))
            return {}
        return {"error": out.error, "error_trace": _tail(out.error_trace), "summary": parse_summary(out.logs) or {}}

    def _upload_payload(self, step: str, spec: TableSpec, entry: Entry, gold_name: str | None) -> None:
        payload = payload_json(step_payload(self.target, spec, step, entry.logical_id, gold_name))
        folder = f"{workspace_dir_api(self.settings.workspace_dir)}/{PAYLOADS_DIR}"
        self.client.workspace.mkdirs(folder)
        write_workspace_file(self.client, f"{folder}/{entry.token}.json", payload.encode())

    def aggregate_on_warehouse(self, spec: TableSpec, name: str) -> RunResult:
        """`databricks.aggregate_on: warehouse`: the gold query as one statement on the SQL warehouse."""
        from lh360.checks.databricks_sql import DatabricksSQLRunner
        from lh360.spark.job import gold_sql

        started = time.monotonic()
        payload = step_payload(self.target, spec, "aggregate", self.run_id or "warehouse", name)
        runner = DatabricksSQLRunner(
            self.target, timeout=self.timeout, poll_interval=self.poll_interval, client=self.client
        )
        self._say(f"aggregate {name}: on SQL warehouse {runner.warehouse_id}")
        runner.execute(gold_sql(payload, name), timeout=self.timeout)
        count = runner.execute(f"SELECT count(*) AS n FROM {runner.table_name('gold', name)}", timeout=self.timeout)
        return RunResult(
            "aggregate", spec.table, self.target.name, f"gold.{name}", logical_id=payload["run_id"],
            state="TERMINATED", result_state="SUCCESS", seconds=time.monotonic() - started,
            summary={"rows_out": int(count.rows[0][0]) if count.rows else 0}, statements=list(runner.statements),
        )  # fmt: skip

    def _say(self, text: str) -> None:
        log.info(text)
        _print(self.out, text)


# ---- workspace files ------------------------------------------------------------------------------


def read_workspace_json(w: Any, path: str) -> dict[str, Any] | None:
    import base64

    from databricks.sdk.service.workspace import ExportFormat

    resp = w.workspace.export(path, format=ExportFormat.AUTO)
    try:
        return json.loads(base64.b64decode(resp.content or b"").decode() or "null")
    except ValueError:
        return None


def write_workspace_file(w: Any, path: str, content: bytes) -> None:
    """A workspace *file* (format RAW: never turned into a notebook), replacing any previous one."""
    import base64

    from databricks.sdk.service.workspace import ImportFormat

    w.workspace.import_(path, content=base64.b64encode(content).decode(), format=ImportFormat.RAW, overwrite=True)


# ---- helpers ---------------------------------------------------------------------------------------


def _seconds(value: float | str | None) -> float | None:
    """A timeout as seconds: a number, or a duration like 45m / 2h; None stays None (no limit)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        from lh360.durations import parse_duration

        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise UsageError(f"timeout: {exc}") from None
    if seconds <= 0:
        raise UsageError("timeout: must be more than 0 seconds")
    return seconds


def _fmt(seconds: float | None) -> str:
    from lh360.durations import format_duration

    if seconds is None:
        return "?"
    return format_duration(seconds) if seconds >= 1 else f"{seconds:.2f}s"


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def _tail(text: str | None, lines: int = 60) -> str | None:
    if not text:
        return None
    parts = text.rstrip().splitlines()
    return "\n".join(parts[-lines:])


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str)) and k != "lh360_job"}


def _started_before(run: Any, monotonic_start: float) -> bool:
    """Whether the run started before this step did (so another invocation submitted it)."""
    start_ms = getattr(run, "start_time", None)
    if not start_ms:
        return False
    return start_ms / 1000 < time.time() - (time.monotonic() - monotonic_start) - 1
