"""`lh360 validate --engine athena`, `lh360 sql` on Athena and `lh360 deploy`'s Glue registration, end to end:
the CLI in a subprocess → pyathena → boto3 → the moto server, whose Athena runs each query for real on
DuckDB over the Delta tables in its S3 (athena_double.py).

One lakehouse is built once for the module (landing on S3 → bronze → silver → gold by the local engine,
then deploy); each test scripts what Athena does next.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import athena_double
import pytest
import yaml
from awstest import (
    TEMPLATES,
    aws_environment,
    cli,
    create_buckets,
    json_out,
    load,
    make_project,
    reset_moto,
    upload_tree,
)

SHARED_MOTO = True
DOUBLE = athena_double.DOUBLE


@pytest.fixture(scope="module")
def lakehouse(moto_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("athena")
    with pytest.MonkeyPatch.context() as mp:
        aws_environment(mp, moto_url, root)
        reset_moto(moto_url)
        create_buckets()
        make_project(root, clientes=True)
        import boto3

        from lh360.demo.generator import write_landing

        write_landing(root / "gen", rows=400, files=4, seed=11, start=datetime.now(UTC) - timedelta(hours=20))
        upload_tree(boto3.client("s3"), root / "gen", "landing", "raw/clientes")
        for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"], ["deploy"]):
            proc = cli(root, "--json", *args)
            assert proc.returncode == 0, proc.stderr
    return root


def test_deploy_registers_delta_tables_in_glue(lakehouse):
    import boto3

    glue = boto3.client("glue")
    table = glue.get_table(DatabaseName="lh360_silver", Name="clientes")["Table"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["table_type"] == "DELTA"
    assert table["StorageDescriptor"]["Location"] == "s3://lake/lh/silver/clientes"
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["id"] == "bigint" and columns["renda_mensal"] == "decimal(18,2)"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["uf"]
    gold = glue.get_table(DatabaseName="lh360_gold", Name="clientes_por_uf")["Table"]
    assert gold["StorageDescriptor"]["Location"] == "s3://lake/lh/gold/clientes_por_uf"
    for name in ("lh360_runs", "lh360_checks"):  # the ledgers (the check ledger exists after a validate)
        try:
            glue.get_table(DatabaseName="lh360_ledger", Name=name)
        except glue.exceptions.EntityNotFoundException:
            assert name == "lh360_checks"
    again = json_out(cli(lakehouse, "--json", "deploy"))
    glue_actions = [a for a in again["actions"] if a["deployer"] == "glue"]
    assert {a["status"] for a in glue_actions} <= {"ok", "deferred"}  # idempotent: nothing to do twice


def test_validate_on_athena_matches_duckdb_one_fused_query_per_table(lakehouse):
    proc = cli(lakehouse, "--json", "validate", "--engine", "athena")
    doc = json_out(proc)
    assert proc.returncode == 0, proc.stderr
    duck = json_out(cli(lakehouse, "--json", "validate", "--engine", "duckdb"))
    assert doc["engine"] == "athena"
    athena_view = [(r["relation"], r["check"], r["status"], r["observed"]) for r in doc["results"]]
    duck_view = [(r["relation"], r["check"], r["status"], r["observed"]) for r in duck["results"]]
    assert athena_view == duck_view
    # one fused query per table for the aggregate checks (+ reconcile, which is its own query)
    by_relation: dict[str, set[str]] = {}
    for r in doc["results"]:
        if r["kind"] != "reconcile":
            by_relation.setdefault(r["relation"], set()).add(r["query_id"])
    assert all(len(ids) == 1 for ids in by_relation.values()), by_relation
    # every check reports its query id, the data scanned and the cost estimate (10 MB minimum per query)
    for r in doc["results"]:
        assert r["query_id"] in DOUBLE.executions
        assert r["bytes_scanned"] == DOUBLE.executions[r["query_id"]].scanned > 0
        assert r["cost_usd"] == pytest.approx(10 * 2**20 / 2**40 * 5.0)
    assert doc["summary"]["queries"] == len({r["query_id"] for r in doc["results"]})
    # freshness is fused into the silver query: no query asked Athena to reuse results
    assert all(not (o.reuse or {}).get("ResultReuseByAgeConfiguration", {}).get("Enabled") for o in DOUBLE.queries)
    assert {o.workgroup for o in DOUBLE.queries} == {"lh360"}


def test_a_failing_check_exits_1(lakehouse, tmp_path):
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    spec["checks"]["silver.clientes"].append({"row_count": {"max": 10}})
    spec["checks"]["silver.clientes"].append({"accepted_values": {"column": "uf", "values": ["SP"], "name": "so_sp"}})
    make_project(tmp_path, [spec])
    proc = cli(tmp_path, "--json", "validate", "--engine", "athena", "clientes")
    doc = json_out(proc)
    assert proc.returncode == 1
    failed = {r["check"]: r for r in doc["results"] if r["status"] == "fail"}
    assert set(failed) == {"row_count_2", "so_sp"} or len(failed) == 2, failed
    sample = next(r for r in doc["results"] if r["check"] == "so_sp")["sample"]
    assert sample and all(row["uf"] != "SP" for row in sample)  # sample rows came back from Athena too


def test_a_failed_athena_query_exits_3_with_athenas_error(lakehouse):
    # the table cannot be read: the fused query fails, and so does the probe that tells a table error from a
    # check's own
    DOUBLE.fail("HIVE_BAD_DATA: Error reading from s3://lake/lh/silver/clientes", match="lh360_silver", times=20)
    proc = cli(lakehouse, "--json", "validate", "--engine", "athena", "--layer", "silver")
    doc = json_out(proc)
    assert proc.returncode == 3
    errors = [r for r in doc["results"] if r["status"] == "error"]
    assert errors and all("HIVE_BAD_DATA" in r["message"] and "FAILED" in r["message"] for r in errors)
    failed = [qid for qid, o in DOUBLE.executions.items() if o.state == "FAILED"]
    assert len(failed) == 2  # the fused query and the probe; not one query per check
    assert any(qid in errors[0]["message"] for qid in failed)


def test_one_check_athena_refuses_does_not_take_the_others_down(lakehouse, tmp_path):
    """Trino refuses a string compared with a bigint; DuckDB would not. With the literals typed to the column,
    accepted_values on a bigint works on Athena; a rule comparing two columns of different types cannot be
    fixed: that check alone is an error (its table's other checks run one by one and keep their verdicts)."""
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    checks = spec["checks"]["silver.clientes"]
    checks.append({"accepted_values": {"column": "id", "values": ["1", "2", "3"], "name": "ids", "severity": "warn"}})
    checks.append({"expression": {"name": "cpf_is_id", "rule": "cpf = id", "severity": "warn"}})
    make_project(tmp_path, [spec])
    proc = cli(tmp_path, "--json", "validate", "--engine", "athena", "clientes", "--layer", "silver")
    doc = json_out(proc)
    assert proc.returncode == 3, proc.stderr
    by_name = {r["check"]: r for r in doc["results"]}
    assert by_name["cpf_is_id"]["status"] == "error"
    assert "TYPE_MISMATCH" in by_name["cpf_is_id"]["message"]
    assert by_name["ids"]["status"] == "warn" and by_name["ids"]["observed"] > 0  # '1', '2', '3' typed as bigints
    others = [r for r in doc["results"] if r["check"] != "cpf_is_id"]
    assert others and all(r["status"] in ("pass", "warn") for r in others), others
    duck = json_out(cli(tmp_path, "--json", "validate", "--engine", "duckdb", "clientes", "--layer", "silver"))
    duck_view = {r["check"]: r["observed"] for r in duck["results"] if r["check"] != "cpf_is_id"}
    assert {r["check"]: r["observed"] for r in others} == duck_view  # same counts as DuckDB


def test_throttling_is_retried_and_other_errors_are_not(lakehouse):
    DOUBLE.throttle(1, code="ThrottlingException")
    DOUBLE.throttle(1, code="TooManyRequestsException")
    proc = cli(lakehouse, "--json", "validate", "--engine", "athena", "--layer", "silver")
    assert proc.returncode == 0, proc.stderr
    assert len(DOUBLE.throttled) == 2
    # not throttling: one attempt, an engine error at once (exit 3)
    _, target = load(lakehouse / "configs" / "lh360.yaml")
    from lh360.engines.athena.query import AthenaRunner
    from lh360.errors import EngineError

    runner = AthenaRunner(target)
    runner.settings = runner.settings.model_copy(update={"workgroup": "no-such-workgroup"})
    started = time.monotonic()
    with pytest.raises(EngineError, match="WorkGroup does not exist"):
        runner.query("SELECT 1")
    assert time.monotonic() - started < 2


def test_a_query_past_the_timeout_is_cancelled_and_exits_4(lakehouse, tmp_path):
    make_project(tmp_path, clientes=True, athena_timeout="3s")
    DOUBLE.hang(match="lh360_silver")
    started = time.monotonic()
    proc = cli(tmp_path, "--json", "validate", "--engine", "athena", "--layer", "silver")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert time.monotonic() - started < 15
    doc = json_out(proc)
    assert "timeout" in doc["error"] and doc["exit_code"] == 4
    hung = [o for o in DOUBLE.queries if "lh360_silver" in o.query]
    assert hung and hung[0].state == "CANCELLED"  # StopQueryExecution was sent


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_cancels_the_running_query(lakehouse, signum, code):
    import os

    DOUBLE.hang(match="lh360_silver")
    env = {**os.environ, "LH360_CONFIG": str(lakehouse / "configs" / "lh360.yaml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lh360", "validate", "--engine", "athena", "--layer", "silver"],
        cwd=lakehouse,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any("lh360_silver" in o.query for o in DOUBLE.queries) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    hung = next(o for o in DOUBLE.queries if "lh360_silver" in o.query)
    assert hung.state == "CANCELLED"


def test_sigterm_while_the_query_is_being_started_stops_it(lakehouse):
    """The signal lands while StartQueryExecution is in flight: no query id yet, but the query it starts is
    stopped as soon as Athena answers (pyathena's kill_on_interrupt, which lh360's SIGTERM now reaches)."""
    import os

    DOUBLE.hang(match="lh360_silver", start_delay=2.0)
    env = {**os.environ, "LH360_CONFIG": str(lakehouse / "configs" / "lh360.yaml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lh360", "validate", "--engine", "athena", "--layer", "silver"],
        cwd=lakehouse,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not DOUBLE.starting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert DOUBLE.starting, "the start request never arrived"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    started = [o for o in DOUBLE.queries if "lh360_silver" in o.query]
    assert started and started[0].state == "CANCELLED", [o.state for o in started]


def test_sql_on_athena_resolves_layer_names(lakehouse):
    query = "SELECT uf, count(*) AS n FROM silver.clientes GROUP BY uf ORDER BY uf"
    athena = json_out(cli(lakehouse, "--json", "sql", "--engine", "athena", query))
    duck = json_out(cli(lakehouse, "--json", "sql", "--engine", "duckdb", query))
    assert athena["rows"] == duck["rows"] and athena["rows"]
    assert athena["query_id"] in DOUBLE.executions
    assert '"lh360_silver"."clientes"' in DOUBLE.executions[athena["query_id"]].query
    bad = cli(lakehouse, "--json", "sql", "--engine", "athena", "SELECT nope FROM silver.clientes")
    assert bad.returncode == 3 and "FAILED" in json_out(bad)["error"]


def test_reregister_after_a_schema_change(lakehouse, tmp_path):
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    spec["silver"]["columns"]["nome_upper"] = "upper(nome)"
    make_project(tmp_path, [spec])
    plan = json_out(cli(tmp_path, "--json", "deploy", "--dry-run"))
    silver = next(a for a in plan["actions"] if a["object"] == "lh360_silver.clientes")
    assert silver["status"] == "ok"  # the spec changed, the Delta table not yet
    import boto3

    record = {
        "id": 999001,
        "cpf": "123.456.789-01",
        "nome": "ana",
        "email": "ANA@X.COM",
        "ativo": True,
        "endereco": {"uf": "sp", "cidade": "X", "cep": "01000-000"},
        "renda_mensal": 10.5,
        "updated_at": datetime.now(UTC).isoformat(),
        "created_at": datetime.now(UTC).isoformat(),
    }
    boto3.client("s3").put_object(
        Bucket="landing", Key="raw/clientes/9999/12/31/late.json", Body=(json.dumps(record) + "\n").encode()
    )
    for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "silver"]):
        proc = cli(tmp_path, "--json", *args)
        assert proc.returncode == 0, proc.stderr
    plan = json_out(cli(tmp_path, "--json", "deploy"))
    silver = next(a for a in plan["actions"] if a["object"] == "lh360_silver.clientes")
    assert silver["kind"] == "reregister_table" and silver["status"] == "done"
    assert "+nome_upper string" in silver["reason"]
    import boto3

    table = boto3.client("glue").get_table(DatabaseName="lh360_silver", Name="clientes")["Table"]
    assert "nome_upper" in {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
    athena = json_out(
        cli(
            tmp_path,
            "--json",
            "sql",
            "--engine",
            "athena",
            "SELECT count(*) AS n FROM silver.clientes WHERE nome_upper = upper(nome)",
        )
    )
    assert athena["rows"][0][0] > 0


def test_cost_estimate():
    from lh360.engines.athena.query import cost_usd

    assert cost_usd(0) == cost_usd(1) == cost_usd(10 * 2**20) == pytest.approx(10 * 2**20 / 2**40 * 5)
    assert cost_usd(2**40) == pytest.approx(5.0)
    assert cost_usd(10 * 2**20 + 1) == pytest.approx(11 * 2**20 / 2**40 * 5)  # rounded up to the MB
    assert cost_usd(2**40, 7.0) == pytest.approx(7.0)
    assert cost_usd(2**40, reused=True) == 0.0  # a reused result scans nothing


def test_the_price_is_a_target_setting_with_regional_defaults(lakehouse, tmp_path):
    from lh360.config import AthenaSettings
    from lh360.engines.athena.query import PRICE_PER_TB_USD, AthenaRunner, price_per_tb

    settings = AthenaSettings(databases={"bronze": "b", "silver": "s", "gold": "g"})
    assert price_per_tb(settings, "us-east-1") == (5.0, "us-east-1 list price")
    price, basis = price_per_tb(settings, "sa-east-1")  # not a verified list price: estimated, and said so
    assert price == PRICE_PER_TB_USD["us-east-1"] and "set athena.price_per_tb_usd" in basis
    assert price_per_tb(settings.model_copy(update={"price_per_tb_usd": 9.0}), "sa-east-1")[0] == 9.0

    make_project(tmp_path, clientes=True, athena={"price_per_tb_usd": 7.0})
    _, target = load(tmp_path / "configs" / "lh360.yaml")
    runner = AthenaRunner(target)
    try:
        result = runner.query("SELECT count(*) AS n FROM lh360_silver.clientes")
    finally:
        runner.close()
    assert result.extra["cost_usd"] == pytest.approx(10 * 2**20 / 2**40 * 7.0)
    assert result.extra["price_basis"] == "athena.price_per_tb_usd"


def test_a_reused_result_costs_nothing(lakehouse):
    from lh360.engines.athena.query import AthenaRunner

    _, target = load(lakehouse / "configs" / "lh360.yaml")
    runner = AthenaRunner(target)
    try:
        sql = "SELECT count(*) AS n FROM lh360_silver.clientes WHERE uf = 'SP'"
        first = runner.query(sql, reuse_results=True)
        again = runner.query(sql, reuse_results=True)
    finally:
        runner.close()
    assert first.extra["reused"] is False and first.extra["cost_usd"] > 0
    assert again.extra["reused"] is True and again.extra["cost_usd"] == 0.0
    assert again.rows == first.rows


def test_sample_queries_are_counted_in_the_cost(lakehouse, tmp_path):
    from lh360.engines.athena.query import cost_usd

    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    spec["checks"]["silver.clientes"].append({"accepted_values": {"column": "uf", "values": ["SP"], "name": "so_sp"}})
    make_project(tmp_path, [spec])
    doc = json_out(cli(tmp_path, "--json", "validate", "--engine", "athena", "clientes"))
    so_sp = next(r for r in doc["results"] if r["check"] == "so_sp")
    assert so_sp["sample"]  # a sample query ran for the failing check
    queries = doc["summary"]["queries"]
    assert queries > len({r["query_id"] for r in doc["results"]})  # more queries than the checks' own
    # every query is billed (10 MB minimum each here): the samples too
    assert doc["summary"]["cost_usd"] == pytest.approx(queries * cost_usd(0), abs=1e-6)


def test_unique_checks_on_a_large_table_run_as_their_own_query(lakehouse, tmp_path):
    make_project(tmp_path, clientes=True, athena={"unique_alone_rows": 10})  # "large": more than 10 rows
    doc = json_out(cli(tmp_path, "--json", "validate", "--engine", "athena", "clientes", "--layer", "silver"))
    duck = json_out(cli(tmp_path, "--json", "validate", "--engine", "duckdb", "clientes", "--layer", "silver"))
    unique = next(r for r in doc["results"] if r["kind"] == "unique")
    fused = {r["query_id"] for r in doc["results"] if r["kind"] not in ("unique", "reconcile")}
    assert len(fused) == 1 and unique["query_id"] not in fused
    query = DOUBLE.executions[unique["query_id"]].query
    assert "GROUP BY" in query and "HAVING" in query and "DISTINCT" not in query
    [fused_query] = [DOUBLE.executions[q].query for q in fused]
    assert "DISTINCT" not in fused_query  # the fused scan holds no exact distinct count
    duck_unique = next(r for r in duck["results"] if r["kind"] == "unique")
    assert unique["observed"] == duck_unique["observed"] and unique["status"] == duck_unique["status"]
