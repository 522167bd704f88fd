"""Same rule, same count on DuckDB (the local validator) and Athena (Trino).

`SAME_RULE_SAME_COUNT` is the table: for each construct whose meaning differs, the failing rows (or the
value) a check gets on DuckDB and on Athena's semantics as lh360 compiled it before (sqlglot's transpile
alone), and what both give now — Spark's answer, the meaning spec SQL is written in. Athena's semantics
are the Athena double's (trino_semantics.py: Trino's rules, from its documentation and source); "refused"
is a query Athena fails (a type error), which took every check of the table down with it.

| case | DuckDB before | Athena before | both now |
|---|---|---|---|
| trim (Spark: spaces; DuckDB: + NBSP; Trino: all whitespace) | 2 | 3 | 1 |
| string → int cast ('12.7', ' 7 ', '1e3', 'x') | 1 | 4 | 2 |
| regexp_replace with `$1` back-references | 2 | 0 | 0 |
| md5 of a varchar | 1 | refused | 1 |
| avg of a decimal(18,2) (a reconcile side) | 1.516666… | 1.52 | 1.516666… |
| timestampdiff in hours (23:30 → 01:00) | 1 | 0 | 0 |
| strings against a bigint (`id in ('1', '2')`) | 1 | refused | 1 |
| `/` of two integers (was rejected: a false positive) | 1 | 1 | 1 |
| datediff of two dates (was rejected: a false positive) | 1 | 1 | 1 |

What has no common form is rejected by `lh360 lint`, with the reason (`test_rejected_with_the_reason`).
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml
from awstest import TEMPLATES, cli, json_out, make_project

from lh360.portability import check_text

sys.path.insert(0, str(Path(__file__).parent))
import trino_semantics  # noqa: E402

REFUSED = "refused"
MD5_123 = hashlib.md5(b"123").hexdigest()
TS = pa.timestamp("us", tz="UTC")

# (case, rule or reconcile query, columns, (DuckDB before, Athena before, both now))
SAME_RULE_SAME_COUNT = [
    ("trim", "trim(nome) = nome", {"nome": ["a", " a", "a\t", "a\u00a0", "\tb\t"]}, (2, 3, 1)),
    (
        "string to int cast",
        "cast(s as int) is not null",
        {"s": ["12", "12.7", " 7 ", "1e3", "x", "-3"]},
        (1, 4, 2),
    ),
    (
        "regexp_replace back-references",
        "regexp_replace(cep, '([0-9]{5})([0-9]{3})', '$1-$2') = concat(substr(cep, 1, 5), '-', substr(cep, 6, 3))",
        {"cep": ["01310100", "20040002"]},
        (2, 0, 0),
    ),
    ("md5 of a varchar", f"md5(cpf) = '{MD5_123}'", {"cpf": ["123", "456"]}, (1, REFUSED, 1)),
    (
        "avg of a decimal",
        "SELECT avg(renda) FROM silver.t",
        {"renda": pa.array([Decimal("1.25"), Decimal("1.30"), Decimal("2.00")], pa.decimal128(18, 2))},
        (1.516667, 1.52, 1.516667),
    ),
    (
        "timestampdiff in hours",
        "timestampdiff(HOUR, a, b) = 1",
        {
            "a": pa.array([datetime(2025, 1, 1, 23, 30, tzinfo=UTC)], TS),
            "b": pa.array([datetime(2025, 1, 2, 1, 0, tzinfo=UTC)], TS),
        },
        (1, 0, 0),
    ),
    ("strings against a bigint", "id in ('1', '2')", {"id": pa.array([1, 2, 3], pa.int64())}, (1, REFUSED, 1)),
    ("integer division", "n / 2 = 3.5", {"n": pa.array([7, 8], pa.int64())}, (1, 1, 1)),
    (
        "datediff of dates",
        "datediff(d2, d1) = 1",
        {"d1": [date(2025, 1, 1), date(2025, 1, 1)], "d2": [date(2025, 1, 2), date(2025, 1, 3)]},
        (1, 1, 1),
    ),
]


def _spec(rule: str):
    from lh360.spec import TableSpec

    check = (
        {"reconcile": {"name": "r", "left": rule, "right": "SELECT 0"}}
        if rule.lstrip().upper().startswith("SELECT")
        else {"expression": {"name": "r", "rule": rule}}
    )
    return TableSpec.model_validate({"table": "t", "source": {"path": "t/"}, "checks": {"silver.t": [check]}})


def _sql_before(rule: str, dialect: str) -> str:
    """What lh360 emitted before: sqlglot's transpile of the rule, no typing, no portable form."""
    from sqlglot import exp

    from lh360.checks import sqlast
    from lh360.sql import parse_expression, parse_query, resolve

    table = sqlast.table(_namer(dialect)("silver", "t"), dialect)
    if rule.lstrip().upper().startswith("SELECT"):
        tree = resolve(parse_query(rule), lambda layer, name: table.copy())
        return sqlast.to_sql(tree, dialect)
    cond = exp.Not(this=exp.func("COALESCE", exp.paren(parse_expression(rule)), exp.false()))
    return sqlast.to_sql(exp.select(sqlast.count_if(cond)).from_(table), dialect)


def _sql_now(rule: str, dialect: str, types: dict[str, str]) -> str:
    from lh360.checks import compile_relation

    compiled = compile_relation(_spec(rule), "silver.t", dialect, table_name=_namer(dialect), types=types)
    return compiled.aggregate_sql or compiled.checks[0].sql.replace(', (SELECT 0) AS "right"', "")


def _namer(dialect: str):
    return lambda layer, name: '"t0"' if dialect == "athena" else '"silver"."t"'


def _value(row) -> object:
    value = row[0]
    return round(float(value), 6) if isinstance(value, (Decimal, float)) else value


def _duckdb(sql: str, data: pa.Table) -> object:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # as lh360's own DuckDB sessions
    con.execute("CREATE SCHEMA silver")
    con.register("data", data)
    con.execute('CREATE VIEW silver.t AS SELECT * FROM "data"')
    return _value(con.execute(sql).fetchone())


def _athena(sql: str, data: pa.Table) -> object:
    import sqlglot

    con = trino_semantics.connect()
    con.register("t0", data)
    try:
        return _value(trino_semantics.run(con, sqlglot.parse_one(sql, read="athena"), {"t0": data.schema}).fetchone())
    except trino_semantics.TrinoRefusal:
        return REFUSED


def _types(data: pa.Table) -> dict[str, str]:
    """The columns' Delta types, as validate reads them from the log."""
    names = {"int64": "long", "string": "string", "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp"}
    return {f.name: names.get(str(f.type), str(f.type).replace("decimal128", "decimal")) for f in data.schema}


@pytest.mark.parametrize(
    "case, rule, columns, expected", SAME_RULE_SAME_COUNT, ids=[c[0] for c in SAME_RULE_SAME_COUNT]
)
def test_same_rule_same_count(case, rule, columns, expected):
    data = pa.table(columns)
    duck_before, athena_before, now = expected
    assert _duckdb(_sql_before(rule, "duckdb"), data) == duck_before
    assert _athena(_sql_before(rule, "athena"), data) == athena_before
    types = _types(data)
    assert _duckdb(_sql_now(rule, "duckdb", types), data) == now
    assert _athena(_sql_now(rule, "athena", types), data) == now


@pytest.mark.parametrize(
    "rule, fragment",
    [
        ("timestampdiff(MONTH, created_at, updated_at) < 12", "calendar units"),
        ("date_add(to_date(updated_at), 1) > current_date()", "date_add"),
        ("dateadd(day, 1, updated_at) > current_timestamp()", "date_add"),
        ("months_between(updated_at, created_at) < 12", "months_between"),
        ("format_datetime(updated_at, 'yyyy') = '2025'", "format_datetime"),
        ("width_bucket(renda_mensal, 0, 10000, 10) < 10", "width_bucket"),
        ("current_timezone() = 'UTC'", "current_timezone"),
        ("`$path` like '%.json'", '"$path"'),
        ("regexp_extract(email, '^(?=.*@).*$', 0) <> ''", "look-around"),
        ("email rlike '^(?!test)'", "look-around"),
        ("cast(unknown_column as int) > 0", "whose type lh360 cannot tell"),
        ("sha2(cpf, 384) is not null", "sha2 with 384 bits"),
    ],
)
def test_rejected_with_the_reason(rule, fragment):
    reasons = check_text(rule, types={"id": "BIGINT", "cpf": "STRING"})
    assert len(reasons) == 1 and fragment in reasons[0], reasons


@pytest.mark.parametrize(
    "rule",
    [
        "renda_mensal >= 0",
        "length(cpf) = 11",
        "email like '%@%'",
        "cast(clientes AS double) / 2 > 1",
        "renda_mensal / 12 > 100",
        "id / 2 = 0",  # both engines divide as Spark does
        "7 / 2 > 3",
        "datediff(current_date(), to_date(updated_at)) <= 1",  # both compare the dates
        "timestampdiff(HOUR, created_at, updated_at) < 26",  # whole hours on both
        "trim(nome) = nome",  # compiled with the space spelled out
        "cast(cpf as int) > 0",  # a string: compiled to Spark's parse on both
        "md5(cpf) is not null",  # to_utf8 on Athena
        "regexp_replace(cpf, '([0-9]{3})', '$1.') <> ''",  # $1 rewritten for DuckDB
        "updated_at >= current_timestamp() - INTERVAL 26 HOURS",
        "regexp_extract(email, '^[^@]+@(.*)$', 1) <> ''",
        "uf in ('SP', 'RJ')",
    ],
)
def test_portable_rules_pass(rule):
    types = {"id": "BIGINT", "renda_mensal": "DECIMAL(18,2)", "cpf": "STRING", "nome": "STRING"}
    assert check_text(rule, types=types) == []


def test_the_reasons_are_real_on_duckdb():
    con = duckdb.connect()
    # DuckDB's date + interval is a TIMESTAMP (Trino's date_add on a date is a DATE)
    assert "TIMESTAMP" in str(con.execute("SELECT DATE '2025-01-01' + INTERVAL 1 DAY").description[0][1])
    # DuckDB counts month boundaries: Jan 31 → Feb 1 is 1 month (Trino: 0 whole months)
    assert con.execute("SELECT date_diff('month', DATE '2025-01-31', DATE '2025-02-01')").fetchone()[0] == 1
    # RE2 rejects look-ahead; Java regex (Athena) accepts it
    with pytest.raises(duckdb.Error):
        con.execute("SELECT regexp_matches('abc', '^(?!x)')").fetchall()
    for missing in ("format_datetime(now(), 'yyyy')", "current_timezone()", "sha512('a')"):
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT {missing}").fetchall()


def test_lint_rejects_them_in_checks_when_a_target_uses_athena(tmp_path):
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    spec["checks"]["silver.clientes"].append(
        {"expression": {"name": "meses", "rule": "timestampdiff(MONTH, created_at, updated_at) < 12"}}
    )
    spec["checks"]["gold.clientes_por_uf"].append(
        {
            "reconcile": {
                "name": "r",
                "left": "SELECT sum(clientes) / count(*) FROM gold.clientes_por_uf",
                "right": "SELECT months_between(current_date(), current_date()) FROM silver.clientes",
            }
        }
    )
    make_project(tmp_path, [spec])
    proc = cli(tmp_path, "--json", "lint")
    doc = json_out(proc)
    assert proc.returncode == 2
    fields = {e["field"]: e for e in doc["errors"]}
    appended = f"checks.silver.clientes[{len(spec['checks']['silver.clientes']) - 1}].rule"
    assert set(fields) == {appended, "checks.gold.clientes_por_uf[2].right"}, fields
    assert "calendar units" in fields[appended]["message"]
    assert fields[appended]["line"]
    assert "months_between" in fields["checks.gold.clientes_por_uf[2].right"]["message"]
    assert all("means different things on DuckDB and Athena" in e["message"] for e in doc["errors"])
    # the template as shipped is portable
    make_project(tmp_path, clientes=True)
    (tmp_path / "configs" / "tables" / "clientes.yaml").write_text((TEMPLATES / "tables" / "clientes.yaml").read_text())
    assert cli(tmp_path, "lint").returncode == 0


def test_lint_rejects_what_athena_would_refuse_for_its_types(tmp_path):
    """The column types come from the spec (schema hints, silver casts) before any table exists."""
    spec = yaml.safe_load((TEMPLATES / "tables" / "clientes.yaml").read_text())
    checks = spec["checks"]["silver.clientes"]
    n = len(checks)  # the template's own checks come first; ours are numbered from n
    checks += [
        {"accepted_values": {"column": "id", "values": ["1", "dois"]}},  # [n]: 'dois' is no bigint
        {"accepted_values": {"column": "id", "values": ["1", "2"], "name": "ids"}},  # [n+1]: typed: fine
        {"expression": {"name": "cpf_id", "rule": "cpf = id"}},  # [n+2]: string vs bigint columns
        {"expression": {"name": "hash", "rule": "md5(cpf) is not null and id > '0'"}},  # [n+3]: compiled right
        {"range": {"column": "updated_at", "min": 0}},  # [n+4]: a timestamp against numbers
        {"expression": {"name": "ts", "rule": "updated_at > 'ontem'"}},  # [n+5]: not a timestamp
    ]
    make_project(tmp_path, [spec])
    doc = json_out(cli(tmp_path, "--json", "lint"))
    fields = {e["field"]: e["message"] for e in doc["errors"]}
    at = "checks.silver.clientes[{}]"
    expected = {
        at.format(n) + ".values[1]": "'dois' is not an integer",
        at.format(n + 2) + ".rule": "cannot compare string with integer",
        at.format(n + 4) + ".column": "range compares updated_at",
        at.format(n + 5) + ".rule": "'ontem' is not a timestamp",
    }
    assert set(fields) == set(expected), fields
    for field, message in expected.items():
        assert message in fields[field]
