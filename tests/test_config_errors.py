"""Broken specs and configs: each exits 2 with ONE line naming the file, the line and the field."""

from __future__ import annotations

import pytest

from tests.ingest_support import cli

CONFIG = """\
project: t
default_target: local
targets:
  local:
    engine: local
    landing: ../landing
    lake: ../lake
"""

SPEC = """\
table: clientes
source: {system: RT2, object: tbfc6_clientes, format: json, path: clientes/}
landing: {max_age: 26h, min_files: 1}
bronze:
  schema_evolution: addNewColumns
  schema_hints: {id: bigint}
  max_files_per_batch: 1000
silver:
  keys: [id]
  sequence_by: updated_at
  columns:
    id: cast(id as bigint)
    uf: upper(endereco.uf)
    updated_at: to_timestamp(updated_at)
  expectations:
    - {name: id_ok, rule: "id is not null", action: drop}
gold:
  por_uf:
    sql: SELECT uf, count(*) AS n FROM silver.clientes GROUP BY uf
checks:
  silver.clientes:
    - row_count: {min: 1}
    - not_null: [id]
"""

# (id, file to break, old text, new text, expected line, expected field (None: YAML syntax), message part)
CASES = [
    # YAML reports a syntax error where it noticed it: here, on the line after the open bracket
    ("yaml_syntax", "spec", "  keys: [id]", "  keys: [id", 10, None, "invalid YAML"),
    ("duplicate_key", "spec", "  keys: [id]", "  keys: [id]\n  keys: [id]", 10, None, "duplicate key"),
    ("unknown_top_key", "spec", "table: clientes", "table: clientes\ntabel: x", 2, "tabel", "unknown key"),
    ("unknown_nested_key", "spec", "  keys: [id]", "  keys: [id]\n  colour: red", 10, "silver.colour", "unknown key"),
    (
        "wrong_type",
        "spec",
        "max_files_per_batch: 1000",
        "max_files_per_batch: lots",
        7,
        "bronze.max_files_per_batch",
        "integer",
    ),
    (
        "zero_batch",
        "spec",
        "max_files_per_batch: 1000",
        "max_files_per_batch: 0",
        7,
        "bronze.max_files_per_batch",
        "greater than or equal",
    ),
    ("missing_table", "spec", "table: clientes\n", "", 1, "table", "required field is missing"),
    (
        "absolute_source_path",
        "spec",
        "path: clientes/",
        "path: /etc/clientes",
        2,
        "source.path",
        "under the target's landing",
    ),
    (
        "unknown_evolution_mode",
        "spec",
        "schema_evolution: addNewColumns",
        "schema_evolution: addColumns",
        5,
        "bronze.schema_evolution",
        "addNewColumns",
    ),
    ("bad_hint_type", "spec", "{id: bigint}", "{id: bigin t}", 6, "bronze.schema_hints", "not a Spark SQL type"),
    ("bad_duration", "spec", "max_age: 26h", "max_age: 26 hours", 3, "landing.max_age", "not a duration"),
    ("key_not_in_columns", "spec", "  keys: [id]", "  keys: [cpf]", 9, "silver.keys", "names cpf"),
    ("bad_column_sql", "spec", "id: cast(id as bigint)", "id: cast(id as)", 12, "silver.columns.id", "parse"),
    (
        "two_statements_rule",
        "spec",
        'rule: "id is not null"',
        'rule: "1=1; DROP TABLE x"',
        16,
        "silver.expectations[0].rule",
        "one expression",
    ),
    ("unknown_action", "spec", "action: drop}", "action: yell}", 16, "silver.expectations[0].action", "warn"),
    ("bad_gold_sql", "spec", "sql: SELECT uf", "sql: SELEC uf", 19, "gold.por_uf.sql", "parse"),
    ("gold_unknown_table", "spec", "FROM silver.clientes", "FROM silver.nope", 19, "gold.por_uf.sql", "silver.nope"),
    ("unknown_check", "spec", "- not_null: [id]", "- not_nul: [id]", 23, "checks.silver.clientes[1]", "unknown check"),
    (
        "bad_check_param",
        "spec",
        "row_count: {min: 1}",
        "row_count: {min: -1}",
        22,
        "checks.silver.clientes[0].min",
        "greater than or equal",
    ),
    (
        "check_on_unknown_table",
        "spec",
        "  silver.clientes:",
        "  silver.outra:",
        21,
        "checks.silver.outra",
        "not a table this spec defines",
    ),
    ("file_name_mismatch", "spec", "table: clientes", "table: contas", 1, "table", "does not match the file name"),
    (
        "config_unknown_key",
        "config",
        "    engine: local",
        "    enigne: local",
        5,
        "targets.local.enigne",
        "unknown key",
    ),
    ("config_bad_default", "config", "default_target: local", "default_target: prod", 1, None, "default_target 'prod'"),
    (
        "config_unset_env",
        "config",
        "lake: ../lake",
        "lake: ${LH360_TEST_UNSET_VAR}",
        7,
        "targets.local.lake",
        "LH360_TEST_UNSET_VAR",
    ),
    (
        "config_engine_section",
        "config",
        "engine: local",
        "engine: databricks",
        4,
        "targets.local",
        "databricks section",
    ),
    ("config_bad_engine", "config", "engine: local", "engine: spark", 5, "targets.local.engine", "'local'"),
]


def setup(tmp_path, target: str, old: str, new: str):
    (tmp_path / "configs" / "tables").mkdir(parents=True)
    config, spec = CONFIG, SPEC
    if target == "spec":
        assert old in spec
        spec = spec.replace(old, new, 1)
    else:
        assert old in config
        config = config.replace(old, new, 1)
    (tmp_path / "configs" / "lh360.yaml").write_text(config)
    (tmp_path / "configs" / "tables" / "clientes.yaml").write_text(spec)
    return tmp_path / "configs" / ("tables/clientes.yaml" if target == "spec" else "lh360.yaml")


def test_the_base_files_are_valid(tmp_path):
    setup(tmp_path, "spec", "table: clientes", "table: clientes")
    proc = cli(tmp_path, "lint")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_file_exits_2_with_one_precise_line(tmp_path, case):
    name, target, old, new, line, field, message = case
    path = setup(tmp_path, target, old, new)
    proc = cli(tmp_path, "lint", env={"LH360_TEST_UNSET_VAR": ""})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    text = lines[0]
    assert "Traceback" not in proc.stderr
    assert f"{path}:{line}" in text, text
    if field:
        assert f": {field}: " in text, text
    assert message in text, text


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[0] in ("unknown_nested_key", "config_unknown_key", "bad_duration")],
    ids=lambda c: c[0],
)
def test_every_command_reports_the_same_way_and_verbose_shows_the_traceback(tmp_path, case):
    name, target, old, new, line, field, message = case
    path = setup(tmp_path, target, old, new)
    proc = cli(tmp_path, "ingest", "--all")
    assert proc.returncode == 2
    assert f"{path}:{line}" in proc.stderr and proc.stderr.count("\n") == 1
    proc = cli(tmp_path, "ingest", "--all", "--json")
    assert proc.returncode == 2
    import json

    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["line"] == line and doc["file"] == str(path)
    verbose = cli(tmp_path, "--verbose", "ingest", "--all")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
