"""A full refresh on the Spark job (lh360/spark/runtime.py): after a spec change, the first micro-batch of a
new checkpoint generation is all of bronze and REPLACES quarantine and silver (one commit each, the spec hash
recorded), the next incremental refine reads exactly the bronze rows committed after it, and a refresh
interrupted between the two replaces is finished by the next run of its generation. Bronze is a Parquet file
stream and Delta the in-memory stand-in (conftest.MemoryTarget)."""

from __future__ import annotations

import pytest

from lh360.spark import contract, runtime
from tests.spark.test_spark_job import payload, write_bronze

pytestmark = pytest.mark.spark

OLD_HASH, NEW_HASH = "a" * 64, "b" * 64
UF_SP = {"name": "uf_sp", "rule": "uf = 'SP'", "action": "quarantine"}  # the new rule


def rows_by_id(df):
    return {r["id"]: r["nome"] for r in df.collect()}


def reasons(target):
    return {r["id"] or r["cpf"]: list(r["_failed_rules"]) for r in target.quarantine.collect()}


@pytest.fixture
def lake(spark, tmp_path, memory_target_cls):
    """Silver and quarantine refined once from bronze file 0 with the old spec."""
    bronze = tmp_path / "bronze"
    write_bronze(spark, bronze, [(1, "11111111111", "ana", "2025-01-01"), (2, "2", "bia", "2025-01-01")], 0)
    # a row of another state, and a key with two versions in the same file
    rows = [(3, "33333333333", "caio", "2025-01-01"), (4, "44444444444", "duda", "2025-01-01")]
    write_bronze(spark, bronze, rows, 1)
    schema = spark.read.parquet(str(bronze)).schema
    paths = {**payload()["paths"], "state": str(tmp_path / "state")}
    p = contract.parse_payload(payload(paths=paths, spec_hash=OLD_HASH))
    target = memory_target_cls(
        spark,
        p,
        bronze_stream=lambda s: s.readStream.schema(schema).parquet(str(bronze)),
        bronze_batch=lambda s: s.read.schema(schema).parquet(str(bronze)),
    )
    first = runtime.run_refine(spark, p, target_factory=target.factory)
    assert (first["rows_in"], first["quarantined"]) == (4, 1)
    assert target.properties["silver"] == {contract.SPEC_HASH_PROPERTY: OLD_HASH}  # built with the old spec
    target.bronze_path, target.base = bronze, p
    return target


def with_new_rule(target, **over):
    """The payload after the spec change: uf must be SP (bronze_df writes 'sp', so row 4 is made RJ below)."""
    spec = {**target.base["spec"], "silver": {**target.base["spec"]["silver"]}}
    spec["silver"]["expectations"] = [*spec["silver"]["expectations"], UF_SP]
    spec["silver"]["columns"] = {**spec["silver"]["columns"], "uf": "upper(if(id = '4', 'rj', uf))"}
    return contract.parse_payload({**target.base, "spec": spec, "spec_hash": NEW_HASH, **over})


def test_full_refresh_replaces_silver_and_quarantine_then_refines_only_new_rows(spark, lake):
    p = with_new_rule(lake, run_id="run-fr", state_generation="fr1", full_refresh=True)
    lake.payload, lake.calls = p, []
    summary = runtime.run_refine(spark, p, target_factory=lake.factory)

    # one replace of each table (quarantine first), nothing merged or appended
    assert [c[0] for c in lake.calls if c[0] != "ensure_silver"] == ["replace_quarantine", "replace_silver"]
    assert rows_by_id(lake.silver) == {1: "Ana", 3: "Caio"}  # row 4 was in silver: the new rule quarantines it
    assert reasons(lake) == {2: ["cpf_11_digitos"], 4: ["uf_sp"]}  # recomputed, not appended to
    assert lake.properties["silver"] == {contract.SPEC_HASH_PROPERTY: NEW_HASH, contract.REFRESH_PROPERTY: "fr1"}
    assert lake.properties["quarantine"] == {contract.REFRESH_PROPERTY: "fr1"}
    assert summary["full_refresh"] is True and summary["batches"] == 1
    assert (summary["rows_in"], summary["rows_out"], summary["quarantined"]) == (4, 2, 2)

    # more bronze rows; the next plain refine of the generation reads exactly those
    rows = [(1, "11111111111", "ana v2", "2025-01-02"), (5, "55555555555", "eva", "2025-01-02"), (6, "6", "x", "2025")]
    write_bronze(spark, lake.bronze_path, rows, 2)
    p = with_new_rule(lake, run_id="run-next", state_generation="fr1")
    lake.payload, lake.calls = p, []
    nxt = runtime.run_refine(spark, p, target_factory=lake.factory)
    assert (nxt["rows_in"], nxt["quarantined"], nxt["inserted"], nxt["updated"]) == (3, 1, 1, 1)
    assert "full_refresh" not in nxt and not any(c[0].startswith("replace") for c in lake.calls)
    assert rows_by_id(lake.silver) == {1: "Ana V2", 3: "Caio", 5: "Eva"}
    assert reasons(lake) == {2: ["cpf_11_digitos"], 4: ["uf_sp"], 6: ["cpf_11_digitos"]}
    assert lake.properties["silver"][contract.SPEC_HASH_PROPERTY] == NEW_HASH  # kept by the merges

    # the ops box died before it saw the refresh succeed: the next run is sent with full_refresh again and
    # changes nothing (batch 0 of the generation is recorded, silver already carries the generation)
    p = with_new_rule(lake, run_id="run-again", state_generation="fr1", full_refresh=True)
    lake.payload, lake.calls = p, []
    again = runtime.run_refine(spark, p, target_factory=lake.factory)
    assert again["batches"] == 0 and not any(c[0].startswith("replace") for c in lake.calls)
    assert rows_by_id(lake.silver) == {1: "Ana V2", 3: "Caio", 5: "Eva"} and len(reasons(lake)) == 3


def test_a_refresh_interrupted_between_the_replaces_is_finished_by_the_next_run(spark, lake, monkeypatch):
    p = with_new_rule(lake, run_id="run-fr", state_generation="fr1", full_refresh=True)
    lake.payload = p
    real = type(lake).replace_silver

    def crash(self, df):
        raise RuntimeError("the driver died")

    monkeypatch.setattr(type(lake), "replace_silver", crash)
    with pytest.raises(Exception, match="the driver died"):
        runtime.run_refine(spark, p, target_factory=lake.factory)
    assert reasons(lake) == {2: ["cpf_11_digitos"], 4: ["uf_sp"]}  # quarantine replaced, silver still old
    assert rows_by_id(lake.silver) == {1: "Ana", 3: "Caio", 4: "Duda"}

    monkeypatch.setattr(type(lake), "replace_silver", real)
    lake.payload = p = with_new_rule(lake, run_id="run-resume", state_generation="fr1", full_refresh=True)
    resumed = runtime.run_refine(spark, p, target_factory=lake.factory)
    assert resumed["full_refresh"] is True and resumed["rows_in"] == 4  # batch 0 replayed over the same range
    assert rows_by_id(lake.silver) == {1: "Ana", 3: "Caio"}
    assert reasons(lake) == {2: ["cpf_11_digitos"], 4: ["uf_sp"]}  # replaced again: no duplicate


def test_a_full_refresh_of_a_bronze_without_rows_empties_silver_and_quarantine(spark, tmp_path, memory_target_cls):
    bronze = tmp_path / "bronze"
    write_bronze(spark, bronze, [(1, "11111111111", "ana", "2025-01-01")], 0)
    schema = spark.read.parquet(str(bronze)).schema
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = {**payload()["paths"], "state": str(tmp_path / "state")}
    p = contract.parse_payload(payload(paths=paths, spec_hash=NEW_HASH, state_generation="e1", full_refresh=True))
    target = memory_target_cls(
        spark,
        p,
        bronze_stream=lambda s: s.readStream.schema(schema).parquet(str(empty)),
        bronze_batch=lambda s: s.read.schema(schema).parquet(str(bronze)),
    )
    target.silver = spark.createDataFrame([(9, "x")], "id bigint, nome string")
    summary = runtime.run_refine(spark, p, target_factory=target.factory)
    assert summary["full_refresh"] is True and summary["batches"] == 0 and target.metrics == []
    assert target.silver.count() == 0 and target.quarantine.count() == 0
    assert target.properties["silver"][contract.REFRESH_PROPERTY] == "e1"


def test_the_full_refresh_payload_is_checked_and_explained():
    base = payload(state_generation="fr1", full_refresh=True, spec_hash=NEW_HASH)
    plan = contract.plan(contract.parse_payload(base))
    assert plan["stream_options"] == {"skipChangeCommits": "true", "maxFilesPerTrigger": str(2**31 - 1)}
    fr = plan["full_refresh"]
    assert fr["checkpoint"].endswith("/checkpoint/silver-gfr1")
    assert fr["silver_sql"].startswith(
        "CREATE OR REPLACE TABLE `lakehouse360`.`silver`.`clientes` USING DELTA PARTITIONED BY (`uf`) "
        "LOCATION 's3://lake/silver/clientes' TBLPROPERTIES ('lh360.refresh' = 'fr1', "
        f"'lh360.spec_hash' = '{NEW_HASH}') AS SELECT * FROM "
    )
    assert "quarantine" in fr["quarantine_sql"] and "lh360.spec_hash" not in fr["quarantine_sql"]
    assert "full_refresh" not in contract.plan(contract.parse_payload(payload()))
    with pytest.raises(contract.PayloadError, match="needs a new checkpoint generation"):
        contract.parse_payload(payload(full_refresh=True))
    with pytest.raises(contract.PayloadError, match="payload.full_refresh: expected true or false"):
        contract.parse_payload(payload(full_refresh="yes", state_generation="g"))
    with pytest.raises(contract.PayloadError, match="payload.spec_hash"):
        contract.parse_payload(payload(spec_hash="nope"))
    with pytest.raises(contract.PayloadError, match="only the refine step"):
        contract.parse_payload(payload("ingest", full_refresh=True, state_generation="g"))


def test_scd2_rebuild_chains_every_version_as_merging_them_one_by_one_would(spark):
    from lh360.spark import transforms as T

    spec = {"silver": {"keys": ["id"], "sequence_by": "seq", "scd": 2}}
    rows = [(1, 1, "a"), (1, 3, "c"), (1, 2, "b"), (2, 5, "x")]
    incoming = spark.createDataFrame(rows, "id int, seq int, v string")
    built = T.scd2_rebuild(incoming, spec).select("id", "v", "valid_from", "valid_to", "is_current")
    assert sorted(tuple(r) for r in built.collect()) == [
        (1, "a", 1, 2, False),
        (1, "b", 2, 3, False),
        (1, "c", 3, None, True),
        (2, "x", 5, None, True),
    ]
