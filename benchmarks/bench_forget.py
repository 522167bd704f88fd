"""Erasure of one person (`lh360 forget`, without --vacuum) from the 2 M-row clientes tables, against bare
delta-rs DELETEs of the same person on copies of the same bronze and silver tables. Target: forget <= 3x the
sum of the two DELETEs, and forget rewrites only the files that hold the person.

    python benchmarks/bench_forget.py [--rows 2000000] [--files 200] [--trials 2]

The landing zone is the one bench_ingest.py generates (lh360/demo/generator.py, cached); the lakehouse is built
once from it with the demo clientes spec (CPF hashed in silver, silver partitioned by UF, two gold tables)
and copied before each trial. The forget side is everything `lh360 forget` does after parsing: locks,
journal, finding the person in bronze (the CPF as silver computes it from the raw value, then the person's
id), silver and quarantine (the hashed CPF), rewriting the landing files that hold them, one commit per
table, the check ledger's samples, both gold tables recomputed, the erasure and run ledgers. The baseline is
`DeltaTable.delete("cpf = '<value>'")` on bronze (the raw CPF) plus the same on silver (its HMAC): what a
data engineer would run by hand, without landing, quarantine, gold or any record.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import DATA, report  # noqa: E402
from bench_ingest import landing, project  # noqa: E402

KEY = "bench-pii-key-0123456789abcdef"


def build(rows: int, files: int) -> Path:
    """The lakehouse after ingest and promote to gold, built once and cached."""
    base = DATA / f"forget-base-{rows}-{files}"
    if (base / ".complete").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    land = landing(rows, files)
    print(f"building the lakehouse under {base} …", file=sys.stderr)
    base.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(land), str(base / "landing")], check=True)
    cfg = project(base, base / "landing")
    for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"]):
        subprocess.run([sys.executable, "-m", "lh360", "--config", str(cfg), "-q", *args], check=True)
    (base / ".complete").touch()
    return base


def restore(base: Path, work: Path) -> Path:
    """A fresh copy of the lakehouse (landing files hard-linked: forget replaces a file, never edits it)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(base / "landing"), str(work / "landing")], check=True)
    subprocess.run(["cp", "-a", str(base / "lake"), str(work / "lake")], check=True)
    return project(work, work / "landing")


def person(base: Path) -> dict:
    """The first record of the first landing file: the person erased in every trial."""
    first = sorted((base / "landing" / "clientes").rglob("*.json*"))[0]
    data = first.read_bytes()
    line = (gzip.decompress(data) if first.name.endswith(".gz") else data).split(b"\n", 1)[0]
    return json.loads(line)


def files_holding(lake: Path, layer: str, where: str) -> tuple[int, int]:
    """(files of the table's snapshot, files holding a row that matches `where`)."""
    import duckdb
    from deltalake import DeltaTable

    uris = DeltaTable(str(lake / layer / "clientes")).file_uris()
    listing = "[" + ", ".join(f"'{u}'" for u in uris) + "]"
    hit = duckdb.sql(
        f"SELECT count(DISTINCT filename) FROM read_parquet({listing}, filename = true, union_by_name = true) WHERE {where}"
    ).fetchall()[0][0]
    return len(uris), int(hit)


def run_forget(base: Path, work: Path, cpf: str):
    from lh360.config import load_project
    from lh360.context import Lakehouse

    cfg = restore(base, work)
    project_ = load_project(cfg)
    lh = Lakehouse(project_, project_.target())
    t = time.perf_counter()
    result = lh.forget("clientes", [f"cpf={cpf}"])
    return time.perf_counter() - t, result


def run_bare(base: Path, work: Path, cpf: str, hashed: str) -> tuple[float, float, dict]:
    from deltalake import DeltaTable

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for layer in ("bronze", "silver"):
        subprocess.run(["cp", "-a", str(base / "lake" / layer / "clientes"), str(work / layer)], check=True)
    # bronze is append-only: a bare DELETE needs that off first (not timed)
    DeltaTable(str(work / "bronze")).alter.set_table_properties({"delta.appendOnly": "false"})
    t = time.perf_counter()
    b = DeltaTable(str(work / "bronze")).delete(f"cpf = '{cpf}'")
    bronze_s = time.perf_counter() - t
    t = time.perf_counter()
    s = DeltaTable(str(work / "silver")).delete(f"cpf = '{hashed}'")
    silver_s = time.perf_counter() - t
    return bronze_s, silver_s, {"bronze": b, "silver": s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--trials", type=int, default=2)
    args = ap.parse_args()
    os.environ["LH360_PII_KEY"] = KEY
    from lh360.pii import hmac_hex

    t = time.perf_counter()
    base = build(args.rows, args.files)
    setup_s = time.perf_counter() - t
    who = person(base)
    cpf = who["cpf"]
    hashed = hmac_hex("".join(ch for ch in cpf if ch.isdigit()), KEY.encode())
    bronze_files, bronze_hits = files_holding(base / "lake", "bronze", f"id = {int(who['id'])}")
    silver_files, silver_hits = files_holding(base / "lake", "silver", f"id = {int(who['id'])}")
    forget_s, bare_b, bare_s, results = [], [], [], []
    for _ in range(args.trials):  # interleaved, so drift in the machine hits both alike
        b, s, metrics = run_bare(base, DATA / "forget-bare", cpf, hashed)
        bare_b.append(b)
        bare_s.append(s)
        seconds, result = run_forget(base, DATA / "forget-work", cpf)
        forget_s.append(seconds)
        results.append(result)
    result = results[-1]
    bare = min(bare_b) + min(bare_s)
    report(
        "forget",
        {
            "rows": args.rows,
            "setup_s": round(setup_s, 1),
            "person_rows": {k: v["rows"] for k, v in result.layers.items()},
            "bronze_files": bronze_files,
            "bronze_files_holding_person": bronze_hits,
            "bronze_files_rewritten": result.layers["bronze.clientes"]["files"],
            "silver_files": silver_files,
            "silver_files_holding_person": silver_hits,
            "silver_files_rewritten": result.layers["silver.clientes"]["files"],
            "bare_delete_rows": {k: v.get("num_deleted_rows") for k, v in metrics.items()},
            "bare_bronze_delete_s": round(min(bare_b), 3),
            "bare_silver_delete_s": round(min(bare_s), 3),
            "bare_sum_s": round(bare, 3),
            "forget_s": round(min(forget_s), 3),
            "gold_recomputed": result.gold,
            "ratio": round(min(forget_s) / bare, 3),
            "target": "ratio <= 3, files rewritten == files holding the person",
        },
    )


if __name__ == "__main__":
    main()
