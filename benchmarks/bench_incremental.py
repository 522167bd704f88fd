"""Incremental ingest: with 10,000 files already ingested, ingesting 1 new file costs about what 1 file
into an empty table costs (target ratio <= 1.5). A run must cost what is new, not what is there.

    python benchmarks/bench_incremental.py [--files 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DATA, measure, report  # noqa: E402


def make(work: Path, n_files: int) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    land = work / "landing" / "eventos"
    land.mkdir(parents=True)
    for i in range(n_files):
        folder = land / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.json").write_text(json.dumps({"id": i, "nome": f"n{i}", "renda": i * 1.5}) + "\n")
    (work / "configs" / "tables").mkdir(parents=True)
    config = {
        "project": "b",
        "default_target": "local",
        "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake"}},
    }
    (work / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = {"table": "eventos", "source": {"path": "eventos/"}, "bronze": {"max_files_per_batch": 1000}}
    (work / "configs" / "tables" / "eventos.yaml").write_text(yaml.safe_dump(spec))
    return work / "configs" / "lh360.yaml"


def ingest(cfg: Path) -> float:
    return measure([sys.executable, "-m", "lh360", "--config", str(cfg), "ingest", "eventos"])[0]


def one_new_file(cfg: Path, name: str) -> None:
    (cfg.parent.parent / "landing" / "eventos" / f"{name}.json").write_text(
        json.dumps({"id": -1, "nome": name, "renda": 1.0}) + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    big = make(DATA / "incr-big", args.files)
    full = ingest(big)  # 10,000 files in 10 batches of 1,000
    small = make(DATA / "incr-small", 0)
    # the empty-table case must create the table each time: fresh lake per repetition
    empty_times, incr_times = [], []
    for i in range(args.repeat):
        for sub in ("lake", "landing/eventos"):
            shutil.rmtree(small.parent.parent / sub, ignore_errors=True)
        (small.parent.parent / "landing" / "eventos").mkdir(parents=True)
        one_new_file(small, f"new{i}")
        empty_times.append(ingest(small))
        one_new_file(big, f"new{i}")
        incr_times.append(ingest(big))
    shutil.rmtree(small.parent.parent / "landing", ignore_errors=True)
    empty, incr = min(empty_times), min(incr_times)
    report(
        "incremental_ingest",
        {
            "already_ingested_files": args.files,
            "initial_ingest_of_all_files_s": round(full, 2),
            "one_file_into_empty_table_s": round(empty, 3),
            "one_new_file_after_10k_s": round(incr, 3),
            "ratio": round(incr / empty, 2),
            "target": "ratio <= 1.5",
        },
    )
    shutil.rmtree(DATA / "incr-big", ignore_errors=True)
    shutil.rmtree(DATA / "incr-small", ignore_errors=True)


if __name__ == "__main__":
    main()
