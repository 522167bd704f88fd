"""The Databricks engine: each step of a table is one one-time run (`jobs.submit`) of lh360's Spark job.

    ingest     landing → bronze   Auto Loader (cloudFiles, availableNow) in lh360/spark/job.py
    refine     bronze → silver    Delta stream → expectations → MERGE
    aggregate  silver → gold      CREATE OR REPLACE TABLE … AS <gold SQL>; on the job, or on the SQL
                                  warehouse with `databricks.aggregate_on: warehouse`
    replay     quarantine → silver  `quarantine replay`: quarantined rows judged again, marked, merged
                                  (replay.py)

A run is a `spark_python_task` on `<workspace_dir>/lh360_job.py` (uploaded by `lh360 deploy`) with
`--step` and `--payload` (or `--payload-file` when the payload is too large for a parameter), on
serverless compute (an `environments` entry) unless the target names `existing_cluster_id` or a
`new_cluster` (requests.py). lh360 polls `jobs.get_run` itself: it shows state changes, elapsed time and
the run page, judges an ended run by its `status` (results.py), shows the job's own error first, then the
task's trace on failure (exit 3; exit 1 for a `fail` expectation; exit 4 on a timeout), and cancels the run
it started on SIGINT/SIGTERM or timeout. Every run has a timeout (`databricks.timeout`, default 6h).
The submit body is posted verbatim (requests.py: what `lh360 plan` shows is what is sent). Idempotency
tokens and ownership: journal.py. What bronze already holds: landing_state.py. Full refresh and spec
drift of silver: refresh.py.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lh360 import __version__, pii
from lh360.config import ExistingCluster, Project, ResolvedTarget
from lh360.console import Console, NullConsole
from lh360.durations import format_elapsed, parse_timeout
from lh360.engines.base import (
    EngineOptions,
    Explanation,
    ForgetResult,
    IngestState,
    MaintainResult,
    MaintenanceWork,
    PlannedStep,
    Progress,
    RefineResult,
    RemoteRun,
    ReplayResult,
    SpecDrift,
    StepResult,
)
from lh360.engines.databricks import checkpoints, replay
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
from lh360.engines.databricks.code import MANIFEST_FILE, code_bundle, read_workspace_json
from lh360.engines.databricks.explain import explain
from lh360.engines.databricks.forget import forget, purge
from lh360.engines.databricks.journal import Entry, Journal, submitter_of
from lh360.engines.databricks.landing_format import describe, pending_multiline_arrays
from lh360.engines.databricks.landing_state import ingested
from lh360.engines.databricks.maintain import maintain
from lh360.engines.databricks.requests import (
    SUBMIT_PATH,
    existing_cluster_error,
    gold_owner,
    payload_file,
    payload_json,
    step_payload,
    submit_body,
    uc_access_problem,
    wire,
)
from lh360.engines.databricks.results import RunView, job_counters, step_result
from lh360.engines.databricks.statements import DatabricksSQLRunner
from lh360.errors import CheckFailed, EngineError, RunTimeout, UsageError, first_line
from lh360.spec import TableSpec, spec_hash
from lh360.storage import is_s3, store_for

if TYPE_CHECKING:
    from lh360.erasure import Journal as ErasureJournal
    from lh360.erasure import Subject

log = logging.getLogger("lh360.databricks")

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_CANCEL_WAIT = 30.0
GET_RUN_PATH = "/api/2.2/jobs/runs/get"


class DatabricksEngine:
    """Runs ingest / refine / aggregate of a `databricks` target as one-time runs, from the ops box.

    `options.timeout` (seconds; default the target's `databricks.timeout`, 6h unless set): a run still going
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
        self.new_checkpoint = options.new_checkpoint  # None, or a new generation's name ("" = minted)
        self._started: dict[tuple[str, str], str] = {}  # (step, table) → the generation this command started
        self._refresh: set[str] = set()  # tables whose refine this command runs as a full refresh
        self._sent: dict[tuple[str, str], dict[str, Any]] = {}  # (step, table) → the stream fields last sent
        self._code_checked = False
        self._compute_checked = False

    # ---- Engine protocol ------------------------------------------------------------------------

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None) -> StepResult:
        """landing → bronze: one run of the job's Auto Loader step. Refused (exit 2, naming them) while
        pending landing files hold JSON arrays over several lines, which Auto Loader cannot read as the
        local engine does (landing_format.py)."""

        arrays = pending_multiline_arrays(self.target, spec, ingested(self.target, spec).files)
        if arrays:
            raise UsageError(f"ingest {spec.table}: {describe(arrays)}")
        return self.run_step("ingest", spec)

    def refine(self, spec: TableSpec, *, full_refresh: bool = False) -> StepResult:
        """bronze → silver: one run of the job's refine step (expectations, dedupe, MERGE). `full_refresh`:
        silver and quarantine rebuilt from all of bronze in a new checkpoint generation (refresh.py)."""
        from lh360.engines.databricks import refresh

        if spec.silver is None:
            raise UsageError(f"{spec.table}: the spec has no silver section; nothing to refine")
        drift = refresh.spec_drift(self.target, spec)
        if full_refresh:
            refresh.check_bronze(self.target, spec)
            self._refresh.add(spec.table)
        try:
            result = self.run_step("refine", spec)
        finally:
            self._refresh.discard(spec.table)
        return self._refined(spec, result, drift)

    def _refined(self, spec: TableSpec, result: StepResult, drift: SpecDrift | None) -> StepResult:
        """What a refine run leaves: a full refresh finished (its generation marked done once the run was
        seen to succeed), and the spec silver is built with."""

        assert isinstance(result, RefineResult)
        sent = self._sent.get(("refine", spec.table), {})
        if sent.get("full_refresh"):
            result.full_refresh = True
            result.spec_hash, result.full_refresh_due = sent.get("spec_hash"), False
            if result.run is None or not result.run.detached:
                checkpoints.refresh_done(self.target, spec.table, str(sent["state_generation"]))
        elif drift is not None:
            result.spec_hash, result.full_refresh_due = drift.built_with, drift.due
        return result

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

        return forget(self, spec, subject, journal)

    def purge(self, relations: list[str]) -> dict[str, dict[str, int]]:
        """VACUUM with zero retention through the SQL warehouse (lh360.engines.databricks.forget)."""

        return purge(self, relations)

    def ingested(self, spec: TableSpec) -> IngestState:
        """The landing files the job's Auto Loader runs committed to bronze (their commits name them)."""

        state = ingested(self.target, spec)
        arrays = pending_multiline_arrays(self.target, spec, state.files)
        if arrays:  # `lh360 landing` shows it; `lh360 ingest` refuses them
            state.warnings.append(describe(arrays) + " (lh360 ingest refuses them)")
        return state

    def explain(self, project: Project, step: PlannedStep, *, inspect: bool = True) -> Explanation:
        """The exact jobs.submit body (or warehouse SQL) of the step, offline (explain.py)."""

        return explain(self, project, step, inspect)

    def replay_quarantine(self, spec: TableSpec) -> ReplayResult:
        """Quarantined rows judged against today's rules, those that pass merged into silver: one run of the
        job's replay step, after the lake was seen to hold both tables with silver's columns (replay.py)."""
        if spec.silver is None:
            raise UsageError(f"{spec.table}: the spec has no silver section, so nothing is ever quarantined")
        replay.check_tables(self.target, spec)
        result = self.run_step("replay", spec)
        assert isinstance(result, ReplayResult)
        return result

    def spec_drift(self, spec: TableSpec) -> SpecDrift | None:
        """Silver's `lh360.spec_hash` table property against the spec now, read from the lake (refresh.py)."""
        from lh360.engines.databricks.refresh import spec_drift

        return spec_drift(self.target, spec)

    def maintain(self, relation: str, work: MaintenanceWork) -> MaintainResult:
        """OPTIMIZE / VACUUM on the SQL warehouse; checkpoints and log cleanup are Databricks' (maintain.py)."""

        return maintain(self, relation, work)

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

    def check_compute(self) -> None:
        """An `existing_cluster_id` must name a cluster that can write Unity Catalog tables (its access mode),
        checked once before the first submit: a cluster without UC access would fail the run only after it
        started, with an error that does not say why. Serverless and `new_cluster` are checked offline."""
        compute = self.settings.compute
        if self._compute_checked or not isinstance(compute, ExistingCluster):
            return
        from databricks.sdk.errors import DatabricksError

        cluster_id = compute.existing_cluster_id
        try:
            cluster = self.client.clusters.get(cluster_id).as_dict()
        except DatabricksError as exc:
            if is_not_found(exc) or "does not exist" in first_line(exc):
                raise existing_cluster_error(
                    self.target, f"cluster {cluster_id!r} does not exist in {self.client.config.host}"
                ) from None
            raise api_error(
                f"reading cluster {cluster_id} (the principal needs CAN_ATTACH_TO on it to run lh360's job)", exc
            ) from None
        problem = uc_access_problem(cluster)
        if problem:
            name = cluster.get("cluster_name")
            about = f"cluster {cluster_id!r}" + (f" ({name})" if name else "")
            raise existing_cluster_error(self.target, f"{about}: data_security_mode {problem}")
        self._compute_checked = True

    def run_step(self, step: str, spec: TableSpec, gold_name: str | None = None) -> StepResult:
        """Submit one step (or find the run an earlier invocation submitted), wait for it, judge it."""
        from databricks.sdk.errors import DatabricksError

        name = gold_name or spec.table  # what the run is about: the table, or the gold table
        layer = "gold" if gold_name else ("bronze" if step == "ingest" else "silver")
        label = f"{step} {name}"
        relation = f"{layer}.{name}"
        started = time.monotonic()
        self.check_code()
        self.check_compute()
        for _ in range(3):  # at most: a cancelled run waited out, a stale run reported, then a fresh one
            entry, resumed = self.journal.next_entry(step, name, self.run_id)
            stream = self._stream(step, spec, resumed)
            body = submit_body(self.target, spec, step, entry, timeout=self.timeout, gold_name=gold_name, stream=stream)
            run_info = RemoteRun(idempotency_token=entry.token, logical_id=entry.logical_id, attached=resumed)
            try:
                if "--payload-file" in body["tasks"][0]["spark_python_task"]["parameters"]:
                    self._upload_payload(step, spec, entry, gold_name, stream)
                self.journal.submitted(step, name, entry)  # before the POST: a crash after it reuses the token
                log.info("submit", extra={"fields": {"run": label, "token": entry.token, "resumed": resumed}})
                with cancel_on_interrupt(partial(self._cancel_by_token, body, label, step, name, entry)):
                    run_id = self._post_submit(body)
                entry.run_id = run_id
                self.journal.save(step, name, entry)
                run = self._get_run(run_id)
            except (DatabricksError, TimeoutError) as exc:
                raise api_error(f"{label}: submitting the run", exc) from None
            run_info.run_id, run_info.run_page_url = run_id, run.run_page_url
            # the journal's submitter id against the run's: this box started the run, or it attached to one
            # another box or invocation started (never decided by comparing clocks)
            owned = self._owns(run, entry)
            if resumed and entry.cancel_requested and self.run_id is None:
                # an earlier invocation asked to cancel this run and exited before it ended: let it end
                # (two streams on one checkpoint never run at once), then start a fresh run
                self._say(f"{label}: run {run_id}, cancelled by an earlier invocation, has not ended; waiting for it")
                run = self._wait(run, label, step, name, entry, owned=owned)
                self.journal.finished(step, name, entry, "CANCELED_BY_LH360")
                self._remove_payload(entry)
                continue
            earlier = resumed or not owned
            if earlier and run.is_terminal():
                self._remove_payload(entry)
                if self.run_id is None:
                    # the run of an invocation that died ended while nobody watched: report it, then run anew
                    outcome = run.describe()
                    self._say(
                        f"{label}: run {run_id} of an earlier invocation (same token) had already ended {outcome}; "
                        "submitting a new run"
                    )
                    self.journal.finished(step, name, entry, outcome)
                    continue
                run_info.attached = True
                self._say(f"{label}: run {run_id} of --run-id {self.run_id} already ended {run.describe()}")
                return self._finish(run, step, spec.table, relation, run_info, entry, name, started)
            if earlier:
                run_info.attached = True
                self._say(f"{label}: attached to run {run_id}, started by an earlier invocation (same token)")
            if self.detach:
                run_info.state, run_info.detached = run.life_cycle(), True
                self._say(f"{label}: submitted run {run_id} (detached)  {run.run_page_url or ''}".rstrip())
                return step_result(step, spec.table, relation, run_info, time.monotonic() - started)
            run = self._wait(run, label, step, name, entry, owned=owned)
            return self._finish(run, step, spec.table, relation, run_info, entry, name, started)
        raise EngineError(f"{label}: could not start a fresh run")  # pragma: no cover - the loop returns

    def _stream(self, step: str, spec: TableSpec, resumed: bool) -> dict[str, Any]:
        """The checkpoint generation of an ingest/refine stream (checkpoints.py): the current one, a new one
        (--new-checkpoint, or a full refresh), or a refusal (exit 3) when the checkpoint was lost while its
        table holds data. A resumed submission already runs in its generation: it is not checked again.
        A refine also carries the spec's hash, and `full_refresh` while its generation's refresh is pending.
        A replay carries the refine stream's generation, which its app transaction follows (replay.py)."""

        if step == "replay":
            return replay.stream_fields(self.target, spec.table)
        if step not in checkpoints.LAYER_OF_STEP:
            return {}
        stream = self._generation(step, spec, resumed)
        if step == "refine":
            stream["spec_hash"] = spec_hash(spec)
            pending = checkpoints.refresh_pending(self.target, spec.table)
            if pending is not None and pending == stream.get("state_generation"):
                if spec.table not in self._refresh:
                    self._say(
                        f"refine {spec.table}: finishing the full refresh of silver.{spec.table} started in checkpoint "
                        f"generation {pending} (no run of it was seen to succeed)"
                    )
                stream["full_refresh"] = True
        self._sent[(step, spec.table)] = stream
        return stream

    def _generation(self, step: str, spec: TableSpec, resumed: bool) -> dict[str, Any]:

        layer = checkpoints.LAYER_OF_STEP[step]
        generation = checkpoints.current(self.target, spec.table, layer)
        refine = step == "refine"
        pending = refine and generation is not None and checkpoints.refresh_pending(self.target, spec.table) is not None
        asked = refine and spec.table in self._refresh
        if (self.new_checkpoint is not None or asked) and not resumed:
            key = (step, spec.table)
            if key not in self._started:  # one new generation per table and command, not per attempt
                # a new generation started while a full refresh is unfinished carries it on
                self._started[key] = checkpoints.start(
                    self.target, spec.table, layer, self.new_checkpoint or "", generation, full_refresh=asked or pending
                )
            return {"state_generation": self._started[key], **({} if asked or pending else {"recover": True})}
        if not resumed and not pending:  # a pending full refresh has nothing to lose: its first batch rebuilds
            folder = checkpoints.lost(self.target, spec, step, generation)
            if folder is not None:
                raise checkpoints.lost_error(self.target, spec, step, folder)
        return {"state_generation": generation} if generation else {}

    def _owns(self, run: RunView, entry: Entry) -> bool:
        """Whether this box's journal made the submission that created `run` (so lh360 may cancel it)."""
        if entry.submitter:
            return submitter_of(run.run_name) == entry.submitter
        return self.run_id is None  # a journal entry of an older lh360: its own logical run, as before

    def _post_submit(self, body: dict) -> int:
        """POST the body's exact bytes (requests.wire: what `lh360 plan` shows); the SDK's client still
        authenticates and retries 429/503 and lost connections (the token makes a retried POST one run)."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        workspace_id = getattr(self.client.config, "workspace_id", None)
        if workspace_id:
            headers["X-Databricks-Workspace-Id"] = str(workspace_id)
        answer = self.client.api_client.do("POST", SUBMIT_PATH, data=wire(body), headers=headers)
        return int(answer["run_id"])

    def _get_run(self, run_id: int) -> RunView:
        """`runs/get` as raw JSON (results.RunView): the SDK's dataclasses would turn a state they do not
        know into None."""
        headers = {"Accept": "application/json"}
        return RunView(self.client.api_client.do("GET", GET_RUN_PATH, query={"run_id": run_id}, headers=headers))

    def _cancel_by_token(self, body: dict, label: str, step: str, name: str, entry: Entry) -> None:
        """Interrupted while submitting: the run may exist without lh360 knowing its id. The same token
        names it (or starts it, at most once): cancel it if this box's submission created it."""
        run_id = self._post_submit(body)
        entry.run_id = run_id
        run = self._get_run(run_id)
        if not self._owns(run, entry):
            return
        self._say(f"{label}: interrupted while submitting; cancelling run {run_id}")
        self._cancel_and_record(run_id, step, name, entry)

    def _cancel_and_record(self, run_id: int, step: str, name: str, entry: Entry) -> None:
        """Cancel the run; the journal says "finished" only once the run was seen ending, else the cancel
        is recorded as requested and the next invocation waits for the run to end."""
        self.journal.cancel_requested(step, name, entry)
        final = self._cancel(run_id)
        if final is not None:
            self.journal.finished(step, name, entry, "CANCELED_BY_LH360")
            self._remove_payload(entry)

    def _wait(self, run: RunView, label: str, step: str, name: str, entry: Entry, *, owned: bool = True) -> RunView:
        """Poll until the run ends; cancel it (if `owned`) on SIGINT/SIGTERM (re-raised) or at the deadline
        (RunTimeout)."""
        from databricks.sdk.errors import DatabricksError

        run_id = run.run_id
        status = _RunStatus(self.console, label)
        deadline = Deadline(self.timeout)

        def cancel() -> None:
            if not owned:
                self._say(f"{label}: leaving run {run_id} running (another invocation or machine started it)")
                return
            self._say(f"{label}: cancelling run {run_id}")
            self._cancel_and_record(run_id, step, name, entry)

        try:
            with cancel_on_interrupt(cancel):
                status.update(run)
                if run.is_terminal():
                    return run
                return poll(
                    lambda: self._get_run(run_id),
                    lambda r: r.is_terminal(),
                    deadline=deadline,
                    interval=self.poll_interval,
                    on_value=status.update,
                )
        except Expired as exc:
            cancel()
            last = exc.last.describe() if isinstance(exc.last, RunView) else "?"
            raise RunTimeout(
                f"{label}: Databricks run {run_id} did not finish within {format_elapsed(self.timeout)} "
                f"(last seen {last})" + ("; lh360 cancelled it" if owned else "; it goes on"),
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

    def _cancel(self, run_id: int) -> RunView | None:
        """Cancel the run and wait (at most cancel_wait seconds) until Databricks says it ended; the run as
        last seen ended, or None when it had not ended by then."""
        self.client.jobs.cancel_run(run_id)
        try:
            return poll(
                lambda: self._get_run(run_id),
                lambda r: r.is_terminal(),
                deadline=Deadline(self.cancel_wait),
                interval=min(self.poll_interval, 2.0),
            )
        except Expired:
            log.warning("run %s was asked to cancel and had not ended %ss later", run_id, self.cancel_wait)
            return None

    def _finish(
        self,
        run: RunView,
        step: str,
        table: str,
        relation: str,
        run_info: RemoteRun,
        entry: Entry,
        name: str,
        started: float,
    ) -> StepResult:
        """Judge an ended run, record it, and raise with the job's own error (then the task's) if it failed."""
        label = f"{step} {name}"
        lc, rs = run.life_cycle(), run.result_state()
        run_info.state, run_info.result_state = lc, rs
        run_info.run_page_url = run.run_page_url or run_info.run_page_url
        cancelled_by_lh360 = entry.cancel_requested
        self.journal.finished(step, name, entry, run.describe())
        self._remove_payload(entry)
        output = self._output(run)
        summary = output.get("summary") or {}
        run_info.job = job_counters(summary)
        if rs == "SUCCESS":
            fields = {"run": label, "run_id": run_info.run_id, **_scalars(summary)}
            log.info("run succeeded", extra={"fields": fields})
            return step_result(step, table, relation, run_info, time.monotonic() - started)
        msg = run.state_message
        # the job's own error first: it catches everything and says what went wrong; the task's `error` is
        # then only the wrapper's word for the script's exit
        error = summary.get("error") or output.get("error") or msg or "no error message"
        page = f"run page: {run_info.run_page_url}" if run_info.run_page_url else ""
        task_error = output.get("error") if output.get("error") and output.get("error") != error else ""
        detail = "\n".join(x for x in (task_error, output.get("error_trace") or "", page) if x) or None
        where = f"{label}: Databricks run {run_info.run_id}"
        code = run.termination_code()
        if rs == "TIMEDOUT":
            raise RunTimeout(f"{where} TIMEDOUT on Databricks (its timeout_seconds): {msg or error}", detail=detail)
        if summary.get("error_kind") == "expectation_failed":
            raise CheckFailed(f"{where} FAILED: {summary.get('error') or error}", detail=detail)
        if lc == "INTERNAL_ERROR":
            raise EngineError(f"{where} INTERNAL_ERROR: {first_line(msg or error)}", detail=detail)
        if lc == "SKIPPED":
            raise EngineError(f"{where} was SKIPPED: {first_line(msg or error)}", detail=detail)
        if rs == "CANCELED":
            by = "by an earlier lh360 invocation" if cancelled_by_lh360 else "not by this lh360"
            raise EngineError(f"{where} was CANCELED ({by}): {first_line(msg or error)}", detail=detail)
        why = f" ({code})" if code and code not in (rs, "RUN_EXECUTION_ERROR") else ""
        raise EngineError(f"{where} {rs or lc}{why}: {first_line(error)}", detail=detail)

    def _output(self, run: RunView) -> dict[str, Any]:
        """The task's error, trace and the job's JSON summary (get_run_output of the TASK run)."""
        from lh360.spark.contract import parse_summary  # stdlib only

        task_run_id = run.task_run_id
        try:
            out = self.client.jobs.get_run_output(task_run_id)
        except Exception as exc:  # noqa: BLE001 - the run's state is the verdict; its output is a bonus
            log.warning("could not read the output of run %s: %s", task_run_id, first_line(exc))
            return {}
        return {"error": out.error, "error_trace": _tail(out.error_trace), "summary": parse_summary(out.logs) or {}}

    def _upload_payload(
        self, step: str, spec: TableSpec, entry: Entry, gold_name: str | None, stream: dict[str, Any] | None = None
    ) -> None:
        """A payload too large for a parameter, written to the lake's private `_lh360/payloads/`."""
        payload = payload_json(step_payload(self.target, spec, step, entry.logical_id, gold_name, stream))
        uri = payload_file(self.target, entry.token)
        try:
            if is_s3(uri):  # the lake bucket is private to lh360's identities
                store_for(uri, self.target.settings.aws).write_bytes(uri, payload.encode())
            else:  # a lake folder (development): readable by its owner only, from the first byte
                _write_private(Path(uri), payload.encode())
        except Exception as exc:  # noqa: BLE001 - S3 or a folder: say what failed, exit 3
            raise EngineError(
                f"{step} {gold_name or spec.table}: writing the payload to {uri}: {first_line(exc)}"
            ) from None

    def _remove_payload(self, entry: Entry) -> None:
        """Remove the payload file of an ended run (it holds the spec and the lake's paths)."""
        uri = payload_file(self.target, entry.token)
        try:
            store = store_for(uri, self.target.settings.aws)
            if store.exists(uri):
                store.delete(uri)
        except Exception as exc:  # noqa: BLE001 - a leftover file is no failure of the step
            log.warning("could not remove the payload file %s: %s", uri, first_line(exc))

    def aggregate_on_warehouse(self, spec: TableSpec, name: str) -> StepResult:
        """`databricks.aggregate_on: warehouse`: the gold query as one statement on the SQL warehouse."""
        from lh360.spark.contract import gold_sql

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

    def update(self, run: RunView) -> None:
        state = run.describe()
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


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600 in a 0700 folder), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
