"""Refine and aggregate rules on small hand-written batches: expectations, dedupe, replay, SCD1/SCD2, gold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lh360.errors import CheckFailed
from tests.conftest import read_table


def spec(scd: int = 1, expectations: list | None = None, columns: dict | None = None, **silver) -> dict:
    return {
        "table": "contas",
        "source": {"path": "contas/"},
        "bronze": {"schema_hints": {"id": "bigint", "saldo": "decimal(18,2)"}},
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "scd": scd,
            "columns": columns
            if columns is not None
            else {
                "id": "cast(id as bigint)",
                "nome": "initcap(trim(nome))",
                "saldo": "cast(saldo as decimal(18,2))",
                "updated_at": "to_timestamp(updated_at)",
            },
            "expectations": expectations or [],
            **silver,
        },
    }


def rec(id, nome="ana", saldo=1.0, ts="2025-01-01T10:00:00-03:00", **extra):
    return {"id": id, "nome": nome, "saldo": saldo, "updated_at": ts, **extra}


def step(p, files: dict[str, list], table: str = "contas"):
    """Land files, ingest, refine; returns the RefineResult."""
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.refine import refine

    for name, records in files.items():
        p.write_landing(table, name, records)
    project = p.load()
    ingest(project.target(), project.specs[table])
    return refine(project.target(), project.specs[table])


def silver(p, order="id, updated_at"):
    return read_table(p.root, "silver.contas", order_by=order)


def strip(rows, *drop):
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_scd1_newest_wins_and_offsets_are_honoured(project):
    p = project(spec())
    r = step(
        p,
        {
            "a.json": [
                rec(1, "  maria  da SILVA ", ts="2025-01-01T10:00:00-03:00"),
                rec(2),
                rec(1, ts="2025-01-01T09:00:00-03:00"),
            ]
        },
    )
    assert (r.rows_in, r.inserted, r.updated, r.run) == (3, 2, 0, 0)
    rows = silver(p)
    assert [x["id"] for x in rows] == [1, 2]
    assert rows[0]["nome"] == "Maria  Da Silva"  # Spark's initcap: only ' ' separates words
    assert rows[0]["updated_at"] == datetime(2025, 1, 1, 13, 0, tzinfo=UTC)  # the -03:00 offset is applied
    assert list(rows[0]) == ["id", "nome", "saldo", "updated_at"]  # silver = the projected columns only


def test_older_and_replayed_batches_leave_silver_unchanged(project):
    p = project(spec())
    step(p, {"b1.json": [rec(1, "ana", 10, "2025-01-02T00:00:00Z"), rec(2, "bia", 20, "2025-01-02T00:00:00Z")]})
    before = silver(p)
    # out of order: an older version of key 1 arrives later
    r = step(p, {"b2.json": [rec(1, "velha", 99, "2025-01-01T00:00:00Z")]})
    assert r.updated == 0 and r.inserted == 0 and silver(p) == before
    # replay: the same records again under another file name
    r = step(p, {"b3.json": [rec(1, "ana", 10, "2025-01-02T00:00:00Z"), rec(2, "bia", 20, "2025-01-02T00:00:00Z")]})
    assert r.rows_in == 2 and r.rows_out == 0 and silver(p) == before
    # a newer version still wins afterwards; the watermark moved every run
    r = step(p, {"b4.json": [rec(2, "bia", 25, "2025-01-03T00:00:00Z")]})
    assert r.updated == 1 and r.bronze_from == 3 and r.bronze_to == 4  # bronze v0 is the empty table
    assert [float(x["saldo"]) for x in silver(p)] == [10.0, 25.0]


def test_nothing_new_makes_no_commit(project):
    p = project(spec())
    first = step(p, {"a.json": [rec(1)]})
    from lh360.engines.local.refine import refine

    project_ = p.load()
    r = refine(project_.target(), project_.specs["contas"])
    assert r.noop and r.silver_version == first.silver_version == 1  # v0: the empty create, v1: the rows


def test_dedupe_ties_prefer_later_batch_then_file(project):
    p = project(spec())
    same = "2025-01-01T00:00:00Z"
    # one batch, two files with the same sequence: the greatest _source_file wins
    step(p, {"x1.json": [rec(1, "primeiro", ts=same)], "x2.json": [rec(1, "segundo", ts=same)]})
    assert silver(p)[0]["nome"] == "Segundo"


def test_expectation_actions(project):
    exps = [
        {"name": "saldo_positivo", "rule": "saldo >= 0", "action": "quarantine"},
        {"name": "nome_presente", "rule": "nome is not null", "action": "drop"},
        {"name": "nome_curto", "rule": "length(nome) < 10", "action": "warn"},
    ]
    p = project(spec(expectations=exps, partition_by=["nome"]))
    r = step(
        p,
        {
            "a.json": [
                rec(1, "ana"),
                rec(2, "bernardo de souza", -5),  # quarantine + warn
                rec(3, None),  # drop (NULL fails every rule it reaches: length(NULL) < 10 is NULL → warn too)
                rec(4, None, -1),  # quarantine beats drop
                rec(5, "carlos", None),  # NULL saldo: NULL fails → quarantine
                rec(6, "bernardo de souza"),  # warn only: kept
            ]
        },
    )
    assert (r.rows_in, r.quarantined, r.dropped, r.kept) == (6, 3, 1, 2)
    assert r.rule_failures == {"saldo_positivo": 3, "nome_presente": 2, "nome_curto": 4}
    assert r.warned == {"nome_curto": 4}
    assert [x["id"] for x in silver(p)] == [1, 6]
    q = read_table(p.root, "quarantine.contas", order_by="id")
    assert [x["id"] for x in q] == [2, 4, 5]
    assert q[0]["_failed_rules"] == ["saldo_positivo", "nome_curto"]
    assert q[1]["_failed_rules"] == ["saldo_positivo", "nome_presente", "nome_curto"]  # all failed rules, spec order
    assert q[0]["_source_file"].endswith("a.json") and q[0]["_batch_id"] == 0 and q[0]["_quarantined_at"] is not None
    from lh360.delta import open_table

    assert open_table(str(p.lake / "silver" / "contas")).metadata().partition_columns == ["nome"]


def test_fail_expectation_stops_before_any_commit(project):
    exps = [
        {"name": "saldo_positivo", "rule": "saldo >= 0", "action": "fail"},
        {"name": "q", "rule": "id < 100", "action": "quarantine"},
    ]
    p = project(spec(expectations=exps))
    step(p, {"a.json": [rec(1), rec(200)]})
    with pytest.raises(CheckFailed) as info:
        step(p, {"b.json": [rec(2, saldo=-1), rec(300)]})
    assert "saldo_positivo (1 row)" in info.value.message and "saldo=" in info.value.detail
    from lh360.delta import open_table

    # v0 of each table is its empty create, v1 the first run's rows: the failed run committed nothing
    assert open_table(str(p.lake / "silver" / "contas")).version() == 1
    assert open_table(str(p.lake / "quarantine" / "contas")).version() == 1  # b.json's quarantine row not written
    assert [x["id"] for x in silver(p)] == [1]


def test_no_columns_takes_every_bronze_column_without_underscore(project):
    p = project(spec(columns={}))
    step(p, {"a.json": [rec(1, extra="x")]})
    assert set(silver(p)[0]) == {"id", "nome", "saldo", "updated_at", "extra"}


def test_scd2_history_across_three_batches(project):
    p = project(spec(scd=2))
    t = lambda d: f"2025-01-0{d}T00:00:00Z"  # noqa: E731
    step(p, {"b1.json": [rec(1, "a1", ts=t(1)), rec(2, "b1", ts=t(1))]})
    # batch 2: two new versions of key 1 at once, an older (ignored) version of key 2, a new key 3
    step(
        p,
        {
            "b2.json": [
                rec(1, "a3", ts=t(3)),
                rec(1, "a2", ts=t(2)),
                rec(2, "velho", ts="2024-12-31T00:00:00Z"),
                rec(3, "c1", ts=t(2)),
            ]
        },
    )
    # batch 3: a replay of batch 2's newest version of key 1 (ignored) and a new version of key 2
    r = step(p, {"b3.json": [rec(1, "a3", ts=t(3)), rec(2, "b2", ts=t(4))]})
    assert r.inserted == 1 and r.closed == 1
    rows = [
        (x["id"], x["nome"], x["valid_from"].day, x["valid_to"] and x["valid_to"].day, x["is_current"])
        for x in silver(p, "id, valid_from")
    ]
    assert rows == [
        (1, "A1", 1, 2, False),
        (1, "A2", 2, 3, False),
        (1, "A3", 3, None, True),
        (2, "B1", 1, 4, False),
        (2, "B2", 4, None, True),
        (3, "C1", 2, None, True),
    ]


def test_quarantine_is_not_duplicated_when_a_run_dies_between_its_two_commits(project, monkeypatch):
    from lh360.engines.local import refine as refine_mod

    exps = [{"name": "saldo_positivo", "rule": "saldo >= 0", "action": "quarantine"}]
    p = project(spec(expectations=exps))

    def boom(*a, **k):
        raise RuntimeError("killed between the quarantine commit and the silver merge")

    monkeypatch.setattr(refine_mod, "_merge", boom)
    with pytest.raises(RuntimeError):
        step(p, {"a.json": [rec(1), rec(2, saldo=-1)]})
    monkeypatch.undo()
    assert len(read_table(p.root, "quarantine.contas")) == 1
    # meanwhile a new bronze batch lands: the rerun of run 0 must read bronze only up to what run 0 read
    r = step(p, {"b.json": [rec(3, saldo=-3), rec(4)]})
    assert r.run == 0 and r.quarantine_replayed and r.bronze_to == 1  # bronze v1: the first batch
    assert [x["id"] for x in silver(p)] == [1]
    r = step(p, {})
    assert r.run == 1 and r.quarantined == 1
    assert [x["id"] for x in read_table(p.root, "quarantine.contas", order_by="id")] == [2, 3]
    assert [x["id"] for x in silver(p)] == [1, 4]


def test_gold_order_follows_sql_references(project):
    s = spec()
    s["gold"] = {
        "resumo": {"sql": "SELECT count(*) AS contas, sum(saldo) AS total FROM gold.por_nome"},
        "por_nome": {"sql": "SELECT nome, sum(saldo) AS saldo FROM silver.contas GROUP BY nome"},
    }
    p = project(s)
    step(p, {"a.json": [rec(1, "ana", 1), rec(2, "ana", 2), rec(3, "bia", 4)]})
    from lh360.context import Lakehouse

    project_ = p.load()
    out = Lakehouse(project_, project_.target()).promote(None, "gold")
    assert [r.relation for r in out.aggregate] == ["gold.por_nome", "gold.resumo"]
    assert strip(read_table(p.root, "gold.resumo")) == [{"contas": 2, "total": 7}]
    assert out.aggregate[1].sources == {"gold.por_nome": 0}
