"""Parity: the Spark job's transformations (lh360/spark/transforms.py, what runs on Databricks) and the local
engine (DuckDB + delta-rs) turn the same bronze into the same silver, quarantine and gold.

Input: the generated `clientes` landing data (lh360.demo.generator, with its deliberately bad lines: malformed
JSON, wrong types, an unknown field, short CPFs, invalid UFs …), landed in two waves so the second wave
updates customers of the first. The local engine ingests and refines each wave, then aggregates gold.
Spark reads the very bronze files each local ingest committed (Auto Loader and Delta are not in
open-source Spark: the ingest I/O is tested by inspection in test_spark_job.py) and applies the job's
shared transformations batch by batch: refine_transform → scd1_apply / scd2_changes + scd2_apply, then
the gold SQL. Every silver row, every quarantined row with its failed rules, the per-batch counters and
every gold row must be equal.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'pyspark>=4,<5'")

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
ROWS, FILES, SEED = 1200, 6, 7


def normalize(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Decimal):
        return round(float(value), 6)
    if isinstance(value, list):
        return tuple(normalize(v) for v in value)
    return value


def rows_of(records: list[dict], columns: list[str]) -> list[tuple]:
    out = [tuple(normalize(r[c]) for c in columns) for r in records]
    return sorted(out, key=lambda t: tuple((x is None, str(x)) for x in t))


def delta_rows(path: Path) -> list[dict]:
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    return pa.table(
        QueryBuilder().register("t", DeltaTable(str(path))).execute("SELECT * FROM t").read_all()
    ).to_pylist()


def bronze_files(path: Path) -> set[str]:
    from deltalake import DeltaTable

    return set(DeltaTable(str(path)).file_uris())


@pytest.fixture(scope="module")
def landing_waves(tmp_path_factory):
    from lh360.demo.generator import write_landing

    staging = tmp_path_factory.mktemp("staging")
    paths = write_landing(staging, rows=ROWS, files=FILES, seed=SEED, start=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    return staging, [paths[: FILES // 2], paths[FILES // 2 :]]


def local_run(root: Path, landing_waves, scd: int):
    """The local engine over the two waves; returns the project and the bronze files of each wave."""
    from lh360.config import load_project
    from lh360.engines.local import LocalEngine

    (root / "configs" / "tables").mkdir(parents=True)
    config = {
        "project": "parity",
        "default_target": "local",
        "targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake"}},
    }
    (root / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config))
    spec = yaml.safe_load((REPO / "configs" / "tables" / "clientes.yaml").read_text())
    spec["silver"]["scd"] = scd
    # rows without an id are quarantined as null_key before any rule: a drop rule that meets rows with an id
    spec["silver"]["expectations"].append({"name": "email_com_arroba", "rule": "email like '%@%'", "action": "drop"})
    (root / "configs" / "tables" / "clientes.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    project = load_project(root / "configs" / "lh360.yaml")
    engine = LocalEngine(project.target("local"))
    spec = project.specs["clientes"]
    staging, waves = landing_waves
    bronze = root / "lake" / "bronze" / "clientes"
    batches, refined, seen = [], [], set()
    for wave in waves:
        for p in wave:
            dst = root / "landing" / "clientes" / p.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        engine.ingest(spec)
        files = bronze_files(bronze)
        batches.append(sorted(files - seen))
        seen = files
        refined.append(engine.refine(spec).as_dict())
    gold = {rel: engine.aggregate(project, rel).as_dict() for rel in (f"gold.{g}" for g in spec.gold)}
    return project, batches, refined, gold


def spark_run(spark, project, batches):
    """The job's transformations, batch by batch, with the reference MERGE of transforms.py."""
    from lh360.spark import transforms as T

    spec = project.specs["clientes"].model_dump(mode="json")
    keys, seq = T.keys_and_sequence(spec)
    silver, quarantine, counters = None, [], []
    for files in batches:
        df = spark.read.option("mergeSchema", "true").parquet(*files)
        # the demo spec hashes and masks personal data: with the local engine's key, the same values
        source, quar, c = T.refine_transform(df, spec, os.environ["LH360_PII_KEY"].encode())
        counters.append(c)
        quarantine += [r.asDict() for r in quar.collect()]
        if silver is None:
            ddl = ", ".join(f"`{n}` {t}" for n, t in T.silver_schema_columns(source, spec))
            silver = spark.createDataFrame([], ddl)
        if T.scd_type(spec) == 2:
            silver = T.scd2_apply(silver, T.scd2_changes(silver, source, spec), keys)
        else:
            silver = T.scd1_apply(silver, source, keys, seq)
        silver = spark.createDataFrame(silver.collect(), silver.schema)  # cut the lineage between batches
    return silver, quarantine, counters


def spark_gold(spark, project, silver, name: str) -> list[dict]:
    from lh360.sql import parse_query, resolve, to_sql

    silver.createOrReplaceTempView("lh360_silver_clientes")
    sql = project.specs["clientes"].gold[name].sql
    query = to_sql(resolve(parse_query(sql), lambda layer, table: f"lh360_{layer}_{table}"), "spark")
    return [r.asDict() for r in spark.sql(query).collect()]


@pytest.mark.parametrize("scd", [1, 2])
def test_spark_transforms_equal_the_local_engine(spark, tmp_path, landing_waves, scd):
    project, batches, refined, gold = local_run(tmp_path / f"scd{scd}", landing_waves, scd)
    lake = tmp_path / f"scd{scd}" / "lake"
    spec = project.specs["clientes"]
    assert all(batches) and sum(r["rows_in"] for r in refined) == ROWS  # both waves reached bronze

    silver, quarantine, counters = spark_run(spark, project, batches)

    # per-batch counters of the expectations
    for local, remote in zip(refined, counters, strict=True):
        for key in ("rows_in", "kept", "dropped", "quarantined", "warned", "rule_failures"):
            assert remote[key] == local[key], key
    assert sum(c["quarantined"] for c in counters) > 0 and sum(c["dropped"] for c in counters) > 0

    # silver, every column (SCD2: with its history)
    columns = list(spec.silver.columns) + (["valid_from", "valid_to", "is_current"] if scd == 2 else [])
    local_silver = rows_of(delta_rows(lake / "silver" / "clientes"), columns)
    spark_silver = rows_of([r.asDict() for r in silver.collect()], columns)
    assert len(local_silver) == len(spark_silver) > ROWS // 2
    assert spark_silver == local_silver
    if scd == 2:
        assert any(r[-1] is False for r in local_silver)  # there is history to compare

    # quarantine: the same rows with the same failed rules
    qcols = [*spec.silver.columns, "_failed_rules"]
    assert rows_of(quarantine, qcols) == rows_of(delta_rows(lake / "quarantine" / "clientes"), qcols)

    # gold: every table, every row (gold SQL reads the whole silver table, SCD2 history included, on both)
    for relation, result in gold.items():
        name = relation.split(".", 1)[1]
        local_gold = delta_rows(lake / "gold" / name)
        assert len(local_gold) == result["rows_out"] > 0
        cols = list(local_gold[0])
        assert rows_of(spark_gold(spark, project, silver, name), cols) == rows_of(local_gold, cols), relation
