"""Checks whose meaning would differ between DuckDB and Athena are rejected by `lh360 lint`, with the reason —
and the reasons are real: each rejected construct gives a different answer (or an error) on DuckDB than
Trino semantics give, while the accepted rewrites agree."""

from __future__ import annotations

import duckdb
import pytest
import yaml
from awstest import TEMPLATES, cli, json_out, make_project

from lh360.portability import check_text


@pytest.mark.parametrize(
    "rule, fragment",
    [
        ("7 / 2 > 3", "integer / integer"),
        ("count(*) / 2 > 1", "integer / integer"),
        ("id / 2 = 0", "integer / integer"),
        ("cast(renda as int) / cast(n as bigint) < 1", "integer / integer"),
        ("datediff(current_date(), to_date(updated_at)) <= 1", "date_diff"),
        ("timestampdiff(HOUR, created_at, updated_at) < 26", "date_diff"),
        ("date_add(to_date(updated_at), 1) > current_date()", "date_add"),
        ("dateadd(day, 1, updated_at) > current_timestamp()", "date_add"),
        ("months_between(updated_at, created_at) < 12", "months_between"),
        ("format_datetime(updated_at, 'yyyy') = '2025'", "format_datetime"),
        ("width_bucket(renda_mensal, 0, 10000, 10) < 10", "width_bucket"),
        ("current_timezone() = 'UTC'", "current_timezone"),
        ("`$path` like '%.json'", '"$path"'),
        ("regexp_extract(email, '^(?=.*@).*$', 0) <> ''", "look-around"),
        ("email rlike '^(?!test)'", "look-around"),
    ],
)
def test_rejected_with_the_reason(rule, fragment):
    reasons = check_text(rule, types={"id": "BIGINT"})
    assert len(reasons) == 1 and fragment in reasons[0], reasons


@pytest.mark.parametrize(
    "rule",
    [
        "renda_mensal >= 0",
        "length(cpf) = 11",
        "email like '%@%'",
        "cast(clientes AS double) / 2 > 1",
        "renda_mensal / 12 > 100",  # not known to be an integer: decimal here
        "updated_at >= current_timestamp() - INTERVAL 26 HOURS",
        "regexp_extract(email, '^[^@]+@(.*)$', 1) <> ''",
        "uf in ('SP', 'RJ')",
    ],
)
def test_portable_rules_pass(rule):
    assert check_text(rule, types={"id": "BIGINT", "renda_mensal": "DECIMAL(18,2)"}) == []


def test_the_reasons_are_real_on_duckdb():
    con = duckdb.connect()
    # Trino truncates integer division; DuckDB does not
    assert con.execute("SELECT 7 / 2").fetchone()[0] == 3.5
    # DuckDB counts day boundaries: 23:00 → 01:00 next day is 1 day (Trino: 0 whole days)
    assert (
        con.execute("SELECT date_diff('day', TIMESTAMP '2025-01-01 23:00', TIMESTAMP '2025-01-02 01:00')").fetchone()[0]
        == 1
    )
    # DuckDB's date + interval is a TIMESTAMP (Trino's date_add on a date is a DATE)
    assert "TIMESTAMP" in str(con.execute("SELECT DATE '2025-01-01' + INTERVAL 1 DAY").description[0][1])
    # RE2 rejects look-ahead; Java regex (Athena) accepts it
    with pytest.raises(duckdb.Error):
        con.execute("SELECT regexp_matches('abc', '^(?!x)')").fetchall()
    for missing in ("format_datetime(now(), 'yyyy')", "current_timezone()"):
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT {missing}").fetchall()


def test_lint_rejects_them_in_checks_when_a_target_uses_athena(tmp_path):
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    spec["checks"]["silver.clientes"].append({"expression": {"name": "meia_renda", "rule": "id / 2 >= 0"}})
    spec["checks"]["gold.clientes_por_uf"].append(
        {
            "reconcile": {
                "name": "r",
                "left": "SELECT sum(clientes) / count(*) FROM gold.clientes_por_uf",
                "right": "SELECT datediff(current_date(), current_date()) FROM silver.clientes",
            }
        }
    )
    make_project(tmp_path, [spec])
    proc = cli(tmp_path, "--json", "lint")
    doc = json_out(proc)
    assert proc.returncode == 2
    fields = {e["field"]: e for e in doc["errors"]}
    appended = f"checks.silver.clientes[{len(spec['checks']['silver.clientes']) - 1}].rule"
    assert "integer / integer" in fields[appended]["message"]  # id is cast to bigint
    assert fields[appended]["line"]
    assert "date_diff" in fields["checks.gold.clientes_por_uf[2].right"]["message"]
    assert all("means different things on DuckDB and Athena" in e["message"] for e in doc["errors"])
    # the template as shipped is portable
    make_project(tmp_path, clientes=True)
    (tmp_path / "configs" / "tables" / "clientes.yaml").write_text((TEMPLATES / "tables" / "clientes.yaml").read_text())
    assert cli(tmp_path, "lint").returncode == 0
