"""`lh360 demo`: a sample `clientes` landing zone on the local target, then the pipeline on it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.storage import is_s3, join

DEMO_TABLE = "clientes"


def write_demo_landing(
    target: ResolvedTarget,
    spec_path: str,
    *,
    rows: int,
    files: int,
    seed: int,
    now: datetime | None = None,
    settle: timedelta = timedelta(0),
) -> tuple[list[Path], bool]:
    """Write the sample files unless the folder already holds some; returns (paths, written)."""
    from lh360.demo_data import DEFAULT_SPAN, write_landing

    folder = Path(join(target.landing, spec_path))
    existing = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []
    if existing:
        return existing, False
    now = now or datetime.now(UTC)
    # the newest record lands just before now, so freshness checks pass on the day the demo runs; and at
    # least `settle` before now: the files are dated as an export that finished earlier, so the ingest takes
    # them at once (landing.settle waits only for files still being written)
    start = (now - settle).replace(minute=0, second=0, microsecond=0) - DEFAULT_SPAN
    return write_landing(folder, rows=rows, files=files, seed=seed, start=start), True


def run_demo(
    project: Project, target: ResolvedTarget, *, rows: int, files: int, seed: int, fresh: bool, out: Any
) -> dict[str, Any]:
    if target.engine != "local" or is_s3(target.landing) or is_s3(target.lake):
        raise UsageError(f"lh360 demo runs on a local-folder target; {target.name!r} is not one (pass -t local)")
    if DEMO_TABLE not in project.specs:
        raise UsageError(f"the demo needs the {DEMO_TABLE} spec in {project.tables_dir} (run `lh360 init`)")
    spec = project.specs[DEMO_TABLE]
    if fresh:
        lake = Lake(target.lake)
        for path in (join(target.landing, spec.source.path), lake.uri):
            shutil.rmtree(path, ignore_errors=True)
    paths, written = write_demo_landing(
        target, spec.source.path, rows=rows, files=files, seed=seed, settle=spec.landing.settle
    )
    out.print(
        f"landing: {'wrote' if written else 'kept'} {len(paths)} file(s) in {join(target.landing, spec.source.path)}"
        + ("" if written else " (use --fresh to start over)")
    )
    from lh360.pipeline import run_pipeline

    summary = run_pipeline(project, target, [DEMO_TABLE], out=out, demo=True)
    summary["demo"] = demo_summary(project, target, spec, summary)
    if not out.json:
        render_demo_summary(out, summary["demo"], summary)
    return summary


def demo_summary(project: Project, target: ResolvedTarget, spec: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """What the demo shows at the end: rows per layer, quarantined rows by rule, check verdicts, gold rows."""
    from lh360.engines.local.duck import LakeCatalog, connect, q

    con = connect()
    try:
        catalog = LakeCatalog(con, target)
        layers: dict[str, Any] = {}
        for relation in [*spec.relations(), f"quarantine.{spec.table}"]:
            layer, name = relation.split(".", 1)
            version = catalog.attach(layer, name)
            rows = (
                None if version is None else con.execute(f"SELECT count(*) FROM {q(layer)}.{q(name)}").fetchall()[0][0]
            )
            layers[relation] = {"rows": rows, "version": version}
        by_rule: dict[str, int] = {}
        if layers[f"quarantine.{spec.table}"]["version"] is not None:
            for rule, n in con.execute(
                f"SELECT r, count(*) FROM (SELECT unnest(_failed_rules) AS r FROM quarantine.{q(spec.table)}) "
                "GROUP BY r ORDER BY 2 DESC, 1"
            ).fetchall():
                by_rule[rule] = n
        gold_first: dict[str, Any] = {}
        for name in list(spec.gold)[:1]:
            if layers[f"gold.{name}"]["version"] is not None:
                cur = con.execute(f"SELECT * FROM gold.{q(name)} ORDER BY 2 DESC NULLS LAST LIMIT 5")
                cols = [d[0] for d in cur.description]
                from lh360.checks.validate import jsonable

                gold_first[f"gold.{name}"] = {"columns": cols, "rows": [jsonable(list(r)) for r in cur.fetchall()]}
    finally:
        con.close()
    checks = (summary.get("validate") or {}).get("summary") or {}
    return {"layers": layers, "quarantined_by_rule": by_rule, "checks": checks, "gold": gold_first}


def render_demo_summary(out: Any, demo: dict[str, Any], summary: dict[str, Any]) -> None:
    from rich.table import Table

    out.print("")
    t = Table(title="demo summary: rows per layer", title_justify="left")
    for col in ("relation", "rows", "version"):
        t.add_column(col, justify="left" if col == "relation" else "right")
    for relation, d in demo["layers"].items():
        t.add_row(
            relation, "-" if d["rows"] is None else f"{d['rows']:,}", "-" if d["version"] is None else str(d["version"])
        )
    out.print(t)
    if demo["quarantined_by_rule"]:
        out.print(
            "quarantined rows by rule: " + ", ".join(f"{r} {n:,}" for r, n in demo["quarantined_by_rule"].items()),
            markup=False,
            highlight=False,
        )
    c = demo["checks"]
    if c:
        out.print(
            f"checks: {c.get('pass', 0)} passed, {c.get('warn', 0)} warned, {c.get('fail', 0)} failed"
            + (f", {c['error']} could not run" if c.get("error") else ""),
            markup=False,
            highlight=False,
        )
    for relation, g in demo["gold"].items():
        from lh360.report import render_rows

        render_rows(out, g["columns"], [tuple(r) for r in g["rows"]], title=f"{relation} (first rows)")
    if summary.get("exit_code"):
        out.print(
            f"the run stopped at {summary.get('failed_step')}: {summary.get('error')} "
            "(the demo data carries a few deliberately bad records)",
            markup=False,
            highlight=False,
        )
    out.print(
        'next: lh360 sql "SELECT * FROM silver.clientes LIMIT 5" | lh360 history | lh360 validate',
        markup=False,
        highlight=False,
    )


def demo_start(now: datetime) -> datetime:
    return now - timedelta(hours=12)
