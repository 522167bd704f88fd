"""What the docs site shows, collected through one `Lakehouse` as plain data (no HTML here).

Everything is read the way `lh360 tables`, `history` and `landing` read it, so the same code builds the
site of a local lake and of a prod lake on S3 written by Databricks:

    Delta logs (delta-rs)      rows, version, last commit and schema of every layer; quarantine by rule
    the run ledger             each relation's last run, the run timeline per step, failures per rule
    the check ledger           the history of every check (one point per ledger row)
    the target's engine        the landing zone's state (Engine.ingested, as `lh360 landing`) and the SQL
                               each step runs (Engine.explain without reading the lake, as `plan` does)

A part that cannot be read (no ledger yet, no permission on a prefix) becomes a note on the page, never a
failed build: the site is for looking, and a partial view beats none.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lh360.checks.compile import compile_relation
from lh360.delta import open_table
from lh360.deps import gold_graph
from lh360.engines import validator_dialect
from lh360.engines.base import PlannedStep
from lh360.layout import Lake
from lh360.site.graph import Lineage, has_quarantine, lineage
from lh360.site.ledgers import LedgerRows, parse_json, read_checks, read_runs

if TYPE_CHECKING:
    from lh360.context import Lakehouse
    from lh360.spec import TableSpec

DEFAULT_SINCE_S = 30 * 86400.0  # the history the site shows, unless --since says otherwise


@dataclass
class LastRun:
    step: str
    status: str
    at: float | None  # epoch seconds (the step's start)
    run_id: str | None = None
    error: str | None = None


@dataclass
class LayerInfo:
    relation: str
    layer: str  # bronze | silver | quarantine | gold
    name: str
    exists: bool = False
    rows: int | None = None
    version: int | None = None
    last_commit: float | None = None  # epoch seconds
    schema: list[tuple[str, str]] = field(default_factory=list)  # (column, Delta type)
    last_run: LastRun | None = None
    sql: str | None = None  # gold: its query as written in the spec
    reads: list[str] = field(default_factory=list)  # gold: the relations its SQL reads
    description: str | None = None
    error: str | None = None


@dataclass
class LandingInfo:
    prefix: str = ""
    max_age_s: float | None = None
    min_files: int = 0
    files: int | None = None
    pending_files: int | None = None
    pending_bytes: int | None = None
    newest_file: str | None = None
    newest_age_s: float | None = None
    status: str = "unknown"  # ok | breach | unknown
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Expectation:
    name: str
    rule: str  # SQL
    action: str
    failures: int = 0  # failing rows counted by the refines in the window (the run ledger's rule_failures)


@dataclass
class SilverInfo:
    keys: list[str]
    sequence_by: str
    scd: int
    partition_by: list[str]
    columns: list[tuple[str, str, str | None]]  # (column, SQL expression, type in the silver table)
    expectations: list[Expectation]
    refine_sql: str | None = None  # what the target's engine runs (Engine.explain)


@dataclass
class CheckSeries:
    """One check's history: one entry per check-ledger row, oldest first, in parallel lists (a year of
    hourly checks is millions of rows: no object per row)."""

    relation: str
    check: str
    kind: str
    severity: str
    threshold: str
    unit: str  # what `value` counts: rows, failing rows, hours, difference
    low: float | None = None  # the allowed range of `value`, drawn as dashed lines
    high: float | None = None
    at: list[float] = field(default_factory=list)  # epoch seconds
    status: list[str] = field(default_factory=list)  # pass | warn | fail | error
    value: list[float | None] = field(default_factory=list)  # what the chart plots (check_value)
    message: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.at)

    @property
    def last_status(self) -> str | None:
        return self.status[-1] if self.status else None


@dataclass
class StepSeries:
    """One step's runs of one relation: one entry per run-ledger row, oldest first, in parallel lists."""

    relation: str
    step: str
    at: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    rows_out: list[int | None] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.at)


@dataclass
class TableInfo:
    table: str
    description: str | None
    owner: str | None
    tags: dict[str, str]
    source: dict[str, Any]
    file: str | None
    layers: list[LayerInfo]
    landing: LandingInfo
    silver: SilverInfo | None
    quarantine_by_rule: dict[str, int] | None
    checks: list[CheckSeries]
    runs: list[StepSeries]
    checks_sql: dict[str, str] = field(default_factory=dict)  # relation → its checks' SQL in the validator's dialect
    pii: dict[str, dict[str, Any]] = field(default_factory=dict)  # column → its PII tag, where specs carry them
    notes: list[str] = field(default_factory=list)

    def layer(self, relation: str) -> LayerInfo | None:
        return next((layer for layer in self.layers if layer.relation == relation), None)


@dataclass
class SiteData:
    project: str
    target: str
    engine: str
    validator: str
    lake: str
    generated_at: float
    since: float  # the start of the history shown (epoch seconds)
    tables: list[TableInfo]
    lineage: Lineage
    ledger: dict[str, dict[str, Any]] = field(default_factory=dict)  # runs/checks → rows in window, total, error
    notes: list[str] = field(default_factory=list)


def collect_site(lh: Lakehouse, *, since_s: float = DEFAULT_SINCE_S, now: float | None = None) -> SiteData:
    """Everything the site shows for `lh`'s project on `lh`'s target."""
    now = time.time() if now is None else now
    since = now - since_s
    target = lh.target
    aws = target.settings.aws
    runs = read_runs(lh.ledger.runs_uri, aws, since)
    checks = read_checks(lh.ledger.checks_uri, aws, since)
    reads = gold_graph(lh.project.specs)
    graph = lineage(lh.project, reads)
    last = _last_runs(runs)
    _fill_older_last_runs(lh, graph, last)
    run_groups = runs.groups("table", "relation", "step")
    check_groups: dict[str, dict[tuple, list[int]]] = {}
    for (table, relation, check), rows in checks.groups("table", "relation", "check").items():
        check_groups.setdefault(table, {})[(relation, check)] = rows
    tables = [
        _table(lh, spec, reads, last, runs, _runs_of(spec.table, run_groups), checks, check_groups.get(spec.table, {}))
        for spec in lh.project.select(None)
    ]
    return SiteData(
        project=lh.project.config.project,
        target=target.name,
        engine=target.engine,
        validator=target.settings.validator,
        lake=target.lake,
        generated_at=now,
        since=since,
        tables=tables,
        lineage=graph,
        ledger={
            "runs": {"rows": len(runs), "total": runs.total, "error": runs.error},
            "checks": {"rows": len(checks), "total": checks.total, "error": checks.error},
        },
    )


# ---- the run ledger: last runs, timelines -----------------------------------------------------------


def _last_runs(runs: LedgerRows) -> dict[str, LastRun]:
    """relation → its newest step in the window (rows come oldest first, so the last one wins)."""
    out: dict[str, LastRun] = {}
    cols = runs.columns
    if not cols:
        return out
    for relation, step, status, at, run_id, error in zip(
        cols["relation"], cols["step"], cols["status"], cols["started_at"], cols["run_id"], cols["error"]
    ):
        out[relation] = LastRun(step, status, at, run_id, error)
    return out


def _fill_older_last_runs(lh: Lakehouse, graph: Lineage, last: dict[str, LastRun]) -> None:
    """Relations that did not run in the window: their last run from the whole ledger (one more query)."""
    if all(nid in last for nid, n in graph.nodes.items() if n.layer not in ("landing", "quarantine")):
        return
    try:
        older = lh.ledger.last_runs()
    except Exception:  # no ledger yet, or unreadable: those nodes show "never run"
        return
    for relation, row in older.items():
        if relation not in last:
            ended = row.get("ended_at")
            at = ended.timestamp() if isinstance(ended, datetime) else None
            last[relation] = LastRun(row["step"], row["status"], at, row.get("run_id"))


def _runs_of(table: str, by_key: dict[tuple, list[int]]) -> dict[tuple[str, str], list[int]]:
    """(relation, step) → the table's run-ledger rows; a validate row names its tables (a,b, or * for all)."""
    out: dict[tuple[str, str], list[int]] = {}
    for (owner, relation, step), rows in by_key.items():
        if owner == table or (step == "validate" and (owner == "*" or table in (owner or "").split(","))):
            out.setdefault((relation, step), []).extend(rows)
    return out


STEP_ORDER = {"landing": 0, "ingest": 1, "refine": 2, "aggregate": 3, "validate": 4}


def _step_series(runs: LedgerRows, lanes: dict[tuple[str, str], list[int]]) -> list[StepSeries]:
    c = runs.columns
    out = []
    for (relation, step), rows in lanes.items():
        rows = sorted(rows)  # the ledger rows come oldest first
        out.append(
            StepSeries(
                relation=relation,
                step=step,
                at=[c["started_at"][i] for i in rows],
                seconds=[float(c["seconds"][i] or 0.0) for i in rows],
                status=[c["status"][i] for i in rows],
                rows_out=[c["rows_out"][i] for i in rows],
                error=[c["error"][i] for i in rows],
            )
        )
    return sorted(out, key=lambda s: (STEP_ORDER.get(s.step, 9), s.relation))


# ---- the check ledger --------------------------------------------------------------------------------


def _check_series(compiled: dict[str, Any], checks: LedgerRows, mine: dict[tuple, list[int]]) -> list[CheckSeries]:
    """One series per (relation, check) the spec declares (in the spec's order) and per check the ledger
    still holds for the table; one entry per ledger row."""
    series: dict[tuple[str, str], CheckSeries] = {}
    for relation, relation_checks in compiled.items():
        for c in relation_checks.checks:
            low, high, unit = _bounds(c.kind, c.spec)
            series[(relation, c.name)] = CheckSeries(relation, c.name, c.kind, c.severity, c.threshold, unit, low, high)
    col = checks.columns
    for (relation, check), rows in mine.items():
        s = series.get((relation, check))
        if s is None:  # a check the spec no longer declares: its history is still worth seeing
            first = rows[0]
            kind = col["kind"][first]
            s = series[(relation, check)] = CheckSeries(
                relation,
                check,
                kind or "?",
                col["severity"][first] or "?",
                col["threshold"][first] or "",
                _UNIT.get(kind, ""),
            )
        s.at = [col["checked_at"][i] for i in rows]
        s.status = [col["status"][i] for i in rows]
        s.message = [col["message"][i] for i in rows]
        s.value = [check_value(col["kind"][i], col["observed"][i], col["checked_at"][i]) for i in rows]
    return list(series.values())


def _compiled_checks(lh: Lakehouse, spec: TableSpec) -> dict[str, Any]:
    """relation → its compiled checks in the validator's dialect (what `validate` runs)."""
    dialect = validator_dialect(lh.target.settings.validator)
    out = {}
    for relation in spec.checks:
        try:
            out[relation] = compile_relation(spec, relation, dialect)
        except Exception:  # lint reports what does not compile; the ledger's history still shows
            continue
    return out


def _checks_sql(compiled: dict[str, Any]) -> dict[str, str]:
    """relation → the SQL of its checks, as `plan` shows it: the fused aggregate query, then each check
    that needs its own query."""
    out = {}
    for relation, c in compiled.items():
        parts = ["-- every aggregate check in one scan\n" + c.aggregate_sql + ";"] if c.aggregate_sql else []
        parts += [f"-- {check.name}\n{check.sql};" for check in c.checks if check.sql]
        out[relation] = "\n".join(parts)
    return out


_UNIT = {
    "row_count": "rows",
    "freshness": "hours old",
    "reconcile": "|left − right|",
}


def _bounds(kind: str, check: Any) -> tuple[float | None, float | None, str]:
    """The allowed range of a check's plotted value, from its spec."""
    if kind == "row_count":
        low = float(check.min) if check.min is not None else None
        high = float(check.max) if check.max is not None else None
        return low, high, "rows"
    if kind == "freshness":
        return None, check.max_age.total_seconds() / 3600.0, "hours old"
    if kind == "reconcile":
        return None, float(check.tolerance), "|left − right|"
    return None, float(getattr(check, "max_failures", 0) or 0), "failing rows"


def check_value(kind: str | None, observed: str | None, checked_at: float | None) -> float | None:
    """The number a check's chart plots: the row count, the failing rows, the age in hours of the newest
    value (freshness), or the difference of the two sides (reconcile). None when there is none (an error)."""
    if observed and kind != "freshness" and observed[0] in "-0123456789":
        try:  # most observations are a bare count: no JSON parse for those (there are millions in a year)
            return float(observed)
        except ValueError:
            pass
    if kind == "freshness" and observed and observed[0] == '"' and observed[-1] == '"' and "\\" not in observed:
        value: Any = observed[1:-1]  # a JSON string without escapes: its text, without a parse
    else:
        try:
            value = json.loads(observed) if observed else None
        except ValueError:
            return None
    if value is None:
        return None
    if kind == "freshness":
        newest = _epoch(value)
        return None if newest is None or checked_at is None else round((checked_at - newest) / 3600.0, 3)
    if kind == "reconcile" and isinstance(value, dict):
        try:
            return abs(float(value.get("left") or 0) - float(value.get("right") or 0))
        except (TypeError, ValueError):
            return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _epoch(value: Any) -> float | None:
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# ---- one table -----------------------------------------------------------------------------------------


def _table(
    lh: Lakehouse,
    spec: TableSpec,
    reads: dict[str, set[str]],
    last: dict[str, LastRun],
    runs: LedgerRows,
    lanes: dict[tuple[str, str], list[int]],
    checks: LedgerRows,
    my_checks: dict[tuple, list[int]],
) -> TableInfo:
    lake = Lake(lh.target.lake)
    aws = lh.target.settings.aws
    relations = spec.relations()
    if has_quarantine(spec):
        relations.insert(relations.index(f"silver.{spec.table}") + 1, f"quarantine.{spec.table}")
    layers = []
    for relation in relations:
        layer, name = relation.split(".", 1)
        info = layer_info(lake.table(layer, name), aws, relation)
        # quarantine is written by silver's refine: its last run is silver's
        info.last_run = last.get(f"silver.{spec.table}" if layer == "quarantine" else relation)
        if layer == "gold":
            gold = spec.gold[name]
            info.sql, info.description, info.reads = gold.sql.strip(), gold.description, sorted(reads[relation])
        layers.append(info)
    compiled = _compiled_checks(lh, spec)
    quarantine = next((x for x in layers if x.layer == "quarantine"), None)
    table = TableInfo(
        table=spec.table,
        description=spec.description,
        owner=spec.owner,
        tags=dict(spec.tags),
        source=spec.source.model_dump(),
        file=str(spec.file) if spec.file else None,
        layers=layers,
        landing=_landing(lh, spec, last),
        silver=_silver(lh, spec, layers, runs, lanes.get((f"silver.{spec.table}", "refine"), [])),
        quarantine_by_rule=_quarantine_by_rule(quarantine, lake, aws) if quarantine else None,
        checks=_check_series(compiled, checks, my_checks),
        runs=_step_series(runs, lanes),
        checks_sql=_checks_sql(compiled),
        pii=pii_tags(spec),
    )
    table.notes += [f"{x.relation}: {x.error}" for x in layers if x.error]
    return table


def layer_info(uri: str, aws: Any, relation: str) -> LayerInfo:
    """Rows (from the add actions' statistics), version, last commit and schema of one Delta table: the
    log only, no data file is read."""
    layer, name = relation.split(".", 1)
    info = LayerInfo(relation=relation, layer=layer, name=name)
    try:
        dt = open_table(uri, aws)
        if dt is None:
            return info
        import pyarrow as pa

        actions = pa.table(dt.get_add_actions(flatten=True))
        if "num_records" in actions.schema.names:
            info.rows = sum(v or 0 for v in actions.column("num_records").to_pylist())
        history = dt.history(1)
        ts = history[0].get("timestamp") if history else None
        info.exists, info.version = True, dt.version()
        info.last_commit = ts / 1000.0 if ts else None
        info.schema = [(f.name, delta_type(f.type)) for f in dt.schema().fields]
    except Exception as exc:  # e.g. no permission on the prefix: shown on the page
        info.error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return info


def delta_type(t: Any) -> str:
    """A Delta schema type as SQL-ish text: long, decimal(18,2), array<string>, struct<a: long, …>."""
    kind = getattr(t, "type", None)
    if isinstance(kind, str) and kind not in ("array", "map", "struct"):
        return kind
    if kind == "array":
        return f"array<{delta_type(t.element_type)}>"
    if kind == "map":
        return f"map<{delta_type(t.key_type)}, {delta_type(t.value_type)}>"
    if kind == "struct" or hasattr(t, "fields"):
        return "struct<" + ", ".join(f"{f.name}: {delta_type(f.type)}" for f in t.fields) + ">"
    return str(t)


def _landing(lh: Lakehouse, spec: TableSpec, last: dict[str, LastRun]) -> LandingInfo:
    """The landing zone now, as `lh360 landing` sees it; the ledger's last landing check when it cannot be
    listed."""
    info = LandingInfo(
        max_age_s=spec.landing.max_age.total_seconds() if spec.landing.max_age else None,
        min_files=spec.landing.min_files,
    )
    try:
        (report,) = lh.landing([spec.table])
    except Exception as exc:
        info.error = getattr(exc, "message", None) or str(exc).splitlines()[0][:300] or type(exc).__name__
        ledger = last.get(f"landing.{spec.table}")
        if ledger is not None:
            info.status = "breach" if ledger.status == "breach" else "ok" if ledger.status == "ok" else "unknown"
        return info
    info.prefix, info.files = report.prefix, report.files
    info.pending_files, info.pending_bytes = report.pending_files, report.pending_bytes
    info.newest_file, info.newest_age_s = report.newest_file, report.newest_age_s
    info.status = "breach" if report.breached else "ok"
    info.problems, info.warnings = list(report.problems), list(report.warnings)
    return info


def _silver(
    lh: Lakehouse, spec: TableSpec, layers: list[LayerInfo], runs: LedgerRows, refines: list[int]
) -> SilverInfo | None:
    if spec.silver is None:
        return None
    s = spec.silver
    stored = next((dict(x.schema) for x in layers if x.layer == "silver"), {})
    failures: dict[str, int] = {}
    details = runs.columns.get("detail", [])
    for i in refines:  # the refines' detail: rows failing each expectation
        detail = parse_json(details[i]) if i < len(details) else None
        if isinstance(detail, dict):
            for rule, n in (detail.get("rule_failures") or {}).items():
                failures[rule] = failures.get(rule, 0) + int(n or 0)
    return SilverInfo(
        keys=list(s.keys),
        sequence_by=s.sequence_by,
        scd=s.scd,
        partition_by=list(s.partition_by),
        columns=[(name, expr, stored.get(name)) for name, expr in s.columns.items()],
        expectations=[Expectation(e.name, e.rule, e.action, failures.get(e.name, 0)) for e in s.expectations],
        refine_sql=_step_sql(lh, "refine", spec.table, f"silver.{spec.table}"),
    )


def _step_sql(lh: Lakehouse, kind: str, table: str, relation: str) -> str | None:
    """The SQL the target's engine runs for a step, explained without reading the lake (as `plan` does)."""
    try:
        return lh.engine.explain(lh.project, PlannedStep(kind, table, relation), inspect=False).sql
    except Exception:  # an engine that cannot be built here (no credentials) still leaves the spec's SQL
        return None


def _quarantine_by_rule(info: LayerInfo, lake: Lake, aws: Any) -> dict[str, int]:
    """Quarantined rows per failed rule (a row that failed two rules counts for both), read from the
    quarantine table with delta-rs."""
    if not info.exists:
        return {}
    try:
        dt = open_table(lake.table("quarantine", info.name), aws)
        if dt is None:
            return {}
        import pyarrow as pa
        from deltalake import QueryBuilder

        sql = (
            'SELECT rule, count(*) AS n FROM (SELECT unnest("_failed_rules") AS rule FROM q) '
            "GROUP BY rule ORDER BY n DESC, rule"
        )
        rows = pa.table(QueryBuilder().register("q", dt).execute(sql)).to_pylist()
    except Exception as exc:
        info.error = f"quarantine by rule: {str(exc).splitlines()[0][:200]}"
        return {}
    return {r["rule"]: int(r["n"]) for r in rows}


def pii_tags(spec: TableSpec) -> dict[str, dict[str, Any]]:
    """column → its PII tag, where the spec model carries them (a `pii` mapping on the spec, or a `pii`
    attribute on silver's column entries); {} for a model without PII tags."""
    out: dict[str, dict[str, Any]] = {}
    tags = getattr(spec, "pii", None)
    if isinstance(tags, dict):
        out.update({str(k): _plain(v) for k, v in tags.items() if v is not None})
    if spec.silver is not None:
        for name, column in spec.silver.columns.items():
            tag = getattr(column, "pii", None)
            if tag is not None:
                out[name] = _plain(tag)
    return out


def _plain(tag: Any) -> dict[str, Any]:
    if hasattr(tag, "model_dump"):
        return {k: v for k, v in tag.model_dump().items() if v is not None}
    return dict(tag) if isinstance(tag, dict) else {"kind": str(tag)}
