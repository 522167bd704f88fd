"""Silver promote of 100k changed rows into a 2 M-row silver table, against a bare delta-rs `merge` guarded
by `sequence_by` on the same data. Target: promote <= 1.3x the bare merge.

    python benchmarks/bench_promote.py [--rows 2000000] [--changes 100000] [--trials 2]

The promote does everything `lh360 promote --to silver` does after the lock: find the watermark, read the
new bronze batch, project it (Spark SQL → DuckDB), evaluate two expectations, dedupe, merge with the
guard, commit the watermark. The baseline merges the already-projected 100k rows into a copy of the same
silver table. Both start from the same files (copied before each trial); best of N trials each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import DATA, report  # noqa: E402

SPEC = {
    "table": "contas",
    "source": {"path": "contas/"},
    "silver": {
        "keys": ["id"],
        "sequence_by": "updated_at",
        "columns": {
            "id": "cast(id as bigint)",
            "cpf": "regexp_replace(cpf, '[^0-9]', '')",
            "nome": "initcap(trim(nome))",
            "email": "lower(email)",
            "uf": "upper(uf)",
            "renda": "cast(renda as decimal(18,2))",
            "ativo": "ativo",
            "updated_at": "to_timestamp(updated_at)",
        },
        "expectations": [
            {"name": "cpf_11_digitos", "rule": "length(cpf) = 11", "action": "quarantine"},
            {"name": "email_valido", "rule": "email like '%@%'", "action": "warn"},
        ],
    },
}

BRONZE_SQL = """
SELECT i AS id,
       lpad(CAST((i * 7919) % 99999999999 AS VARCHAR), 11, '0') AS cpf,
       'cliente ' || CAST(i AS VARCHAR) || ' da silva' AS nome,
       'c' || CAST(i AS VARCHAR) || '@Example.com' AS email,
       ['sp', 'rj', 'mg', 'ba', 'rs', 'pr', 'pe'][1 + (i % 7)] AS uf,
       CAST(((i * 37) % 100000) / 7.0 AS DECIMAL(18, 2)) AS renda,
       (i % 5) <> 0 AS ativo,
       strftime(TIMESTAMP '2025-01-01' + to_seconds({seq_offset} + i % 86400), '%Y-%m-%dT%H:%M:%S') || '-03:00' AS updated_at,
       'file-{batch}.json' AS _source_file,
       CAST({batch} AS BIGINT) AS _batch_id
FROM {ids} AS t(i)
"""


def project_dir(root: Path):
    import yaml

    (root / "configs" / "tables").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "lh360.yaml").write_text(
        yaml.safe_dump(
            {
                "project": "bench",
                "default_target": "local",
                "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake"}},
            }
        )
    )
    (root / "configs" / "tables" / "contas.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    from lh360.config import load_project

    return load_project(root / "configs" / "lh360.yaml")


def append_bronze(lake: Path, sql: str, batch: int) -> None:
    import duckdb
    from deltalake import write_deltalake

    from lh360.delta import commit_properties

    con = duckdb.connect()
    data = con.sql(sql).to_arrow_table()
    write_deltalake(
        str(lake / "bronze" / "contas"),
        data,
        mode="append",
        commit_properties=commit_properties("lh360-ingest-contas", batch, {"lh360.step": "ingest"}),
    )
    con.close()


def prepare(root: Path, rows: int, changes: int):
    """bronze batch 0 (rows) → silver (rows); bronze batch 1 (changes, newer) waiting to be promoted."""
    from lh360.engines.local.refine import refine

    shutil.rmtree(root, ignore_errors=True)
    project = project_dir(root)
    lake = root / "lake"
    append_bronze(lake, BRONZE_SQL.format(ids=f"range(0, {rows})", batch=0, seq_offset=0), 0)
    refine(project.target(), project.specs["contas"])
    # 100k changes spread over the whole key range, every one newer than silver
    step = max(rows // changes, 1)
    ids = f"(SELECT range AS i FROM range(0, {rows}) WHERE range % {step} = 0 LIMIT {changes})"
    append_bronze(lake, BRONZE_SQL.format(ids=ids, batch=1, seq_offset=86400), 1)
    shutil.copytree(lake / "silver" / "contas", root / "silver_base")
    return project


def merge_source(project) -> object:
    """The 100k rows as the promote would merge them (projected, deduplicated): the baseline's input."""
    from lh360.delta import open_table
    from lh360.engines.local.duck import connect, scan_sql
    from lh360.engines.local.refine import TMP, refine_sql

    spec = project.specs["contas"]
    uri = str(Path(project.target().lake) / "bronze" / "contas")
    dt = open_table(uri)
    con = connect()
    con.execute(f"CREATE TEMP VIEW {TMP}bronze_batch AS SELECT * FROM ({scan_sql(con, dt, uri)}) WHERE _batch_id = 1")
    sql = refine_sql(spec, list(dt.schema().to_arrow().names))
    con.execute(f"CREATE TEMP TABLE {TMP}refined AS {sql['refined']}")
    data = con.sql(sql["merge_source"]).to_arrow_table()
    con.close()
    return data


def reset_silver(root: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(root / "silver_base", dest)


def run_promote(root: Path, project) -> float:
    from lh360.engines.local.refine import refine

    reset_silver(root, root / "lake" / "silver" / "contas")
    shutil.rmtree(root / "lake" / "quarantine", ignore_errors=True)
    t = time.perf_counter()
    r = refine(project.target(), project.specs["contas"])
    dt = time.perf_counter() - t
    assert r.updated == r.rows_in, (r.updated, r.rows_in)
    return dt


def run_bare_merge(root: Path, source) -> float:
    from deltalake import DeltaTable

    dest = root / "bare_silver"
    reset_silver(root, dest)
    t = time.perf_counter()
    dt = DeltaTable(str(dest))
    m = dt.merge(source, predicate='t."id" = s."id"', source_alias="s", target_alias="t")
    metrics = (
        m.when_matched_update_all(predicate='s."updated_at" > t."updated_at"').when_not_matched_insert_all().execute()
    )
    elapsed = time.perf_counter() - t
    assert metrics["num_target_rows_updated"] == source.num_rows
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=2)
    args = ap.parse_args()
    root = DATA / "promote"
    t = time.perf_counter()
    project = prepare(root, args.rows, args.changes)
    setup_s = time.perf_counter() - t
    source = merge_source(project)
    promote_s, merge_s = [], []
    for _ in range(args.trials):  # interleaved, so drift in the machine hits both alike
        merge_s.append(run_bare_merge(root, source))
        promote_s.append(run_promote(root, project))
    report(
        "promote",
        {
            "silver_rows": args.rows,
            "changed_rows": source.num_rows,
            "setup_s": round(setup_s, 1),
            "bare_merge_s": round(min(merge_s), 3),
            "promote_s": round(min(promote_s), 3),
            "ratio": round(min(promote_s) / min(merge_s), 3),
            "target": "ratio <= 1.3",
        },
    )


if __name__ == "__main__":
    main()
