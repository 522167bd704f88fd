"""silver.pii on the Databricks job (lh360/spark/transforms.py): the same HMAC and masks as the local engine,
protection after the expectations, gold views; and the no_pii check's Databricks SQL judged by Spark as
DuckDB judges it."""

from __future__ import annotations

import hmac
from datetime import date

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'pyspark>=4,<5'")

from lh360 import redact  # noqa: E402
from lh360.spark import transforms as T  # noqa: E402

pytestmark = pytest.mark.spark
KEY = b"lh360-test-pii-key-0123456789"


def hmac_hex(value: str) -> str:
    return hmac.new(KEY, value.encode(), "sha256").hexdigest()


def test_hash_and_masks_equal_the_local_engine_value_by_value(spark):
    from pyspark.sql import functions as F

    values = [
        "009.946.509-49",
        "00994650949",
        "Maria@Example.com",
        "+55 11 98765-4321",
        "  maria silva",
        "ação",
        "1",
        "",
        None,
    ]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = df.select(
        T.hash_column(F.col("v"), KEY).alias("h"), *[T.mask_column(k, F.col("v")).alias(k) for k in T.PII_KINDS]
    ).collect()
    for v, row in zip(values, got, strict=True):
        assert row["h"] == (None if v is None else hmac_hex(v)), v
        for kind in T.PII_KINDS:
            assert row[kind] == redact.mask_value(kind, v), (kind, v)
    dates = spark.createDataFrame([(date(1980, 5, 17),)], "d date").select(T.hash_column(F.col("d"), KEY)).collect()
    assert dates[0][0] == hmac_hex("1980-05-17")


def spec(pii: dict) -> dict:
    return {
        "table": "t",
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "columns": {
                "id": "cast(id as bigint)",
                "cpf": "regexp_replace(cpf, '[^0-9]', '')",
                "email": "lower(email)",
                "telefone": "telefone",
                "updated_at": "to_timestamp(updated_at)",
            },
            "expectations": [{"name": "cpf_11", "rule": "length(cpf) = 11", "action": "quarantine"}],
            "pii": pii,
        },
    }


def test_refine_protects_silver_and_quarantine_after_the_expectations(spark):
    rows = [
        ("1", "009.946.509-49", "A@X.com", "+55 11 98765-4321", "2025-01-01T10:00:00Z", "f", 0),
        ("2", "123.456", "b@y.com", "11 3456-7890", "2025-01-01T10:00:00Z", "f", 0),
    ]
    df = spark.createDataFrame(
        rows,
        "id string, cpf string, email string, telefone string, updated_at string, _source_file string, _batch_id bigint",
    )
    tags = {
        "cpf": {"kind": "cpf", "silver": "hash"},
        "email": {"kind": "email", "silver": "mask"},
        "telefone": {"kind": "phone", "silver": "drop"},
    }
    source, quarantine, counters = T.refine_transform(df, spec(tags), KEY)
    (kept,) = source.collect()
    assert kept["cpf"] == hmac_hex("00994650949") and kept["email"] == "a***@x.com" and "telefone" not in source.columns
    (bad,) = quarantine.collect()
    assert (
        bad["_failed_rules"] == ["cpf_11"] and bad["cpf"] == hmac_hex("123456") and "telefone" not in quarantine.columns
    )
    assert counters["quarantined"] == 1
    with pytest.raises(T.SpecError, match="PII key"):
        T.refine_transform(df, spec(tags), None)


def test_gold_views_hash_mask_hide_and_allow(spark):
    from lh360.spark import runtime as job

    silver = spark.createDataFrame(
        [(1, "00994650949", "Maria", "1980-05-17")], "id bigint, cpf string, nome string, nascimento string"
    )
    silver.createOrReplaceTempView("silver_src")
    tags = {
        "cpf": {"kind": "cpf", "silver": "keep", "gold": "hash"},
        "nome": {"kind": "name", "silver": "keep"},
        "nascimento": {"kind": "birthdate", "silver": "keep", "gold": "mask"},
    }
    payload = {"spec": spec(tags), "pii_views": {"g": {"lh360_pii_g_t": {"table": "silver_src", "allow": []}}}}
    import os

    os.environ["LH360_PII_KEY"] = KEY.decode()
    try:
        job.pii_views(spark, payload, "g")
    finally:
        os.environ.pop("LH360_PII_KEY")
    (row,) = spark.table("lh360_pii_g_t").collect()
    assert row.asDict() == {"id": 1, "cpf": hmac_hex("00994650949"), "nascimento": "1980-**-**"}
    allowed = T.gold_view(silver, spec(tags), ["nome"], KEY).collect()[0]
    assert allowed["nome"] == "Maria"


def test_no_pii_sql_on_spark_agrees_with_duckdb(spark):
    from lh360.checks.compile import compile_relation
    from lh360.spec import TableSpec
    from tests.test_no_pii import CORPUS, run_duckdb

    rows = [(v, None) for v, _ in CORPUS]
    s = TableSpec.model_validate(
        {"table": "t", "source": {"path": "t/"}, "checks": {"bronze.t": [{"no_pii": ["a", "b"]}]}}
    )
    compiled = compile_relation(s, "bronze.t", "databricks", table_name=lambda layer, name: "nopii_t")
    spark.createDataFrame(rows, "a string, b string").createOrReplaceTempView("nopii_t")
    spark_count = spark.sql(compiled.aggregate_sql).collect()[0][0]
    duck_count = run_duckdb([{"no_pii": ["a", "b"]}], rows)[0][0]
    assert spark_count == duck_count == sum(1 for _, kinds in CORPUS if kinds)
