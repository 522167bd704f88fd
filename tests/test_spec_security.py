"""Spec authors cannot reach outside the lake: spec SQL is guarded, DuckDB is locked to the lake, and
`${VAR}` is expanded only in the lh360.yaml fields meant for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lh360.errors import ConfigError

SECRET = "wJalrSECRETvalue"

# what a hostile spec author writes, where (silver column, expectation rule, check rule, reconcile side, gold)
READERS = [
    "(SELECT string_agg(content, '') FROM read_text('/etc/passwd'))",
    "(SELECT count(*) FROM read_csv('/etc/passwd'))",
    "(SELECT count(*) FROM read_parquet('/tmp/x.parquet'))",
    "(SELECT count(*) FROM read_json('/etc/x.json'))",
    "(SELECT count(*) FROM glob('/etc/*'))",
    "(SELECT count(*) FROM query('SELECT 1'))",
    "(SELECT count(*) FROM csv.`/etc/passwd`)",
    "(SELECT count(*) FROM `/etc/hosts.csv`)",
    "(SELECT count(*) FROM silver.t JOIN read_text('/etc/passwd') ON true)",
    "(SELECT count(*) FROM silver.t, LATERAL read_text('/etc/passwd'))",
    "(SELECT count(*) FROM TABLE(read_text('/etc/passwd')))",
    "(SELECT count(*) FROM spark_catalog.silver.t)",
    "(SELECT count(*) FROM clientes)",
    "reflect('java.lang.System', 'getenv', 'HOME')",
    "java_method('java.lang.System', 'getenv', 'HOME')",
    "secret('scope', 'key')",
    "current_setting('home_directory')",
    "getenv('HOME')",
    "(SELECT TRANSFORM(id) USING 'cat /etc/passwd')",
    "ai_query('endpoint', id)",
]


def _base(table: str = "ev") -> dict:
    return {
        "table": table,
        "source": {"path": f"{table}/"},
        "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "cast(id as bigint)"}},
    }


@pytest.mark.parametrize("text", READERS)
def test_guard_refuses_what_reads_outside_the_lake_in_expressions(text):
    from lh360.sql import SQLError, parse_expression

    with pytest.raises(SQLError):
        parse_expression(f"concat('', {text})")


@pytest.mark.parametrize("text", READERS)
def test_guard_refuses_what_reads_outside_the_lake_in_queries(text):
    from lh360.sql import SQLError, parse_query

    with pytest.raises(SQLError):
        parse_query(f"SELECT {text} AS x")
    if text.startswith("(SELECT"):
        with pytest.raises(SQLError):
            parse_query(text[1:-1])


@pytest.mark.parametrize("text", READERS)
def test_a_spec_is_refused_at_load_for_any_reader_in_a_silver_column_or_expectation(text):
    """The Databricks job receives these as text: the load-time check (with its no-sqlglot shortcut for
    plain expressions) must catch every reader the parser-level guard does."""
    from pydantic import ValidationError

    from lh360.spec import TableSpec

    column = _base()
    column["silver"]["columns"]["note"] = f"concat('', {text})"
    rule = _base()
    rule["silver"]["expectations"] = [{"name": "probe", "rule": f"{text} IS NOT NULL"}]
    for spec in (column, rule):
        with pytest.raises(ValidationError):
            TableSpec.model_validate(spec)


def test_plain_columns_load_without_importing_sqlglot():
    import subprocess
    import sys

    code = (
        "import sys; from lh360.spec import TableSpec; "
        "TableSpec.model_validate({'table': 't', 'source': {'path': 't/'}, 'silver': {'keys': ['id'], "
        "'sequence_by': 'ts', 'columns': {'id': 'cast(id as bigint)', 'uf': 'upper(endereco.uf)', "
        "'ts': 'to_timestamp(updated_at)'}, 'expectations': [{'name': 'ok', 'rule': 'id is not null'}]}}); "
        "print('sqlglot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "text",
    [
        "SET enable_external_access = true",
        "COPY silver.t TO '/tmp/x.csv'",
        "PRAGMA version",
        "USE other",
        "DESCRIBE silver.t",
        "LOAD httpfs",
        "1 = 1; ATTACH '/tmp/x.db' AS y",
    ],
)
def test_statements_are_not_expressions(text):
    from lh360.sql import SQLError, parse_expression

    with pytest.raises(SQLError):
        parse_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        "cast(id as bigint)",
        "extract(year from updated_at)",
        "trim(both ' ' from nome)",
        "id IN (SELECT id FROM silver.outra)",
        "EXISTS (SELECT 1 FROM silver.outra AS o WHERE o.id = id)",
        "size(filter(tags, t -> t = 'x')) > 0",
        "1 + (SELECT max(x) FROM (SELECT explode(array(1, 2)) AS x))",
    ],
)
def test_guard_keeps_what_stays_in_the_lake(text):
    from lh360.sql import parse_expression

    parse_expression(text)


def test_queries_over_ctes_and_lake_tables_pass():
    from lh360.sql import parse_query

    parse_query("WITH a AS (SELECT * FROM silver.t), b AS (SELECT * FROM a) SELECT * FROM b JOIN gold.g USING (id)")


def _lint(project_root: Path, run_cli) -> tuple[int, str, str]:
    return run_cli("lint", cwd=project_root)


@pytest.mark.slow
@pytest.mark.parametrize(
    "place",
    ["column", "expectation", "check_rule", "reconcile", "gold"],
)
def test_lint_reports_file_reads_in_every_place_with_file_line_field(project, run_cli, place):
    reader = "(SELECT count(*) FROM read_text('/etc/passwd'))"
    spec = _base()
    field = {
        "column": "silver.columns.note",
        "expectation": "silver.expectations[0].rule",
        "check_rule": "checks.silver.ev[0].rule",
        "reconcile": "checks.silver.ev[0].left",
        "gold": "gold.g.sql",
    }[place]
    if place == "column":
        spec["silver"]["columns"]["note"] = f"concat('', {reader})"
    elif place == "expectation":
        spec["silver"]["expectations"] = [{"name": "probe", "rule": f"{reader} = 0"}]
    elif place == "check_rule":
        spec["checks"] = {"silver.ev": [{"expression": {"name": "probe", "rule": f"{reader} = 0"}}]}
    elif place == "reconcile":
        spec["checks"] = {
            "silver.ev": [{"reconcile": {"name": "r", "left": reader[1:-1], "right": "SELECT count(*) FROM silver.ev"}}]
        }
    else:
        spec["gold"] = {"g": {"sql": f"SELECT {reader} AS n FROM silver.ev"}}
    p = project(spec)
    code, out, err = _lint(p.root, run_cli)
    assert code == 2, (out, err)
    spec_file = p.root / "configs" / "tables" / "ev.yaml"
    assert f"{spec_file}:" in err and f": {field}: " in err and "read_text" in err, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_every_command_refuses_a_silver_column_that_reads_files(project, run_cli):
    """The Databricks job gets silver.columns as text: the spec must be refused when it loads."""
    spec = _base()
    spec["silver"]["columns"]["note"] = "concat('', (SELECT string_agg(content, '') FROM read_text('/etc/passwd')))"
    p = project(spec)
    p.write_landing("ev", "1.json", [{"id": 1}])
    for args in (("ingest", "ev"), ("landing",), ("plan", "ev", "--to", "silver")):
        code, out, err = run_cli(*args, cwd=p.root)
        assert code == 2, (args, out, err)
        assert "silver.columns.note" in err and "read_text" in err, err
    assert not (p.lake / "bronze" / "ev").exists()


@pytest.mark.slow
def test_validate_refuses_a_reconcile_side_over_a_table_function_with_exit_2(project, run_cli):
    """It used to crash with `unknown layer ''` (exit 3) after lint passed."""
    spec = _base()
    spec["checks"] = {
        "silver.ev": [
            {
                "reconcile": {
                    "name": "r",
                    "left": "SELECT count(*) FROM read_text('/etc/passwd')",
                    "right": "SELECT count(*) FROM silver.ev",
                }
            }
        ]
    }
    p = project(spec)
    p.write_landing("ev", "1.json", [{"id": 1}])
    code, out, err = run_cli("validate", "ev", cwd=p.root)
    assert code == 2, (out, err)
    assert "read_text" in err and "unknown layer" not in err


# ---- defence in depth: DuckDB itself cannot read outside the lake ---------------------------------


def test_the_locked_connection_reads_the_lake_and_nothing_else(tmp_path):
    from lh360.engines.local.duck import connect

    lake = tmp_path / "lake"
    (lake / "t").mkdir(parents=True)
    other = tmp_path / "lake2"  # a sibling whose name starts like the lake's
    other.mkdir()
    open_con = connect()
    open_con.execute(f"COPY (SELECT 1 AS a) TO '{lake / 't' / 'f.parquet'}'")
    open_con.execute(f"COPY (SELECT 2 AS a) TO '{other / 'f.parquet'}'")
    open_con.close()
    con = connect(lake=str(lake))
    assert con.execute(f"SELECT a FROM read_parquet('{lake / 't' / 'f.parquet'}')").fetchall() == [(1,)]
    for sql in (
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_parquet('{other / 'f.parquet'}')",
        f"SELECT * FROM read_parquet('{lake / '..' / 'lake2' / 'f.parquet'}')",
        "SELECT * FROM glob('/etc/*')",
        f"ATTACH '{tmp_path / 'x.db'}' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
    ):
        with pytest.raises(Exception) as info:
            con.execute(sql).fetchall()
        assert "Permission" in type(info.value).__name__ or "Cannot" in str(info.value), (sql, info.value)
    con.close()


def test_a_bypassed_guard_still_cannot_read_files_on_promote(project, monkeypatch):
    """With the SQL guard switched off, the silver column reaches DuckDB and DuckDB refuses the file."""
    import lh360.sql
    from lh360.engines.local import transpile
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.refine import refine
    from lh360.errors import EngineError

    p = project(_base())
    p.write_landing("ev", "1.json", [{"id": 1}])
    loaded = p.load()
    ingest(loaded.target(), loaded.specs["ev"])
    reader = "concat('', (SELECT string_agg(content, '') FROM read_text('/etc/passwd')))"
    monkeypatch.setattr(lh360.sql, "guard", lambda tree: tree)
    transpile.expression.cache_clear()
    good = loaded.specs["ev"]
    silver = good.silver.model_copy(update={"columns": {"id": "cast(id as bigint)", "note": reader}})
    hostile = good.model_copy(update={"silver": silver})  # no validation: as if the load-time guard were gone
    with pytest.raises(EngineError) as info:
        refine(loaded.target(), hostile)
    assert "Permission" in str(info.value) or "disabled" in str(info.value), info.value
    transpile.expression.cache_clear()


def test_a_bypassed_guard_still_cannot_read_files_on_validate(project, monkeypatch):
    import lh360.sql
    from lh360.checks import run_validation
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.query import DuckDBRunner
    from lh360.engines.local.refine import refine

    spec = _base()
    spec["checks"] = {
        "silver.ev": [{"expression": {"name": "probe", "rule": "(SELECT count(*) FROM read_text('/etc/passwd')) = 0"}}]
    }
    monkeypatch.setattr(lh360.sql, "guard", lambda tree: tree)
    p = project(spec)
    p.write_landing("ev", "1.json", [{"id": 1}])
    loaded = p.load()
    ingest(loaded.target(), loaded.specs["ev"])
    refine(loaded.target(), loaded.specs["ev"])
    runner = DuckDBRunner(loaded.target())
    try:
        report = run_validation(loaded, loaded.target(), runner)
    finally:
        runner.close()
    (probe,) = [r for r in report.results if r.check == "probe"]
    assert probe.status == "error" and "Permission" in probe.message, probe


# ---- ${VAR}: only where lh360.yaml means it --------------------------------------------------------


@pytest.mark.slow
def test_spec_sql_with_a_variable_is_a_spec_error_and_plan_prints_no_secret(project, run_cli):
    spec = _base()
    spec["gold"] = {
        "innocent": {"sql": "SELECT id, '${AWS_SECRET_ACCESS_KEY:-}' AS a, '${env:HOME}' AS b FROM silver.ev"}
    }
    p = project(spec)
    p.write_landing("ev", "1.json", [{"id": 1}])
    env = {"AWS_SECRET_ACCESS_KEY": SECRET}
    for args in (("lint",), ("plan", "ev", "--to", "gold"), ("plan", "ev", "--to", "gold", "--json")):
        code, out, err = run_cli(*args, cwd=p.root, env=env)
        assert code == 2, (args, out, err)
        assert SECRET not in out + err
        assert "gold.innocent.sql" in err or "gold.innocent.sql" in out
    assert not (p.lake / "gold").exists()


@pytest.mark.parametrize("field", ["description", "owner"])
def test_spec_free_text_keeps_a_variable_literally(project, monkeypatch, field):
    monkeypatch.setenv("LH360_TEST_VAR", SECRET)
    spec = {**_base(), field: "costs ${LH360_TEST_VAR} per ${month}"}
    p = project(spec)
    assert getattr(p.load().specs["ev"], field) == "costs ${LH360_TEST_VAR} per ${month}"


def test_config_expands_only_its_listed_fields(project, monkeypatch, tmp_path):
    monkeypatch.setenv("LH360_TEST_LAKE", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("LH360_TEST_PROFILE", "ops")
    config = {
        "targets": {
            "local": {
                "engine": "local",
                "landing": "../landing",
                "lake": "${LH360_TEST_LAKE}",
                "aws": {"profile": "${LH360_TEST_PROFILE}"},
            }
        }
    }
    p = project(_base(), config=config)
    target = p.load().target()
    assert target.lake == str(tmp_path / "elsewhere")
    assert target.settings.aws.profile == "ops"


def test_a_variable_outside_the_listed_fields_is_a_config_error(project, monkeypatch):
    monkeypatch.setenv("LH360_TEST_NAME", "x")
    p = project(_base(), config={"project": "${LH360_TEST_NAME}"})
    with pytest.raises(ConfigError) as info:
        p.load()
    assert info.value.field == "project" and info.value.line == 1
    assert "lake" in info.value.reason  # says where ${VAR} does work


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DATABRICKS_TOKEN", "DB_PASSWORD", "AWS_ACCESS_KEY_ID"]
)
def test_config_refuses_secret_looking_variables(project, monkeypatch, name, run_cli):
    monkeypatch.setenv(name, SECRET)
    config = {"targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake/${" + name + "}"}}}
    p = project(_base(), config=config)
    with pytest.raises(ConfigError) as info:
        p.load()
    assert name in info.value.reason and SECRET not in str(info.value)
    code, out, err = run_cli("plan", "--json", cwd=p.root, env={name: SECRET})
    assert code == 2 and SECRET not in out + err
    assert json.loads(out)["exit_code"] == 2
