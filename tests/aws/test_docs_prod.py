"""`lh360 -t prod docs build` on a prod-like target: engine databricks, checks on Athena, landing and lake on S3
(the moto server). The site is read from the Delta logs and the ledgers on S3, as `tables` and `history` read
them, and from the specs; nothing is sent to the Databricks workspace (its host here answers nothing) and no
Athena query runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml
from awstest import ATHENA, REGION, cli, json_out, make_project, upload_tree


def test_docs_build_on_a_databricks_athena_target_reads_s3(s3, tmp_path):
    from lh360.demo.generator import write_landing

    config_path = make_project(tmp_path, clientes=True)
    config = yaml.safe_load(config_path.read_text())
    config["targets"]["prod"] = {
        "engine": "databricks",
        "landing": "s3://landing/raw",
        "lake": "s3://lake/lh",
        "aws": {"region": REGION},
        "databricks": {"catalog": "lakehouse360", "host": "http://127.0.0.1:9"},
        "validator": "athena",
        "athena": ATHENA,
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    write_landing(
        tmp_path / "landing" / "clientes", rows=300, files=3, seed=5, start=datetime.now(UTC) - timedelta(hours=20)
    )
    upload_tree(s3, tmp_path / "landing" / "clientes", "landing", "raw/clientes")
    # the lake and both ledgers on S3, written by real steps (the local engine on the s3 target)
    for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"], ["validate", "--engine", "duckdb"]):
        proc = cli(tmp_path, "--json", "-t", "s3", *args)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
    tables = {r["relation"]: r for r in json_out(cli(tmp_path, "--json", "-t", "prod", "tables"))["tables"]}
    history = json_out(cli(tmp_path, "--json", "-t", "prod", "history", "--checks", "-n", "100"))

    proc = cli(tmp_path, "--json", "-t", "prod", "docs", "build", "--out", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    doc = json_out(proc)
    assert doc["target"] == "prod" and doc["notes"] == []
    assert doc["ledger"]["runs"]["rows"] == len(history["runs"]) and doc["ledger"]["runs"]["error"] is None
    assert doc["ledger"]["checks"]["rows"] == len(history["checks"])

    site = json.loads((tmp_path / "site" / "site.json").read_text())
    (clientes,) = site["tables"]
    for relation, info in clientes["relations"].items():
        if relation in tables:
            assert (info["rows"], info["version"]) == (tables[relation]["rows"], tables[relation]["version"])
    assert clientes["relations"]["silver.clientes"]["rows"] > 0
    assert sum(clientes["checks"].values()) == len(history["checks"])

    page = (tmp_path / "site" / "tables" / "clientes.html").read_text()
    assert "engine databricks" in page and "checks on athena" in page
    assert "MERGE INTO `lakehouse360`.`silver`.`clientes`" in page  # the refine SQL the Spark job runs
    assert "s3://landing/raw/clientes" in page  # the landing state, listed on S3
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'data-node="silver.clientes"' in index and "node st-ok" in index
