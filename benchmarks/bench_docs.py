"""`lh360 docs build` fast enough for cron: < 2 s on the demo lake, < 30 s on a lake of 50 tables with a year
of hourly ledgers.

    python benchmarks/bench_docs.py [--tables 50] [--days 365] [--trials 3] [--since 30d]

Two lakes, built once under benchmarks/.data/ (kept between runs; --fresh rebuilds them):

    demo    `lh360 init` + `lh360 demo` (the clientes spec, 5,000 rows, one run)
    big     --tables specs, each with bronze, silver (two expectations, one quarantining), quarantine and a
            gold table (every fifth also reads the previous table's gold: gold-to-gold edges), six checks;
            small Delta tables written with delta-rs; and a run ledger and a check ledger holding an hourly
            `lh360 run --all` for --days days: every step of every table every hour (landing, ingest,
            refine, aggregate, one validate) and every check every hour, with a few failures sprinkled in.
            The ledgers are appended one commit per day (lh360 itself appends one commit per step: a
            ledger that old is compacted in practice; the rows are what the site reads).

Each figure is the whole `lh360 docs build` process (imports, config, Delta logs, ledgers, landing listing,
rendering, writing), best of --trials, in a fresh process: its wall time (what the targets are about), and
its CPU time and the machine's load average (on a shared machine the wall clock also counts waiting for a
core).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import DATA, report  # noqa: E402

DEMO_TARGET_S = 2.0
BIG_TARGET_S = 30.0
CHECKS = [
    {"row_count": {"min": 1}},
    {"not_null": ["id"]},
    {"unique": ["id"]},
    {"accepted_values": {"column": "cat", "values": ["a", "b", "c"]}},
    {"freshness": {"column": "updated_at", "max_age": "2h", "severity": "warn"}},
]


def lh360(*args: str) -> list[str]:
    return [sys.executable, "-m", "lh360", *args]


# ---- the demo lake -------------------------------------------------------------------------------------


def demo_lake(fresh: bool) -> Path:
    root = DATA / "docs-demo"
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    if not (root / "lakehouse" / "lake" / "_lh360" / "runs").exists():
        import subprocess

        root.mkdir(parents=True, exist_ok=True)
        for args in (["init", "."], ["demo"]):
            subprocess.run(lh360(*args), cwd=root, check=True, capture_output=True)
    return root


# ---- the big lake --------------------------------------------------------------------------------------


def name(i: int) -> str:
    return f"t{i:02d}"


def spec(i: int) -> dict:
    t = name(i)
    gold = {f"{t}_por_cat": {"sql": f"SELECT cat, count(*) AS n FROM silver.{t} GROUP BY cat"}}
    if i % 5 == 4:  # a gold table reading another spec's gold
        gold[f"{t}_vs_{name(i - 1)}"] = {
            "sql": f"SELECT a.cat, a.n, b.n AS n_prev FROM gold.{t}_por_cat a "
            f"JOIN gold.{name(i - 1)}_por_cat b ON a.cat = b.cat"
        }
    return {
        "table": t,
        "description": f"Generated table {t}",
        "owner": f"team-{i % 4}",
        "tags": {"domain": f"d{i % 3}"},
        "source": {"path": f"{t}/"},
        "landing": {"max_age": "2h", "min_files": 1},
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "columns": {"id": "cast(id as bigint)", "cat": "lower(cat)", "v": "v", "updated_at": "updated_at"},
            "expectations": [
                {"name": "cat_conhecida", "rule": "cat in ('a','b','c')", "action": "quarantine"},
                {"name": "v_positivo", "rule": "v >= 0", "action": "warn"},
            ],
        },
        "gold": gold,
        "checks": {f"silver.{t}": CHECKS, f"gold.{t}_por_cat": [{"row_count": {"min": 1}}]},
    }


def write_project(root: Path, tables: int) -> None:
    import yaml

    (root / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    config = {
        "project": "bench-docs",
        "default_target": "local",
        "tables_dir": "tables",
        "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake", "validator": "duckdb"}},
    }
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for i in range(tables):
        (root / "configs" / "tables" / f"{name(i)}.yaml").write_text(yaml.safe_dump(spec(i), sort_keys=False))
        folder = root / "landing" / name(i)
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(3):
            (folder / f"part-{f:03d}.json").write_text(f'{{"id": {f}, "cat": "a", "v": 1}}\n')


def write_tables(root: Path, tables: int) -> None:
    """Small Delta tables for every layer, a few versions each."""
    import pyarrow as pa
    from deltalake import write_deltalake

    now = datetime.now(UTC)
    for i in range(tables):
        t = name(i)
        rows = 200 + 10 * i
        data = pa.table(
            {
                "id": pa.array(range(rows), pa.int64()),
                "cat": pa.array([("a", "b", "c")[k % 3] for k in range(rows)]),
                "v": pa.array([float(k) for k in range(rows)]),
                "updated_at": pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
            }
        )
        for version in range(3):
            mode = "overwrite" if version == 0 else "append"
            write_deltalake(str(root / "lake" / "bronze" / t), data, mode=mode)
        write_deltalake(str(root / "lake" / "silver" / t), data, mode="overwrite")
        bad = data.slice(0, 5).append_column("_failed_rules", pa.array([["cat_conhecida"]] * 5, pa.list_(pa.string())))
        write_deltalake(str(root / "lake" / "quarantine" / t), bad, mode="overwrite")
        for g in spec(i)["gold"]:
            write_deltalake(str(root / "lake" / "gold" / g), pa.table({"cat": ["a", "b", "c"], "n": [1, 2, 3]}))


def write_ledgers(root: Path, tables: int, days: int, seed: int = 7) -> dict[str, int]:
    """An hourly `run --all` for `days` days in the run and check ledgers, one commit per day each."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lh360.ledger import CHECK_FIELDS, RUN_FIELDS, _schema

    rng = random.Random(seed)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    specs = [spec(i) for i in range(tables)]
    counts = {"runs": 0, "checks": 0}
    for day in range(days):
        runs: dict[str, list] = {k: [] for k, _ in RUN_FIELDS}
        checks: dict[str, list] = {k: [] for k, _ in CHECK_FIELDS}
        for hour in range(24):
            at = start + timedelta(days=day, hours=hour)
            run_id = at.strftime("%Y%m%dT%H%M%SZ") + f"-{rng.getrandbits(32):08x}"
            for s in specs:
                t = s["table"]
                steps = [("landing", f"landing.{t}"), ("ingest", f"bronze.{t}"), ("refine", f"silver.{t}")]
                steps += [("aggregate", f"gold.{g}") for g in s["gold"]]
                for k, (step, relation) in enumerate(steps):
                    failed = rng.random() < 0.002
                    _run_row(runs, run_id, t, relation, step, at + timedelta(seconds=5 * k), failed)
                for relation, declared in s["checks"].items():
                    for c in declared:
                        _check_rows(checks, run_id, t, relation, c, at + timedelta(minutes=1), rng)
            _run_row(runs, run_id, "*", "*", "validate", at + timedelta(minutes=1), False)
        write_deltalake(
            str(root / "lake" / "_lh360" / "runs"), pa.table(runs, schema=_schema(RUN_FIELDS)), mode="append"
        )
        write_deltalake(
            str(root / "lake" / "_lh360" / "checks"), pa.table(checks, schema=_schema(CHECK_FIELDS)), mode="append"
        )
        counts["runs"] += len(runs["run_id"])
        counts["checks"] += len(checks["run_id"])
    return counts


def _run_row(cols: dict, run_id: str, table: str, relation: str, step: str, at: datetime, failed: bool) -> None:
    detail = {"rule_failures": {"cat_conhecida": 5, "v_positivo": 1}} if step == "refine" else None
    row = {
        "run_id": run_id,
        "target": "local",
        "table": table,
        "relation": relation,
        "step": step,
        "status": "failed" if failed else "ok",
        "started_at": at,
        "ended_at": at + timedelta(seconds=2),
        "seconds": 2.0,
        "rows_in": 100,
        "rows_out": 100,
        "rows_rescued": 0,
        "rows_quarantined": 5 if step == "refine" else None,
        "rows_dropped": 0,
        "version_before": None,
        "version_after": 1,
        "source_versions": None,
        "exit_code": 3 if failed else 0,
        "error": "engine error: generated failure" if failed else None,
        "detail": json.dumps(detail) if detail else None,
        "host": "bench",
        "pid": 1,
        "lh360_version": "bench",
    }
    for k, v in row.items():
        cols[k].append(v)


def _check_rows(cols: dict, run_id: str, table: str, relation: str, check: dict, at: datetime, rng) -> None:
    ((kind, params),) = check.items()
    names = [f"{kind}_{c}" for c in params] if kind in ("not_null", "unique") else [kind]
    if kind == "accepted_values":
        names = [f"accepted_values_{params['column']}"]
    if kind == "freshness":
        names = [f"freshness_{params['column']}"]
    for check_name in names:
        roll = rng.random()
        status = "fail" if roll < 0.01 else "warn" if roll < 0.03 else "pass"
        if kind == "row_count":
            observed = json.dumps(1000 + rng.randint(0, 50))
        elif kind == "freshness":
            observed = json.dumps((at - timedelta(minutes=rng.randint(5, 150))).isoformat())
        else:
            observed = json.dumps(0 if status == "pass" else rng.randint(1, 9))
        row = {
            "run_id": run_id,
            "target": "local",
            "table": table,
            "relation": relation,
            "check": check_name,
            "kind": kind,
            "severity": "error",
            "status": status,
            "observed": observed,
            "threshold": "generated",
            "message": "",
            "failing_rows": None,
            "sample": None,
            "delta_version": 1,
            "query_id": None,
            "engine": "duckdb",
            "checked_at": at,
            "bytes_scanned": None,
            "cost_usd": None,
        }
        for k, v in row.items():
            cols[k].append(v)


def big_lake(tables: int, days: int, fresh: bool) -> tuple[Path, dict]:
    root = DATA / f"docs-{tables}x{days}d"
    marker = root / "ledger-rows.json"
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        write_project(root, tables)
        write_tables(root, tables)
        counts = write_ledgers(root, tables, days)
        marker.write_text(json.dumps(counts))
    return root, json.loads(marker.read_text())


# ---- measure -----------------------------------------------------------------------------------------


# wall seconds, CPU seconds (user + system, all threads) and peak RSS of one command in a fresh child process:
# on a shared machine the CPU time says what the build costs when the wall clock also counts waiting for a core
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "dt = time.perf_counter() - t; ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss)\n"
)


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=cwd, capture_output=True, text=True)
    rc, wall, cpu, peak_kib = proc.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"benchmark command failed ({rc}): {' '.join(cmd)}\n{proc.stderr}")
    return float(wall), float(cpu), int(peak_kib) / 1024


def build_seconds(root: Path, trials: int, since: str) -> dict:
    out = root / "site"
    runs = [measure(lh360("docs", "build", "--out", str(out), "--since", since), root) for _ in range(trials)]
    wall, cpu, peak = min(runs)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    pages = sum(1 for _ in out.rglob("*.html"))
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_mib": round(peak),
        "pages": pages,
        "site_mib": round(size / 2**20, 1),
    }


def verdict(figures: dict, target: float) -> dict:
    return {
        **figures,
        "target_s": target,
        "ratio": round(figures["seconds"] / target, 2),
        "verdict": "ok" if figures["seconds"] < target else "TOO SLOW",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=50)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--since", default="30d", help="the history the site shows (docs build --since)")
    ap.add_argument("--fresh", action="store_true", help="rebuild both lakes")
    args = ap.parse_args()

    import os

    demo = demo_lake(args.fresh)
    demo_figures = build_seconds(demo, args.trials, args.since)
    root, rows = big_lake(args.tables, args.days, args.fresh)
    big_figures = build_seconds(root, args.trials, args.since)
    report(
        "docs_build",
        {
            "load_average": [round(x, 1) for x in os.getloadavg()],  # > 2 on 2 cores: the wall clock waits
            "demo": verdict(demo_figures, DEMO_TARGET_S),
            "big": {
                "tables": args.tables,
                "days": args.days,
                "ledger_rows": rows,
                "since": args.since,
                **verdict(big_figures, BIG_TARGET_S),
            },
        },
    )


if __name__ == "__main__":
    main()
