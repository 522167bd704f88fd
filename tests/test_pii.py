"""Personal data by design (LGPD, lh360.pii): silver.pii tags, hash/mask/drop in silver and quarantine, what
gold queries see, the key from the environment, and no personal data in samples, errors or logs."""

from __future__ import annotations

import hmac
import json

import pytest

from lh360 import pii
from lh360.errors import CheckFailed, ConfigError, UsageError
from tests.conftest import TEST_PII_KEY, read_table

CPF = "009.946.509-49"  # valid check digits
CPF_DIGITS = "00994650949"


def spec(pii_tags: dict | None = None, gold: dict | None = None, checks: dict | None = None, **silver) -> dict:
    return {
        "table": "pessoas",
        "source": {"path": "pessoas/"},
        "silver": {
            "keys": ["id"],
            "sequence_by": "updated_at",
            "columns": {
                "id": "cast(id as bigint)",
                "cpf": "regexp_replace(cpf, '[^0-9]', '')",
                "nome": "initcap(trim(nome))",
                "email": "lower(email)",
                "telefone": "telefone",
                "nascimento": "to_date(nascimento)",
                "uf": "upper(uf)",
                "renda": "cast(renda as decimal(18,2))",
                "updated_at": "to_timestamp(updated_at)",
            },
            "expectations": [{"name": "cpf_11", "rule": "length(cpf) = 11", "action": "quarantine"}],
            "pii": pii_tags
            if pii_tags is not None
            else {
                "cpf": {"kind": "cpf", "silver": "hash", "gold": "hash"},
                "nome": {"kind": "name", "silver": "keep"},
                "email": {"kind": "email", "silver": "mask"},
                "telefone": {"kind": "phone", "silver": "drop"},
                "nascimento": {"kind": "birthdate", "silver": "mask", "gold": "mask"},
            },
            **silver,
        },
        "gold": gold
        if gold is not None
        else {"por_uf": {"sql": "SELECT uf, count(*) AS n FROM silver.pessoas GROUP BY uf"}},
        "checks": checks or {},
    }


def person(i: int, cpf: str = CPF, **kw) -> dict:
    return {
        "id": i,
        "cpf": cpf,
        "nome": f"maria {i} silva",
        "email": f"Maria{i}@Example.com",
        "telefone": "+55 11 98765-4321",
        "nascimento": "1980-05-17",
        "uf": "sp",
        "renda": 100.5,
        "updated_at": "2025-01-01T10:00:00-03:00",
        **kw,
    }


def pipeline(p, records: list[dict], to: str = "gold"):
    from lh360.context import Lakehouse

    p.write_landing("pessoas", "a.json", records)
    project = p.load()
    lh = Lakehouse(project, project.target())
    lh.ingest(["pessoas"])
    return lh.promote(["pessoas"], to)


def hmac_of(value: str) -> str:
    return hmac.new(TEST_PII_KEY.encode(), value.encode(), "sha256").hexdigest()


# ---- the spec ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"apelido": {"kind": "name"}}, "apelido, which is not in silver.columns"),
        ({"id": {"kind": "other", "silver": "mask"}}, "a key column can be kept or hashed"),
        ({"updated_at": {"kind": "other", "silver": "hash"}}, "sequence and partition columns"),
        ({"cpf": {"kind": "cpf", "silver": "hash", "gold": "mask"}}, "gold can only hash or drop"),
        ({"cpf": {"kind": "cpf", "silver": "drop", "gold": "hash"}}, "gold can only drop"),
        ({"cpf": {"kind": "rg"}}, "kind"),
    ],
)
def test_a_pii_tag_that_cannot_hold_is_a_config_error_naming_the_field(project, tags, message):
    p = project(spec(tags))
    with pytest.raises(ConfigError) as err:
        p.load()
    assert message in str(err.value)
    assert "silver.pii" in str(err.value) and "pessoas.yaml" in str(err.value)


# ---- silver and quarantine ------------------------------------------------------------------------------


def test_silver_and_quarantine_store_personal_data_as_tagged(project):
    p = project(spec())
    pipeline(p, [person(1), person(2, cpf="123.456"), person(3, cpf="529.982.247-25")])
    rows = read_table(p.root, "silver.pessoas", order_by="id")
    assert [r["id"] for r in rows] == [1, 3]
    first = rows[0]
    assert first["cpf"] == hmac_of(CPF_DIGITS)  # the value silver.columns computes, hashed
    assert rows[1]["cpf"] == hmac_of("52998224725")
    assert first["nome"] == "Maria 1 Silva"  # keep
    assert first["email"] == "m***@example.com"  # mask: first character and domain
    assert first["nascimento"] == "1980-**-**"  # mask: the year
    assert "telefone" not in first  # drop
    quarantined = read_table(p.root, "quarantine.pessoas")
    assert len(quarantined) == 1 and quarantined[0]["_failed_rules"] == ["cpf_11"]  # judged on the real value
    assert quarantined[0]["cpf"] == hmac_of("123456") and "telefone" not in quarantined[0]
    assert quarantined[0]["email"] == "m***@example.com"


@pytest.mark.slow
def test_a_hashed_key_still_merges_dedupes_and_stays_unique(project):
    p = project(spec({"cpf": {"kind": "cpf", "silver": "hash"}}, keys=["cpf"]))
    pipeline(p, [person(1), person(2), person(3, cpf="529.982.247-25")], to="silver")
    p.write_landing("pessoas", "b.json", [person(4, updated_at="2025-02-01T10:00:00-03:00")])
    pipeline(p, [], to="silver")
    rows = read_table(p.root, "silver.pessoas", order_by="id")
    assert sorted(r["cpf"] for r in rows) == sorted([hmac_of(CPF_DIGITS), hmac_of("52998224725")])
    assert {r["id"] for r in rows} == {3, 4}  # the later version of the hashed key won


def test_hashing_without_the_key_is_a_usage_error_and_writes_nothing(project, monkeypatch):
    p = project(spec())
    monkeypatch.delenv("LH360_PII_KEY")
    with pytest.raises(UsageError) as err:
        pipeline(p, [person(1)], to="silver")
    assert "LH360_PII_KEY" in err.value.message and err.value.exit_code == 2
    assert read_table(p.root, "silver.pessoas") == []


def test_a_short_key_is_refused_and_a_key_file_is_read(project, monkeypatch, tmp_path):
    monkeypatch.setenv("LH360_PII_KEY", "short")
    with pytest.raises(UsageError, match="at least 16"):
        pii.key_bytes()
    monkeypatch.delenv("LH360_PII_KEY")
    secret = tmp_path / "pii.key"
    secret.write_text(TEST_PII_KEY + "\n")
    monkeypatch.setenv("LH360_PII_KEY_FILE", str(secret))
    assert pii.key_bytes() == TEST_PII_KEY.encode()


def test_the_sql_hash_is_hmac_sha256_of_the_text_and_masks_match_their_python_twins():
    import duckdb

    con = duckdb.connect()
    pii.install_hash(con, TEST_PII_KEY.encode())
    values = ["00994650949", "Maria@x.com.br", "ação", "", "5"]
    for v in values:
        got = con.execute(f"SELECT {pii.HASH_MACRO}(?)", [v]).fetchall()[0][0]
        assert got == hmac_of(v)
    assert con.execute(f"SELECT {pii.HASH_MACRO}(NULL)").fetchall()[0][0] is None
    assert con.execute(f"SELECT {pii.HASH_MACRO}(DATE '1980-05-17')").fetchall()[0][0] == hmac_of("1980-05-17")
    samples = [
        CPF,
        "11.222.333/0001-81",
        "Maria@Example.com",
        "+55 11 98765-4321",
        "  maria silva",
        "Rua X, 1",
        "1980-05-17",
        "1",
        "",
        None,
    ]
    for kind in pii.MASKS:
        for v in samples:
            sql = con.execute(f"SELECT {pii.mask_sql(kind, 'v')} FROM (SELECT ?::VARCHAR AS v)", [v]).fetchall()[0][0]
            assert sql == pii.mask_value(kind, v), (kind, v)
    assert pii.mask_value("cpf", CPF) == "***.***.***-49"
    assert pii.mask_value("phone", "+55 11 98765-4321") == "(**) *****-4321"


# ---- gold ------------------------------------------------------------------------------------------------


def test_gold_sees_tagged_columns_as_their_gold_rule_says(project):
    gold = {
        "pessoas_hash": {"sql": "SELECT cpf, nascimento, count(*) AS n FROM silver.pessoas GROUP BY cpf, nascimento"},
        "nomes": {"sql": "SELECT nome FROM silver.pessoas", "allow_pii": ["nome"]},
    }
    tags = {
        "cpf": {"kind": "cpf", "silver": "keep", "gold": "hash"},
        "nome": {"kind": "name", "silver": "keep"},
        "nascimento": {"kind": "birthdate", "silver": "keep", "gold": "mask"},
    }
    p = project(spec(tags, gold=gold))
    pipeline(p, [person(1), person(2, cpf="529.982.247-25")])
    assert read_table(p.root, "silver.pessoas", order_by="id")[0]["cpf"] == CPF_DIGITS  # silver keeps it
    hashed = read_table(p.root, "gold.pessoas_hash", order_by="cpf")
    assert sorted(r["cpf"] for r in hashed) == sorted([hmac_of(CPF_DIGITS), hmac_of("52998224725")])
    assert {r["nascimento"] for r in hashed} == {"1980-**-**"}
    assert sorted(r["nome"] for r in read_table(p.root, "gold.nomes")) == ["Maria 1 Silva", "Maria 2 Silva"]


def test_a_gold_query_reading_a_hidden_pii_column_is_refused_by_lint_and_promote(project):
    from lh360.lint import lint

    gold = {"nomes": {"sql": "SELECT p.nome, count(*) AS n FROM silver.pessoas AS p GROUP BY p.nome"}}
    p = project(spec(gold=gold))
    _, errors = lint(str(p.config))
    assert len(errors) == 1
    err = errors[0]
    assert err.field == "gold.nomes.sql" and err.line is not None
    assert "reads nome of silver.pessoas, personal data (name)" in err.reason and "allow_pii: [nome]" in err.reason
    with pytest.raises(ConfigError, match="personal data"):
        pipeline(p, [person(1)])
    assert read_table(p.root, "gold.nomes") == []


def test_allow_pii_must_name_a_pii_column_the_query_reads(project):
    from lh360.lint import lint

    gold = {"x": {"sql": "SELECT uf FROM silver.pessoas", "allow_pii": ["uf"]}}
    _, errors = lint(str(project(spec(gold=gold)).config))
    assert [e.field for e in errors] == ["gold.x.allow_pii[0]"]


def test_the_demo_spec_tags_its_personal_data_and_lints_clean():
    from lh360.config import load_spec
    from tests.conftest import REPO

    demo = load_spec(REPO / "configs" / "tables" / "clientes.yaml")
    assert {c: r.kind for c, r in demo.silver.pii.items()} == {
        "cpf": "cpf",
        "nome": "name",
        "email": "email",
        "telefone": "phone",
        "data_nascimento": "birthdate",
        "cep": "address",
    }
    assert demo.silver.pii["cpf"].silver == "hash"
    assert not pii.gold_problems(type("P", (), {"specs": {"clientes": demo}})())


# ---- no personal data where nobody looks for it ------------------------------------------------------


def test_check_samples_in_results_and_ledger_mask_personal_data(project):
    from lh360.checks import validate
    from lh360.ledger import Ledger

    checks = {
        "silver.pessoas": [
            {"expression": {"name": "renda_alta", "rule": "renda > 1000"}},
        ],
        "bronze.pessoas": [{"expression": {"name": "sem_nome", "rule": "nome is null"}}],
    }
    p = project(spec(checks=checks))
    pipeline(p, [person(1), person(2)], to="silver")
    project_ = p.load()
    target = project_.target()
    report = validate(project_, target, ledger=Ledger(target))
    samples = {r.check: r.sample for r in report.results}
    silver_row = samples["renda_alta"][0]
    assert silver_row["nome"] == "M***" and silver_row["cpf"] == hmac_of(CPF_DIGITS)
    bronze_row = samples["sem_nome"][0]
    assert bronze_row["cpf"] == "***.***.***-49" and bronze_row["nome"] == "m***"
    assert bronze_row["email"] == "M***@Example.com" and bronze_row["telefone"] == "(**) *****-4321"
    everything = json.dumps(report.as_dict()) + json.dumps(read_table(p.root, "silver.pessoas"), default=str)
    ledger = json.dumps(Ledger(target)._query(Ledger(target).checks_uri, "SELECT sample FROM ledger"), default=str)
    for text in (json.dumps(report.as_dict()), ledger):
        assert CPF not in text and "maria 1 silva" not in text.lower() and "98765-4321" not in text
    assert everything  # the report itself was produced


def test_a_failed_expectation_names_rows_without_their_personal_data(project):
    expectations = [{"name": "renda_positiva", "rule": "renda > 1000", "action": "fail"}]
    p = project(spec(expectations=expectations))
    with pytest.raises(CheckFailed) as err:
        pipeline(p, [person(1)], to="silver")
    detail = err.value.detail
    assert "renda=" in detail and "nome='M***'" in detail and CPF_DIGITS not in detail and "Maria 1" not in detail


@pytest.mark.slow
def test_errors_and_logs_never_print_values_that_look_like_personal_data(project, run_cli):
    columns = {"id": "id", "updated_at": "updated_at", "x": "error(concat('bad value ', cpf))"}
    p = project(spec(pii_tags={}, columns=columns, expectations=[]))
    p.write_landing("pessoas", "a.json", [person(1)])
    code, out, err = run_cli("run", "pessoas", "--json", cwd=p.root)
    assert code == 3, err
    assert "009.946.509-49" not in out + err and "***.***.***-49" in out + err
    code, out, err = run_cli("run", "pessoas", "--log-format", "json", "--verbose", cwd=p.root)
    assert code == 3 and CPF not in err


def test_redact_masks_each_kind_and_leaves_other_numbers():
    text = f"cpf {CPF} e {CPF_DIGITS}, cnpj 11.222.333/0001-81, mail a.b@x.com.br, tel (11) 98765-4321 / 11987654321"
    out = pii.redact(text)
    assert out == (
        "cpf ***.***.***-49 e ***.***.***-49, cnpj **.***.***/****-81, mail a***@x.com.br, "
        "tel (**) *****-4321 / (**) *****-4321"
    )
    plain = "version 1795663278 at 2025-01-01T10:00:00, 123.456.789-00 (bad check digits), 111.111.111-11"
    assert pii.redact(plain) == plain
    assert pii.detect(text) == ["cpf", "cnpj", "email", "phone"] and pii.detect(plain) == []


def test_redact_keeps_identifiers_whole():
    """A query's or run's UUID can hold digit runs shaped like a phone number: it stays whole."""
    from lh360.redact import redact

    text = "query 12345678-1234-5678-9012-123456789012 failed for (11) 98765-4321"
    assert redact(text) == "query 12345678-1234-5678-9012-123456789012 failed for (**) *****-4321"
