"""The Databricks engine: each step of a table is one one-time run (`jobs.submit`) of lh360's Spark job.

    ingest     landing → bronze   Auto Loader (cloudFiles, availableNow) in lh360/spark/job.py
    refine     bronze → silver    Delta stream → expectations → MERGE
    aggregate  silver → gold      CREATE OR REPLACE TABLE … AS <gold SQL>; on the job, or on the SQL
                                  warehouse with `databricks.aggregate_on: warehouse`

A run is a `spark_python_task` on `<workspace_dir>/lh360_job.py` (uploaded by `lh360 deploy`) with
`--step` and `--payload` (or `--payload-file` when the payload is too large for a parameter), on
serverless compute (an `environments` entry) unless the target names `existing_cluster_id` or a
`new_cluster` (requests.py). lh360 polls `jobs.get_run` itself: it shows state changes, elapsed time and
the run page, judges TERMINATED by `result_state`, shows the task's error and trace on failure (exit 3;
exit 1 for a `fail` expectation; exit 4 on a timeout), and cancels the run it started on SIGINT/SIGTERM or
timeout. Idempotency tokens: journal.py. What bronze already holds: landing_state.py.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from lh360 import __version__
from lh360.config import Project, ResolvedTarget
from lh360.console import Console, NullConsole
from lh360.durations import format_elapsed, parse_timeout
from lh360.engines.base import (
    EngineOptions,
    Explanation,
    ForgetResult,
    IngestState,
    PlannedStep,
    Progress,
    RemoteRun,
    StepResult,
)
from lh360.engines.databricks.client import (
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
)
from lh360.engines.databricks.code import MANIFEST_FILE, code_bundle, read_workspace_json, write_workspace_file
from lh360.engines.databricks.journal import Entry, Journal
from lh360.engines.databricks.requests import (
    PAYLOADS_DIR,
    gold_owner,
    payload_json,
    sdk_kwargs,
    step_payload,
    submit_body,
)
from lh360.engines.databricks.results import (
    describe_state,
    is_terminal,
    job_counters,
    life_cycle,
    result_state,
    step_result,
)
from lh360.errors import CheckFailed, EngineError, RunTimeout, UsageError, first_line
from lh360.spec import TableSpec

if TYPE_CHECKING:
    from lh360.erasure import Journal as ErasureJournal
    from lh360.erasure import Subject

log = logging.getLogger("lh360.databricks")

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_CANCEL_WAIT = 30.0


class DatabricksEngine:
    """Runs ingest / refine / aggregate of a `databricks` target as one-time runs, from the ops box.

    `options.timeout` (seconds; default the target's `databricks.timeout`, else none): a run still going
    after it is cancelled and the step exits 4. `options.detach`: submit and return at once (the result
    carries the run id). `options.run_id`: the logical id of this run for the idempotency tokens (journal.py).
    `console`: where state changes are shown. `client`: a ready WorkspaceClient (tests).
    """

    name = "databricks"

    def __init__(
        self,
        target: ResolvedTarget,
        options: EngineOptions | None = None,
        *,
        console: Console | None = None,
        poll_interval: float | None = None,
        cancel_wait: float = DEFAULT_CANCEL_WAIT,
        client: Any = None,
        journal: Journal | None = None,
    ) -> None:
        options = options or EngineOptions()
        self.target = target
        self.settings = settings_of(target)
        self.timeout = options.timeout if options.timeout is not None else parse_timeout(self.settings.timeout)
        self.detach = options.detach
        if options.run_id is not None and not options.run_id.strip():
            raise UsageError("--run-id: must not be empty")
        self.run_id = options.run_id.strip() if options.run_id else None
        self.console: Console = console or NullConsole()
        self.poll_interval = poll_seconds(poll_interval, DEFAULT_POLL_SECONDS)
        self.cancel_wait = cancel_wait
        self._client = client
        self.journal = journal or Journal(target)
        self._code_checked = False

    # ---- Engine protocol ------------------------------------------------------------------------

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None) -> StepResult:
        """landing → bronze: one run of the job's Auto Loader step."""
        return self.run_step("ingest", spec)

    def refine(self, spec: TableSpec, *, full_refresh: bool = False) -> StepResult:
        """bronze → silver: one run of the job's refine step (expectations, dedupe, MERGE)."""
        if full_refresh:
            raise UsageError(
                f"--full-refresh runs on the local engine only; target {self.target.name!r} is on Databricks"
            )
        if spec.silver is None:
            raise UsageError(f"{spec.table}: the spec has no silver section; nothing to refine")
        return self.run_step("refine", spec)

    def aggregate(self, project: Project, relation: str) -> StepResult:
        """Recompute `relation` (gold.<name>): one run of the job's aggregate step, or one statement on the
        SQL warehouse with `databricks.aggregate_on: warehouse`."""
        spec, name = gold_owner(project, relation)
        _pii_on_databricks(project, relation, spec, name, self.settings.aggregate_on)
        if self.settings.aggregate_on == "warehouse":
            return self.aggregate_on_warehouse(spec, name)
        return self.run_step("aggregate", spec, gold_name=name)

    def forget(self, spec: TableSpec, subject: Subject, journal: ErasureJournal) -> ForgetResult:
        """Erase a subject: the lake tables through the SQL warehouse, the landing files from here
        (lh360.engines.databricks.forget)."""
        from lh360.engines.databricks.forget import forget

        return forget(self, spec, subject, journal)

    def purge(self, relations: list[str]) -> dict[str, dict[str, int]]:
        """VACUUM with zero retention through the SQL warehouse (lh360.engines.databricks.forget)."""
        from lh360.engines.databricks.forget import purge

        return purge(self, relations)

    def ingested(self, spec: TableSpec) -> IngestState:
        """The landing files the job's Auto Loader runs committed to bronze (their commits name them)."""
        from lh360.engines.databricks.landing_state import ingested

        return ingested(self.target, spec)

    def explain(self, project: Project, step: PlannedStep, *, inspect: bool = True) -> Explanation:
        """The exact jobs.submit body (or warehouse SQL) of the step, offline (explain.py)."""
        from lh360.engines.databricks.explain import explain

        return explain(self, project, step)

    # ---- pieces ---------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
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

    def run_step(self, step: str, spec: TableSpec, gold_name: str | None = None) -> StepResult:
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
            run_info = RemoteRun(idempotency_token=entry.token, logical_id=entry.logical_id, attached=resumed)
            relation = f"{layer}.{name}"
            try:
                if "--payload-file" in body["tasks"][0]["spark_python_task"]["parameters"]:
                    self._upload_payload(step, spec, entry, gold_name)
                self.journal.submitted(step, name, entry)  # before the POST: a crash after it reuses the token
                log.info("submit", extra={"fields": {"run": label, "token": entry.token, "resumed": resumed}})
                with cancel_on_interrupt(partial(self._cancel_by_token, body, label, step, name, entry, started)):
                    run_id = int(self.client.jobs.submit(**sdk_kwargs(body)).run_id)
                entry.run_id = run_id
                self.journal.save(step, name, entry)
                run = self.client.jobs.get_run(run_id)
            except (DatabricksError, TimeoutError) as exc:
                raise api_error(f"{label}: submitting the run", exc) from None
            run_info.run_id, run_info.run_page_url = run_id, run.run_page_url
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
                run_info.attached = True
                self._say(f"{label}: run {run_id} of --run-id {self.run_id} already ended {describe_state(run)}")
                return self._finish(run, step, spec.table, relation, run_info, entry, name, started)
            if earlier:
                run_info.attached = True
                self._say(f"{label}: attached to run {run_id}, started by an earlier invocation (same token)")
            if self.detach:
                run_info.state, run_info.detached = life_cycle(run), True
                self._say(f"{label}: submitted run {run_id} (detached)  {run.run_page_url or ''}".rstrip())
                return step_result(step, spec.table, relation, run_info, time.monotonic() - started)
            # a run another live invocation may be waiting for (an explicit --run-id it started) is not ours
            # to cancel; a run this invocation started, or resumed from one that died, is
            owned = not (earlier and self.run_id is not None)
            run = self._wait(run, label, step, name, entry, owned=owned)
            return self._finish(run, step, spec.table, relation, run_info, entry, name, started)
        raise EngineError(f"{label}: could not start a fresh run")  # pragma: no cover - the loop returns

    def _cancel_by_token(self, body: dict, label: str, step: str, name: str, entry: Entry, started: float) -> None:
        """Interrupted while submitting: the run may exist without lh360 knowing its id. The same token
        names it (or starts it, at most once): cancel it unless it was there before this invocation."""
        run_id = int(self.client.jobs.submit(**sdk_kwargs(body)).run_id)
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
        status = _RunStatus(self.console, label)
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
                f"{label}: Databricks run {run_id} did not finish within {format_elapsed(self.timeout)}"
                + ("; lh360 cancelled it" if owned else "; it goes on"),
                detail=f"run page: {status.url}" if status.url else None,
            ) from None
        except (DatabricksError, TimeoutError) as exc:
            if not deadline.expired():
                raise api_error(f"{label}: watching run {run_id}", exc) from None
            try:
                cancel()
            except Exception as cancel_exc:  # noqa: BLE001 - the workspace is failing: say so, still exit 4
                log.warning("could not cancel run %s: %s", run_id, first_line(cancel_exc))
            raise RunTimeout(
                f"{label}: gave up on run {run_id} after {format_elapsed(self.timeout)}: {first_line(exc)}"
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

    def _finish(
        self,
        run: Any,
        step: str,
        table: str,
        relation: str,
        run_info: RemoteRun,
        entry: Entry,
        name: str,
        started: float,
    ) -> StepResult:
        """Judge a terminal run by its result_state, record it, and raise with the task's error if it failed."""
        label = f"{step} {name}"
        lc, rs = life_cycle(run), result_state(run)
        run_info.state, run_info.result_state = lc, rs
        run_info.run_page_url = run.run_page_url or run_info.run_page_url
        self.journal.finished(step, name, entry, describe_state(run))
        output = self._output(run)
        summary = output.get("summary") or {}
        run_info.job = job_counters(summary)
        if lc == "TERMINATED" and rs == "SUCCESS":
            fields = {"run": label, "run_id": run_info.run_id, **_scalars(summary)}
            log.info("run succeeded", extra={"fields": fields})
            return step_result(step, table, relation, run_info, time.monotonic() - started)
        msg = (getattr(run.state, "state_message", None) or "").strip()
        error = output.get("error") or summary.get("error") or msg or "no error message"
        page = f"run page: {run_info.run_page_url}" if run_info.run_page_url else ""
        detail = "\n".join(x for x in (output.get("error_trace") or "", page) if x) or None
        where = f"{label}: Databricks run {run_info.run_id}"
        if rs == "TIMEDOUT":
            raise RunTimeout(f"{where} TIMEDOUT on Databricks (its timeout_seconds): {msg or error}", detail=detail)
        if summary.get("error_kind") == "expectation_failed":
            raise CheckFailed(f"{where} FAILED: {summary.get('error') or error}", detail=detail)
        if lc == "INTERNAL_ERROR":
            raise EngineError(f"{where} INTERNAL_ERROR: {first_line(msg or error)}", detail=detail)
        if lc == "SKIPPED":
            raise EngineError(f"{where} was SKIPPED: {first_line(msg or error)}", detail=detail)
        if rs == "CANCELED":
            raise EngineError(f"{where} was CANCELED (not by this lh360): {first_line(msg or error)}", detail=detail)
        raise EngineError(f"{where} {rs or lc}: {first_line(error)}", detail=detail)

    def _output(self, run: Any) -> dict[str, Any]:
        """The task's error, trace and the job's JSON summary (get_run_output of the TASK run)."""
        from lh360.spark.job import parse_summary  # stdlib-only part of the job

        task_run_id = run.tasks[0].run_id if run.tasks and run.tasks[0].run_id else run.run_id
        try:
            out = self.client.jobs.get_run_output(task_run_id)
        except Exception as exc:  # noqa: BLE001 - the run's state is the verdict; its output is a bonus
            log.warning("could not read the output of run %s: %s", task_run_id, first_line(exc))
            return {}
        return {"error": out.error, "error_trace": _tail(out.error_trace), "summary": parse_summary(out.logs) or {}}

    def _upload_payload(self, step: str, spec: TableSpec, entry: Entry, gold_name: str | None) -> None:
        payload = payload_json(step_payload(self.target, spec, step, entry.logical_id, gold_name))
        folder = f"{workspace_dir_api(self.settings.workspace_dir)}/{PAYLOADS_DIR}"
        self.client.workspace.mkdirs(folder)
        write_workspace_file(self.client, f"{folder}/{entry.token}.json", payload.encode())

    def aggregate_on_warehouse(self, spec: TableSpec, name: str) -> StepResult:
        """`databricks.aggregate_on: warehouse`: the gold query as one statement on the SQL warehouse."""
        from lh360.engines.databricks.statements import DatabricksSQLRunner
        from lh360.spark.job import gold_sql

        started = time.monotonic()
        payload = step_payload(self.target, spec, "aggregate", self.run_id or "warehouse", name)
        runner = DatabricksSQLRunner(
            self.target, timeout=self.timeout, poll_interval=self.poll_interval, client=self.client
        )
        self._say(f"aggregate {name}: on SQL warehouse {runner.warehouse_id}")
        runner.execute(gold_sql(payload, name), timeout=self.timeout)
        count = runner.execute(f"SELECT count(*) AS n FROM {runner.table_name('gold', name)}", timeout=self.timeout)
        run_info = RemoteRun(
            logical_id=payload["run_id"], state="TERMINATED", result_state="SUCCESS",
            job={"rows_out": int(count.rows[0][0]) if count.rows else 0}, statements=list(runner.statements),
        )  # fmt: skip
        return step_result("aggregate", spec.table, f"gold.{name}", run_info, time.monotonic() - started)

    def _say(self, text: str) -> None:
        log.info(text)
        self.console.say(text)


class _RunStatus:
    """A run's state changes as lines (cron logs, JSON logs) and, on a terminal, a live line with the
    elapsed time and the run page."""

    def __init__(self, console: Console, label: str) -> None:
        self.console = console
        self.label = label
        self.started = time.monotonic()
        self.last: str | None = None
        self.url: str | None = None
        self._live = console.live(label)

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
                self.console.say(f"{self.label}: run {run.run_id} {state}" + (f"  {self.url}" if self.url else ""))
            else:
                self.console.say(f"{self.label}: run {run.run_id} {state} after {format_elapsed(self.elapsed())}")
        self._live.update(
            f"{self.label}: run {run.run_id} {state} · {format_elapsed(self.elapsed())} · {self.url or ''}"
        )

    def close(self) -> None:
        self._live.close()


# ---- helpers ---------------------------------------------------------------------------------------


def _pii_on_databricks(project: Project, relation: str, spec: TableSpec, name: str, where: str) -> None:
    """What silver.pii needs of a gold query on Databricks: no hidden column read (as locally), its spec's own
    silver only (the job applies that spec's rules), and the job (a warehouse statement has no key)."""
    from lh360 import pii

    pii.check_gold(project, relation)
    foreign = pii.foreign_pii(project, relation)
    if foreign:
        raise UsageError(
            f"{relation} reads {', '.join(foreign)}, personal data of another spec that the Databricks job "
            "cannot protect in a gold query; read it through a gold table of that spec"
        )
    if where == "warehouse" and pii.databricks_gold_views(spec, name, "c"):
        raise UsageError(
            f"{relation} reads personal data that silver.pii hashes, masks or hides from gold: on Databricks that "
            "takes the job (databricks.aggregate_on: job)"
        )


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
