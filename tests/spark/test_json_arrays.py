"""Same files, same rows, on both engines, or a refusal: landing files with JSON arrays. The local engine
ingests JSON Lines, one-line arrays and arrays over several lines alike. The Databricks job's reader (Auto
Loader's JSON, one record per line, as Spark's `read.json` without multiLine) gives the same rows for JSON
Lines and one-line arrays, and garbage for an array over several lines, which is why lh360 refuses those
on a `databricks` target (tests/test_databricks_streams.py): only that form is flagged."""

from __future__ import annotations

import os
import time

import pytest

from lh360.engines.databricks.landing_format import multiline_array
from tests.databricks_support import load, make_project
from tests.test_databricks_streams import NDJSON, ONE_LINE, PRETTY

pytestmark = pytest.mark.spark

FILES = {"a.json": PRETTY, "b.json": ONE_LINE, "c.json": NDJSON}


def test_json_arrays_on_both_engines(spark, tmp_path):
    from deltalake import DeltaTable, QueryBuilder

    from lh360.context import Lakehouse

    root = tmp_path / "p"
    root.mkdir()
    make_project(root)
    folder = root / "landing" / "clientes"
    folder.mkdir(parents=True)
    settled = time.time() - 3600  # written an hour ago: past landing.settle
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
        os.utime(folder / name, (settled, settled))
    project, _ = load(root)
    Lakehouse(project, project.target("local")).ingest(["clientes"])
    bronze = DeltaTable(str(root / "lake" / "bronze" / "clientes"))
    import pyarrow as pa

    rows = pa.table(
        QueryBuilder().register("b", bronze).execute("SELECT id, _source_file FROM b").read_all()
    ).to_pylist()
    local = {name: sorted(r["id"] for r in rows if r["_source_file"].endswith(name)) for name in FILES}
    assert local == {"a.json": [1, 2], "b.json": [3, 4], "c.json": [5, 6]}

    spark_rows = {
        name: sorted(
            r["id"]
            for r in spark.read.schema("id bigint, nome string").json(str(folder / name)).collect()
            if r["id"] is not None
        )
        for name in FILES
    }
    assert spark_rows["b.json"] == local["b.json"] and spark_rows["c.json"] == local["c.json"]
    assert spark_rows["a.json"] != local["a.json"]  # what Databricks would have made of it
    assert {name for name, data in FILES.items() if multiline_array(data)} == {"a.json"}  # refused there
