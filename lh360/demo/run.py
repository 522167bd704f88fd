"""`lh360 demo`: a sample `clientes` landing zone on the local target, then the pipeline on it."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lh360 import pii
from lh360.config import Project, ResolvedTarget
from lh360.context import Lakehouse, RunSummary
from lh360.demo.generator import DEFAULT_SPAN, write_landing
from lh360.engines import ENGINES
from lh360.engines.local.duck import LakeCatalog, connect
from lh360.errors import UsageError
from lh360.jsonable import jsonable
from lh360.layout import Lake
from lh360.sql import quote_ident as q
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


def run_demo(lh: Lakehouse, *, rows: int, files: int, seed: int, fresh: bool) -> tuple[RunSummary, dict[str, Any]]:
    """Write the sample landing zone (unless it is there), run the pipeline on it, and summarise each layer.
    Returns the run's summary and the demo's own (rows per layer, quarantine by rule, checks, gold rows)."""

    target, project = lh.target, lh.project
    if not ENGINES[target.engine].embedded or is_s3(target.landing) or is_s3(target.lake):
        raise UsageError(f"lh360 demo runs on a local-folder target; {target.name!r} is not one (pass -t local)")
    if DEMO_TABLE not in project.specs:
        raise UsageError(f"the demo needs the {DEMO_TABLE} spec in {project.tables_dir} (run `lh360 init`)")
    spec = project.specs[DEMO_TABLE]
    if fresh:
        lake = Lake(target.lake)
        for path in (join(target.landing, spec.source.path), lake.uri):
            shutil.rmtree(path, ignore_errors=True)
    _demo_pii_key(lh, spec)
    paths, written = write_demo_landing(
        target, spec.source.path, rows=rows, files=files, seed=seed, settle=spec.landing.settle
    )
    lh.console.say(
        f"landing: {'wrote' if written else 'kept'} {len(paths)} file(s) in {join(target.landing, spec.source.path)}"
        + ("" if written else " (use --fresh to start over)")
    )
    summary = lh.run([DEMO_TABLE])
    return summary, demo_summary(project, target, spec, summary)


DEMO_PII_KEY = "lh360-demo-key-not-a-secret"


def _demo_pii_key(lh: Lakehouse, spec: Any) -> None:
    """The demo spec hashes CPFs (silver.pii), which needs a key from the environment. Synthetic data needs
    no secret: without LH360_PII_KEY the demo uses a published one, and says how to keep using it."""

    if not pii.needs_key(pii.silver_rules(spec)) or os.environ.get(pii.KEY_ENV) or os.environ.get(pii.KEY_FILE_ENV):
        return
    os.environ[pii.KEY_ENV] = DEMO_PII_KEY
    lh.console.say(
        f"pii: {pii.KEY_ENV} is not set; the demo hashes CPFs with the demo key (export "
        f"{pii.KEY_ENV}={DEMO_PII_KEY} to keep working on this lake; real data needs a secret of your own)"
    )


def demo_summary(project: Project, target: ResolvedTarget, spec: Any, summary: RunSummary) -> dict[str, Any]:
    """What the demo shows at the end: rows per layer, quarantined rows by rule, check verdicts, gold rows."""

    con = connect(lake=target.lake)
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
                gold_first[f"gold.{name}"] = {"columns": cols, "rows": [jsonable(list(r)) for r in cur.fetchall()]}
    finally:
        con.close()
    checks = summary.validation.as_dict().get("summary") or {} if summary.validation is not None else {}
    return {"layers": layers, "quarantined_by_rule": by_rule, "checks": checks, "gold": gold_first}
