"""Parity of the ordering rules: NULL sequences and ties on the sequence (across batches, across files of one
batch landed in the reverse of their name order, across lines of one file) give the same silver on the
local engine and with the Spark job's transforms, promoted batch by batch, SCD1 and SCD2."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'pyspark>=4,<5'")

from tests.conftest import read_table  # noqa: E402
from tests.spark.test_parity import bronze_files, normalize  # noqa: E402

pytestmark = pytest.mark.spark

T1, T2 = "2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z"


def spec(scd: int) -> dict:
    return {
        "table": "ev",
        "source": {"path": "ev/"},
        "silver": {
            "keys": ["id"],
            "sequence_by": "ts",
            "scd": scd,
            "columns": {"id": "cast(id as bigint)", "v": "v", "ts": "to_timestamp(ts)"},
        },
    }


def batches() -> list[dict[str, list[dict]]]:
    """Three ingest batches: {file name: records}; files of one batch land in the reverse of name order."""
    return [
        {
            "z.json": [{"id": 1, "v": "1: null", "ts": None}, {"id": 2, "v": "2: z first", "ts": T1}],
            "a.json": [{"id": 2, "v": "2: a later", "ts": T1}, {"id": 3, "v": "3: line 1", "ts": T1}]
            + [{"id": 3, "v": "3: line 3", "ts": T1}, {"id": 4, "v": "4: t1", "ts": T1}],
        },
        {
            "b.json": [{"id": 1, "v": "1: null again", "ts": None}, {"id": 2, "v": "2: tie, later batch", "ts": T1}]
            + [{"id": 4, "v": "4: null", "ts": None}, {"id": 5, "v": "5: null", "ts": None}],
        },
        {
            "c.json": [{"id": 1, "v": "1: known", "ts": T2}, {"id": 3, "v": "3: line 3", "ts": T1}]
            + [{"id": 5, "v": "5: t2", "ts": T2}, {"id": 5, "v": "5: t2 later line", "ts": T2}],
        },
    ]


@pytest.mark.parametrize("scd", [1, 2])
def test_null_and_tie_rules_are_the_same_on_both_engines(spark, project, scd):
    from lh360.engines.local import LocalEngine
    from lh360.spark import transforms as T

    p = project(spec(scd))
    engine = LocalEngine(p.target())
    table = p.load().specs["ev"]
    seen: set[str] = set()
    files_per_batch = []
    now = time.time()
    for n, batch in enumerate(batches()):
        for k, (name, records) in enumerate(batch.items()):
            p.write_landing("ev", name, records, mtime=now - 1000 + 100 * n + k)
        engine.ingest(table)
        files = bronze_files(p.lake / "bronze" / "ev")
        files_per_batch.append(sorted(files - seen))
        seen = files
        engine.refine(table)

    spec_ = table.model_dump(mode="json")
    keys, seq = T.keys_and_sequence(spec_)
    silver = None
    for files in files_per_batch:
        source, _, _ = T.refine_transform(spark.read.option("mergeSchema", "true").parquet(*files), spec_)
        if silver is None:
            ddl = ", ".join(f"`{n}` {t}" for n, t in T.silver_schema_columns(source, spec_))
            silver = spark.createDataFrame([], ddl)
        if scd == 2:
            silver = T.scd2_apply(silver, T.scd2_changes(silver, source, spec_), keys)
        else:
            silver = T.scd1_apply(silver, source, keys, seq)
        silver = spark.createDataFrame(silver.collect(), silver.schema)

    columns = ["id", "v", "ts"] + (["valid_from", "valid_to", "is_current"] if scd == 2 else [])

    def rows(records):
        return sorted((tuple(normalize(r[c]) for c in columns) for r in records), key=repr)

    local = rows(read_table(p.root, "silver.ev"))
    assert rows([r.asDict() for r in silver.collect()]) == local
    current = {r[0]: r[1] for r in local if scd == 1 or r[-1]}
    assert current == {1: "1: known", 2: "2: tie, later batch", 3: "3: line 3", 4: "4: t1", 5: "5: t2 later line"}
