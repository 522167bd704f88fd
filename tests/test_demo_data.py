"""Tests for the deterministic ``clientes`` demo data generator."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lh360.demo import generator as dd

ROWS = 12_000
UFS = {
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
}  # fmt: skip
TOP_FIELDS = [
    "id", "cpf", "nome", "email", "telefone", "data_nascimento", "endereco", "renda_mensal",
    "ativo", "tags", "segmento", "canal_origem", "created_at", "updated_at",
]  # fmt: skip
ADDRESS_FIELDS = list(dd.ENDERECO_FIELDS)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}-03:00$")
CPF_RE = re.compile(r"^\d{3}\.\d{3}\.\d{3}-\d{2}$")
PHONE_RE = re.compile(r"^\+55 (\d{2}) 9\d{4}-\d{4}$")
CEP_RE = re.compile(r"^(\d{5})-\d{3}$")
RENDA_RE = re.compile(r'"renda_mensal":(\d+\.\d{2}),')
START = datetime(2025, 11, 24, 6, 0, 0, tzinfo=timezone(timedelta(hours=-3)))


def cpf_is_valid(cpf: str) -> bool:
    """The textbook CPF check (weights 10..2 and 11..2, remainder rule)."""
    digits = [int(c) for c in cpf if c.isdigit()]
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    for n in (9, 10):
        total = sum(d * w for d, w in zip(digits[:n], range(n + 1, 1, -1), strict=True))
        check = 11 - total % 11
        if (0 if check >= 10 else check) != digits[n]:
            return False
    return True


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(dd.generate_records(ROWS, seed=42))


@pytest.fixture(scope="module")
def bad() -> dict[int, str]:
    return dd.bad_positions(ROWS, 42)


@pytest.fixture(scope="module")
def good(lines: list[str], bad: dict[int, str]) -> list[tuple[int, dict]]:
    return [(i, json.loads(line)) for i, line in enumerate(lines) if i not in bad]


def test_known_cpfs_validate() -> None:
    assert cpf_is_valid("529.982.247-25")
    assert cpf_is_valid("111.444.777-35")
    assert not cpf_is_valid("529.982.247-26")
    assert not cpf_is_valid("111.111.111-11")


def test_deterministic_byte_for_byte() -> None:
    a = list(dd.generate_records(3000, seed=7))
    b = list(dd.generate_records(3000, seed=7))
    assert a == b
    c = list(dd.generate_records(3000, seed=8))
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 2900
    # another start shifts timestamps only
    d = list(dd.generate_records(3000, seed=7, start=START + timedelta(days=1)))
    assert [json.loads(x)["cpf"] for x in a[:50]] == [json.loads(x)["cpf"] for x in d[:50]]
    assert a[0] != d[0]


def test_record_is_pure_function_of_seed_index_rows(lines: list[str], bad: dict[int, str]) -> None:
    picks = [ROWS - 1, 0, 5000, 1199, 1200, 7777, 3, *sorted(bad)[:6]]
    for i in picks:
        assert dd.record_line(i, ROWS, seed=42) == lines[i]
    with pytest.raises(IndexError):
        dd.record_line(ROWS, ROWS)


def test_lines_are_single_line_json_with_exact_fields(lines: list[str], bad: dict[int, str]) -> None:
    assert list(dd.FIELDS) == TOP_FIELDS
    assert len(lines) == ROWS
    for i, line in enumerate(lines):
        assert "\n" not in line and "\r" not in line
        if bad.get(i) == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        rec = json.loads(line)
        expected = TOP_FIELDS + (["campo_legado"] if bad.get(i) == "unknown_field" else [])
        assert list(rec) == expected, i
        assert list(rec["endereco"]) == ADDRESS_FIELDS


def test_good_record_types_and_formats(good: list[tuple[int, dict]], lines: list[str]) -> None:
    allowed_tags = {"premium", "app", "agencia", "pix", "cartao", "investidor", "novo"}
    ref = START.date()
    for i, r in good:
        assert isinstance(r["id"], int) and r["id"] >= 1
        assert CPF_RE.match(r["cpf"]) and cpf_is_valid(r["cpf"]), r["cpf"]
        assert isinstance(r["nome"], str) and len(r["nome"].split()) >= 2
        local, _, domain = r["email"].partition("@")
        assert local and domain and "." in domain
        assert PHONE_RE.match(r["telefone"]), r["telefone"]
        born = date.fromisoformat(r["data_nascimento"])
        assert ref.replace(year=ref.year - 91) < born <= ref.replace(year=ref.year - 18)
        e = r["endereco"]
        assert isinstance(e["numero"], str) and e["numero"]
        assert e["complemento"] is None or isinstance(e["complemento"], str)
        assert CEP_RE.match(e["cep"])
        assert isinstance(r["renda_mensal"], float) and 1412.0 <= r["renda_mensal"] <= 80000.0
        assert RENDA_RE.search(lines[i]), "renda must be written with two decimals"
        assert isinstance(r["ativo"], bool)
        assert isinstance(r["tags"], list) and len(r["tags"]) <= 3 and set(r["tags"]) <= allowed_tags
        assert len(set(r["tags"])) == len(r["tags"])
        assert r["segmento"] in {"varejo", "alta_renda", "private", "pj_micro"}
        assert r["canal_origem"] in {"agencia", "app", "internet_banking", "correspondente"}
        assert TS_RE.match(r["created_at"]) and TS_RE.match(r["updated_at"])
        assert r["created_at"] <= r["updated_at"]


def test_distributions_are_plausible(good: list[tuple[int, dict]]) -> None:
    recs = [r for _, r in good]
    n = len(recs)
    assert 0.86 < sum(r["ativo"] for r in recs) / n < 0.94
    ufs = {r["endereco"]["uf"].upper() for r in recs}
    assert ufs == UFS
    sp = sum(r["endereco"]["uf"].upper() == "SP" for r in recs) / n
    assert 0.17 < sp < 0.27
    lower_uf = sum(r["endereco"]["uf"].islower() for r in recs) / n
    assert 0.005 < lower_uf < 0.08
    odd_names = sum(r["nome"] != r["nome"].strip() or "  " in r["nome"] or r["nome"].islower() for r in recs)
    assert 0.03 < odd_names / n < 0.2
    upper_mail = sum(any(c.isupper() for c in r["email"]) for r in recs) / n
    assert 0.03 < upper_mail < 0.2
    domains = {r["email"].split("@")[1].lower() for r in recs}
    assert {"gmail.com", "hotmail.com", "outlook.com", "uol.com.br", "bol.com.br", "yahoo.com.br"} <= domains
    assert "empresa.com.br" in domains
    assert {r["segmento"] for r in recs} == {"varejo", "alta_renda", "private", "pj_micro"}
    assert sum(r["renda_mensal"] == 1412.0 for r in recs) > 0
    assert max(r["renda_mensal"] for r in recs) > 20000
    assert any(r["endereco"]["complemento"] is None for r in recs)
    assert any(r["endereco"]["complemento"] for r in recs)


def test_city_uf_ddd_and_cep_are_consistent(good: list[tuple[int, dict]], bad: dict[int, str]) -> None:
    cities = {(c.cidade, c.uf): c for c in dd._static().cities}
    for _, r in good:
        e = r["endereco"]
        if e["uf"] == "XX":
            continue
        city = cities.get((e["cidade"], e["uf"].upper()))
        assert city is not None, (e["cidade"], e["uf"])
        lo, hi = city.cep_range
        assert lo <= int(e["cep"][:5]) <= hi, (e["cidade"], e["cep"])
        # the phone's DDD belongs to the customer's UF (moves stay in the UF)
        ddd = int(PHONE_RE.match(r["telefone"]).group(1))
        assert ddd in {c.ddd for c in dd._static().by_uf[city.uf]}, (ddd, city.uf)


def test_cpf_region_digit_and_uniqueness(good: list[tuple[int, dict]]) -> None:
    region = {"SP": 8, "RJ": 7, "ES": 7, "MG": 6, "RS": 0, "PR": 9, "SC": 9, "BA": 5, "SE": 5, "DF": 1}
    by_id: dict[int, str] = {}
    by_cpf: dict[str, int] = {}
    for _, r in good:
        assert by_id.setdefault(r["id"], r["cpf"]) == r["cpf"], "an id keeps its CPF"
        assert by_cpf.setdefault(r["cpf"], r["id"]) == r["id"], "a CPF belongs to one id"
        # the 9th digit is the fiscal region of the UF (moves stay within the UF)
        uf = r["endereco"]["uf"].upper()
        if uf in region:
            assert int(r["cpf"][10]) == region[uf], (r["cpf"], uf)


def test_bad_positions_announced_and_present(lines: list[str], bad: dict[int, str]) -> None:
    assert set(bad.values()) == set(dd.BAD_KINDS)
    assert ROWS // 1000 <= len(bad) <= ROWS // 1000 + len(dd.BAD_KINDS)
    for i, kind in bad.items():
        line = lines[i]
        if kind == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        rec = json.loads(line)
        if kind == "wrong_type":
            assert rec["renda_mensal"] == "abc" or (isinstance(rec["id"], str) and not rec["id"].isdigit())
        elif kind == "unknown_field":
            assert rec["campo_legado"] == "x"
        elif kind == "cpf_wrong_length":
            assert len(re.sub(r"\D", "", rec["cpf"])) != 11
        elif kind == "email_without_at":
            assert "@" not in rec["email"]
        elif kind == "invalid_uf":
            assert rec["endereco"]["uf"] == "XX"
    # and nothing else is bad
    for i, line in enumerate(lines):
        if i in bad:
            continue
        rec = json.loads(line)
        assert "@" in rec["email"] and rec["endereco"]["uf"].upper() in UFS and "campo_legado" not in rec


@pytest.mark.parametrize("rows", [500, 999, 1000, 5000, 200_000])
def test_bad_positions_shape(rows: int) -> None:
    pos = dd.bad_positions(rows, 42)
    assert set(pos.values()) == set(dd.BAD_KINDS)
    assert len(pos) == max(len(dd.BAD_KINDS), rows // 1000)
    assert all(0 <= i < rows for i in pos)
    assert pos == dd.bad_positions(rows, 42)
    assert pos != dd.bad_positions(rows, 43)


def test_small_streams_and_bad_false() -> None:
    assert list(dd.generate_records(0)) == []
    assert dd.bad_positions(50, 1) == {}
    assert len(dd.bad_positions(300, 1)) == 3
    one = list(dd.generate_records(1))
    assert json.loads(one[0])["id"] == 1
    clean = list(dd.generate_records(2000, seed=42, bad=False))
    for line in clean:
        rec = json.loads(line)
        assert cpf_is_valid(rec["cpf"]) and "@" in rec["email"] and "campo_legado" not in rec
        assert rec["endereco"]["uf"].upper() in UFS and isinstance(rec["renda_mensal"], float)
    # bad=True only changes the announced lines
    dirty = list(dd.generate_records(2000, seed=42))
    changed = {i for i, (a, b) in enumerate(zip(clean, dirty, strict=True)) if a != b}
    assert changed == set(dd.bad_positions(2000, 42))


def test_updates_reuse_earlier_ids_with_newer_updated_at(good: list[tuple[int, dict]], bad: dict[int, str]) -> None:
    warm = ROWS // 10
    seen: dict[int, dict] = {}
    updates = 0
    for i, r in good:
        first = seen.get(r["id"])
        if first is None:
            seen[r["id"]] = r
            continue
        updates += 1
        assert i >= warm, "no updates inside the initial load"
        assert r["cpf"] == first["cpf"] and r["nome"] == first["nome"]
        assert r["data_nascimento"] == first["data_nascimento"] and r["created_at"] == first["created_at"]
        assert r["updated_at"] > first["updated_at"]
    assert 0.07 < updates / len(good) < 0.11
    # new ids are handed out in order: 1..warm for the initial load, then on
    order = list(seen)
    initial = [i + 1 for i in range(warm) if i not in bad]
    assert order[: len(initial)] == initial
    assert sorted(order) == order


def test_updates_change_something(good: list[tuple[int, dict]]) -> None:
    seen: dict[int, dict] = {}
    unchanged = total = 0
    fields = ("renda_mensal", "email", "ativo", "endereco")
    counts = dict.fromkeys(fields, 0)
    for _, r in good:
        first = seen.setdefault(r["id"], r)
        if first is r:
            continue
        total += 1
        diff = [k for k in fields if r[k] != first[k]]
        unchanged += not diff
        for k in diff:
            counts[k] += 1
    # a redrawn e-mail or street can come out the same; that stays rare
    assert total > 0 and unchanged / total < 0.03
    assert all(v > 0 for v in counts.values()), counts
    assert counts["renda_mensal"] > counts["email"] > counts["ativo"]


def test_updated_at_never_decreases_and_spans_start_to_span(good: list[tuple[int, dict]]) -> None:
    stamps = [r["updated_at"] for _, r in good]
    assert stamps == sorted(stamps)
    first = datetime.fromisoformat(stamps[0])
    last = datetime.fromisoformat(stamps[-1])
    assert START <= first < START + timedelta(minutes=5)
    assert START + dd.DEFAULT_SPAN - timedelta(minutes=5) < last <= START + dd.DEFAULT_SPAN
    # initial-load customers were created before the stream started, new ones at their row
    warm = ROWS // 10
    for _, r in good[:50]:
        assert datetime.fromisoformat(r["created_at"]) < START
    for i, r in good:
        if i >= warm and r["id"] > warm and r["created_at"] >= r["updated_at"]:
            assert r["created_at"] == r["updated_at"]


def test_start_naive_is_brasilia_wall_time_and_aware_is_converted() -> None:
    naive = list(dd.generate_records(100, start=datetime(2024, 1, 2, 3, 4, 5)))
    aware = list(dd.generate_records(100, start=datetime(2024, 1, 2, 6, 4, 5, tzinfo=UTC)))
    assert naive == aware
    assert json.loads(naive[0])["updated_at"].startswith("2024-01-02T03:")


def test_write_landing_layout_split_and_content(tmp_path: Path) -> None:
    landing = tmp_path / "lakehouse" / "landing" / "clientes"
    paths = dd.write_landing(landing, rows=1003, files=7, seed=42, gzip_every=3)
    assert len(paths) == 7
    names = [p.name for p in paths]
    assert names == [f"clientes_{k:06d}.json" + (".gz" if k % 3 == 0 else "") for k in range(1, 8)]
    assert all(p.parent.parent.parent.parent == landing for p in paths)
    assert all(p.relative_to(landing).as_posix().startswith("2025/11/") for p in paths)
    assert paths == sorted(paths, key=lambda p: p.as_posix())
    counts, all_lines = [], []
    for p in paths:
        if p.suffix == ".gz":
            raw = gzip.decompress(p.read_bytes())
        else:
            raw = p.read_bytes()
        text = raw.decode("utf-8")
        assert text.endswith("\n") and not text.endswith("\n\n")
        chunk = text.split("\n")[:-1]
        counts.append(len(chunk))
        all_lines.extend(chunk)
    assert counts == [(k + 1) * 1003 // 7 - k * 1003 // 7 for k in range(7)]
    assert all_lines == list(dd.generate_records(1003, seed=42))
    # no temporary files left behind
    leftovers = [p for p in landing.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_write_landing_mtimes_deterministic_and_increasing(tmp_path: Path) -> None:
    paths = dd.write_landing(tmp_path / "a", rows=500, files=5, start=START)
    mtimes = [p.stat().st_mtime for p in paths]
    assert mtimes == sorted(mtimes) and len(set(mtimes)) == 5
    expected = dd.file_mtimes(5, start=START)
    assert mtimes == [m.timestamp() for m in expected]
    assert expected[0] > START and expected[-1] == START + dd.DEFAULT_SPAN
    # every file is at least as new as the newest record inside it
    for p in paths:
        newest = max(json.loads(x)["updated_at"] for x in p.read_text("utf-8").splitlines() if x.endswith("}"))
        assert datetime.fromisoformat(newest).timestamp() <= p.stat().st_mtime


def test_write_landing_is_byte_identical_including_gzip(tmp_path: Path) -> None:
    a = dd.write_landing(tmp_path / "a", rows=700, files=4, seed=3, gzip_every=2)
    b = dd.write_landing(tmp_path / "b", rows=700, files=4, seed=3, gzip_every=2)
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    with gzip.open(a[1], "rt", encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == 175


def test_write_landing_edge_cases(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        dd.write_landing(tmp_path, rows=10, files=0)
    paths = dd.write_landing(tmp_path / "tiny", rows=2, files=3)
    assert [len(p.read_bytes().splitlines()) for p in paths] == [0, 1, 1]
    # rewriting replaces files atomically and identically
    before = [p.read_bytes() for p in paths]
    again = dd.write_landing(tmp_path / "tiny", rows=2, files=3)
    assert again == paths and [p.read_bytes() for p in again] == before
    assert all(os.access(p, os.R_OK) for p in paths)


def test_speed_smoke() -> None:
    """Generous bound so a loaded CI box does not flake; the real number is ~110k rows/s."""
    dd.record_line(0, 10)  # build the tables first
    t = time.process_time()
    n = sum(1 for _ in dd.generate_records(20_000, seed=5))
    assert n == 20_000
    assert time.process_time() - t < 4.0


def test_write_landing_in_parallel_gives_the_same_bytes(tmp_path: Path) -> None:
    serial = dd.write_landing(tmp_path / "s", rows=3000, files=6, gzip_every=3)
    parallel = dd.write_landing(tmp_path / "p", rows=3000, files=6, gzip_every=3, workers=2, fsync=True)
    assert [p.relative_to(tmp_path / "p") for p in parallel] == [p.relative_to(tmp_path / "s") for p in serial]
    for a, b in zip(serial, parallel, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.stat().st_mtime == b.stat().st_mtime
