"""A year of hourly cron, accelerated: 8,760 `lh360 run` of one small landing file each, with maintenance.

What is simulated and why (see benchmarks/README.md): every hour of the year is one real run (landing check,
ingest, promote to gold, validate, and the maintenance the policy says is due), in process, each with a
fresh `Lakehouse` (a fresh engine, DuckDB connection and ledger, as a new process has), back to back. Only
the clock the maintenance policy reads is simulated (hour h of the year), so "every 1d" comes every 24 runs.
Retentions are the exception: delta-rs measures VACUUM's against the wall clock, in whole hours, and a
simulated week passes here in a few real minutes, so the policy keeps nothing (`retain: 0s`) and the
benchmark reports what a 7-day retention would add: the bytes the last 7 simulated days' VACUUMs deleted.

Measured: the median run time of the first and last 100 runs; whole `lh360 run --all` processes at the start
and the end (hours when no maintenance is due, the common case); `lh360 history` and `lh360 tables`
processes at ten points of the year; active files per table and bytes on disk against the table's own
(active) bytes, at the same points.

    python benchmarks/bench_cron_year.py                  # --hours 8760 --rows 40
    python benchmarks/bench_cron_year.py --hours 720      # a month, for a quick look
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import DATA, measure, report  # noqa: E402

SPEC = {
    "table": "eventos",
    "source": {"path": "eventos/"},
    "landing": {"settle": "0s", "min_files": 0},
    "bronze": {"schema_hints": {"id": "bigint", "valor": "decimal(18,2)"}},
    "silver": {
        "keys": ["id"],
        "sequence_by": "updated_at",
        "columns": {
            "id": "id",
            "categoria": "upper(categoria)",
            "valor": "valor",
            "updated_at": "to_timestamp(updated_at)",
        },
        "expectations": [{"name": "valor_positivo", "rule": "valor >= 0", "action": "quarantine"}],
    },
    "gold": {
        "por_categoria": {
            "sql": "SELECT categoria, count(*) AS eventos, sum(valor) AS total FROM silver.eventos GROUP BY categoria"
        }
    },
    "checks": {
        "silver.eventos": [{"row_count": {"min": 1}}, {"not_null": ["id", "categoria"]}, {"unique": ["id"]}],
        "gold.por_categoria": [{"row_count": {"min": 1}}],
    },
}
POLICY = {
    "compact": {"every": "1d"},
    "checkpoint": {"every": "1d"},
    "log_cleanup": {"every": "1d", "retain": "0s"},
    "vacuum": {"every": "1d", "retain": "0s", "allow_short_retention": True},
}
TABLES = (
    "bronze/eventos",
    "silver/eventos",
    "quarantine/eventos",
    "gold/por_categoria",
    "_lh360/runs",
    "_lh360/checks",
)


def setup(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    (root / "configs" / "tables").mkdir(parents=True)
    (root / "landing" / "eventos").mkdir(parents=True)
    config = {
        "project": "cron-year",
        "default_target": "local",
        "targets": {
            "local": {
                "engine": "local",
                "landing": "../landing",
                "lake": "../lake",
                "validator": "duckdb",
                "maintenance": POLICY,
            }
        },
    }
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "configs" / "tables" / "eventos.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))


def land(root: Path, hour: int, rows: int, rng: random.Random) -> None:
    """One small file: mostly new events, some updates of recent ones, now and then a negative value."""
    out = []
    for i in range(rows):
        new = i < rows * 3 // 4 or hour == 0
        key = hour * rows + i if new else rng.randrange(max(1, hour * rows))
        value = round(rng.uniform(-5, 500), 2)
        out.append({"id": key, "categoria": rng.choice("abcdefgh"), "valor": value, "updated_at": _ts(hour, i)})
    path = root / "landing" / "eventos" / f"{hour // 24:03d}" / f"h{hour:05d}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in out) + "\n")


def _ts(hour: int, i: int) -> str:
    day, h = divmod(hour, 24)
    month_day = time.gmtime(1735689600 + day * 86400)
    return time.strftime("%Y-%m-%dT", month_day) + f"{h:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"


def one_run(config: Path) -> tuple[float, list[str]]:
    """One cron hour, in process: (seconds, relations maintained)."""
    from lh360.config import load_project
    from lh360.context import Lakehouse

    t = time.perf_counter()
    project = load_project(config)
    summary = Lakehouse(project, project.target()).run(None)
    seconds = time.perf_counter() - t
    if not summary.ok:
        raise SystemExit(f"run failed at {summary.failed_step}: {summary.error}")
    return seconds, [r.relation for r in summary.maintenance or []]


def disk(root: Path) -> dict[str, dict[str, int]]:
    """Per table: active files and bytes (the current version), and every byte under its folder."""
    from lh360.delta import open_table
    from lh360.engines.local.maintain import active_files

    out = {}
    for rel in TABLES:
        folder = root / "lake" / rel
        dt = open_table(str(folder))
        if dt is None:
            continue
        files, active = active_files(dt)
        on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        logs = len(list((folder / "_delta_log").iterdir()))
        out[rel] = {"active_files": files, "active_bytes": active, "disk_bytes": on_disk, "log_files": logs}
    return out


def cli_seconds(root: Path, *args: str, trials: int = 3) -> float:
    env = {"LH360_CONFIG": str(root / "configs" / "lh360.yaml")}
    return min(measure([sys.executable, "-m", "lh360", *args], cwd=root, env=env)[0] for _ in range(trials))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=8760)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--points", type=int, default=10, help="how many times to measure history/tables/disk")
    ap.add_argument("--cli-runs", type=int, default=10, help="whole `lh360 run --all` processes at each end")
    args = ap.parse_args()

    import lh360.maintenance as maintenance

    root = DATA / "cron_year"
    setup(root)
    config = root / "configs" / "lh360.yaml"
    rng = random.Random(2025)
    start = time.time()
    clock = {"hour": 0}
    maintenance.now = lambda: start + clock["hour"] * 3600.0  # the policy's clock: hour h of the year

    times: list[float] = []
    maintained_at: list[int] = []
    deleted: list[tuple[int, int, int]] = []  # (hour, data bytes, log bytes) maintenance deleted
    points: list[dict] = []
    cli: dict[str, list[float]] = {"start": [], "end": []}
    every = max(1, args.hours // args.points)
    hour = 0

    def cron(n: int) -> None:
        nonlocal hour
        for _ in range(n):
            clock["hour"] = hour
            land(root, hour, args.rows, rng)
            before = files(root)
            seconds, maintained = one_run(config)
            times.append(seconds)
            if maintained:
                maintained_at.append(hour)
                gone = {k: v for k, v in before.items() if k not in files(root)}
                logs = sum(v for k, v in gone.items() if "_delta_log" in k)
                deleted.append((hour, sum(gone.values()) - logs, logs))
            hour += 1
            if hour % every == 0 or hour == args.hours:
                points.append(
                    {
                        "hour": hour,
                        "history_s": round(cli_seconds(root, "history"), 3),
                        "tables_s": round(cli_seconds(root, "tables"), 3),
                        "disk": disk(root),
                    }
                )
                recent = statistics.median(times[-100:])
                print(f"hour {hour}: median of the last 100 runs {recent:.3f} s", file=sys.stderr, flush=True)

    def cli_runs(label: str) -> None:
        nonlocal hour
        for _ in range(args.cli_runs):
            land(root, hour, args.rows, rng)
            cli[label].append(
                measure([sys.executable, "-m", "lh360", "run", "--all"], cwd=root, env={"LH360_CONFIG": str(config)})[0]
            )
            hour += 1

    cron(min(100, args.hours))
    cli_runs("start")
    cron(args.hours - hour - args.cli_runs)
    cli_runs("end")

    first, last = times[:100], times[-100:]
    final = points[-1]["disk"]
    # what the default retentions would keep on top: data files deleted in the last 7 days, log files in 30
    week = sum(d for h, d, _ in deleted if h >= hour - 7 * 24)
    month_of_logs = sum(g for h, _, g in deleted if h >= hour - 30 * 24)
    total_active = sum(t["active_bytes"] for t in final.values())
    total_disk = sum(t["disk_bytes"] for t in final.values())
    report(
        "cron_year",
        {
            "hours": hour,
            "rows_per_file": args.rows,
            "median_first_100_s": round(statistics.median(first), 4),
            "median_last_100_s": round(statistics.median(last), 4),
            "ratio_last_first": round(statistics.median(last) / statistics.median(first), 3),
            "cli_run_start_median_s": round(statistics.median(cli["start"]), 3),
            "cli_run_end_median_s": round(statistics.median(cli["end"]), 3),
            "maintenance_runs": len(maintained_at),
            "history_s": [p["history_s"] for p in points],
            "tables_s": [p["tables_s"] for p in points],
            "active_files": {rel: [p["disk"].get(rel, {}).get("active_files") for p in points] for rel in TABLES},
            "disk_over_active": {
                rel: [
                    round(p["disk"][rel]["disk_bytes"] / max(1, p["disk"][rel]["active_bytes"]), 2)
                    for p in points
                    if rel in p["disk"]
                ]
                for rel in TABLES
            },
            "final": final,
            "total_active_bytes": total_active,
            "total_disk_bytes": total_disk,
            "retained_7d_data_bytes": week,
            "retained_30d_log_bytes": month_of_logs,
            "landing_bytes": sum(f.stat().st_size for f in (root / "landing").rglob("*.json")),
            "wall_s": round(time.time() - start, 1),
        },
    )


def files(root: Path) -> dict[str, int]:
    """{path: size} of every file in the lake."""
    return {str(f): f.stat().st_size for f in (root / "lake").rglob("*") if f.is_file()}


if __name__ == "__main__":
    main()
