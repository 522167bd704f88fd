"""The refine rules of lh360/spark/transforms.py on small in-memory DataFrames (local pyspark)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'pyspark>=4,<5'")

from lh360.spark import transforms as T  # noqa: E402

pytestmark = pytest.mark.spark

BRONZE_DDL = (
    "id string, cpf string, nome string, email string, endereco struct<uf:string>, renda_mensal string, "
    "ativo boolean, updated_at string, _rescued_data string, _source_file string, _batch_id bigint"
)


def spec(expectations=None, scd=1, columns=True):
    silver = {
        "keys": ["id"],
        "sequence_by": "updated_at",
        "scd": scd,
        "expectations": expectations or [],
    }
    if columns:
        silver["columns"] = {
            "id": "cast(id as bigint)",
            "cpf": "regexp_replace(cpf, '[^0-9]', '')",
            "nome": "initcap(trim(nome))",
            "email": "lower(email)",
            "uf": "upper(endereco.uf)",
            "renda_mensal": "cast(renda_mensal as decimal(18,2))",
            "ativo": "ativo",
            "updated_at": "to_timestamp(updated_at)",
        }
    return {"table": "clientes", "silver": silver}


SCRATCH = ["__lh360_arrival", "__lh360_line", "__lh360_corrupt"]  # arrival order; a malformed line's text


def bronze_row(id, ts, *, cpf="123.456.789-01", email="A@X.COM", uf="sp", renda="10.5", file="f1.json", batch=0):
    return (str(id), cpf, " maria silva ", email, (uf,), renda, True, ts, None, file, batch)


def bronze(spark, rows):
    return spark.createDataFrame(rows, BRONZE_DDL)


def by_id(df, *cols):
    return {r["id"]: tuple(r[c] for c in cols) for r in df.collect()}


def test_a_malformed_line_and_a_null_key_are_quarantined_under_their_own_reasons(spark):
    """lh360's reasons come before the spec's: a malformed line is `corrupt_record` with its raw text and no
    rule is evaluated on it; a NULL key is `null_key` (with the rules it fails), even beating a drop rule."""
    line = '{"id": 9, "cpf": oops'
    rows = [
        bronze_row(1, "2025-01-01"),
        (None, None, None, None, None, None, None, None, json.dumps({"_corrupt_record": line}), "f1.json", 0),
        (None, *bronze_row(0, "2025-01-01", renda="-1")[1:]),  # no id
    ]
    projected = T.project(bronze(spark, rows), spec(EXPECTATIONS))
    kept, quarantine, counters = T.evaluate_expectations(projected, spec(EXPECTATIONS))
    assert [r["id"] for r in kept.collect()] == [1]
    assert counters["quarantined"] == 2 and counters["dropped"] == 0
    assert counters["rule_failures"] == {
        "cpf_11_digitos": 0, "email_valido": 0, "renda_positiva": 1, "corrupt_record": 1, "null_key": 1,
    }  # fmt: skip
    got = sorted((r["_failed_rules"], r["_corrupt_record"]) for r in quarantine.collect())
    assert got == [(["corrupt_record"], line), (["null_key", "renda_positiva"], None)]


def test_project_applies_columns_in_spec_order_and_keeps_lineage(spark):
    df = T.project(bronze(spark, [bronze_row(7, "2025-01-02 03:04:05")]), spec())
    assert df.columns == [*spec()["silver"]["columns"], "_source_file", "_batch_id", *SCRATCH]
    row = df.first()
    assert row["id"] == 7 and row["cpf"] == "12345678901" and row["nome"] == "Maria Silva"
    assert row["email"] == "a@x.com" and row["uf"] == "SP" and row["renda_mensal"] == Decimal("10.50")
    assert row["updated_at"] == datetime(2025, 1, 2, 3, 4, 5)
    assert (row["_source_file"], row["_batch_id"]) == ("f1.json", 0)


def test_project_without_columns_keeps_non_metadata_bronze_columns(spark):
    df = T.project(bronze(spark, [bronze_row(1, "2025-01-01")]), spec(columns=False))
    assert df.columns == ["id", "cpf", "nome", "email", "endereco", "renda_mensal", "ativo", "updated_at"] + [
        "_source_file",
        "_batch_id",
        *SCRATCH,
    ]


def test_project_adds_null_lineage_when_bronze_lacks_it(spark):
    df = T.project(spark.createDataFrame([("1", "2025-01-01")], "id string, updated_at string"), spec(columns=False))
    row = df.first()
    assert row["_source_file"] is None and row["_batch_id"] is None


EXPECTATIONS = [
    {"name": "cpf_11_digitos", "rule": "length(cpf) = 11", "action": "quarantine"},
    {"name": "email_valido", "rule": "email like '%@%'", "action": "warn"},
    {"name": "renda_positiva", "rule": "renda_mensal > 0", "action": "drop"},
]


def test_expectation_actions_warn_drop_quarantine_and_null_fails(spark):
    rows = [
        bronze_row(1, "2025-01-01"),  # passes everything
        bronze_row(2, "2025-01-01", email="sem-arroba"),  # warn only: kept
        bronze_row(3, "2025-01-01", renda="-1"),  # drop
        bronze_row(4, "2025-01-01", cpf="123"),  # quarantine
        bronze_row(5, "2025-01-01", cpf="123", renda="-5", email="x"),  # quarantine beats drop; all rules listed
        bronze_row(6, "2025-01-01", renda=None),  # NULL rule result fails: dropped
        bronze_row(7, "2025-01-01", cpf=None, email=None),  # NULL fails quarantine and warn
    ]
    projected = T.project(bronze(spark, rows), spec(EXPECTATIONS))
    kept, quarantine, counters = T.evaluate_expectations(projected, spec(EXPECTATIONS))

    assert sorted(r["id"] for r in kept.collect()) == [1, 2]
    assert kept.columns == projected.columns
    assert counters["rows_in"] == 7 and counters["kept"] == 2
    assert counters["dropped"] == 2 and counters["quarantined"] == 3
    assert counters["warned"] == {"email_valido": 3}
    assert counters["failed"] == {}
    assert counters["rule_failures"] == {"cpf_11_digitos": 3, "email_valido": 3, "renda_positiva": 3}

    assert quarantine.columns == [
        *spec()["silver"]["columns"],
        "_failed_rules",
        "_source_file",
        "_batch_id",
        "_quarantined_at",
        "_corrupt_record",
    ]
    assert dict(quarantine.dtypes)["_failed_rules"] == "array<string>"
    assert dict(quarantine.dtypes)["_quarantined_at"] == "timestamp"
    failed = by_id(quarantine, "_failed_rules", "_source_file", "_batch_id")
    assert failed == {
        4: (["cpf_11_digitos"], "f1.json", 0),
        5: (["cpf_11_digitos", "email_valido", "renda_positiva"], "f1.json", 0),
        7: (["cpf_11_digitos", "email_valido"], "f1.json", 0),
    }


def test_fail_expectation_raises_before_anything_and_counts(spark):
    exps = [
        *EXPECTATIONS,
        {"name": "tem_nome", "rule": "nome is not null and updated_at is not null", "action": "fail"},
    ]
    rows = [bronze_row(1, "2025-01-01"), bronze_row(2, None), bronze_row(3, None)]
    projected = T.project(bronze(spark, rows), spec(exps))
    with pytest.raises(T.ExpectationFailed) as err:
        T.evaluate_expectations(projected, spec(exps))
    assert str(err.value).startswith(T.ExpectationFailed.MARKER)
    assert "tem_nome (2 rows)" in str(err.value)
    assert err.value.failed == {"tem_nome": 2}
    assert err.value.counters["failed"] == {"tem_nome": 2}
    # the caller may choose to look without raising
    _, _, counters = T.evaluate_expectations(projected, spec(exps), raise_on_fail=False)
    assert counters["failed"] == {"tem_nome": 2}


def test_fail_expectation_that_passes_does_not_raise(spark):
    exps = [{"name": "id_ok", "rule": "id > 0", "action": "fail"}]
    projected = T.project(bronze(spark, [bronze_row(1, "2025-01-01")]), spec(exps))
    kept, quarantine, counters = T.evaluate_expectations(projected, spec(exps))
    assert kept.count() == 1 and quarantine.count() == 0 and counters["failed"] == {"id_ok": 0}


def test_no_expectations_keeps_everything(spark):
    projected = T.project(bronze(spark, [bronze_row(1, "2025-01-01"), bronze_row(2, "2025-01-01")]), spec())
    kept, quarantine, counters = T.evaluate_expectations(projected, spec())
    assert kept.count() == 2 and quarantine.count() == 0
    assert counters == {
        "rows_in": 2,
        "kept": 2,
        "dropped": 0,
        "quarantined": 0,
        "warned": {},
        "failed": {},
        "rule_failures": {},
    }
    assert dict(quarantine.dtypes)["_failed_rules"] == "array<string>"


def test_dedupe_greatest_sequence_then_batch_then_source_file(spark):
    rows = [
        # key 1: the greatest sequence wins, whatever the batch
        bronze_row(1, "2025-01-03", file="a", batch=1, uf="a1"),
        bronze_row(1, "2025-01-05", file="a", batch=0, uf="win"),
        # key 2: equal sequence -> the greatest batch id wins
        bronze_row(2, "2025-01-05", file="z", batch=1, uf="x"),
        bronze_row(2, "2025-01-05", file="a", batch=2, uf="win"),
        # key 3: equal sequence and batch -> the greatest source file wins
        bronze_row(3, "2025-01-05", file="s3://b/2025/01/a.json", batch=4, uf="x"),
        bronze_row(3, "2025-01-05", file="s3://b/2025/01/b.json", batch=4, uf="win"),
        # key 4: a NULL sequence loses to any value
        bronze_row(4, None, file="z", batch=9, uf="x"),
        bronze_row(4, "2020-01-01", file="a", batch=0, uf="win"),
    ]
    out = T.dedupe(T.project(bronze(spark, rows), spec()), ["id"], "updated_at")
    assert by_id(out, "uf") == {1: ("WIN",), 2: ("WIN",), 3: ("WIN",), 4: ("WIN",)}
    assert out.columns == T.project(bronze(spark, rows[:1]), spec()).columns


def test_dedupe_ties_go_to_the_latest_arrival_not_the_greater_file_name(spark):
    ddl = "id string, updated_at string, uf string, _source_file string, _batch_id bigint, "
    ddl += "_source_modified_at timestamp, _line bigint"
    same = "2025-01-05"
    rows = [
        # key 1: one batch, z.json landed a day before a.json: a.json (arrived later) wins
        ("1", same, "z", "s3://b/z.json", 3, datetime(2025, 1, 1), 9),
        ("1", same, "win", "s3://b/a.json", 3, datetime(2025, 1, 2), 1),
        # key 2: one file, the later line wins
        ("2", same, "x", "f.json", 3, datetime(2025, 1, 1), 7),
        ("2", same, "win", "f.json", 3, datetime(2025, 1, 1), 8),
        # key 3: the later batch beats everything after it in the order
        ("3", same, "win", "a.json", 4, datetime(2025, 1, 1), 1),
        ("3", same, "x", "z.json", 3, datetime(2025, 1, 9), 99),
    ]
    cols = {"id": "cast(id as bigint)", "updated_at": "to_timestamp(updated_at)", "uf": "uf"}
    spec_ = {"silver": {"keys": ["id"], "sequence_by": "updated_at", "columns": cols}}
    out = T.dedupe(T.project(spark.createDataFrame(rows, ddl), spec_), ["id"], "updated_at")
    assert by_id(out, "uf") == {1: ("win",), 2: ("win",), 3: ("win",)}
    # without arrival columns (Databricks bronze has no _line) the pick is still the same every time
    bare_ddl = "id string, updated_at string, uf string, _source_file string, _batch_id bigint"
    bare = spark.createDataFrame([("9", same, v, "f", 0) for v in "abcdefgh"], bare_ddl)
    picks = {T.dedupe(T.project(bare.repartition(n), spec_), ["id"], "updated_at").first()["uf"] for n in (1, 3, 8)}
    assert len(picks) == 1


def test_scd2_ties_and_null_sequences(spark):
    spec_ = {
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "scd": 2,
            "columns": {"id": "cast(id as bigint)", "nome": "nome", "updated_at": "to_timestamp(updated_at)"},
        }
    }
    silver = spark.createDataFrame([], SCD2_DDL)
    changes, silver = scd2_batch(spark, spec_, silver, [(1, "null", None), (2, "b1", ts(1))], 0)
    # key 1: a known sequence closes the NULL version; key 2: other values for the current sequence AND a
    # newer version: the current row takes the new values and is closed
    rows = [(1, "a1", ts(1)), (2, "b1-fixed", ts(1)), (2, "b2", ts(2))]
    changes, silver = scd2_batch(spark, spec_, silver, rows, 1)
    h = history(silver)
    assert h[1] == [("null", None, ts(1), False), ("a1", ts(1), None, True)]
    assert h[2] == [("b1-fixed", ts(1), ts(2), False), ("b2", ts(2), None, True)]
    # a NULL version after a known one is older: ignored
    changes, again = scd2_batch(spark, spec_, silver, [(1, "null again", None)], 2)
    assert changes.count() == 0 and history(again) == h


def test_dedupe_versions_keeps_each_distinct_sequence(spark):
    rows = [
        bronze_row(1, "2025-01-01", batch=0, uf="old"),
        bronze_row(1, "2025-01-01", batch=1, uf="v1"),
        bronze_row(1, "2025-01-02", batch=0, uf="v2"),
    ]
    out = T.dedupe_versions(T.project(bronze(spark, rows), spec()), ["id"], "updated_at")
    assert sorted((r["updated_at"].day, r["uf"]) for r in out.collect()) == [(1, "V1"), (2, "V2")]


SILVER_DDL = "id bigint, nome string, updated_at timestamp"


def ts(day, hour=0):
    return datetime(2025, 1, day, hour)


def test_scd1_guard_ignores_older_versions_and_the_same_values_again(spark):
    current = spark.createDataFrame(
        [(1, "a@d5", ts(5)), (2, "b@d5", ts(5)), (3, "c@d5", ts(5)), (5, "e@d5", ts(5))], SILVER_DDL
    )
    incoming = spark.createDataFrame(
        [
            (1, "older", ts(4), "f", 1),  # older: ignored
            (2, "equal", ts(5), "f", 1),  # equal sequence, other values: a later arrival, update
            (3, "newer", ts(6), "f", 1),  # newer: update
            (4, "new key", ts(1), "f", 1),  # new key: insert
            (5, "e@d5", ts(5), "f", 1),  # the same values again: ignored (a replay changes nothing)
        ],
        SILVER_DDL + ", _source_file string, _batch_id bigint",
    )
    keys, seq = ["id"], "updated_at"
    ups = T.scd1_upserts(current, incoming, keys, seq)
    assert ups.columns == ["id", "nome", "updated_at"]
    assert sorted(r["id"] for r in ups.collect()) == [2, 3, 4]

    merged = T.scd1_apply(current, incoming, keys, seq)
    expected = {
        1: ("a@d5", ts(5)),
        2: ("equal", ts(5)),
        3: ("newer", ts(6)),
        4: ("new key", ts(1)),
        5: ("e@d5", ts(5)),
    }
    assert by_id(merged, "nome", "updated_at") == expected
    # replaying the same batch (or late data) changes nothing
    again = T.scd1_apply(merged, incoming, keys, seq)
    assert by_id(again, "nome", "updated_at") == expected
    assert T.scd1_upserts(merged, incoming, keys, seq).count() == 0


def test_scd1_null_sequence_is_the_lowest(spark):
    # a NULL sequence in silver never freezes the key: any known sequence replaces it (the DuckDB engine
    # does the same); a NULL coming in never replaces a known one; NULL after NULL is a later arrival
    current = spark.createDataFrame([(1, "null seq", None), (2, "known", ts(1)), (3, "null", None)], SILVER_DDL)
    incoming = spark.createDataFrame([(1, "x", ts(9)), (2, "null later", None), (3, "null later", None)], SILVER_DDL)
    merged = T.scd1_apply(current, incoming, ["id"], "updated_at")
    assert by_id(merged, "nome") == {1: ("x",), 2: ("known",), 3: ("null later",)}


SCD2_DDL = SILVER_DDL + ", valid_from timestamp, valid_to timestamp, is_current boolean"


def scd2_batch(spark, spec_, current, rows, batch):
    bronze_df = spark.createDataFrame(
        [(str(i), n, None if t is None else t.isoformat(sep=" "), f"f{batch}", batch) for i, n, t in rows],
        "id string, nome string, updated_at string, _source_file string, _batch_id bigint",
    )
    source, quarantine, counters = T.refine_transform(bronze_df, spec_)
    changes = T.scd2_changes(current, source, spec_)
    changes = spark.createDataFrame(changes.collect(), changes.schema)  # one job; keeps later plans small
    return changes, T.scd2_apply(current, changes, ["id"]).localCheckpoint(eager=True)


def history(df):
    out = {}
    for r in df.orderBy("id", "valid_from").collect():
        out.setdefault(r["id"], []).append((r["nome"], r["valid_from"], r["valid_to"], r["is_current"]))
    return out


def test_scd2_across_three_batches(spark):
    spec_ = {
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "scd": 2,
            "columns": {"id": "cast(id as bigint)", "nome": "nome", "updated_at": "to_timestamp(updated_at)"},
        }
    }
    silver = spark.createDataFrame([], SCD2_DDL)

    # batch 0: two new keys
    changes, silver = scd2_batch(spark, spec_, silver, [(1, "a1", ts(1)), (2, "b1", ts(1))], 0)
    assert changes.where("_change = 'close'").count() == 0
    assert history(silver) == {1: [("a1", ts(1), None, True)], 2: [("b1", ts(1), None, True)]}

    # batch 1: key 1 gets two versions in one batch (both kept, in order), key 2 is delivered again
    # unchanged (ignored), key 3 is new; the duplicate of a version inside the batch collapses to one
    rows = [(1, "a3", ts(3)), (1, "a2", ts(2)), (1, "a2-dup", ts(2)), (2, "b1", ts(1)), (3, "c2", ts(2))]
    changes, silver = scd2_batch(spark, spec_, silver, rows, 1)
    assert sorted(r["_change"] for r in changes.collect()) == ["close", "insert", "insert", "insert"]
    h = history(silver)
    assert [v[2:] for v in h[1]] == [(ts(2), False), (ts(3), False), (None, True)]
    assert [v[1] for v in h[1]] == [ts(1), ts(2), ts(3)]
    assert h[1][1][0] in ("a2", "a2-dup")
    assert h[2] == [("b1", ts(1), None, True)]
    assert h[3] == [("c2", ts(2), None, True)]

    # batch 2: late data for key 1 (older than current: ignored), key 1 moves on, key 3 gets other values
    # for its current sequence (a later arrival: replaced in place, no new version)
    rows = [(1, "a2-late", ts(2, 12)), (1, "a4", ts(4)), (3, "c2-again", ts(2))]
    changes, silver = scd2_batch(spark, spec_, silver, rows, 2)
    h = history(silver)
    assert [(v[0], v[1], v[2], v[3]) for v in h[1]][2:] == [("a3", ts(3), ts(4), False), ("a4", ts(4), None, True)]
    assert len(h[1]) == 4 and sum(v[3] for v in h[1]) == 1
    assert h[3] == [("c2-again", ts(2), None, True)]
    assert silver.columns == ["id", "nome", "updated_at", "valid_from", "valid_to", "is_current"]

    # replaying batch 2 changes nothing
    changes, again = scd2_batch(spark, spec_, silver, rows, 2)
    assert changes.count() == 0
    assert history(again) == history(silver)


def test_refine_transform_rejects_bad_specs(spark):
    df = bronze(spark, [bronze_row(1, "2025-01-01")])
    with pytest.raises(T.SpecError, match="silver.keys"):
        T.refine_transform(df, {"silver": {"sequence_by": "updated_at"}})
    with pytest.raises(T.SpecError, match="not in silver.columns"):
        T.refine_transform(df, {"silver": {"keys": ["nope"], "sequence_by": "updated_at", "columns": {"id": "id"}}})


def test_silver_schema_columns_for_scd2(spark):
    spec2 = spec(scd=2)
    source, _, _ = T.refine_transform(bronze(spark, [bronze_row(1, "2025-01-01")]), spec2)
    cols = T.silver_schema_columns(source, spec2)
    assert [c for c, _ in cols] == [*spec2["silver"]["columns"], "valid_from", "valid_to", "is_current"]
    assert dict(cols)["renda_mensal"] == "decimal(18,2)" and dict(cols)["valid_to"] == "timestamp"
    assert dict(cols)["uf"] == "string" and dict(cols)["is_current"] == "boolean"
