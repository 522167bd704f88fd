"""Checks: golden SQL per dialect, every check type passing and failing on DuckDB, one fused query per table,
hostile names and values, the quality ledger's row_count baseline."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lh360.checks import compile_relation, run_validation
from lh360.config import load_project
from lh360.engines.local.query import DuckDBRunner
from lh360.spec import TableSpec

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def table_spec(checks: dict) -> TableSpec:
    return TableSpec.model_validate(
        {"table": "t", "source": {"path": "t/"}, "silver": {"keys": ["id"], "sequence_by": "ts"}, "checks": checks}
    )


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["duckdb", "athena", "databricks"])
def test_golden_sql_for_the_clientes_spec(dialect):
    """Athena/Trino and Databricks SQL compile today from the same AST; LH360_REGOLDEN=1 rewrites the files."""
    project = load_project(Path(__file__).resolve().parents[1] / "configs" / "lh360.yaml")
    spec = project.specs["clientes"]
    parts = []
    for relation in spec.checks:
        c = compile_relation(spec, relation, dialect)
        parts.append(f"-- {relation}\n{c.aggregate_sql};")
        parts += [f"-- {relation} {x.name}\n{x.sql};" for x in c.checks if x.sql]
        parts += [f"-- {relation} {x.name} sample\n{x.sample_sql};" for x in c.checks if x.sample_sql]
    text = "\n".join(parts) + "\n"
    path = GOLDEN / f"checks_clientes_{dialect}.sql"
    if os.environ.get("LH360_REGOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    import sqlglot

    read = {"duckdb": "duckdb", "athena": "trino", "databricks": "databricks"}[dialect]
    for statement in text.split(";\n"):
        if statement.strip():
            sqlglot.parse_one(statement, read=read)  # every statement is valid SQL of its dialect


def test_multi_column_unique_uses_each_dialects_row_value():
    spec = table_spec({"silver.t": [{"unique": ["a", "b"]}]})
    sql = {d: compile_relation(spec, "silver.t", d).aggregate_sql for d in ("duckdb", "athena", "databricks")}
    assert 'COUNT(DISTINCT CASE WHEN NOT "a" IS NULL AND NOT "b" IS NULL THEN ("a", "b") END)' in sql["duckdb"]
    assert 'ROW("a", "b")' in sql["athena"]
    assert "STRUCT(`a`, `b`)" in sql["databricks"]


def test_hostile_names_and_values_cannot_change_the_meaning():
    evil = "x') OR ('1'='1"
    spec = table_spec(
        {"silver.t": [{"accepted_values": {"column": "select", "values": [evil, 'a"b']}}, {"not_null": ["from"]}]}
    )
    for dialect in ("duckdb", "athena", "databricks"):
        sql = compile_relation(spec, "silver.t", dialect).aggregate_sql
        import sqlglot
        from sqlglot import exp

        read = {"duckdb": "duckdb", "athena": "trino", "databricks": "databricks"}[dialect]
        tree = sqlglot.parse_one(sql, read=read)
        values = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]
        assert evil in values and 'a"b' in values  # still one literal each
        assert {c.name for c in tree.find_all(exp.Column)} == {"select", "from"}
    from lh360.sql import SQLError

    bad = table_spec({"silver.t": [{"expression": {"name": "x", "rule": "1=1; DROP TABLE t"}}]})
    with pytest.raises(SQLError):
        compile_relation(bad, "silver.t", "duckdb")


@pytest.fixture
def lake(project):
    """A project whose silver.t / silver.ref tables are written directly (no ingest needed)."""
    from deltalake import write_deltalake

    p = project({"table": "t", "source": {"path": "t/"}, "silver": {"keys": ["id"], "sequence_by": "ts"}})
    ts = [NOW - timedelta(hours=h) for h in (1, 2, 3, 4, 5)]
    write_deltalake(
        str(p.lake / "silver" / "t"),
        pa.table(
            {
                "id": [1, 2, 3, 4, 4],
                "uf": ["SP", "RJ", "XX", None, "SP"],
                "valor": [10.0, -1.0, 5.0, 500.0, 7.0],
                "ref_id": [100, 200, 300, None, 100],
                "select": ["a", "b", "c", "d", "e"],
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    write_deltalake(str(p.lake / "silver" / "ref"), pa.table({"id": [100, 200]}))
    return p


def run(p, checks: dict, previous=None):
    spec = table_spec(checks)
    project = p.load()
    project.specs = {"t": spec}
    runner = DuckDBRunner(project.target())
    try:
        report = run_validation(project, project.target(), runner, previous=previous, now=NOW)
    finally:
        runner.close()
    return report, runner


CASES = [
    ({"row_count": {"min": 5, "max": 5}}, {"row_count": {"min": 6}}),
    ({"not_null": ["id", "select"]}, {"not_null": ["uf"]}),
    ({"unique": ["select"]}, {"unique": ["id"]}),
    ({"unique": ["id", "uf"]}, {"unique": ["ref_id"]}),
    (
        {"accepted_values": {"column": "uf", "values": ["SP", "RJ", "XX"]}},
        {"accepted_values": {"column": "uf", "values": ["SP", "RJ"]}},
    ),
    ({"freshness": {"column": "ts", "max_age": "2h"}}, {"freshness": {"column": "ts", "max_age": "30m"}}),
    ({"expression": {"name": "e", "rule": "valor < 1000"}}, {"expression": {"name": "e", "rule": "valor >= 0"}}),
    (
        {"expression": {"name": "e", "rule": "valor >= 0", "max_failures": 1}},
        {"expression": {"name": "e", "rule": "valor > 6"}},
    ),
    ({"range": {"column": "valor", "min": -1, "max": 500}}, {"range": {"column": "valor", "max": 100}}),
    (
        {"relationships": {"column": "id", "to": "silver.t", "field": "id"}},
        {"relationships": {"column": "ref_id", "to": "silver.ref", "field": "id"}},
    ),
    (
        {"reconcile": {"name": "r", "left": "SELECT count(*) FROM silver.t", "right": "SELECT 5"}},
        {
            "reconcile": {
                "name": "r",
                "left": "SELECT sum(valor) FROM silver.t",
                "right": "SELECT 520",
                "tolerance": 0.5,
            }
        },
    ),
]


@pytest.mark.parametrize("passing,failing", CASES, ids=[next(iter(c[0])) + str(i) for i, c in enumerate(CASES)])
def test_each_check_passes_and_fails(lake, passing, failing):
    report, _ = run(lake, {"silver.t": [passing]})
    assert [r.status for r in report.results] == ["pass"] * len(report.results), [r.message for r in report.results]
    assert report.exit_code == 0
    report, _ = run(lake, {"silver.t": [failing]})
    assert any(r.status == "fail" for r in report.results) and report.exit_code == 1, [
        r.message for r in report.results
    ]
    failed = next(r for r in report.results if r.status == "fail")
    if failed.kind not in ("row_count", "freshness", "reconcile"):
        assert failed.sample, "a failing row check shows sample rows"
    # the same failure with severity warn is shown but exits 0
    kind, params = next(iter(failing.items()))
    params = {"columns": params} if isinstance(params, list) else params
    report, _ = run(lake, {"silver.t": [{kind: {**params, "severity": "warn"}}]})
    assert any(r.status == "warn" for r in report.results) and report.exit_code == 0


def test_ten_aggregate_checks_run_as_one_query(lake):
    checks = [
        {"row_count": {"min": 1}},
        {"not_null": ["id", "select"]},
        {"unique": ["select"]},
        {"accepted_values": {"column": "uf", "values": ["SP", "RJ", "XX"]}},
        {"freshness": {"column": "ts", "max_age": "1d"}},
        {"expression": {"name": "e", "rule": "valor < 1000"}},
        {"range": {"column": "valor", "min": -10}},
        {"unique": ["id", "select"]},
        {"not_null": ["ts"]},
    ]
    report, runner = run(lake, {"silver.t": checks})
    assert len(report.results) == 10 and report.ok
    assert report.queries == 1 and len(runner.queries) == 1


def test_row_count_change_against_the_last_run(lake):
    check = {"silver.t": [{"row_count": {"max_change_pct": 20}}]}
    report, _ = run(lake, check, previous={("silver.t", "row_count"): 5})
    assert report.ok and "change 0.0%" in report.results[0].message
    report, _ = run(lake, check, previous={("silver.t", "row_count"): 10})
    assert report.results[0].status == "fail" and "50.0% change" in report.results[0].message


def test_missing_table_is_an_error_not_a_pass(project):
    p = project({"table": "t", "source": {"path": "t/"}, "silver": {"keys": ["id"], "sequence_by": "ts"}})
    report, _ = run(p, {"silver.t": [{"row_count": {"min": 1}}]})
    assert report.results[0].status == "error" and report.exit_code == 3


def test_ledger_records_checks_and_feeds_the_next_baseline(lake):
    from lh360.checks import validate
    from lh360.ledger import Ledger

    project = lake.load()
    project.specs = {"t": table_spec({"silver.t": [{"row_count": {"max_change_pct": 10}}, {"unique": ["id"]}]})}
    target = project.target()
    report = validate(project, target, ledger=Ledger(target))
    assert [r.status for r in report.results] == ["pass", "fail"]
    ledger = Ledger(target)
    assert ledger.previous_observations() == {("silver.t", "row_count"): 5}
    rows = ledger.check_history([report_run_id(ledger)])
    assert {r["check"] for r in rows} == {"row_count", "unique_id"}
    assert next(r for r in rows if r["check"] == "unique_id")["failing_rows"] == 1


def report_run_id(ledger) -> str:
    rows = ledger._query(ledger.checks_uri, "SELECT run_id FROM ledger LIMIT 1")
    return rows[0]["run_id"]


def test_literals_are_typed_to_the_columns_delta_type(lake):
    """Trino will not compare '1' with a bigint; typed from the Delta log, the check reads the same everywhere."""
    checks = {
        "silver.t": [
            {"accepted_values": {"column": "id", "values": ["1", "2", "3", "4"]}},
            {"expression": {"name": "recent", "rule": "ts >= '2025-06-01 06:00:00'"}},
            {"range": {"column": "ref_id", "min": 100, "max": 300}},
        ]
    }
    report, runner = run(lake, checks)
    assert [r.status for r in report.results] == ["pass", "pass", "pass"], [r.message for r in report.results]
    [sql] = runner.queries
    assert '"id" IN (1, 2, 3, 4)' in sql
    assert "'2025-06-01 06:00:00.000000' AS TIMESTAMPTZ" in sql
    types = {"id": "long", "ts": "timestamp", "ref_id": "long"}
    athena = compile_relation(table_spec(checks), "silver.t", "athena", types=types).aggregate_sql
    assert '"id" IN (1, 2, 3, 4)' in athena and "CAST('2025-06-01 06:00:00.000000' AS TIMESTAMP)" in athena


def test_one_check_that_cannot_run_does_not_turn_the_others_into_errors(lake):
    checks = {
        "silver.t": [
            {"row_count": {"min": 1}},
            {"accepted_values": {"column": "id", "values": ["1", "um"]}},  # 'um' is no bigint: the engine refuses
            {"not_null": ["id"]},
            {"unique": ["select"]},
        ]
    }
    report, runner = run(lake, checks)
    by_name = {r.check: r for r in report.results}
    assert by_name["accepted_values_id"].status == "error"
    assert "um" in by_name["accepted_values_id"].message
    assert [by_name[n].status for n in ("row_count", "not_null_id", "unique_select")] == ["pass"] * 3
    assert by_name["row_count"].observed == 5
    # the fused query, the probe, then each check alone; failed queries are not counted (nor billed by Athena)
    assert len(runner.queries) == 2 + 4 and report.queries == 4
    report, runner = run(lake, {"silver.t": [c for c in checks["silver.t"] if "accepted_values" not in c]})
    assert report.ok and len(runner.queries) == 1  # the happy path stays one query


def test_lint_reads_column_types_from_the_delta_log(project):
    """A gold table's types are known only from its Delta log: lint reads it (the default target's lake is
    local) and rejects a value Athena would refuse."""
    from deltalake import write_deltalake

    from lh360.lint import lint

    athena = {
        "engine": "local",
        "landing": "s3://landing/raw",
        "lake": "s3://lake/lh",
        "validator": "athena",
        "athena": {"databases": {"bronze": "b", "silver": "s", "gold": "g"}},
    }
    spec = {
        "table": "t",
        "source": {"path": "t/"},
        "silver": {"keys": ["id"], "sequence_by": "ts"},
        "gold": {"g": {"sql": "SELECT id, count(*) AS n FROM silver.t GROUP BY id"}},
        "checks": {"gold.g": [{"accepted_values": {"column": "n", "values": ["1", "um"]}}]},
    }
    p = project(
        spec,
        config={"targets": {"local": {"engine": "local", "landing": "../landing", "lake": "../lake"}, "prod": athena}},
    )
    _, errors = lint(str(p.config))
    assert errors == []  # no table yet: nothing known about gold.g's types
    write_deltalake(str(p.lake / "gold" / "g"), pa.table({"id": [1], "n": pa.array([1], pa.int64())}))
    _, errors = lint(str(p.config))
    assert [(e.field, e.line is not None) for e in errors] == [("checks.gold.g[0].values[1]", True)]
    assert "'um' is not an integer" in errors[0].reason
