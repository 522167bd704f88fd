"""lh360/spark/job.py: payload parsing, the inspectable Auto Loader options and SQL, the CLI, and the
refine/ingest wiring (foreachBatch, availableNow, checkpoints, idempotent replays) under local pyspark
with an in-memory stand-in for Delta (see conftest.MemoryTarget)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lh360.spark import contract, job, runtime
from lh360.spark import transforms as T

pytestmark = pytest.mark.spark

JOB_DIR = Path(job.__file__).parent

SPEC = {
    "table": "clientes",
    "source": {"system": "RT2", "object": "tbfc6_clientes", "format": "json", "path": "clientes/"},
    "bronze": {
        "schema_evolution": "addNewColumns",
        "schema_hints": {"id": "bigint", "renda_mensal": "decimal(18,2)"},
        "max_files_per_batch": 1000,
    },
    "silver": {
        "keys": ["id"],
        "sequence_by": "updated_at",
        "scd": 1,
        "columns": {
            "id": "cast(id as bigint)",
            "cpf": "regexp_replace(cpf, '[^0-9]', '')",
            "nome": "initcap(trim(nome))",
            "uf": "upper(uf)",
            "updated_at": "to_timestamp(updated_at)",
        },
        "expectations": [
            {"name": "cpf_11_digitos", "rule": "length(cpf) = 11", "action": "quarantine"},
            {"name": "nome_presente", "rule": "nome is not null", "action": "warn"},
        ],
        "partition_by": ["uf"],
    },
}


def payload(step="refine", **over):
    p = {
        "step": step,
        "table": "clientes",
        "run_id": "run-1",
        "catalog": "lakehouse360",
        "spec": copy.deepcopy(SPEC),
        "paths": {
            "landing": "s3://b/raw/clientes/",
            "bronze": "s3://lake/bronze/clientes",
            "silver": "s3://lake/silver/clientes",
            "quarantine": "s3://lake/quarantine/clientes",
            "state": "s3://lake/_lh360/state/clientes/",
        },
        "gold": {
            "clientes_por_uf": {
                "sql": "SELECT uf, count(*) AS clientes FROM `lakehouse360`.`silver`.`clientes` GROUP BY uf;\n",
                "path": "s3://lake/gold/clientes_por_uf",
            }
        },
    }
    p.update(over)
    return p


# --------------------------------------------------------------------------- payload


def test_parse_payload_normalises_and_accepts_json_text():
    p = contract.parse_payload(json.dumps(payload()))
    assert p["step"] == "refine" and p["run_id"] == "run-1" and p["tables"] == {}
    p = contract.parse_payload({k: v for k, v in payload().items() if k not in ("run_id", "catalog")}, "refine")
    assert p["run_id"] == "manual" and p["catalog"] == ""
    assert contract.parse_payload(payload("aggregate"))["gold"]["clientes_por_uf"]["path"].endswith("clientes_por_uf")


@pytest.mark.parametrize(
    "mutate, step, message",
    [
        (lambda p: "{not json", None, "payload: not valid JSON"),
        (lambda p: [1], None, "payload: must be a JSON object"),
        (lambda p: p, "ingest", "does not match --step 'ingest'"),
        (lambda p: {**p, "step": "publish"}, None, "payload.step: 'publish'"),
        (lambda p: {**p, "table": ""}, None, "payload.table: required"),
        (lambda p: {**p, "spec": "x"}, None, "payload.spec: expected dict"),
        (lambda p: {**p, "paths": {**p["paths"], "silver": None}}, None, "payload.paths.silver: required"),
        (lambda p: {**p, "state_generation": -1}, None, "payload.state_generation"),
        (
            lambda p: {**p, "spec": {**p["spec"], "silver": {**p["spec"]["silver"], "partition_by": ["regiao"]}}},
            None,
            "payload.spec.silver.partition_by: 'regiao' is not in silver.columns",
        ),
        (
            lambda p: {**p, "spec": {**p["spec"], "silver": {**p["spec"]["silver"], "keys": []}}},
            None,
            "payload.spec.silver.keys: required",
        ),
        (
            lambda p: {**p, "spec": {**p["spec"], "silver": {**p["spec"]["silver"], "scd": 3}}},
            None,
            "payload.spec.silver.scd",
        ),
        (
            lambda p: {
                **p,
                "spec": {
                    **p["spec"],
                    "silver": {
                        **p["spec"]["silver"],
                        "expectations": [{"name": "x", "rule": "1=1", "action": "explode"}],
                    },
                },
            },
            None,
            "silver.expectations[0].action: 'explode' is not one of warn, drop, quarantine, fail",
        ),
        (
            lambda p: {**p, "step": "ingest", "spec": {**p["spec"], "bronze": {"schema_evolution": "addColumns"}}},
            None,
            "payload.spec.bronze.schema_evolution: 'addColumns'",
        ),
        (lambda p: {**p, "step": "aggregate", "gold": {}}, None, "payload.gold: required for aggregate"),
        (
            lambda p: {**p, "step": "aggregate", "gold": {"g": {"sql": "select 1"}}},
            None,
            "payload.gold.g.path: required",
        ),
    ],
)
def test_parse_payload_errors_name_the_field(mutate, step, message):
    raw = mutate(payload())
    with pytest.raises(contract.PayloadError) as err:
        contract.parse_payload(raw if isinstance(raw, str) else json.dumps(raw) if isinstance(raw, list) else raw, step)
    assert message in str(err.value)


def test_parse_payload_needs_no_pyspark_for_validation():
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def no_spark(name, *a, **k):\n"
        "    if name.startswith('pyspark'): raise ImportError('no pyspark here')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = no_spark\n"
        "from lh360.spark import contract\n"
        f"p = contract.parse_payload({json.dumps(payload())!r})\n"
        "print(contract.merge_sql(p).splitlines()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=JOB_DIR.parents[1]
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "MERGE INTO `lakehouse360`.`silver`.`clientes` AS t"


# --------------------------------------------------------------------------- Auto Loader options


@pytest.mark.parametrize("mode", ["addNewColumns", "rescue", "failOnNewColumns", "none"])
def test_autoloader_options_for_each_schema_evolution_mode(mode):
    p = payload("ingest")
    p["spec"]["bronze"]["schema_evolution"] = mode
    opts = contract.autoloader_options(contract.parse_payload(p))
    assert opts == {
        "cloudFiles.format": "json",
        "cloudFiles.schemaLocation": "s3://lake/_lh360/state/clientes/schema",
        "cloudFiles.schemaEvolutionMode": mode,
        "cloudFiles.inferColumnTypes": "true",
        "cloudFiles.maxFilesPerTrigger": "1000",
        "rescuedDataColumn": "_rescued_data",
        "cloudFiles.schemaHints": "id bigint, renda_mensal decimal(18,2)",
    }
    assert all(isinstance(v, str) for v in opts.values())


def test_autoloader_options_defaults_and_validation():
    p = payload("ingest")
    p["spec"]["bronze"] = {}
    opts = contract.autoloader_options(p)
    assert opts["cloudFiles.schemaEvolutionMode"] == "addNewColumns"
    assert opts["cloudFiles.maxFilesPerTrigger"] == str(contract.DEFAULT_MAX_FILES_PER_BATCH)
    assert "cloudFiles.schemaHints" not in opts
    p["spec"]["bronze"] = {"max_files_per_batch": 0}
    with pytest.raises(contract.PayloadError, match="max_files_per_batch"):
        contract.autoloader_options(p)


def test_schema_hints_string():
    assert (
        contract.schema_hints({"id": "bigint", "renda_mensal": "decimal(18,2)"})
        == "id bigint, renda_mensal decimal(18,2)"
    )
    assert (
        contract.schema_hints({"endereco.uf": "string", "data nasc": "date"}) == "endereco.uf string, `data nasc` date"
    )
    assert contract.schema_hints({"we`ird": "int"}) == "`we``ird` int"
    assert contract.schema_hints("id bigint, x int") == "id bigint, x int"
    assert contract.schema_hints(["id bigint", "x int"]) == "id bigint, x int"
    assert contract.schema_hints(None) == "" and contract.schema_hints({}) == ""
    with pytest.raises(contract.PayloadError, match="schema_hints.id: empty type"):
        contract.schema_hints({"id": ""})


# --------------------------------------------------------------------------- SQL


def test_names_locations_and_idempotency_ids():
    p = contract.parse_payload(payload())
    assert contract.table_name(p, "silver") == "`lakehouse360`.`silver`.`clientes`"
    assert contract.table_name({**p, "catalog": ""}, "gold", "x") == "`gold`.`x`"
    assert contract.checkpoint_location(p, "silver") == "s3://lake/_lh360/state/clientes/checkpoint/silver"
    assert contract.checkpoint_location(p, "bronze") == "s3://lake/_lh360/state/clientes/checkpoint/bronze"
    assert contract.bronze_writer_options(p, 3) == {
        "mergeSchema": "true",
        "txnAppId": "lh360-ingest-clientes",
        "txnVersion": "3",
        "userMetadata": '{"lh360.step":"ingest","lh360.batch_id":3,"lh360.files":[]}',
    }
    assert contract.txn_app_id({**p, "state_generation": 2}, "refine") == "lh360-refine-clientes-g2"
    # a named checkpoint generation: its own checkpoint folder and app ids (Delta skips nothing of it)
    g = {**p, "state_generation": "20261126t0900"}
    assert (
        contract.checkpoint_location(g, "bronze") == "s3://lake/_lh360/state/clientes/checkpoint/bronze-g20261126t0900"
    )
    assert contract.bronze_writer_options(g, 0)["txnAppId"] == "lh360-ingest-clientes-g20261126t0900"


def test_scd1_merge_sql_guards_on_sequence():
    sql = contract.merge_sql(contract.parse_payload(payload()))
    same = " AND ".join(f"s.`{c}` <=> t.`{c}`" for c in ("id", "cpf", "nome", "uf", "updated_at"))
    assert sql.splitlines() == [
        "MERGE INTO `lakehouse360`.`silver`.`clientes` AS t",
        "USING `lh360_refine_clientes_source` AS s",
        "ON t.`id` = s.`id`",
        # later: a greater sequence, one over NULL, or the same sequence with other values
        "WHEN MATCHED AND (s.`updated_at` > t.`updated_at` OR (t.`updated_at` IS NULL AND s.`updated_at` IS NOT NULL) "
        f"OR (s.`updated_at` <=> t.`updated_at` AND NOT ({same}))) THEN UPDATE SET t.`id` = s.`id`, t.`cpf` = s.`cpf`, "
        "t.`nome` = s.`nome`, t.`uf` = s.`uf`, t.`updated_at` = s.`updated_at`",
        "WHEN NOT MATCHED THEN INSERT (`id`, `cpf`, `nome`, `uf`, `updated_at`) "
        "VALUES (s.`id`, s.`cpf`, s.`nome`, s.`uf`, s.`updated_at`)",
    ]


def test_scd2_merge_sql_closes_current_and_appends_versions():
    p = payload()
    p["spec"]["silver"]["scd"] = 2
    p["spec"]["silver"]["keys"] = ["id", "uf"]
    sql = contract.merge_sql(contract.parse_payload(p), ["id", "uf", "updated_at"], "src")
    assert sql.splitlines() == [
        "MERGE INTO `lakehouse360`.`silver`.`clientes` AS t",
        "USING src AS s",
        "ON s.`_change` = 'close' AND t.`is_current` = true AND t.`id` = s.`id` AND t.`uf` = s.`uf` "
        "AND t.`valid_from` <=> s.`valid_from`",
        "WHEN MATCHED AND s.`_tie` THEN UPDATE SET t.`updated_at` = s.`updated_at`, t.`valid_to` = s.`valid_to`, "
        "t.`is_current` = s.`is_current`",
        "WHEN MATCHED THEN UPDATE SET t.`valid_to` = s.`valid_to`, t.`is_current` = s.`is_current`",
        "WHEN NOT MATCHED AND s.`_change` = 'insert' THEN INSERT (`id`, `uf`, `updated_at`, `valid_from`, `valid_to`, "
        "`is_current`) VALUES (s.`id`, s.`uf`, s.`updated_at`, s.`valid_from`, s.`valid_to`, s.`is_current`)",
    ]


def test_scd1_merge_sql_compares_map_columns_by_their_json():
    sql = contract.scd1_merge_sql("t", "s", ["id", "attrs", "ts"], ["id"], "ts", ["attrs"])
    assert "to_json(s.`attrs`) <=> to_json(t.`attrs`)" in sql and "s.`id` <=> t.`id`" in sql


def test_gold_and_ddl_sql():
    p = contract.parse_payload(payload("aggregate"))
    assert contract.gold_sql(p, "clientes_por_uf") == (
        "CREATE OR REPLACE TABLE `lakehouse360`.`gold`.`clientes_por_uf` USING DELTA "
        "LOCATION 's3://lake/gold/clientes_por_uf' AS\n"
        "SELECT uf, count(*) AS clientes FROM `lakehouse360`.`silver`.`clientes` GROUP BY uf"
    )
    assert contract.create_external_table_sql("`c`.`bronze`.`t`", "s3://l/b/t") == (
        "CREATE TABLE IF NOT EXISTS `c`.`bronze`.`t` USING DELTA LOCATION 's3://l/b/t'"
    )
    assert contract.create_external_table_sql("t", "s3://it's", [("id", "bigint"), ("uf", "string")], ["uf"]) == (
        "CREATE TABLE IF NOT EXISTS t (`id` bigint, `uf` string) USING DELTA PARTITIONED BY (`uf`) LOCATION 's3://it\\'s'"
    )
    assert contract.add_columns_sql("t", [("email", "string")]) == "ALTER TABLE t ADD COLUMNS (`email` string)"


def test_plan_describes_each_step_without_spark():
    ingest = contract.plan(contract.parse_payload(payload("ingest")))
    assert ingest["reader_options"]["cloudFiles.schemaEvolutionMode"] == "addNewColumns"
    assert ingest["trigger"] == "availableNow" and ingest["max_schema_restarts"] == 3
    assert ingest["register_sql"].startswith(
        "CREATE TABLE IF NOT EXISTS `lakehouse360`.`bronze`.`clientes` USING DELTA"
    )
    refine = contract.plan(contract.parse_payload(payload()))
    assert refine["merge_sql"].startswith("MERGE INTO") and refine["scd"] == 1
    assert "merge_txn" not in refine  # no session conf: serverless refuses them
    agg = contract.plan(contract.parse_payload(payload("aggregate")))
    assert agg["gold"][0]["name"] == "clientes_por_uf"


# --------------------------------------------------------------------------- CLI and summary


def run_script(script_dir: Path, *args, name="job.py", cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script_dir / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or script_dir,
        env=env,
    )


def test_job_help_works_as_a_script():
    out = run_script(JOB_DIR, "--help")
    assert out.returncode == 0, out.stderr
    assert "--step {ingest,refine,aggregate,replay}" in out.stdout and "--payload-file" in out.stdout


def test_job_runs_alone_without_lh360(tmp_path):
    """Uploaded to the workspace (under any name), job.py sits next to the modules it imports only (the
    files `lh360 deploy` uploads): no lh360 package around, and the working directory is not the script's."""
    from lh360.engines.databricks.code import code_bundle

    code = tmp_path / "code"
    code.mkdir()
    for name, data in code_bundle().files.items():
        (code / name).write_bytes(data)
    (tmp_path / "p.json").write_text(json.dumps(payload()))
    args = ("--step", "refine", "--payload-file", str(tmp_path / "p.json"), "--explain")
    out = run_script(code, *args, name="lh360_job.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["merge_sql"].startswith("MERGE INTO `lakehouse360`.`silver`.`clientes`")


def test_bad_payload_exits_2_with_a_summary_line(tmp_path):
    out = run_script(JOB_DIR, "--step", "refine", "--payload", json.dumps({**payload(), "table": None}))
    assert out.returncode == 2
    summary = contract.parse_summary(out.stdout)
    assert summary["status"] == "failed" and summary["error_kind"] == "bad_payload" and summary["exit_code"] == 2
    assert "payload.table: required" in summary["error"] and "payload.table: required" in out.stderr
    out = run_script(JOB_DIR, "--step", "refine", "--payload-file", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "cannot read" in contract.parse_summary(out.stdout)["error"]


def test_main_prints_a_one_line_summary_on_success_and_on_error(monkeypatch, capsys):
    monkeypatch.setitem(runtime.RUNNERS, "aggregate", lambda spark, p: {"rows_out": 5, "tables": {"g": {"rows": 5}}})
    assert job.main(["--step", "aggregate", "--payload", json.dumps(payload("aggregate"))], spark=object()) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert summary["lh360_job"] == 1 and summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert (summary["step"], summary["table"], summary["rows_out"]) == ("aggregate", "clientes", 5)

    def boom(spark, p):
        raise RuntimeError("[DELTA_CONCURRENT_APPEND] conflict")

    monkeypatch.setitem(runtime.RUNNERS, "aggregate", boom)
    assert job.main(["--step", "aggregate", "--payload", json.dumps(payload("aggregate"))], spark=object()) == 3
    captured = capsys.readouterr()
    summary = contract.parse_summary(captured.out)
    assert summary["error_kind"] == "error" and summary["error"] == "RuntimeError: [DELTA_CONCURRENT_APPEND] conflict"
    assert "lh360 aggregate failed" in captured.err


def test_parse_summary_finds_the_last_summary_line():
    logs = (
        'Spark noise\n{"not": "ours"}\n{"lh360_job": 1, "status": "x"}\nmore noise\n{"lh360_job": 1, "status": "ok"}\n'
    )
    assert contract.parse_summary(logs) == {"lh360_job": 1, "status": "ok"}
    assert contract.parse_summary("") is None and contract.parse_summary(None) is None
    assert contract.parse_summary('{"lh360_job": 1, broken') is None


def test_sum_counters():
    batches = [
        {"batch_id": 0, "rows_in": 3, "quarantined": 1, "warned": {"a": 1}, "rows_out": None, "note": "x"},
        {"batch_id": 1, "rows_in": 2, "quarantined": 0, "warned": {"a": 2, "b": 1}, "rows_out": 2},
    ]
    assert contract.sum_counters(batches) == {"rows_in": 5, "quarantined": 1, "warned": {"a": 3, "b": 1}, "rows_out": 2}


class FakeQuery:
    def __init__(self, error=None):
        self.error = error

    def awaitTermination(self):
        if self.error:
            raise self.error

    def exception(self):
        return None


def test_stream_restarts_on_new_columns_at_most_three_times(capsys):
    new_cols = RuntimeError("[UNKNOWN_FIELD_EXCEPTION.NEW_FIELDS_IN_RECORD_WITH_FILE_PATH] Encountered unknown fields")
    queries = iter([FakeQuery(new_cols), FakeQuery(new_cols), FakeQuery()])
    assert runtime._run_stream(lambda: next(queries), "ingest", True) == 2
    assert "restarting the stream (2/3)" in capsys.readouterr().err

    always = iter([FakeQuery(new_cols)] * 5)
    with pytest.raises(RuntimeError, match="UNKNOWN_FIELD_EXCEPTION"):
        runtime._run_stream(lambda: next(always), "ingest", True)
    # failOnNewColumns / rescue / none: never restart
    with pytest.raises(RuntimeError):
        runtime._run_stream(lambda: FakeQuery(new_cols), "ingest", False)
    # another error: no restart
    other = iter([FakeQuery(ValueError("boom")), FakeQuery()])
    with pytest.raises(ValueError, match="boom"):
        runtime._run_stream(lambda: next(other), "ingest", True)


# --------------------------------------------------------------------------- with Spark


def bronze_df(spark, rows, batch=0, file="f0.json"):
    return spark.createDataFrame(
        [(str(i), cpf, nome, "sp", ts, file, batch) for i, cpf, nome, ts in rows],
        "id string, cpf string, nome string, uf string, updated_at string, _source_file string, _batch_id bigint",
    )


def test_refine_batch_quarantines_merges_and_replays_idempotently(spark, memory_target_cls):
    p = contract.parse_payload(payload())
    target = memory_target_cls(spark, p)
    b0 = bronze_df(
        spark,
        [
            (1, "111.111.111-11", "ana", "2025-01-01 10:00:00"),
            (2, "22", "bia", "2025-01-01"),
            (3, "33333333333", None, "2025-01-01"),
        ],
    )
    c0 = runtime.refine_batch(b0, 0, p, target)
    assert (c0["rows_in"], c0["kept"], c0["quarantined"], c0["rows_out"]) == (3, 2, 1, 2)
    assert c0["warned"] == {"nome_presente": 1} and (c0["inserted"], c0["updated"]) == (2, 0)
    assert [r["id"] for r in target.quarantine.collect()] == [2]
    assert target.calls[0] == (
        "ensure_silver",
        [("id", "bigint"), ("cpf", "string"), ("nome", "string"), ("uf", "string"), ("updated_at", "timestamp")],
    )

    # batch 1: an update, a stale version, a new key; then the same batch id replayed
    b1 = bronze_df(
        spark,
        [
            (1, "11111111111", "ana v2", "2025-01-02"),
            (3, "33333333333", "old", "2024-12-31"),
            (4, "44444444444", "d", "2025-01-02"),
        ],
        batch=1,
    )
    c1 = runtime.refine_batch(b1, 1, p, target)
    assert (c1["inserted"], c1["updated"], c1["rows_out"]) == (1, 1, 2)
    silver = {r["id"]: r["nome"] for r in target.silver.collect()}
    assert silver == {1: "Ana V2", 3: None, 4: "D"}
    replay = runtime.refine_batch(b1, 1, p, target)
    assert replay["rows_out"] == 0 and {r["id"]: r["nome"] for r in target.silver.collect()} == silver
    assert [(m[1], m[2]) for m in target.metrics] == [("refine", 0), ("refine", 1)]


def test_refine_batch_fail_expectation_writes_nothing(spark, memory_target_cls):
    p = payload()
    p["spec"]["silver"]["expectations"].append({"name": "id_positivo", "rule": "id > 0", "action": "fail"})
    p = contract.parse_payload(p)
    target = memory_target_cls(spark, p)
    with pytest.raises(T.ExpectationFailed, match="id_positivo"):
        runtime.refine_batch(
            bronze_df(spark, [(1, "22", "a", "2025-01-01"), (-1, "1", "b", "2025-01-01")]), 0, p, target
        )
    assert target.calls == [] and target.metrics == [] and target.silver is None


def write_bronze(spark, path, rows, batch):
    bronze_df(spark, rows, batch=batch, file=f"f{batch}.json").coalesce(1).write.mode("append").parquet(str(path))


def test_run_refine_stream_end_to_end_with_checkpoint(spark, memory_target_cls, tmp_path, monkeypatch, capsys):
    """foreachBatch + availableNow + checkpoint: a rerun without new bronze rows does nothing; a
    failing ``fail`` expectation stops the run with exit code 1 and no write."""
    bronze_path = tmp_path / "bronze"
    write_bronze(spark, bronze_path, [(1, "11111111111", "ana", "2025-01-01"), (2, "2", "bia", "2025-01-01")], 0)
    schema = spark.read.parquet(str(bronze_path)).schema
    p = contract.parse_payload(payload(paths={**payload()["paths"], "state": str(tmp_path / "state")}))
    target = memory_target_cls(spark, p, bronze_stream=lambda s: s.readStream.schema(schema).parquet(str(bronze_path)))

    first = runtime.run_refine(spark, p, target_factory=target.factory)
    assert (first["batches"], first["rows_in"], first["quarantined"], first["rows_out"]) == (1, 2, 1, 1)
    assert (tmp_path / "state" / "checkpoint" / "silver" / "offsets").is_dir()

    target.payload = p = {**p, "run_id": "run-2"}
    assert runtime.run_refine(spark, p, target_factory=target.factory)["batches"] == 0  # nothing new

    # a new bronze file with a row that fails a `fail` expectation: the run fails before writing it
    write_bronze(spark, bronze_path, [(1, "11111111111", "ana v2", "2025-01-02"), (-5, "5", "x", "2025-01-02")], 1)
    p["spec"]["silver"]["expectations"].append({"name": "id_positivo", "rule": "id > 0", "action": "fail"})
    target.payload = p = {**p, "run_id": "run-3"}
    monkeypatch.setitem(
        runtime.RUNNERS, "refine", lambda s, pl: runtime.run_refine(s, pl, target_factory=target.factory)
    )
    capsys.readouterr()
    code = job.main(["--step", "refine", "--payload", json.dumps(p)], spark=spark)
    assert code == contract.EXIT_EXPECTATION_FAILED
    summary = contract.parse_summary(capsys.readouterr().out)
    assert (summary["status"], summary["error_kind"], summary["run_id"]) == ("failed", "expectation_failed", "run-3")
    assert summary["error"] == "LH360_EXPECTATION_FAILED: expectation(s) with action 'fail' failed: id_positivo (1 row)"
    assert {r["id"]: r["nome"] for r in target.silver.collect()} == {1: "Ana"}


def test_ingest_stamps_batch_and_lineage_columns(spark, tmp_path):
    """The ingest wiring with a plain JSON file stream standing in for Auto Loader: lineage columns
    from ``_metadata``, ``_batch_id`` from foreachBatch, counters through the metrics records."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.json").write_text('{"id": 1, "nome": "ana"}\n{"id": 2, "nome": "bia"}\n')
    (landing / "b.json").write_text('{"id": 3, "nome": "caio"}\n')
    written, metrics = [], []

    class JsonLanding(runtime.DeltaTarget):
        landing_format = "json"

        def append_bronze(self, df, batch_id, files=None):
            written.append(df.collect())

        def register_bronze(self):
            pass

        def record_metrics(self, step, batch_id, counters):
            metrics.append(counters)

        def read_metrics(self, step):
            return list(metrics)

    p = contract.parse_payload(
        payload("ingest", paths={"landing": str(landing), "bronze": "x", "state": str(tmp_path / "st")})
    )
    spark.conf.set("spark.sql.streaming.schemaInference", "true")
    try:
        out = runtime.run_ingest(spark, p, target_factory=JsonLanding)
    finally:
        spark.conf.unset("spark.sql.streaming.schemaInference")
    assert (out["rows_in"], out["files"], out["batches"], out["schema_restarts"]) == (3, 2, 1, 0)
    assert out["bytes"] == (landing / "a.json").stat().st_size + (landing / "b.json").stat().st_size
    rows = written[0]
    assert contract.FILE_SIZE_COLUMN not in rows[0].asDict()  # counted, never written
    assert sorted(r["nome"] for r in rows) == ["ana", "bia", "caio"]
    assert {r["_batch_id"] for r in rows} == {0}
    assert {Path(r["_source_file"].removeprefix("file:")).name for r in rows} == {"a.json", "b.json"}
    assert all(r["_source_modified_at"] is not None and r["_ingested_at"] is not None for r in rows)


def test_ingest_batch_counts_rescued_rows_and_bytes_per_file(spark):
    """Auto Loader fills `_rescued_data` (local Spark's JSON reader does not): the counters come from it,
    and each file's size is counted once however many rows it holds."""
    rows = [
        ("s3://l/a.json", 100, 1, None),
        ("s3://l/a.json", 100, 2, '{"x": "1"}'),
        ("s3://l/b.json", 40, 3, '{"_corrupt_record": "oops"}'),
    ]
    df = spark.createDataFrame(rows, ["_source_file", contract.FILE_SIZE_COLUMN, "id", "_rescued_data"])
    written, metrics, named = [], [], []

    class Target:
        def append_bronze(self, out, batch_id, files=None):
            written.append(out.columns)
            named.append(sorted(files))

        def record_metrics(self, step, batch_id, counters):
            metrics.append(counters)

    counters = runtime.ingest_batch(df, 4, {}, Target())
    assert (counters["rows_in"], counters["files"], counters["rescued"], counters["bytes"]) == (3, 2, 2, 140)
    assert metrics == [counters] and contract.FILE_SIZE_COLUMN not in written[0] and "_batch_id" in written[0]
    # the commit names the batch's files, for the ops box's landing check (engines/databricks/landing_state.py)
    assert named == [["s3://l/a.json", "s3://l/b.json"]]
    meta = json.loads(contract.bronze_writer_options({"table": "t"}, 4, named[0])["userMetadata"])
    assert meta == {"lh360.step": "ingest", "lh360.batch_id": 4, "lh360.files": ["s3://l/a.json", "s3://l/b.json"]}
