"""One lakehouse, one target: the application context every command works through.

`Lakehouse(project, target)` owns the services a command needs, each built once on first use and each
replaceable (tests pass a fake engine, a disabled ledger, a capturing console):

    engine     the target's engine (lh360.engines.engine_for), built with the command's EngineOptions
    ledger     the run and check ledgers (lh360.ledger)
    console    where progress and state changes go (lh360.console; the CLI passes its own)

and runs the verbs as cron needs them: each step under its table's lock (a second run exits 75, or waits
`wait_lock` seconds), one run-ledger row per step, typed results back. Commands that chain steps
(`promote`, `run`) take every lock they need once, up front, in name order, so two runs never wait on each
other in a cycle. Library functions return data; rendering lives in lh360.cli.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lh360 import forget as erase
from lh360 import maintenance as m
from lh360 import signals
from lh360.checks import validate
from lh360.config import Project, ResolvedTarget
from lh360.console import Console, NullConsole
from lh360.deps import owner_of, promote_scope
from lh360.engines import engine_for
from lh360.engines.base import (
    MISSING_TABLE,
    AggregateResult,
    Engine,
    EngineOptions,
    ForgetResult,
    IngestResult,
    MaintainResult,
    RefineResult,
    ReplayResult,
)
from lh360.erasure import Journal, parse_keys, subject
from lh360.errors import CheckFailed, Interrupted, LH360Error, LockBusy, UsageError
from lh360.inventory import inventory
from lh360.landing import check_landing
from lh360.ledger import SUMMARY_FIELDS, Ledger
from lh360.lock import table_lock
from lh360.maintenance import TASKS
from lh360.plan import build_plan
from lh360.quarantine import quarantine_listing

if TYPE_CHECKING:
    from lh360.checks.validate import ValidationReport
    from lh360.landing import LandingReport
    from lh360.maintenance import Overrides
    from lh360.plan import Plan
    from lh360.quarantine import QuarantineListing

LAYERS_TO = ("silver", "gold")


@dataclass
class Promotion:
    """What `promote` did: the silver refines, then the gold aggregates."""

    refine: list[RefineResult] = field(default_factory=list)
    aggregate: list[AggregateResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"refine": [r.as_dict() for r in self.refine], "aggregate": [a.as_dict() for a in self.aggregate]}


@dataclass
class RunSummary:
    """What `lh360 run` did, step by step, and the exit code of the first failing step (0 when all passed)."""

    target: str
    run_id: str
    tables: list[str]
    ok: bool = True
    exit_code: int = 0
    failed_step: str | None = None
    error: str | None = None
    error_detail: str | None = None
    # each step's outcome, None until the step completed
    landing: list[LandingReport] | None = None
    ingest: list[IngestResult] | None = None
    promotion: Promotion | None = None
    validation: ValidationReport | None = None
    maintenance: list[MaintainResult] | None = None  # the maintenance that was due (tables where something ran)
    full_refresh_due: list[str] = field(default_factory=list)  # silver built with another spec: never done by run
    steps: list[dict[str, Any]] = field(default_factory=list)  # the run-ledger rows this run wrote

    def fail(self, step: str, exc: LH360Error | Interrupted) -> None:
        self.ok, self.exit_code, self.failed_step, self.error = False, exc.exit_code, step, exc.message
        self.error_detail = exc.detail

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "target": self.target,
            "run_id": self.run_id,
            "tables": self.tables,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "failed_step": self.failed_step,
            "error": self.error,
            "full_refresh_due": self.full_refresh_due,
        }
        if self.error_detail:
            d["error_detail"] = self.error_detail
        if self.landing is not None:
            d["landing"] = [r.as_dict() for r in self.landing]
        if self.ingest is not None:
            d["ingest"] = [r.as_dict() for r in self.ingest]
        if self.promotion is not None:
            d.update(self.promotion.as_dict())
        if self.validation is not None:
            d["validate"] = self.validation.as_dict()
        if self.maintenance is not None:
            d["maintenance"] = [r.as_dict() for r in self.maintenance]
        d["steps"] = self.steps
        return d


@dataclass
class Lakehouse:
    project: Project
    target: ResolvedTarget
    options: EngineOptions = field(default_factory=EngineOptions)
    console: Console = field(default_factory=NullConsole)
    wait_lock: float = 0.0
    engine_override: Engine | None = None
    ledger_override: Ledger | None = None

    # ---- services ----------------------------------------------------------------------------------

    @cached_property
    def engine(self) -> Engine:
        if self.engine_override is not None:
            return self.engine_override
        return engine_for(self.target, self.options, console=self.console)

    @cached_property
    def ledger(self) -> Ledger:
        if self.ledger_override is not None:
            return self.ledger_override
        return Ledger(self.target)

    # ---- locks ---------------------------------------------------------------------------------------

    @contextmanager
    def locks(self, tables: Iterable[str]) -> Iterator[list[str]]:
        """Hold the locks of all `tables`, taken in name order."""
        names = sorted(set(tables))
        with ExitStack() as stack:
            for name in names:
                stack.enter_context(self._table_lock(name))
            yield names

    # ---- verbs ----------------------------------------------------------------------------------------

    def plan(self, tables: list[str] | None = None, to: str = "gold", *, inspect: bool = True) -> Plan:
        return build_plan(self.project, self.target, self.engine, tables, to, inspect=inspect)

    def tables(self) -> list[dict[str, Any]]:
        """`lh360 tables`: per relation of every spec, rows, version, last commit and run; silver rows say
        whether a full refresh is due (the spec changed since silver was built)."""

        return inventory(self.project, self.target, self.engine)

    def landing(self, tables: list[str] | None = None, *, full_listing: bool | None = None) -> list[LandingReport]:
        return [
            check_landing(self.target, spec, self.engine.ingested(spec), full_listing=full_listing)
            for spec in self.project.select(tables)
        ]

    def ingest(self, tables: list[str] | None = None, *, locked: bool = False) -> list[IngestResult]:
        """Ingest each table under its lock; the first failure stops (its exception carries the exit code)."""
        results = []
        for spec in self.project.select(tables):
            with (
                self._lock_unless(locked, spec.table),
                self.ledger.step(spec.table, f"bronze.{spec.table}", "ingest") as rec,
            ):
                result = self._ingest_one(spec)
                rec.take(result)
            results.append(result)
            self.console.step_finished(result)
        return results

    def _ingest_one(self, spec: Any) -> IngestResult:
        signals.check()  # a signal some library swallowed stops the run between steps
        ticker: Any = None

        def progress(event: str, **kw: Any) -> None:
            nonlocal ticker
            if event == "start" and kw.get("files") and kw.get("bytes", 0) > 0:
                ticker = self.console.progress(f"ingest {kw['table']}", kw["bytes"])
            elif event == "batch" and ticker is not None:
                ticker.advance(kw["batch"].bytes)

        try:
            return self.engine.ingest(spec, progress=progress)
        finally:
            if ticker is not None:
                ticker.close()

    def promote(
        self, tables: list[str] | None, to: str, *, locked: bool = False, full_refresh: bool = False
    ) -> Promotion:
        """`promote --to silver|gold`: refine, then (gold) every gold query in dependency order.
        `full_refresh`: silver rebuilt from all of bronze (the engine's refine), gold from silver."""
        if to not in LAYERS_TO:
            raise UsageError(f"--to must be silver or gold, not {to!r}")
        scope = promote_scope(self.project, tables, to)
        promotion = Promotion()
        with ExitStack() as stack:
            if not locked:
                stack.enter_context(self.locks(scope.tables))
            for table in scope.silver:
                promotion.refine.append(self._refine_one(table, full_refresh))
            if to == "gold":
                for relation in scope.gold:
                    promotion.aggregate.append(self._aggregate_one(relation, full_refresh))
        return promotion

    def _refine_one(self, table: str, full_refresh: bool = False) -> RefineResult:
        signals.check()  # a signal some library swallowed stops the run between steps
        spec = self.project.specs[table]
        with self.ledger.step(table, f"silver.{table}", "refine") as rec:
            result = self.engine.refine(spec, full_refresh=full_refresh)
            rec.take(result)
        self.console.step_finished(result)
        return result

    def _aggregate_one(self, relation: str, full_refresh: bool = False) -> AggregateResult:
        signals.check()  # a signal some library swallowed stops the run between steps
        table = owner_of(self.project.specs, relation).table
        with self.ledger.step(table, relation, "aggregate") as rec:
            result = self.engine.aggregate(self.project, relation)
            rec.take(result)
            if full_refresh:  # gold is always recomputed from silver; the ledger says why this time
                rec.detail["full_refresh"] = True
        self.console.step_finished(result)
        return result

    def forget(self, table: str, keys: list[str], *, vacuum: bool = False, require_match: bool = False) -> ForgetResult:
        """`lh360 forget`: erase one data subject from every layer of `table` (lh360.forget): the engine
        erases landing, bronze, silver and quarantine; then the check ledger's samples are scrubbed, the gold
        relations reading its silver recomputed, the tables purged (`vacuum`) or marked for `maintain`, and
        the erasure ledger gets its row. Holds the table's lock and those of the gold relations' specs.
        `require_match`: CheckFailed (exit 1) when the key matched nothing."""

        (spec,) = self.project.select([table])
        who = subject(spec, parse_keys(spec, keys))
        gold = erase.dependent_gold(self.project, spec.table)
        owners = {owner_of(self.project.specs, g).table for g in gold}
        with self.locks({spec.table, *owners}), self.ledger.step(spec.table, f"*.{spec.table}", "forget") as rec:
            signals.check()
            journal = Journal.open(self.target, who, self.ledger.run_id)
            result = self.engine.forget(spec, who, journal)
            samples = erase.scrub_samples(self.target, who, journal.fingerprints())
            if samples:
                journal.count(erase.CHECKS_LEDGER, samples, 1)
            result.layers[erase.CHECKS_LEDGER] = journal.counted(erase.CHECKS_LEDGER)
            erased = result.matched or journal.resumed
            if erased:
                for relation in erase.existing(self.target, gold):
                    self._aggregate_one(relation)
                    result.gold.append(relation)
            # every table that may remember the subject (a run that died after a commit did not count it)
            held = erase.existing(self.target, [*erase.relations_of(spec), *gold, erase.CHECKS_LEDGER])
            if vacuum:
                pending = erase.pending_purges(self.target, [spec.table]).get(spec.table, [])
                result.purged = self.engine.purge(erase.existing(self.target, sorted({*held, *pending})))
                result.vacuumed = True
                erase.purge_done(self.target, spec.table)
            elif erased:
                erase.mark_purge(self.target, spec.table, held)
            result.resumed = journal.resumed
            row = erase.ledger_row(result, who, journal)
            if not (journal.resumed and self.ledger.has_erasure(who.request, row["requested_at"])):
                self.ledger.record_erasure(row)  # once per request, even when its first run died after it
            journal.close()
            rec.rows_in = rec.rows_out = result.rows
            rec.detail = {"request": who.request, "layers": result.layers, "gold": result.gold, "vacuumed": vacuum}
        self.console.step_finished(result)
        if require_match and not result.matched:
            raise CheckFailed(f"{spec.table}: the key matched nothing in any layer (--require-match)")
        return result

    def validate(
        self, tables: list[str] | None = None, layer: str | None = None, *, validator: str | None = None
    ) -> ValidationReport:
        """Run and record every check; one `validate` row in the run ledger."""

        specs = self.project.select(tables)
        names = [s.table for s in specs] if tables else None
        with self.ledger.step(",".join(s.table for s in specs) if tables else "*", layer or "*", "validate") as rec:
            report = validate(self.project, self.target, names, layer, engine=validator, ledger=self.ledger)
            rec.status = "ok" if report.ok else ("failed" if report.exit_code == 1 else "error")
            rec.detail = {
                "passed": report.count("pass"),
                "warned": report.count("warn"),
                "failed": report.count("fail"),
                "errors": report.count("error"),
                "queries": report.queries,
                "engine": report.dialect,
            }
        return report

    def quarantine(self, table: str) -> QuarantineListing:
        """`quarantine list`: the table's quarantined rows by rule and batch (read only, no lock)."""

        (spec,) = self.project.select([table])
        return quarantine_listing(self.target, spec)

    def replay_quarantine(self, table: str) -> ReplayResult:
        """`quarantine replay`: under the table's lock, the engine re-evaluates the quarantined rows against
        the spec's rules and merges those that pass; one run-ledger row."""
        (spec,) = self.project.select([table])
        if spec.silver is None:
            raise UsageError(f"{table}: the spec has no silver section, so nothing is ever quarantined")
        with self._table_lock(table), self.ledger.step(table, f"silver.{table}", "replay") as rec:
            signals.check()
            result = self.engine.replay_quarantine(spec)
            rec.rows_in, rec.rows_out = result.evaluated, result.inserted + result.updated
            rec.version_after = result.silver_version
            rec.detail = {k: v for k, v in result.as_dict().items() if k not in ("step", "relation", "table", "engine")}
        return result

    def maintain(
        self,
        tables: list[str] | None = None,
        *,
        overrides: Overrides | None = None,
        due_only: bool = False,
        ledgers: bool | None = None,
        locked: bool = False,
    ) -> list[MaintainResult]:
        """Compaction, checkpoints, log cleanup and VACUUM of every lake table of `tables` (all specs when
        None), quarantine included, and of the ledgers (`ledgers`; default: when no table is named). Each
        spec's tables under its lock; `due_only`: only what the `maintenance:` policy says is due (`run`),
        else every task the policy has not turned off, or those `overrides.tasks` names. One run-ledger row
        per table where something ran."""

        overrides = overrides or m.Overrides()
        overrides.check()
        now = m.now()
        results: list[MaintainResult] = []
        for spec in self.project.select(tables):
            with self._lock_unless(locked, spec.table):
                pol = m.policy(self.target, spec)
                record = m.load_record(self.target, spec.table)
                try:
                    for relation in m.relations(spec):
                        tasks = self._maintenance_tasks(record, relation, pol, now, overrides, due_only)
                        if tasks:
                            work = m.work_for(pol, tasks, overrides=overrides)
                            result = self._maintain_one(
                                spec.table, relation, lambda r=relation, w=work: self.engine.maintain(r, w)
                            )
                            record.mark(relation, m.checked(result), now)
                            results.append(result)
                finally:
                    m.save_record(self.target, record)
        if ledgers if ledgers is not None else not tables:
            results += self._maintain_ledgers(overrides, due_only, now, wait=not due_only)
        return [r for r in results if r.done or r.skipped and not _missing(r)]

    def _maintenance_tasks(self, record, relation, pol, now: float, overrides, due_only: bool) -> set[str]:
        if due_only:
            due = record.due(relation, pol, now)
            return due & set(overrides.tasks) if overrides.tasks else due
        if overrides.tasks:
            return set(overrides.tasks)
        return {t for t in TASKS if pol.every(t) is not None}

    def _maintain_one(self, table: str, relation: str, call: Any) -> MaintainResult:
        signals.check()  # a signal some library swallowed stops the run between steps
        with self.ledger.step(table, relation, "maintain") as rec:
            result = call()
            result.table = table
            rec.take(result)
            rec.quiet = _missing(result)  # a table that does not exist (yet): no row
        self.console.step_finished(result)
        return result

    def _maintain_ledgers(self, overrides, due_only: bool, now: float, *, wait: bool) -> list[MaintainResult]:
        """The run and check ledgers, under their own lock (`lh360.ledgers`). `run` skips them when another
        process maintains them (`wait` False); `maintain` waits like for any table."""

        results = []
        try:
            lock = table_lock(
                self.target.lake,
                m.LEDGERS,
                wait=self.wait_lock if wait else 0.0,
                aws=self.target.settings.aws,
                run_id=self.ledger.run_id,
            )
            with lock:
                pol = m.policy(self.target)
                record = m.load_record(self.target, m.LEDGERS)
                try:
                    for relation in m.LEDGER_RELATIONS:
                        tasks = self._maintenance_tasks(record, relation, pol, now, overrides, due_only)
                        if tasks:
                            work = m.work_for(pol, tasks, overrides=overrides, locked=False)
                            call = lambda r=relation, w=work: m.maintain_ledger(self.target, r, w)  # noqa: E731
                            result = self._maintain_one("*", relation, call)
                            record.mark(relation, m.checked(result), now)
                            results.append(result)
                finally:
                    m.save_record(self.target, record)
        except LockBusy:
            if wait:
                raise
        return results

    def run(self, tables: list[str] | None = None, *, validator: str | None = None) -> RunSummary:
        """landing check → ingest → promote to gold → validate, stopping at the first failure, then the
        maintenance that is due (`maintenance:`), unless ingest or promote failed. Never raises an lh360
        error: the summary carries the failing step's exit code, so `run --json` prints one document."""
        specs = self.project.select(tables)
        names = [s.table for s in specs]
        summary = RunSummary(target=self.target.name, run_id=self.ledger.run_id, tables=names)
        step = "landing"
        try:
            scope = promote_scope(self.project, names if tables else None, "gold")
            with self.locks({*names, *scope.tables}):
                summary.landing = self._landing_steps(specs)
                breached = [r for r in summary.landing if r.breached]
                if breached:
                    problems = "; ".join(f"{r.table}: {', '.join(r.problems)}" for r in breached)
                    raise CheckFailed(f"landing SLA breached: {problems}")
                step = "ingest"
                summary.ingest = self.ingest(names, locked=True)
                step = "promote"
                summary.promotion = self.promote(names if tables else None, "gold", locked=True)
                # a changed silver spec: `run` goes on incrementally and says so; it never rebuilds by itself
                summary.full_refresh_due = [r.table for r in summary.promotion.refine if r.full_refresh_due]
                step = "validate"
                report = self.validate(names if tables else None, validator=validator)
                summary.validation = report
                if report.exit_code:
                    summary.ok, summary.exit_code, summary.failed_step = False, report.exit_code, "validate"
                    summary.error = _validation_error(report)
                # the data is committed whatever the checks say: a check failing every hour must not keep
                # the tables from being maintained (a maintenance failure then shows in its ledger row)
                step = "maintain"
                try:
                    maintained = sorted({*names, *scope.tables})
                    summary.maintenance = self.maintain(maintained, due_only=True, ledgers=True, locked=True)
                except LH360Error:
                    if summary.ok:
                        raise
        except (LH360Error, Interrupted) as exc:  # a signal too: `run --json` still prints what was done
            received = signals.received()  # a signal that surfaced as an engine error is still a signal
            summary.fail(step, Interrupted(received) if received is not None else exc)
        summary.steps = [_step_row(r) for r in self.ledger.written]
        return summary

    def _landing_steps(self, specs: list[Any]) -> list[LandingReport]:
        reports = []
        for spec in specs:
            with self.ledger.step(spec.table, f"landing.{spec.table}", "landing") as rec:
                report = check_landing(self.target, spec, self.engine.ingested(spec))
                rec.rows_in = report.pending_files
                rec.detail = {
                    "files": report.files,
                    "pending_files": report.pending_files,
                    "pending_bytes": report.pending_bytes,
                    "newest_age_s": report.newest_age_s,
                    "problems": report.problems,
                }
                if report.breached:
                    rec.status = "breach"
            reports.append(report)
            self.console.step_finished(report)
        return reports

    # ---- helpers ---------------------------------------------------------------------------------------

    @contextmanager
    def _lock_unless(self, locked: bool, table: str) -> Iterator[None]:
        if locked:
            yield
        else:
            with self._table_lock(table):
                yield

    def _table_lock(self, table: str) -> Any:
        """The table's lock (lh360.lock): on an S3 lake an object in the lake, owned by this run."""
        return table_lock(
            self.target.lake, table, wait=self.wait_lock, aws=self.target.settings.aws, run_id=self.ledger.run_id
        )


def _missing(result: MaintainResult) -> bool:
    """Nothing ran because the table does not exist (a gold table not built yet, no quarantine)."""
    return not result.done and bool(result.skipped) and set(result.skipped.values()) == {MISSING_TABLE}


def _validation_error(report: ValidationReport) -> str:
    bad = [r for r in report.results if r.status in ("fail", "error")]
    names = ", ".join(f"{r.relation}.{r.check}" for r in bad[:5]) + (" …" if len(bad) > 5 else "")
    if report.exit_code == 1:
        return f"{report.count('fail')} check(s) failed: {names}"
    return f"{report.count('error')} check(s) could not run: {names}"


def _step_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in SUMMARY_FIELDS}
