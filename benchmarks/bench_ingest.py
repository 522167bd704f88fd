"""Ingest of ~1 GB of generated clientes NDJSON (2 M rows, 200 files).

Compares, in the same run on the same files:
  lh360 ingest (pyarrow line split → one DuckDB query writing the Parquet → delta-rs commit)
  baseline: DuckDB read_json → COPY TO parquet  (the practical limit of this stack)
and checks peak memory stays under 1 GiB and flat when the input doubles. Also reported, without a
target: the same files when every line lacks a column of the table (a schema hint for a field the
producer omits), which sends the batch to the slower query that never raises per line.

    python benchmarks/bench_ingest.py [--rows 2000000] [--files 200] [--no-double]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DATA, measure, report  # noqa: E402

BASELINE = (
    "import duckdb, sys\n"
    "files = sys.argv[1]; out = sys.argv[2]\n"
    "duckdb.sql(f\"COPY (SELECT * FROM read_json('{files}/**/*.json', format='newline_delimited')) TO '{out}' (FORMAT parquet)\")\n"
)


def landing(rows: int, files: int) -> Path:
    """Generated once and cached: benchmarks/.data/landing-<rows>-<files>/clientes/…"""
    from lh360.demo.generator import write_landing

    root = DATA / f"landing-{rows}-{files}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating {rows:,} rows in {files} files under {root} …", file=sys.stderr)
        # clean data: the baseline (read_json) stops at the first malformed line, ours would keep it
        write_landing(root / "clientes", rows=rows, files=files, seed=7, bad=False)
        done.touch()
    return root


def project(work: Path, landing_root: Path, extra_hint: str | None = None) -> Path:
    repo = Path(__file__).resolve().parents[1]
    (work / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    config = {
        "project": "bench",
        "default_target": "local",
        "targets": {"local": {"engine": "local", "landing": str(landing_root), "lake": str(work / "lake")}},
    }
    (work / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = yaml.safe_load((repo / "configs" / "tables" / "clientes.yaml").read_text())
    if extra_hint:
        spec["bronze"]["schema_hints"][extra_hint] = "string"
    (work / "configs" / "tables" / "clientes.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return work / "configs" / "lh360.yaml"


def run(rows: int, files: int, irregular: bool = False) -> dict:
    land = landing(rows, files)
    size = sum(p.stat().st_size for p in (land / "clientes").rglob("*.json"))
    work = DATA / f"work-{rows}-{files}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = project(work, land)
    out = work / "baseline.parquet"
    # warm the page cache once so neither side pays for the first disk read
    measure([sys.executable, "-c", BASELINE, str(land / "clientes"), str(out)])
    base_s, base_mib = measure([sys.executable, "-c", BASELINE, str(land / "clientes"), str(out)])
    ours_s, ours_mib = measure([sys.executable, "-m", "lh360", "--config", str(cfg), "ingest", "clientes"])
    figures = {}
    if irregular:
        shutil.rmtree(work, ignore_errors=True)
        cfg = project(work, land, extra_hint="campo_opcional")
        slow_s, _ = measure([sys.executable, "-m", "lh360", "--config", str(cfg), "ingest", "clientes"])
        figures = {"irregular_lines_lh360_ingest_s": round(slow_s, 2), "irregular_ratio": round(slow_s / base_s, 2)}
    shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": rows,
        "files": files,
        "input_mib": round(size / 2**20),
        "baseline_duckdb_read_json_to_parquet_s": round(base_s, 2),
        "lh360_ingest_s": round(ours_s, 2),
        "ratio": round(ours_s / base_s, 2),
        "lh360_peak_mib": round(ours_mib),
        "baseline_peak_mib": round(base_mib),
        "lh360_mib_per_s": round(size / 2**20 / ours_s),
        **figures,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--no-double", action="store_true", help="skip the 2× input run (memory flatness)")
    args = ap.parse_args()
    one = run(args.rows, args.files, irregular=True)
    figures = {"1x": one, "target": "ratio <= 1.3, peak <= 1024 MiB, flat when input doubles"}
    if not args.no_double:
        two = run(args.rows * 2, args.files * 2)
        figures["2x"] = two
        figures["peak_growth"] = round(two["lh360_peak_mib"] / one["lh360_peak_mib"], 2)
    report("ingest", figures)


if __name__ == "__main__":
    main()
