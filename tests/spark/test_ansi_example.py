"""The shipped example's silver columns under ANSI mode (serverless runs with it on): bad values become NULL
instead of failing the batch, exactly as the local engine's DuckDB translation gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import yaml

from tests.databricks_support import REPO

pytestmark = pytest.mark.spark

ROWS = [
    {"id": 1, "data_nascimento": "1988-10-16", "renda_mensal": "1234.56", "created_at": "2025-11-24T06:00:15-03:00",
     "updated_at": "2025-11-24 09:00:15", "endereco": {"cidade": "Recife", "uf": "pe", "cep": "50000-000"}},
    {"id": 2, "data_nascimento": "31/02/1990", "renda_mensal": "mil reais", "created_at": "ontem",
     "updated_at": "2025-13-45T99:00:00", "endereco": None},
]  # fmt: skip
SCHEMA = (
    "id BIGINT, data_nascimento STRING, renda_mensal STRING, created_at STRING, updated_at STRING, "
    "endereco STRUCT<cidade: STRING, uf: STRING, cep: STRING>"
)


def columns() -> dict[str, str]:
    cols = yaml.safe_load((REPO / "configs" / "tables" / "clientes.yaml").read_text())["silver"]["columns"]
    return {
        n: e
        for n, e in cols.items()
        if n in ("id", "data_nascimento", "renda_mensal", "created_at", "updated_at", "uf", "cep")
    }


def norm(v):
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    return Decimal(v) if isinstance(v, Decimal) else v


def test_the_example_survives_bad_values_under_ansi_and_matches_the_local_engine(spark):
    import duckdb
    import pyarrow as pa
    from pyspark.sql import functions as F

    from lh360.engines.local.transpile import expression

    cols = columns()
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        df = spark.createDataFrame(ROWS, SCHEMA)
        got = [r.asDict() for r in df.select(*[F.expr(e).alias(n) for n, e in cols.items()]).orderBy("id").collect()]
    finally:
        spark.conf.unset("spark.sql.ansi.enabled")
    assert got[1]["data_nascimento"] is None and got[1]["updated_at"] is None and got[1]["renda_mensal"] is None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("src", pa.Table.from_pylist(ROWS))
    cur = con.execute(
        "SELECT " + ", ".join(f'{expression(e)} AS "{n}"' for n, e in cols.items()) + " FROM src ORDER BY id"
    )
    ours = [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]
    for s_row, d_row in zip(got, ours, strict=True):
        for name in cols:
            assert norm(d_row[name]) == norm(s_row[name]), (name, s_row[name], d_row[name])
