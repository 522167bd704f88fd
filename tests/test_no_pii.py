"""The no_pii check: values that look like a CPF or CNPJ (valid check digits), an e-mail or a phone number in
columns that should hold none fail it; its SQL is generated for every dialect and agrees with lh360.redact."""

from __future__ import annotations

import pytest

from lh360 import pii
from lh360.checks.compile import compile_relation
from lh360.spec import TableSpec

# (value, the kinds it holds)
CORPUS = [
    ("varejo", []),
    ("009.946.509-49", ["cpf"]),
    ("cliente 00994650949 ligou", ["cpf"]),
    ("009.946.509-48", []),  # wrong check digit
    ("111.111.111-11", []),  # valid digits, all alike: not a CPF
    ("11.222.333/0001-81", ["cnpj"]),
    ("11222333000181", ["cnpj"]),
    ("11.222.333/0001-82", []),
    ("fale com Ana.Souza@Empresa.com.br", ["email"]),
    ("a@b", []),
    ("+55 47 99367-1938", ["phone"]),
    ("(11) 3456-7890", ["phone"]),
    ("11987654321", ["phone"]),
    ("1795663278", []),  # an epoch second
    ("versão 2025-11-24T07:07:46-03:00", []),
    ("", []),
    (None, []),
]


def spec(checks: list) -> TableSpec:
    return TableSpec.model_validate({"table": "t", "source": {"path": "t/"}, "checks": {"bronze.t": checks}})


def run_duckdb(checks: list, rows: list[tuple]) -> tuple[list, list]:
    import duckdb

    compiled = compile_relation(spec(checks), "bronze.t", "duckdb")
    con = duckdb.connect()
    con.execute('CREATE SCHEMA "bronze"')
    con.execute('CREATE TABLE "bronze"."t" (a VARCHAR, b VARCHAR)')
    con.executemany('INSERT INTO "bronze"."t" VALUES (?, ?)', rows)
    counts = con.execute(compiled.aggregate_sql).fetchall()[0]
    samples = [con.execute(c.sample_sql).fetchall() for c in compiled.checks]
    return list(counts), samples


@pytest.mark.slow
def test_the_sql_detectors_agree_with_the_python_ones_value_by_value():
    for kind in ("cpf", "cnpj", "email", "phone"):
        rows = [(v, None) for v, _ in CORPUS]
        _, samples = run_duckdb([{"no_pii": {"columns": ["a"], "detect": [kind]}}], rows)
        flagged = {r[0] for r in samples[0]}
        expected = {v for v, kinds in CORPUS if kind in kinds}
        assert flagged == expected, kind
        counts, _ = run_duckdb([{"no_pii": {"columns": ["a"], "detect": [kind]}}], rows)
        assert counts == [len(expected)], kind
    for value, kinds in CORPUS:
        assert pii.detect(value or "") == kinds, value


@pytest.mark.slow
def test_no_pii_fails_on_any_listed_column_and_passes_on_clean_ones():
    counts, samples = run_duckdb(
        [{"no_pii": ["a", "b"]}, {"no_pii": {"columns": ["a"], "name": "so_a", "max_failures": 1}}],
        [("varejo", "app"), ("agencia", "x@y.com"), ("009.946.509-49", "app"), ("ok", None)],
    )
    assert counts == [2, 1]
    assert {r[0] for r in samples[0]} == {"agencia", "009.946.509-49"}


def test_no_pii_compiles_for_every_dialect_and_is_judged_like_a_failing_rows_check():
    from datetime import UTC, datetime

    from lh360.checks.kinds import JudgeContext, kind_of
    from lh360.checks.validate import CheckResult

    s = spec([{"no_pii": {"columns": ["obs"], "detect": ["cpf", "email"]}}])
    for dialect in ("duckdb", "athena", "databricks"):
        sql = compile_relation(s, "bronze.t", dialect).aggregate_sql
        assert "REGEXP" in sql.upper() and "\\" not in sql  # character classes: no escapes to mistranslate
    compiled = compile_relation(s, "bronze.t", "duckdb").checks[0]
    assert compiled.name == "no_pii_obs" and compiled.threshold == "≤ 0 rows with cpf/email"
    result = CheckResult("bronze.t", "t", compiled.name, "no_pii", "error", "pass", compiled.threshold)
    kind_of(compiled.spec).judge(compiled, [3], result, JudgeContext({}, datetime.now(UTC)))
    assert result.status == "fail" and result.message == "3 rows with personal data (cpf/email in obs)"


@pytest.mark.parametrize("bad", [{"no_pii": []}, {"no_pii": {"columns": ["a"], "detect": ["rg"]}}])
def test_a_bad_no_pii_check_is_refused_by_the_spec(bad):
    with pytest.raises(ValueError):
        spec([bad])


@pytest.mark.slow
def test_no_pii_samples_are_masked_in_the_report(project):
    from lh360.checks import validate

    p = project(
        {
            "table": "t",
            "source": {"path": "t/"},
            "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "id", "obs": "obs"}},
            "checks": {"silver.t": [{"no_pii": ["obs"]}]},
        }
    )
    p.write_landing("t", "a.json", [{"id": 1, "obs": "cpf 009.946.509-49"}, {"id": 2, "obs": "nada"}])
    from lh360.context import Lakehouse

    project_ = p.load()
    lh = Lakehouse(project_, project_.target())
    lh.ingest(["t"])
    lh.promote(["t"], "silver")
    report = validate(project_, project_.target())
    (result,) = report.results
    assert result.status == "fail" and result.failing_rows == 1
    assert result.sample == [{"id": 1, "obs": "cpf ***.***.***-49"}]
