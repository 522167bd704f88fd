"""Run compiled checks through any QueryRunner and judge the results: the engine-independent half of validate."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lh360 import pii, signals
from lh360.checks.compile import CompiledChecks, compile_relation
from lh360.checks.kinds import CompiledCheck, JudgeContext, kind_of
from lh360.config import Project, ResolvedTarget
from lh360.delta import open_table
from lh360.deps import gold_order
from lh360.engines.base import QueryRunner
from lh360.errors import ConfigError, Interrupted, RunTimeout, first_line
from lh360.jsonable import jsonable
from lh360.layout import Lake
from lh360.portability import spec_types
from lh360.spec import TableSpec
from lh360.sql import SQLError

log = logging.getLogger("lh360.checks")

STATUSES = ("pass", "warn", "fail", "error")


@dataclass
class CheckResult:
    relation: str
    table: str  # the spec that declares the check
    check: str
    kind: str
    severity: str
    status: str  # pass | warn (failed, severity warn) | fail (failed, severity error) | error (could not run)
    threshold: str
    observed: Any = None
    message: str = ""
    failing_rows: int | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    delta_version: int | None = None
    query_id: str | None = None
    seconds: float | None = None
    checked_at: str | None = None
    bytes_scanned: int | None = None  # by the query that computed it (a fused query's, shared by its checks)
    cost_usd: float | None = None  # that query's estimated cost (Athena: athena.price_per_tb_usd, 10 MB minimum)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ValidationReport:
    target: str
    dialect: str
    results: list[CheckResult] = field(default_factory=list)
    queries: int = 0
    seconds: float = 0.0
    # query id → (bytes scanned, cost) of every query validate ran: fused, own, sample and re-run queries
    billed: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """1 when an error-severity check failed, 3 when a check could not run, else 0 (warnings pass)."""
        if self.count("fail"):
            return 1
        if self.count("error"):
            return 3
        return 0

    def scanned(self) -> dict[str, Any]:
        """Bytes scanned and estimated cost over every query validate ran: the checks' own (fused checks
        share one), and those that fetched sample failing rows or re-ran a failed fused query's checks."""
        per_query = {r.query_id: (r.bytes_scanned, r.cost_usd) for r in self.results if r.query_id}
        per_query.update(self.billed)
        scanned = [b for b, _ in per_query.values() if b is not None]
        cost = [c for _, c in per_query.values() if c is not None]
        return {
            "bytes_scanned": sum(scanned) if scanned else None,
            "cost_usd": round(sum(cost), 6) if cost else None,
        }

    def run(self, runner: QueryRunner, sql: str) -> Any:
        """One query through `runner`, counted and billed."""
        res = runner.query(sql)
        self.queries += 1
        if res.query_id:
            self.billed[res.query_id] = (res.bytes_scanned, (res.extra or {}).get("cost_usd"))
        return res

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "engine": self.dialect,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "summary": {s: self.count(s) for s in STATUSES}
            | {"checks": len(self.results), "queries": self.queries}
            | self.scanned(),
            "results": [r.as_dict() for r in self.results],
        }


def relations_to_check(project: Project, tables: list[str] | None, layer: str | None) -> list[tuple[TableSpec, str]]:
    """(spec, relation) pairs: silver before gold, gold in dependency order, each spec's own order within."""

    pairs = []
    for spec in project.select(tables):
        for relation in spec.checks:
            if layer and not relation.startswith(layer + "."):
                continue
            pairs.append((spec, relation))
    order = {r: i for i, r in enumerate(gold_order(project.specs))}
    rank = {"bronze": 0, "silver": 1, "gold": 2}
    return sorted(pairs, key=lambda p: (rank[p[1].split(".")[0]], order.get(p[1], 0)))


def run_validation(
    project: Project,
    target: ResolvedTarget,
    runner: QueryRunner,
    tables: list[str] | None = None,
    layer: str | None = None,
    *,
    previous: dict[tuple[str, str], Any] | None = None,
    now: datetime | None = None,
) -> ValidationReport:
    """Run every check of the selected tables (optionally one layer) on `runner` and judge each.

    `previous` maps (relation, check name) → the value observed by the last validate (row_count's
    max_change_pct compares against it; lh360.ledger.previous_observations reads it from the ledger).
    """
    started = time.monotonic()
    now = now or datetime.now(UTC)
    report = ValidationReport(target=target.name, dialect=runner.dialect)
    previous = previous or {}
    schemas = Schemas(project, target, runner)
    for spec, relation in relations_to_check(project, tables, layer):
        report.results += _validate_relation(spec, relation, runner, report, previous, now, schemas)
    report.seconds = round(time.monotonic() - started, 3)
    return report


class Schemas:
    """The column types of the relations validate reads, so checks type their literals (checks/typerules.py):
    the runner's (`column_types(layer, name)`: what the engine reads), else the table's Delta log, else what
    the spec says (bronze schema hints, silver's columns); None when nothing is known. Read once per relation."""

    def __init__(self, project: Project, target: ResolvedTarget, runner: QueryRunner) -> None:
        self.project, self.target, self.runner = project, target, runner
        self._types: dict[str, dict[str, Any] | None] = {}

    def types(self, relation: str) -> dict[str, Any] | None:
        if relation not in self._types:
            self._types[relation] = self._read(relation)
        return self._types[relation]

    def _read(self, relation: str) -> dict[str, Any] | None:
        layer, name = relation.split(".", 1)
        own = getattr(self.runner, "column_types", None)
        types = own(layer, name) if own is not None else delta_types(self.target, layer, name)
        return types or self._from_spec(layer, name)

    def _from_spec(self, layer: str, name: str) -> dict[str, Any] | None:
        spec = self.project.specs.get(name)
        return spec_types(spec, f"{layer}.{name}") if spec is not None else None


def delta_types(target: ResolvedTarget, layer: str, name: str) -> dict[str, Any] | None:
    """Column → Delta type (a nested type as its JSON dict) from the table's log; None if unreadable."""

    try:
        dt = open_table(Lake(target.lake).table(layer, name), target.settings.aws)
        if dt is None:
            return None
        return {f["name"]: f["type"] for f in json.loads(dt.schema().to_json())["fields"]}
    except Exception:  # noqa: BLE001 - types only sharpen the SQL; without them checks compile as written
        return None


def _validate_relation(
    spec: TableSpec,
    relation: str,
    runner: QueryRunner,
    report: ValidationReport,
    previous: dict,
    now: datetime,
    schemas: Schemas,
) -> list[CheckResult]:
    layer, name = relation.split(".", 1)
    checks = spec.checks.get(relation, [])
    alone = getattr(runner, "unique_alone", None)
    try:
        compiled = compile_relation(
            spec,
            relation,
            runner,
            types=schemas.types(relation),
            types_of=schemas.types,
            unique_alone=bool(alone and any(c.kind == "unique" for c in checks) and alone(layer, name)),
        )
    except SQLError as exc:
        raise ConfigError(str(exc), file=str(spec.file) if spec.file else None, field=f"checks.{relation}") from None
    checked_at = now.isoformat(timespec="seconds")
    judging = JudgeContext(previous, now)

    def base(c: CompiledCheck, status: str, **kw: Any) -> CheckResult:
        return CheckResult(
            relation=relation,
            table=spec.table,
            check=c.name,
            kind=c.kind,
            severity=c.severity,
            status=status,
            threshold=c.threshold,
            checked_at=checked_at,
            **kw,
        )

    exists = getattr(runner, "exists", None)
    if exists is not None and not exists(layer, name):
        return [base(c, "error", message=f"{relation} does not exist yet (run lh360 promote)") for c in compiled.checks]
    version = runner.table_version(layer, name)
    out: list[CheckResult] = []
    fused: dict[str, Any] = {}  # check name → (result of its query, values) or the error that query raised
    if compiled.aggregate_sql:
        fused = _run_fused(compiled, compiled.aggregate_sql, runner, report)
    for c in compiled.checks:
        if c.sql is None:
            outcome = fused[c.name]
            if isinstance(outcome, str):
                out.append(base(c, "error", message=f"query failed: {outcome}", delta_version=version))
                continue
            res, values = outcome
            result = base(c, "pass", delta_version=version, query_id=res.query_id, seconds=res.seconds, **_cost(res))
            kind_of(c.spec).judge(c, [values.get(a) for a in c.aliases], result, judging)
        else:
            try:
                res = report.run(runner, c.sql)
            except (RunTimeout, Interrupted):
                raise
            except Exception as exc:
                signals.check()
                out.append(base(c, "error", message=f"query failed: {_first(exc)}", delta_version=version))
                continue
            result = base(c, "pass", delta_version=version, query_id=res.query_id, seconds=res.seconds, **_cost(res))
            kind_of(c.spec).judge(c, list(res.rows[0]) if res.rows else [None, None], result, judging)
        if result.status in ("warn", "fail") and c.sample_sql:
            try:
                res = report.run(runner, c.sample_sql)
                mask = pii.masker(spec, relation)  # samples never show personal data (silver.pii, lh360.pii.redact)
                result.sample = [mask(jsonable(dict(zip(res.columns, row, strict=False)))) for row in res.rows]
            except Exception as exc:  # a sample is a courtesy: its failure does not change the verdict
                signals.check()
                result.message += f" (sample rows unavailable: {_first(exc)})"
        out.append(result)
    return out


def _run_fused(compiled: CompiledChecks, sql: str, runner: QueryRunner, report: ValidationReport) -> dict[str, Any]:
    """The relation's fused query: check name → (its QueryResult, column → value), or the error message.

    When the fused query fails, one check may be the cause (a rule Athena refuses, a value that is not of
    its column's type): one probe (`SELECT COUNT(*)`) tells whether the table itself is unreadable — then
    every check has that error — and if it is readable, each check runs alone, so only the failing ones
    are errors and the others get their verdicts. The happy path stays one query."""
    fused = [c for c in compiled.checks if c.sql is None]
    try:
        res = report.run(runner, sql)
        values = dict(zip(res.columns, res.rows[0] if res.rows else [], strict=False))
        return {c.name: (res, values) for c in fused}
    except (RunTimeout, Interrupted):
        raise  # exit 4 / 130-143, not a check that "could not run"
    except Exception as exc:
        signals.check()  # DuckDB reports a signal as its own error: that is an interrupt, not a check error
        error = _first(exc)
    if len(fused) == 1:
        return {fused[0].name: error}
    log.warning("%s: the fused check query failed (%s); running its checks one by one", compiled.relation, error)
    try:
        report.run(runner, compiled.probe_sql())
    except (RunTimeout, Interrupted):
        raise
    except Exception as exc:
        signals.check()
        return {c.name: _first(exc) for c in fused}
    out: dict[str, Any] = {}
    for c in fused:
        try:
            res = report.run(runner, compiled.alone_sql(c))
            out[c.name] = (res, dict(zip(res.columns, res.rows[0] if res.rows else [], strict=False)))
        except (RunTimeout, Interrupted):
            raise
        except Exception as exc:
            signals.check()
            out[c.name] = _first(exc)
    return out


def _cost(res: Any) -> dict[str, Any]:
    """Bytes scanned and cost estimate of a QueryResult, for the CheckResult (None where the engine has none)."""
    return {"bytes_scanned": res.bytes_scanned, "cost_usd": (res.extra or {}).get("cost_usd")}


def _first(exc: BaseException) -> str:
    """The error's first line, values that look like personal data masked (an engine may quote one)."""
    return pii.redact(first_line(exc)) or ""
