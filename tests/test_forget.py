"""`lh360 forget`: a data subject erased from landing, bronze, silver, quarantine, gold and check samples;
with --vacuum no byte of any file holds them; ingest does not take the rewritten files again; the erasure
ledger records the request without its values; bad input is refused and a busy table is exit 75."""

from __future__ import annotations

import json
import os

import pytest

from lh360.errors import CheckFailed, UsageError
from tests.conftest import read_table
from tests.forget_support import build, hmac_hex, holders, needles, records, someone


def lakehouse(p):
    from lh360.context import Lakehouse

    project = p.load()
    return Lakehouse(project, project.target())


def silver_ids(p) -> set:
    return {r["id"] for r in read_table(p.root, "silver.clientes")}


def gold_total(p) -> int:
    return sum(r["clientes"] for r in read_table(p.root, "gold.clientes_por_uf"))


@pytest.mark.slow
def test_forget_erases_a_person_from_every_layer_and_vacuum_leaves_no_byte_of_them(project):
    p = build(project)
    person = someone(p)
    wanted = needles(p, person)
    assert holders(p.root, wanted)  # the search finds them before
    bronze_before = len(read_table(p.root, "bronze.clientes"))
    landed = [r for r in records(p) if r.get("id") == person["id"]]
    others_landed = len(records(p)) - len(landed)

    result = lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)

    t = "clientes"
    assert result.layers[f"landing.{t}"]["rows"] == len(landed) >= 2
    assert result.layers[f"bronze.{t}"]["rows"] == len(landed)
    assert result.layers[f"silver.{t}"]["rows"] == 1
    assert len(read_table(p.root, "bronze.clientes")) == bronze_before - len(landed)
    assert person["id"] not in silver_ids(p)
    assert len(records(p)) == others_landed  # the other records stayed in their files
    # gold recomputed from silver without them
    active = sum(1 for r in read_table(p.root, "silver.clientes") if r["ativo"])
    assert gold_total(p) == active and set(result.gold) == {"gold.clientes_por_uf", "gold.clientes_por_segmento"}
    assert result.vacuumed and holders(p.root, wanted) == []


@pytest.mark.slow
def test_the_digits_the_formatted_value_and_several_keys_name_the_same_person(project):
    p = build(project)
    person = someone(p)
    digits = "".join(ch for ch in person["cpf"] if ch.isdigit())
    lh = lakehouse(p)
    with pytest.raises(CheckFailed):  # another person's id with this CPF: nobody
        lh.forget("clientes", [f"cpf={digits}", f"id={person['id'] + 1}"], require_match=True)
    result = lh.forget("clientes", [f"cpf={digits}", f"id={person['id']}"])
    assert result.layers["silver.clientes"]["rows"] == 1 and person["id"] not in silver_ids(p)


@pytest.mark.slow
def test_without_vacuum_old_files_still_hold_the_person_until_a_purge(project):
    from lh360 import forget as erase

    p = build(project)
    person = someone(p)
    lh = lakehouse(p)
    lh.forget("clientes", [f"cpf={person['cpf']}"])
    left = holders(p.root / "lake", [person["cpf"]])
    assert left and all(("bronze" in h or "_delta_log" in h) for h in left)  # old files and log entries only
    assert holders(p.landing, [person["cpf"]]) == []
    pending = erase.pending_purges(p.load().target(), ["clientes"])
    assert "bronze.clientes" in pending["clientes"] and "silver.clientes" in pending["clientes"]
    # the next erasure with --vacuum purges what the first one left, even when it matches nothing itself
    lh.forget("clientes", ["cpf=000.000.001-91"], vacuum=True)
    assert holders(p.root, needles(p, person)) == []
    assert erase.pending_purges(p.load().target(), ["clientes"]) == {}


@pytest.mark.slow
def test_rewritten_landing_files_are_lh360s_own_ingest_takes_nothing_and_reports_nothing(project, run_cli):
    p = build(project)
    person = someone(p)
    code, out, err = run_cli("forget", "clientes", "--key", f"cpf={person['cpf']}", "--json", cwd=p.root)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["matched"] and doc["layers"]["landing.clientes"]["files"] >= 1
    code, out, err = run_cli("ingest", "clientes", "--json", cwd=p.root)
    assert code == 0, err
    (ingest,) = json.loads(out)["tables"]
    assert ingest["files"] == 0 and ingest["rewritten"] == [] and ingest["warnings"] == []
    code, out, _ = run_cli("landing", "clientes", "--json", cwd=p.root)
    (landing,) = json.loads(out)["tables"]
    assert code == 0 and landing["rewritten"] == [] and landing["pending_files"] == 0
    # a producer's rewrite of such a file afterwards is still reported
    changed = sorted((p.landing / "clientes").rglob("*.json"))[0]
    changed.write_text(changed.read_text() + '{"id": 999999}\n')
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    code, out, err = run_cli("ingest", "clientes", "--json", cwd=p.root)
    (ingest,) = json.loads(out)["tables"]
    assert code == 0 and [r["file"].rsplit("/", 1)[-1] for r in ingest["rewritten"]] == [changed.name]


@pytest.mark.slow
def test_forget_is_idempotent_and_the_erasure_ledger_holds_no_value(project, run_cli):
    from lh360.ledger import Ledger

    p = build(project)
    person = someone(p)
    key = f"cpf={person['cpf']}"
    assert run_cli("forget", "clientes", "--key", key, cwd=p.root)[0] == 0
    silver = read_table(p.root, "silver.clientes", order_by="id")
    code, out, err = run_cli("forget", "clientes", "--key", key, "--json", cwd=p.root)
    assert code == 0, err and not json.loads(out)["matched"]
    assert read_table(p.root, "silver.clientes", order_by="id") == silver
    code, _, err = run_cli("forget", "clientes", "--key", key, "--require-match", cwd=p.root)
    assert code == 1 and "matched nothing" in err
    rows = Ledger(p.load().target()).erasures("clientes")
    assert [r["status"] for r in rows].count("erased") == 1 and len(rows) == 3
    first = [r for r in rows if r["status"] == "erased"][0]
    assert first["key_columns"] == "cpf" and first["silver_rows"] == 1 and first["bronze_rows"] >= 2
    assert len({r["erasure_id"] for r in rows}) == 1  # one request, one id (an HMAC)
    assert holders(p.root / "lake" / "_lh360" / "erasures", needles(p, person)) == []
    digits = "".join(ch for ch in person["cpf"] if ch.isdigit())
    assert first["erasure_id"] not in (hmac_hex(digits), hmac_hex(person["cpf"]))


@pytest.mark.slow
def test_check_samples_in_the_ledger_lose_the_persons_rows(project):
    from lh360.ledger import Ledger

    p = build(project)
    person = someone(p)
    # a failing check whose sample holds the person's row (and others)
    import yaml

    from lh360.checks import validate

    spec = p.root / "configs" / "tables" / "clientes.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["checks"]["silver.clientes"].append(
        {
            "expression": {
                "name": "pessoa",
                "rule": f"id NOT IN ({person['id']}, {person['id'] + 1}, {person['id'] + 2})",
                "severity": "warn",
            }
        }
    )
    spec.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    project_ = p.load()
    ledger = Ledger(project_.target())
    validate(project_, project_.target(), ledger=ledger)

    def samples() -> list:
        out = []
        for row in ledger._query(ledger.checks_uri, "SELECT sample FROM ledger WHERE \"check\" = 'pessoa'"):
            out += json.loads(row["sample"]) if row["sample"] else []
        return out

    assert any(r["id"] == person["id"] for r in samples())
    result = lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"])
    assert result.layers["lh360.checks"]["rows"] >= 1
    left = samples()
    assert left and all(r["id"] != person["id"] for r in left)  # the other rows of the samples stay


@pytest.mark.slow
@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["apelido=x"], "clientes has no such column; its columns: id, cpf"),
        (["cpf"], "expected COLUMN=VALUE"),
        (["=1"], "expected COLUMN=VALUE"),
        ([], "--key COLUMN=VALUE"),
    ],
)
def test_a_bad_key_is_a_usage_error_and_changes_nothing(project, keys, message):
    p = build(project, rows=60, files=1, validate=False)
    before = read_table(p.root, "silver.clientes", order_by="id")
    with pytest.raises(UsageError) as err:
        lakehouse(p).forget("clientes", keys)
    assert message in err.value.message and err.value.exit_code == 2
    assert read_table(p.root, "silver.clientes", order_by="id") == before


@pytest.mark.slow
def test_cli_bad_input_exit_codes(project, run_cli):
    p = build(project, rows=60, files=1, validate=False)
    code, _, err = run_cli("forget", "clientes", "--key", "nada=1", cwd=p.root)
    assert code == 2 and "no such column" in err
    code, _, err = run_cli("forget", "nada", "--key", "cpf=1", cwd=p.root)
    assert code == 2
    spec = p.root / "configs" / "tables" / "clientes.yaml"
    spec.write_text(spec.read_text().replace("sequence_by: updated_at", "sequence_by: nada"))
    code, _, err = run_cli("forget", "clientes", "--key", "cpf=1", cwd=p.root)
    assert code == 2 and "clientes.yaml" in err


@pytest.mark.slow
def test_forget_while_another_run_holds_the_lock_exits_75_and_changes_nothing(project, run_cli):
    from lh360.lock import table_lock

    p = build(project, rows=60, files=1, validate=False)
    person = someone(p, versions=1)
    before = read_table(p.root, "bronze.clientes")
    with table_lock(str(p.lake), "clientes", wait=0):
        code, _, err = run_cli("forget", "clientes", "--key", f"cpf={person['cpf']}", cwd=p.root)
    assert code == 75, err
    assert read_table(p.root, "bronze.clientes") == before


def test_a_forget_without_the_pii_key_is_refused(project, monkeypatch):
    p = build(project, rows=60, files=1, validate=False)
    monkeypatch.delenv("LH360_PII_KEY")
    with pytest.raises(UsageError, match="LH360_PII_KEY"):
        lakehouse(p).forget("clientes", ["cpf=1"])


@pytest.mark.slow
def test_a_malformed_line_naming_the_person_goes_from_landing_bronze_and_quarantine(project):
    """A line ingest could not parse keeps its raw text in bronze (_rescued_data) and quarantine
    (_corrupt_record): when it holds the person's CPF it is theirs, and --vacuum leaves no byte of it. Another
    person's malformed line, and one holding only a short number, stay."""
    from lh360.context import Lakehouse

    p = build(project)
    person = someone(p)
    other = next(r for r in records(p) if r.get("id") != person["id"] and isinstance(r.get("cpf"), str))
    late = p.landing / "clientes" / "late.json"
    late.write_text(
        f'{{"id": {person["id"]}, "cpf": "{person["cpf"]}", "nome": "trunc\n'
        f'{{"id": {other["id"]}, "cpf": "{other["cpf"]}", "nome": "trunc\n'
        '{"id": 7, "valor": 7 oops\n'
    )
    project_ = p.load()
    lh = Lakehouse(project_, project_.target())
    lh.ingest(["clientes"])
    lh.promote(["clientes"], "silver")
    corrupt = [r for r in read_table(p.root, "quarantine.clientes") if r.get("_corrupt_record")]
    assert len(corrupt) == 3
    wanted = needles(p, person)[:2]  # the CPF as written, and its digits
    assert any("late.json" in h for h in holders(p.root, wanted))

    result = lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)

    assert result.layers["quarantine.clientes"]["rows"] >= 1
    assert holders(p.root, wanted) == []
    left = sorted(r["_corrupt_record"] for r in read_table(p.root, "quarantine.clientes") if r.get("_corrupt_record"))
    assert len(left) == 2 and other["cpf"] in left[1] + left[0] and any("oops" in x for x in left)
    assert "oops" in late.read_text() and other["cpf"] in late.read_text()
