"""Validate with 10 checks on a 2 M-row silver table: one scan, and wall time <= 1.5x one hand-written DuckDB
query computing the same ten aggregates over the table's Parquet files.

    python benchmarks/bench_validate.py [--rows 2000000] [--trials 3]

Needs the silver table of bench_promote.py (built here if missing). lh360's side is everything `lh360
validate` does for the table: attach the Delta snapshot, compile, run, judge (ledger writes excluded: they
are a separate commit after the checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import DATA, report  # noqa: E402

CHECKS = [
    {"row_count": {"min": 1}},
    {"not_null": ["id", "cpf"]},
    {"unique": ["id"]},
    {"accepted_values": {"column": "uf", "values": ["SP", "RJ", "MG", "BA", "RS", "PR", "PE"]}},
    {"freshness": {"column": "updated_at", "max_age": "10000d"}},
    {"expression": {"name": "renda_nao_negativa", "rule": "renda >= 0"}},
    {"range": {"column": "renda", "min": 0, "max": 1000000}},
    {"not_null": ["email"]},
    {"not_null": ["nome"]},
]

HAND = """
SELECT count(*), count(*) FILTER (WHERE id IS NULL), count(*) FILTER (WHERE cpf IS NULL),
       count(id) - count(DISTINCT id), count(*) FILTER (WHERE uf NOT IN ('SP','RJ','MG','BA','RS','PR','PE')),
       max(updated_at), count(*) FILTER (WHERE NOT coalesce(renda >= 0, false)),
       count(*) FILTER (WHERE renda < 0 OR renda > 1000000), count(*) FILTER (WHERE email IS NULL),
       count(*) FILTER (WHERE nome IS NULL)
FROM read_parquet({files})
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    import bench_promote

    root = DATA / "promote"
    if not (root / "silver_base").exists():
        bench_promote.prepare(root, args.rows, args.rows // 20)
    project = bench_promote.project_dir(root)
    bench_promote.reset_silver(root, root / "lake" / "silver" / "contas")

    import duckdb
    from deltalake import DeltaTable

    from lh360.checks import run_validation
    from lh360.engines.local.query import DuckDBRunner
    from lh360.spec import TableSpec

    spec = TableSpec.model_validate({**bench_promote.SPEC, "checks": {"silver.contas": CHECKS}})
    project.specs = {"contas": spec}
    target = project.target()
    files = DeltaTable(str(root / "lake" / "silver" / "contas")).file_uris()
    hand_sql = HAND.format(files="[" + ", ".join(f"'{f}'" for f in files) + "]")

    def hand() -> float:
        con = duckdb.connect()
        t = time.perf_counter()
        row = con.execute(hand_sql).fetchall()[0]
        elapsed = time.perf_counter() - t
        con.close()
        assert row[0] == args.rows or row[0] > 0
        return elapsed

    queries = []

    def ours() -> float:
        t = time.perf_counter()
        runner = DuckDBRunner(target)
        rep = run_validation(project, target, runner)
        elapsed = time.perf_counter() - t
        queries.append(len(runner.queries))
        runner.close()
        assert len(rep.results) == 10, len(rep.results)
        return elapsed

    hand_s, ours_s = [], []
    for _ in range(args.trials):
        hand_s.append(hand())
        ours_s.append(ours())
    report(
        "validate",
        {
            "silver_rows": args.rows,
            "checks": 10,
            "queries_per_validate": max(queries),
            "hand_written_query_s": round(min(hand_s), 3),
            "validate_s": round(min(ours_s), 3),
            "ratio": round(min(ours_s) / min(hand_s), 3),
            "target": "one query; ratio <= 1.5",
        },
    )


if __name__ == "__main__":
    main()
