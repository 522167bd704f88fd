"""silver.pii and `lh360 forget` on a Databricks target, against the fake workspace: the job's payloads carry
the rules and the secret's name (never the key), gold reads protected views, a warehouse aggregate that
would need the key is refused; forget deletes through the SQL warehouse with MERGE and named parameters
(no value in any statement's text, so none in the Delta log or the query history) and rewrites the landing
files from the ops box."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import REPO, TEST_PII_KEY
from tests.databricks_support import CATALOG, load, make_project

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

CPF = "009.946.509-49"


def clientes(**changes) -> str:
    spec = yaml.safe_load((REPO / "configs" / "tables" / "clientes.yaml").read_text())
    spec["silver"]["pii"]["nome"]["gold"] = "hash"  # gold may group by a hashed name
    spec.update(changes)
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


GOLD = {"por_nome": {"sql": "SELECT nome, count(*) AS n FROM silver.clientes GROUP BY nome"}}


def test_payloads_carry_the_rules_and_the_secret_name_and_gold_reads_a_protected_view(tmp_path):
    from lh360.engines.databricks.requests import step_payload

    make_project(tmp_path, databricks={"pii_secret": "lh360/pii"}, spec_text=clientes(gold=GOLD))
    project, target = load(tmp_path)
    spec = project.specs["clientes"]
    refine = step_payload(target, spec, "refine", "r1")
    assert refine["spec"]["silver"]["pii"]["cpf"] == {"kind": "cpf", "silver": "hash", "gold": "hash"}
    assert refine["pii_secret"] == {"scope": "lh360", "key": "pii"}
    agg = step_payload(target, spec, "aggregate", "r1", "por_nome")
    view = "lh360_pii_por_nome_clientes"
    assert agg["pii_views"] == {"por_nome": {view: {"table": f"`{CATALOG}`.`silver`.`clientes`", "allow": []}}}
    assert f"FROM `{view}`" in agg["gold"]["por_nome"]["sql"]
    plain = step_payload(
        target,
        spec.model_copy(
            update={
                "gold": {
                    "n": spec.gold["por_nome"].model_copy(
                        update={"sql": "SELECT uf, count(*) AS n FROM silver.clientes GROUP BY uf"}
                    )
                }
            }
        ),
        "aggregate",
        "r1",
        "n",
    )
    assert "pii_views" not in plain and f"`{CATALOG}`.`silver`.`clientes`" in plain["gold"]["n"]["sql"]
    text = json.dumps([refine, agg])
    assert TEST_PII_KEY not in text  # the key stays on the ops box and in the workspace's secret


def test_a_gold_query_needing_the_key_is_refused_on_the_warehouse(tmp_path, fake_ws):
    from lh360.engines import engine_for
    from lh360.errors import UsageError

    make_project(tmp_path, databricks={"aggregate_on": "warehouse"}, spec_text=clientes(gold=GOLD))
    project, target = load(tmp_path)
    engine = engine_for(target)
    with pytest.raises(UsageError, match="aggregate_on: job"):
        engine.aggregate(project, "gold.por_nome")
    assert not fake_ws.statements


@pytest.mark.slow
def test_forget_on_databricks_merges_with_parameters_and_rewrites_landing(tmp_path, fake_ws, monkeypatch):
    from lh360.context import Lakehouse
    from lh360.demo.generator import write_landing
    from lh360.ledger import Ledger
    from tests.forget_support import records

    root = tmp_path / "proj"
    make_project(root, spec_text=clientes(gold={}, checks={}))
    write_landing(root / "landing" / "clientes", rows=60, files=2, seed=7)
    # bronze as the job wrote it (the ops box reads its schema from the lake): built here by the local engine
    project = load(root)[0]
    local = Lakehouse(project, project.target("local"))
    local.ingest(["clientes"])
    shutil.copytree(root / "lake" / "bronze", root / "lake-prod" / "bronze")
    person = next(r for r in records(type("P", (), {"landing": root / "landing"})) if r.get("cpf"))
    source = str(next((root / "landing" / "clientes").rglob("*.json")))
    seen: list[tuple[str, list]] = []

    def handler(statement: str, parameters: list):
        seen.append((statement, parameters))
        if statement.startswith("SELECT DISTINCT"):
            return ["id", "_source_file"], [[str(person["id"]), source]]
        if statement.startswith("MERGE"):
            return ["num_affected_rows", "num_deleted_rows"], [[1, 1]]
        return [], []

    fake_ws.sql_handler = handler
    lh = Lakehouse(project, project.target("prod"))
    result = lh.forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)
    merges = [s for s, _ in seen if s.startswith("MERGE")]
    assert len(merges) == 3 and all("WHEN MATCHED THEN DELETE" in m for m in merges)
    assert any(f"`{CATALOG}`.`bronze`.`clientes`" in m for m in merges)
    digits = "".join(ch for ch in person["cpf"] if ch.isdigit())
    for statement, _ in seen:
        assert person["cpf"] not in statement and digits not in statement
    assert any(p.get("value") == person["cpf"] for _, params in seen for p in params)
    assert [s for s, _ in seen if s.startswith("VACUUM")]
    assert all(r.get("id") != person["id"] for r in records(type("P", (), {"landing": root / "landing"})))
    assert result.layers["landing.clientes"]["rows"] >= 1 and result.layers["bronze.clientes"]["rows"] == 1
    rows = Ledger(project.target("prod")).erasures("clientes")
    assert len(rows) == 1 and rows[0]["engine"] == "databricks"
