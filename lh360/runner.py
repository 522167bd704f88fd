"""Runs steps on tables the way cron needs: one table lock each, a ledger row per step, progress on a terminal.

A step on a table runs under that table's lock (lh360.lock): a second run exits 75 (or waits with
--wait-lock). Commands that chain steps (`promote`, `run`) take every lock they need once, up front, in
name order (no deadlock between two runs), and the steps run with `locked=True`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.engines.base import engine_for
from lh360.lock import table_lock

log = logging.getLogger("lh360.runner")


@contextmanager
def table_locks(
    target: ResolvedTarget, tables: Iterable[str], *, wait: float = 0, run_id: str | None = None
) -> Iterator[list[str]]:
    """Hold the locks of all `tables` (sorted, so two runs never wait on each other in a cycle)."""
    names = sorted(set(tables))
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(table_lock(target.lake, name, wait=wait, aws=target.settings.aws, run_id=run_id))
        yield names


@contextmanager
def _maybe_lock(
    target: ResolvedTarget, table: str, locked: bool, wait: float, run_id: str | None = None
) -> Iterator[None]:
    if locked:
        yield
    else:
        with table_lock(target.lake, table, wait=wait, aws=target.settings.aws, run_id=run_id):
            yield


def _ledger(target: ResolvedTarget, ledger: Any) -> Any:
    if ledger is None:
        from lh360.ledger import Ledger

        ledger = Ledger(target)
    return ledger


def _say(out: Any, text: str) -> None:
    if out is not None and not getattr(out, "json", False):
        out.print(text, markup=False, highlight=False)


def run_ingest(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None,
    *,
    wait_lock: float = 0,
    out: Any = None,
    ledger: Any = None,
    locked: bool = False,
    **engine_options: Any,
) -> list[Any]:
    """Ingest each table under its lock; the first failure stops the run (its exception carries the exit code)."""
    engine = engine_for(target, **engine_options)
    ledger = _ledger(target, ledger)
    results = []
    for spec in project.select(tables):
        with (
            _maybe_lock(target, spec.table, locked, wait_lock, getattr(ledger, "run_id", None)),
            ledger.step(spec.table, f"bronze.{spec.table}", "ingest") as rec,
        ):
            progress = _IngestProgress(out) if out is not None else None
            try:
                result = engine.ingest(spec, progress=progress)
            finally:
                if progress:
                    progress.close()
            d = result.as_dict() if hasattr(result, "as_dict") else {}
            rec.rows_in = rec.rows_out = d.get("rows")
            rec.rows_rescued = d.get("rescued")
            rec.version_after = d.get("bronze_version")
            rec.detail = {k: d.get(k) for k in ("files", "bytes", "malformed", "new_columns")}
            results.append(result)
    return results


def run_refine(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None,
    *,
    wait_lock: float = 0,
    out: Any = None,
    ledger: Any = None,
    locked: bool = False,
    full_refresh: bool = False,
    **engine_options: Any,
) -> list[Any]:
    """bronze → silver for each table that has a silver section (`full_refresh`: from all of bronze)."""
    engine = engine_for(target, **engine_options)
    refresh = {"full_refresh": True} if full_refresh else {}  # only the local engine takes it (promote checks)
    ledger = _ledger(target, ledger)
    results = []
    for spec in project.select(tables):
        if spec.silver is None:
            continue
        with (
            _maybe_lock(target, spec.table, locked, wait_lock, getattr(ledger, "run_id", None)),
            ledger.step(spec.table, f"silver.{spec.table}", "refine") as rec,
        ):
            r = engine.refine(spec, **refresh)
            d = r.as_dict()
            rec.rows_in, rec.rows_out = d.get("rows_in"), d.get("rows_out")
            rec.rows_quarantined, rec.rows_dropped = d.get("quarantined"), d.get("dropped")
            rec.version_before, rec.version_after = d.get("bronze_from"), d.get("silver_version")
            rec.source_versions = {f"bronze.{spec.table}": d["bronze_to"]} if d.get("bronze_to") is not None else None
            rec.detail = {
                k: d.get(k)
                for k in (
                    "run",
                    "noop",
                    "rule_failures",
                    "warned",
                    "inserted",
                    "updated",
                    "closed",
                    "quarantine_version",
                    "quarantine_replayed",
                    "full_refresh",
                    "spec_hash",
                )
            }
            results.append(r)
        if r.noop:
            _say(out, f"refine {spec.table}: nothing new in bronze (silver v{d.get('silver_version')})")
        else:
            _say(
                out,
                f"refine {spec.table}{' (full refresh)' if full_refresh else ''}: {r.rows_in:,} bronze rows → "
                f"{r.rows_out:,} written to silver "
                f"(quarantined {r.quarantined:,}, dropped {r.dropped:,}) → silver v{r.silver_version}",
            )
    return results


def run_aggregate(
    project: Project,
    target: ResolvedTarget,
    relations: list[str],
    *,
    wait_lock: float = 0,
    out: Any = None,
    ledger: Any = None,
    locked: bool = False,
    full_refresh: bool = False,
    **engine_options: Any,
) -> list[Any]:
    """Recompute each gold relation (in the order given: callers pass gold_order). Gold is always rebuilt
    from silver; `full_refresh` only says so in the ledger."""
    from lh360.deps import relations as owners

    engine = engine_for(target, **engine_options)
    ledger = _ledger(target, ledger)
    owner = owners(project.specs)
    results = []
    for relation in relations:
        table = owner[relation].table
        with (
            _maybe_lock(target, table, locked, wait_lock, getattr(ledger, "run_id", None)),
            ledger.step(table, relation, "aggregate") as rec,
        ):
            r = engine.aggregate(project, relation)
            d = r.as_dict()
            rec.rows_out, rec.version_after, rec.source_versions = d.get("rows_out"), d.get("version"), d.get("sources")
            if full_refresh:
                rec.detail = {"full_refresh": True}
            results.append(r)
        _say(out, f"aggregate {relation}: {d.get('rows_out', 0):,} rows → v{d.get('version')}")
    return results


@dataclass
class Scope:
    """What `promote --to LAYER` touches: silver tables to refine, gold relations in dependency order."""

    silver: list[str] = field(default_factory=list)
    gold: list[str] = field(default_factory=list)

    @property
    def tables(self) -> list[str]:
        """The spec tables whose locks the promotion needs."""
        return sorted({*self.silver, *self._gold_owners})

    _gold_owners: set[str] = field(default_factory=set)


def promote_scope(project: Project, tables: list[str] | None, to: str) -> Scope:
    """Named specs (all when none): their silver; with --to gold their gold tables, the gold tables those
    read (recomputed first), and every silver table any of them reads ("silver first where needed")."""
    from lh360.deps import gold_graph, gold_order, relations

    specs = project.select(tables)
    scope = Scope(silver=[s.table for s in specs if s.silver is not None])
    if to != "gold":
        return scope
    graph = gold_graph(project.specs)
    owner = relations(project.specs)
    wanted = {f"gold.{g}" for s in specs for g in s.gold}
    stack = list(wanted)
    while stack:  # upstream gold: a gold table read by a wanted one must be fresh first
        for dep in graph.get(stack.pop(), ()):
            if dep.startswith("gold.") and dep not in wanted:
                wanted.add(dep)
                stack.append(dep)
    for rel in wanted:
        for dep in graph[rel]:
            if dep.startswith("silver.") and owner[dep].table not in scope.silver:
                scope.silver.append(owner[dep].table)
    scope.silver.sort()
    scope.gold = [r for r in gold_order(project.specs) if r in wanted]
    scope._gold_owners = {owner[r].table for r in scope.gold}
    return scope


def promote(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None,
    to: str,
    *,
    wait_lock: float = 0,
    out: Any = None,
    ledger: Any = None,
    locked: bool = False,
    full_refresh: bool = False,
) -> dict[str, list[Any]]:
    """`promote --to silver|gold`: refine, then (gold) every gold query in dependency order.
    `full_refresh`: silver rebuilt from all of bronze (lh360.engines.local.refine), gold from silver."""
    from lh360.errors import UsageError

    if to not in ("silver", "gold"):
        raise UsageError(f"--to must be silver or gold, not {to!r}")
    if full_refresh and target.engine != "local":
        raise UsageError(f"--full-refresh runs on the local engine only; target {target.name!r} is {target.engine}")
    ledger = _ledger(target, ledger)
    scope = promote_scope(project, tables, to)
    with ExitStack() as stack:
        if not locked:
            stack.enter_context(
                table_locks(target, scope.tables, wait=wait_lock, run_id=getattr(ledger, "run_id", None))
            )
        refined = run_refine(
            project, target, scope.silver, out=out, ledger=ledger, locked=True, full_refresh=full_refresh
        )
        aggregated = (
            run_aggregate(project, target, scope.gold, out=out, ledger=ledger, locked=True, full_refresh=full_refresh)
            if to == "gold"
            else []
        )
    return {"refine": refined, "aggregate": aggregated}


def run_validate(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None,
    layer: str | None = None,
    *,
    engine: str | None = None,
    ledger: Any = None,
    out: Any = None,
) -> Any:
    """Validate and record every check result; one `validate` step row per spec in the run ledger."""
    from lh360.checks import validate

    ledger = _ledger(target, ledger)
    specs = project.select(tables)
    names = [s.table for s in specs] if tables else None
    with ledger.step(",".join(s.table for s in specs) if tables else "*", layer or "*", "validate") as rec:
        report = validate(project, target, names, layer, engine=engine, ledger=ledger)
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


class _IngestProgress:
    """A rich progress bar over bytes on a terminal; silent otherwise."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.bar = None
        self.task = None

    def __call__(self, event: str, **kw: Any) -> None:
        if event == "start":
            if kw.get("files") and kw.get("bytes", 0) > 0:
                self.bar = self.out.progress_bar(kw["bytes"], kw["table"])
                if self.bar is not None:
                    self.bar.start()
                    self.task = self.bar.add_task(f"ingest {kw['table']}", total=kw["bytes"])
        elif event == "batch" and self.bar is not None:
            self.bar.advance(self.task, kw["batch"].bytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
