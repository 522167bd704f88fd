"""Deterministic synthetic landing data for the ``clientes`` demo table.

Generates realistic Brazilian customer records shaped like the transactional
source RT2.tbfc6_clientes, as NDJSON lines, using only the standard library.

* ``generate_records`` yields one JSON object per line (no trailing newline).
* ``write_landing`` spreads a stream over NDJSON files (optionally gzipped)
  under a table's landing folder, atomically and with deterministic mtimes.

Every line is a pure function of ``(seed, i, rows)`` (plus ``start``, ``span``
and ``bad``): the same arguments always give the same bytes.  Randomness comes
from tabulation hashing over per-seed tables, so any record can be rebuilt
without generating the ones before it (updates rebuild their original row).

Stream shape: the first ``rows // 10`` rows are new customers (an initial
load, ``created_at`` in the past); after that, rows come in blocks of ten with
exactly one UPDATE of an earlier id per block (~10 %).  ``updated_at`` never
decreases along the stream; it runs from ``start`` to ``start + span``.  With
``bad=True`` a few deliberately broken lines sit at ``bad_positions(rows, seed)``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import multiprocessing
import os
import random
import secrets
import threading
import unicodedata
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any

__all__ = [
    "BAD_KINDS",
    "BRT",
    "DEFAULT_SPAN",
    "DEFAULT_START",
    "ENDERECO_FIELDS",
    "FIELDS",
    "UFS",
    "bad_positions",
    "file_mtimes",
    "generate_records",
    "record_line",
    "write_landing",
]

BRT = timezone(timedelta(hours=-3))
"""The fixed ``-03:00`` offset used for every timestamp (Brasília time)."""

DEFAULT_START = datetime(2025, 11, 24, 6, 0, 0, tzinfo=BRT)
DEFAULT_SPAN = timedelta(hours=12)

FIELDS = (
    "id",
    "cpf",
    "nome",
    "email",
    "telefone",
    "data_nascimento",
    "endereco",
    "renda_mensal",
    "ativo",
    "tags",
    "segmento",
    "canal_origem",
    "created_at",
    "updated_at",
)
"""The top-level fields of a good record, in output order.  ``endereco`` is an
object: logradouro, numero, complemento (string or null), bairro, cidade, uf,
cep.  The ``unknown_field`` bad records add ``campo_legado`` at the end."""

ENDERECO_FIELDS = ("logradouro", "numero", "complemento", "bairro", "cidade", "uf", "cep")

BAD_KINDS = (
    "malformed_json",  # the object is cut short: not valid JSON
    "wrong_type",  # "renda_mensal": "abc" or "id": "<id>a"
    "unknown_field",  # an extra "campo_legado": "x"
    "cpf_wrong_length",  # "123.456.78" (8 digits)
    "email_without_at",  # the "@" became "."
    "invalid_uf",  # "uf": "XX"
)

UFS = ("AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO").split()

# --------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------

# Seed-independent reference data (data/reference.json, package data): UFs with population and CPF fiscal
# region, cities with population, DDD and CEP ranges, bairros, streets, names, e-mail domains.
_REF = json.loads(resources.files("lh360.demo").joinpath("data/reference.json").read_text(encoding="utf-8"))
_UF_DATA: str = _REF["uf_data"]  # "UF population(thousands) region|…"
_CITY_DATA: str = _REF["city_data"]  # "UF: city:population(thousands):DDD:first CEP prefix-last CEP prefix; …"
_GENERIC_BAIRROS: list[str] = _REF["generic_bairros"]
_CITY_BAIRROS: dict[str, str] = _REF["city_bairros"]  # city → "bairro|bairro|…"
_STREET_NAMES: list[str] = _REF["street_names"]
_STREET_TYPES: tuple[tuple[str, int], ...] = tuple((n, w) for n, w in _REF["street_types"])
_FIRST_F: str = _REF["first_f"]
_FIRST_M: str = _REF["first_m"]
_MIDDLE_F: list[str] = _REF["middle_f"]
_MIDDLE_M: list[str] = _REF["middle_m"]
_SURNAMES: str = _REF["surnames"]
_EMAIL_DOMAINS: tuple[tuple[str, int], ...] = tuple((n, w) for n, w in _REF["email_domains"])
_EMAIL_DOMAINS_PJ: tuple[tuple[str, int], ...] = tuple((n, w) for n, w in _REF["email_domains_pj"])

_TAGS = ("premium", "app", "agencia", "pix", "cartao", "investidor", "novo")
# relative tag weights per segment: varejo, alta_renda, private, pj_micro
_TAG_WEIGHTS = (
    (1, 10, 5, 12, 9, 2, 4),
    (8, 9, 6, 10, 9, 7, 2),
    (12, 6, 8, 6, 6, 12, 1),
    (1, 8, 6, 14, 8, 2, 3),
)
_SEGMENTS = ("varejo", "alta_renda", "private", "pj_micro")
_CANAIS = (("app", 6), ("agencia", 5), ("internet_banking", 3), ("correspondente", 2))
# age bands (inclusive) and relative weights per year of age
_AGE_BANDS = (
    (18, 24, 8),
    (25, 44, 10),
    (45, 59, 8),
    (60, 69, 5),
    (70, 79, 3),
    (80, 89, 1),
)

_MIN_WAGE = 1412.0
_MAX_RENDA = 80000.0
_PRIVATE_FROM = 25000.0
_ALTA_RENDA_FROM = 10000.0

# --------------------------------------------------------------------------
# Table building (lazy, once per process)
# --------------------------------------------------------------------------


def _weighted(items: Sequence[tuple[object, float]], size: int) -> list:
    """A list of ``size`` slots, each item getting slots ~ its weight (>= 1)."""
    live = [(item, w) for item, w in items if w > 0]
    total = float(sum(w for _, w in live))
    counts = [max(1, int(size * w / total)) for _, w in live]
    order = sorted(range(len(live)), key=lambda k: (size * live[k][1] / total) % 1, reverse=True)
    k = 0
    while sum(counts) < size:
        counts[order[k % len(order)]] += 1
        k += 1
    while sum(counts) > size:
        big = max(range(len(counts)), key=counts.__getitem__)
        counts[big] -= 1
    out: list = []
    for (item, _), n in zip(live, counts, strict=True):
        out.extend([item] * n)
    return out


def _ascii(text: str) -> str:
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if not unicodedata.combining(c)).lower()


def _check_json_safe(text: str) -> str:
    if '"' in text or "\\" in text or any(ord(c) < 32 for c in text):
        raise ValueError(f"unsafe text in demo tables: {text!r}")
    return text


class _City:
    __slots__ = ("cidade", "uf", "ddd", "region", "streets", "cep_range", "tel")

    def __init__(self, cidade: str, uf: str, ddd: int, region: int):
        self.cidade = cidade
        self.uf = uf
        self.ddd = ddd
        self.region = region  # the CPF fiscal-region digit of the UF
        self.streets: list[tuple[str, str, str]] = []  # (head, tail with UF, tail with uf)
        self.cep_range = (0, 0)
        self.tel = f"+55 {ddd} 9"


class _Static:
    """Seed-independent lookup tables, built once."""

    def __init__(self) -> None:
        uf_pop: dict[str, int] = {}
        uf_region: dict[str, int] = {}
        for chunk in _UF_DATA.replace("\n", "|").split("|"):
            if chunk.strip():
                uf, pop, region = chunk.split()
                uf_pop[uf] = int(pop)
                uf_region[uf] = int(region)
        assert sorted(uf_pop) == sorted(UFS)

        self.cities: list[_City] = []
        city_weights: list[tuple[_City, float]] = []
        self.by_uf: dict[str, list[_City]] = {}
        text = _CITY_DATA.strip()
        # one UF per logical line: a line starting with "XX:" opens a UF
        logical: list[str] = []
        for line in text.split("\n"):
            if line[:1] != " " and line[2:3] == ":":
                logical.append(line)
            else:
                logical[-1] += line
        for entry in logical:
            uf, rest = entry.split(":", 1)
            specs = [s.strip() for s in rest.split(";") if s.strip()]
            parsed = []
            for spec in specs:
                name, pop, ddd, ceps = spec.split(":")
                lo, hi = (int(x) for x in ceps.split("-"))
                parsed.append((name.strip(), int(pop), int(ddd), lo, hi))
            uf_total = sum(p[1] for p in parsed)
            local: list[tuple[_City, float]] = []
            for city_name, city_pop, city_ddd, lo, hi in parsed:
                city = _City(_check_json_safe(city_name), uf, city_ddd, uf_region[uf])
                self.cities.append(city)
                city.cep_range = (lo, hi)
                city_weights.append((city, uf_pop[uf] * city_pop / uf_total))
                local.append((city, city_pop))
                self._build_streets(city, lo, hi)
            self.by_uf[uf] = _weighted(local, 256)
        assert sorted(self.by_uf) == sorted(UFS)
        self.city_table: list[_City] = _weighted(city_weights, 8192)

        def names(spec: str) -> list[tuple[str, str]]:
            out = []
            for part in spec.split("|"):
                name, w = part.split(":")
                out.append(((_check_json_safe(name), _ascii(name)), int(w)))
            return _weighted(out, 256)

        self.first = (names(_FIRST_F), names(_FIRST_M))
        # middle names: ~40 % of people have one
        self.middle = tuple(
            _weighted(
                [((None, None), 30)] + [((_check_json_safe(m), _ascii(m)), 1) for m in mids],
                128,
            )
            for mids in (_MIDDLE_F, _MIDDLE_M)
        )
        surnames = []
        for part in _SURNAMES.split("|"):
            name, w, particle = part.split(":")
            with_p = name if particle == "-" else f"{particle} {name}"
            surnames.append(((_check_json_safe(name), with_p, _ascii(name)), int(w)))
        self.surnames: list[tuple[str, str, str]] = _weighted(surnames, 1024)

        self.domains = _weighted(_EMAIL_DOMAINS, 64)
        self.domains_pj = _weighted(_EMAIL_DOMAINS_PJ, 64)
        self.canais = _weighted(_CANAIS, 16)
        self.ages = _weighted([(age, w) for lo, hi, w in _AGE_BANDS for age in range(lo, hi + 1)], 1024)
        self.d2 = [f"{k:02d}" for k in range(100)]
        self.d4 = [f"{k:04d}" for k in range(10000)]

        rnd = random.Random("lh360-demo-static-v1")
        self.numeros = self._numeros(rnd)
        self.complementos = self._complementos(rnd)
        self.tags = tuple(self._tags(rnd, w, seg) for w, seg in zip(_TAG_WEIGHTS, _SEGMENTS, strict=True))
        self.renda_base, self.renda_width, self.renda_cents, self.renda_seg = self._renda()
        # birthdays: "MM-DD" of a common year (no 29 February)
        self.month_days = [(date(2001, 1, 1) + timedelta(days=k)).strftime("%m-%d") for k in range(365)]

        self.phone_a = [str(6000 + k % 4000) for k in range(4096)]
        self.phone_b = [self.d4[k % 10000] for k in range(16384)]
        # ~90.6 % active; an update that touches ativo reads the toggled half
        self.ativo = ["true"] * 29 + ["false"] * 3 + ["false"] * 29 + ["true"] * 3
        # CPF: the 9 base digits are hi (4) lo (4) region (1); weighted digit
        # sums of each 4-digit half for both check digits, and their text
        # ("123.4" + "56.78" + "9" + "-" + "09" = "123.456.789-09").
        digits = [(k // 1000, k // 100 % 10, k // 10 % 10, k % 10) for k in range(10000)]

        def weighted(weights: tuple[int, ...]) -> list[int]:
            return [sum(d * w for d, w in zip(ds, weights, strict=True)) for ds in digits]

        # compact arrays: these are read at random, so keep them cache-sized
        self.cpf_w1 = (array("H", weighted((10, 9, 8, 7))), array("H", weighted((6, 5, 4, 3))))
        self.cpf_w2 = (array("H", weighted((11, 10, 9, 8))), array("H", weighted((7, 6, 5, 4))))
        self.cpf_hi = [f"{k // 10:03d}.{k % 10}" for k in range(10000)]
        self.cpf_lo = [f"{k // 100:02d}.{k % 100:02d}" for k in range(10000)]

    def _build_streets(self, city: _City, lo: int, hi: int) -> None:
        rnd = random.Random(f"lh360-demo-streets:{city.cidade}:{city.uf}")
        bairros = _CITY_BAIRROS.get(city.cidade)
        pool = bairros.split("|") if bairros else _GENERIC_BAIRROS
        types = _weighted(_STREET_TYPES, 100)
        seen: set[str] = set()
        while len(city.streets) < 64:
            logradouro = f"{rnd.choice(types)} {rnd.choice(_STREET_NAMES)}"
            bairro = rnd.choice(pool)
            key = logradouro + "/" + bairro
            if key in seen:
                continue
            seen.add(key)
            cep = f"{rnd.randint(lo, hi):05d}-{rnd.randrange(1000):03d}"
            head = '{"logradouro":"' + _check_json_safe(logradouro) + '","numero":"'
            rest = ',"bairro":"' + _check_json_safe(bairro) + '","cidade":"' + city.cidade + '","uf":"'
            tail = '","cep":"' + cep + '"}'
            # the part after the complement, with the UF in upper and in lower case
            city.streets.append((head, rest + city.uf + tail, rest + city.uf.lower() + tail))

    @staticmethod
    def _numeros(rnd: random.Random) -> list[str]:
        out = []
        for _ in range(2048):
            r = rnd.random()
            if r < 0.03:
                out.append("S/N")
            elif r < 0.15:
                out.append(str(rnd.randint(1, 99)))
            else:  # log-uniform: short numbers are commoner than long ones
                out.append(str(int(math.exp(rnd.uniform(math.log(10.0), math.log(5000.0))))))
        return out

    @staticmethod
    def _complementos(rnd: random.Random) -> list[str]:
        out = []
        for _ in range(256):
            r = rnd.random()
            if r < 0.55:
                out.append("null")
                continue
            if r < 0.75:
                text = f"Apto {rnd.randint(1, 25)}{rnd.randint(1, 8):02d}"
            elif r < 0.83:
                text = f"Bloco {rnd.choice('ABCDEF')} Apto {rnd.randint(1, 12)}0{rnd.randint(1, 4)}"
            elif r < 0.90:
                text = f"Casa {rnd.randint(1, 6)}"
            elif r < 0.94:
                text = f"Sala {rnd.randint(1, 30)}{rnd.randint(1, 20):02d}"
            elif r < 0.97:
                text = f"Quadra {rnd.randint(1, 40)} Lote {rnd.randint(1, 30)}"
            else:
                text = rnd.choice(("Fundos", "Loja 1", "Térreo", "Casa dos fundos"))
            out.append('"' + text + '"')
        return out

    @staticmethod
    def _tags(rnd: random.Random, weights: tuple[int, ...], segment: str) -> list[str]:
        """256 ``tags`` values (JSON), each followed by the ``segmento`` field."""
        counts = _weighted([(0, 28), (1, 36), (2, 24), (3, 12)], 256)
        out = []
        for n in counts:
            chosen: list[str] = []
            while len(chosen) < n:
                tag = rnd.choices(_TAGS, weights)[0]
                if tag not in chosen:
                    chosen.append(tag)
            chosen.sort(key=_TAGS.index)
            out.append("[" + ",".join(f'"{t}"' for t in chosen) + f'],"segmento":"{segment}"')
        rnd.shuffle(out)
        return out

    @staticmethod
    def _renda() -> tuple[list[int], list[int], list[int], list[int]]:
        """4,096 equal-probability income bins: a 4 % lump at exactly the minimum
        wage, then 1412 + a log-normal, capped at 80,000.  Per bin: the lowest
        whole reais, the bin's width in reais, the cents modulus (1 keeps
        ``.00``) and the segment (0 varejo, 1 alta_renda, 2 private)."""
        nd = NormalDist()
        mu, sigma, lump, size = math.log(2500.0), 0.95, 0.04, 4096

        def quantile(qq: float) -> float:
            x = (qq - lump) / (1 - lump)
            if x <= 0:
                return _MIN_WAGE
            if x >= 1:
                return _MAX_RENDA
            return min(_MAX_RENDA, _MIN_WAGE + math.exp(mu + sigma * nd.inv_cdf(x)))

        base, width, cents, seg = [], [], [], []
        for k in range(size):
            lo, hi = int(quantile(k / size)), int(quantile((k + 1) / size))
            fixed = lo == int(_MIN_WAGE) and hi == lo or lo >= int(_MAX_RENDA)
            base.append(lo)
            width.append(0 if fixed else max(0, min(hi, int(_MAX_RENDA) - 1) - lo))
            cents.append(1 if fixed else 100)
            seg.append(2 if lo >= _PRIVATE_FROM else 1 if lo >= _ALTA_RENDA_FROM else 0)
        return base, width, cents, seg


@lru_cache(maxsize=1)
def _static() -> _Static:
    return _Static()


@lru_cache(maxsize=8)
def _hash_tables(
    seed: int,
) -> tuple[tuple[list[int], ...], tuple[list[int], ...], tuple[array, ...]]:
    """Two independent tabulation hashes (3 x 12-bit characters, 384-bit output)
    and the round functions of a Feistel permutation of 0..10**8-1 (for CPFs)."""
    rnd = random.Random(f"lh360-demo:{seed}")
    per_id = tuple([rnd.getrandbits(384) for _ in range(4096)] for _ in range(3))
    per_pos = tuple([rnd.getrandbits(384) for _ in range(4096)] for _ in range(3))
    feistel = tuple(array("H", [rnd.randrange(10000) for _ in range(10000)]) for _ in range(3))
    return per_id, per_pos, feistel


# --------------------------------------------------------------------------
# Bad records
# --------------------------------------------------------------------------


def bad_positions(rows: int, seed: int = 42) -> dict[int, str]:
    """Row indices (0-based) of the deliberately bad records and their kind.

    About one per 1,000 rows, and at least one of each kind in ``BAD_KINDS``
    when ``rows >= 500`` (fewer, one per 100 rows, below that).
    """
    if rows >= 500:
        count = max(len(BAD_KINDS), rows // 1000)
    else:
        count = rows // 100
    if count <= 0:
        return {}
    rnd = random.Random(f"lh360-demo-bad:{seed}:{rows}")
    first_kind = rnd.randrange(len(BAD_KINDS))
    out: dict[int, str] = {}
    for k in range(count):
        lo = k * rows // count
        hi = (k + 1) * rows // count
        out[lo + rnd.randrange(hi - lo)] = BAD_KINDS[(first_kind + k) % len(BAD_KINDS)]
    return out


def _make_bad(line: str, kind: str, variant: int) -> str:
    if kind == "malformed_json":
        return line[: len(line) * 3 // 5]
    if kind == "wrong_type":
        if variant:
            end = line.index(",", 6)
            return line[:6] + '"' + line[6:end] + 'a"' + line[end:]
        start = line.index('"renda_mensal":') + 15
        end = line.index(",", start)
        return line[:start] + '"abc"' + line[end:]
    if kind == "unknown_field":
        return line[:-1] + ',"campo_legado":"x"}'
    if kind == "cpf_wrong_length":
        start = line.index('"cpf":"') + 7
        return line[: start + 10] + line[start + 14 :]
    if kind == "email_without_at":
        return line.replace("@", ".", 1)
    if kind == "invalid_uf":
        start = line.index('"uf":"') + 6
        return line[:start] + "XX" + line[start + 2 :]
    raise ValueError(f"unknown bad kind {kind!r}")


# --------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------


def _normalize_start(start: datetime | None) -> datetime:
    if start is None:
        start = DEFAULT_START
    if start.tzinfo is None:
        start = start.replace(tzinfo=BRT)
    return start.astimezone(BRT).replace(microsecond=0)


def _make_renderer(rows: int, seed: int, start: datetime | None, span: timedelta, bad: bool) -> Callable[[int], str]:
    """Return ``line(i)``: the NDJSON text of record ``i`` of this stream."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if rows >= 1 << 36:
        raise ValueError("rows must be < 2**36")
    span_s = int(span.total_seconds())
    if span_s < 1:
        raise ValueError("span must be at least one second")
    st = _static()
    (ta0, ta1, ta2), (tb0, tb1, tb2), (fa, fb, fc) = _hash_tables(seed)
    start = _normalize_start(start)
    base_ord = start.toordinal()
    base_sod = start.hour * 3600 + start.minute * 60 + start.second
    d2 = st.d2
    w1h, w1l = st.cpf_w1
    w2h, w2l = st.cpf_w2
    cpf_hi, cpf_lo = st.cpf_hi, st.cpf_lo
    phone_a, phone_b, ativo_tbl = st.phone_a, st.phone_b, st.ativo
    city_table, by_uf = st.city_table, st.by_uf
    first_tbl, middle_tbl, surnames = st.first, st.middle, st.surnames
    domains, domains_pj, canais, ages = st.domains, st.domains_pj, st.canais, st.ages
    numeros, complementos, tags_tbl = st.numeros, st.complementos, st.tags
    renda_base, renda_width, renda_cents, renda_seg = st.renda_base, st.renda_width, st.renda_cents, st.renda_seg
    month_days = st.month_days
    years = [str(start.year - k) for k in range(120)]
    warm = max(1, rows // 10)  # initial load: all new ids, no updates
    rows1024 = max(rows, 1) * 1024
    cpf_offset = (ta0[7] ^ tb1[11]) % 100_000_000
    # updates never target a row that is (or would be, with bad=True) broken,
    # so bad=True changes exactly the announced lines and nothing else
    avoid = bad_positions(rows, seed)
    bad_at = avoid if bad else {}
    lag = rows // span_s + 2  # rows per second of timeline, plus margin

    day_cache: dict[int, str] = {}
    last: list[Any] = [-1, ""]  # the most recent updated_at offset and its text
    blk = [-1, 0]  # the most recent block and its update slot

    def day_str(ordinal: int) -> str:
        text = day_cache.get(ordinal)
        if text is None:
            text = day_cache[ordinal] = date.fromordinal(ordinal).isoformat()
        return text

    def fmt(off: int) -> str:
        """ISO-8601 text of ``start + off`` seconds, in -03:00."""
        tot = base_sod + off
        sod = tot % 86400
        return f"{day_str(base_ord + tot // 86400)}T{d2[sod // 3600]}:{d2[sod // 60 % 60]}:{d2[sod % 60]}-03:00"

    def ts_off(i: int) -> int:
        q = tb0[i & 4095] ^ tb1[(i >> 12) & 4095] ^ tb2[i >> 24]
        return ((i * 1024 + ((q >> 264) & 1023)) * span_s) // rows1024

    def block_update_offset(b: int) -> int:
        q = tb0[b & 4095] ^ tb1[(b >> 12) & 4095] ^ tb2[b >> 24]
        return ((q >> 312) & 0xFFFF) % 10

    def pos_of(ident: int) -> int:
        if ident <= warm:
            return ident - 1
        b, r = divmod(ident - warm - 1, 9)
        u = block_update_offset(b)
        return warm + b * 10 + (r if r < u else r + 1)

    def line(i: int) -> str:
        """Record ``i``.  Each id has a pool ``p`` and each row a pool ``q`` of
        48 random bytes (``pb``/``qb``).  Byte layout: 0 gender/quirks,
        1 first name, 2 middle name, 3-6 surnames, uf case (6), 7-8 age, pj (8),
        9-10 day of year, canal (10), 11-12 city, 13 street + move flag,
        14-15 number, ativo (15), 16 complement, 17-20 phone, e-mail pattern
        (18), 21-22 + 42-43 income, 23 tags, 24-27 e-mail, 28-32 created_at.
        Row pools: 33-34 jitter, 35-37 update target, 38 update flags, 39-40
        the block's update slot, 41 same-UF move.  An update reads the facets
        in ``mask`` (1 income, 2 e-mail, 4 ativo, 8 address) from ``qb``.
        """
        if not 0 <= i < rows:
            raise IndexError(i)
        q = tb0[i & 4095] ^ tb1[(i >> 12) & 4095] ^ tb2[i >> 24]
        off_i = ((i * 1024 + ((q >> 264) & 1023)) * span_s) // rows1024
        if off_i == last[0]:
            upd = last[1]
        else:
            upd = last[1] = fmt(off_i)
            last[0] = off_i
        mask = 0
        if i < warm:
            ident = i + 1
            created = ""
        else:
            b, off = divmod(i - warm, 10)
            if b == blk[0]:
                u = blk[1]
            else:
                u = blk[1] = block_update_offset(b)
                blk[0] = b
            if off != u:
                ident = warm + b * 9 + (off if off < u else off - 1) + 1
                created = upd
            else:  # an UPDATE of an earlier id
                qb = q.to_bytes(48, "little")
                avail = warm + b * 9 + u  # ids handed out before this row
                pick = qb[35] | qb[36] << 8 | qb[37] << 16
                if qb[38] & 1:  # a recent customer
                    ident = avail - lag - pick % min(avail, 5000)
                else:
                    ident = 1 + pick % avail
                ident = chosen = max(1, min(ident, avail))
                while ident >= 1:  # skip bad originals and same-second ones
                    tpos = pos_of(ident)
                    if tpos not in avoid and ts_off(tpos) < off_i:
                        break
                    ident -= 1
                if ident < 1:
                    ident = chosen
                # facets: income 50 %, e-mail 25 %, ativo (toggled) 12.5 %,
                # address 25 % (within the UF); at least one of them
                x = qb[38]
                mask = (x >> 1) & 1 | (2 if (x >> 2) & 7 < 2 else 0) | (4 if x >> 5 == 0 else 0)
                mask = mask | (8 if qb[34] & 12 == 0 else 0) or 1
                created = "" if ident <= warm else fmt(ts_off(pos_of(ident)))
        pb = (ta0[ident & 4095] ^ ta1[(ident >> 12) & 4095] ^ ta2[ident >> 24]).to_bytes(48, "little")
        # -- name ----------------------------------------------------------
        g = pb[0] & 1
        first, first_a = first_tbl[g][pb[1]]
        middle, middle_a = middle_tbl[g][pb[2] & 127]
        x = pb[4]
        s1, s1p, s1a = surnames[pb[3] | (x & 3) << 8]
        s2, s2p, s2a = surnames[pb[5] | (pb[6] & 3) << 8]
        if x & 48 and s1 != s2:
            surname = f"{s1p if x & 12 == 0 else s1} {s2p if x & 192 == 0 else s2}"
            last_a = s2a
        else:
            surname = s1p if x & 8 == 0 else s1  # "da Silva" vs "Silva"
            last_a = s1a
        nome = f"{first} {middle} {surname}" if middle else f"{first} {surname}"
        quirk = pb[0] >> 2
        if quirk < 6:
            if quirk < 2:
                nome = nome.lower()
            elif quirk == 2:
                nome = nome.upper()
            elif quirk == 3:
                nome = f"  {nome} "
            elif quirk == 4:
                nome = nome + "   "
            else:
                nome = nome.replace(" ", "  ", 1)
        # -- birth: born in year start-age-1, so 18 <= age on start <= 90 -----
        age = ages[pb[7] | (pb[8] & 3) << 8]
        birth_year = years[age + 1]
        # -- address -------------------------------------------------------
        city = city_table[pb[11] | (pb[12] & 31) << 8]
        if mask & 8:
            ab = qb
            if qb[13] & 128:  # moved to another city of the same UF
                street = by_uf[city.uf][qb[41]].streets[qb[13] & 63]
            else:
                street = city.streets[qb[13] & 63]
        else:
            ab = pb
            street = city.streets[pb[13] & 63]
        # -- cpf: the id mapped 1:1 onto 8 digits (3 Feistel rounds) + region
        hi, lo = divmod((ident + cpf_offset) % 100_000_000, 10000)
        hi, lo = lo, (hi + fa[lo]) % 10000
        hi, lo = lo, (hi + fb[lo]) % 10000
        hi, lo = lo, (hi + fc[lo]) % 10000
        reg = city.region
        c1 = (w1h[hi] + w1l[lo] + 2 * reg) * 10 % 11 % 10
        c2 = (w2h[hi] + w2l[lo] + 3 * reg + 2 * c1) * 10 % 11 % 10
        # -- money, segment ------------------------------------------------
        rb = qb if mask & 1 else pb
        ridx = rb[21] | (rb[22] & 15) << 8  # income bin; 42 spreads within it, 43 cents
        renda = f"{renda_base[ridx] + (rb[42] * renda_width[ridx] >> 8)}.{d2[(rb[43] >> 1) % renda_cents[ridx]]}"
        seg = renda_seg[ridx]
        if seg == 0 and (pb[8] >> 2) & 31 < 3:
            seg = 3
        # -- e-mail --------------------------------------------------------
        eb = qb if mask & 2 else pb
        pat = eb[18] >> 4
        if pat < 5:
            local = f"{first_a}.{last_a}"
        elif pat < 7:
            local = f"{first_a}{last_a}"
        elif pat == 7:
            local = f"{first_a}_{last_a}"
        elif pat < 10:
            local = f"{first_a}.{last_a}{d2[eb[24] & 63]}"
        elif pat == 10:
            local = f"{first_a}.{last_a}{birth_year[2:]}"
        elif pat == 11 and middle_a:
            local = f"{first_a}.{middle_a}.{last_a}"
        elif pat == 12:
            local = f"{last_a}.{first_a}"
        elif pat == 13:
            local = f"{first_a[0]}{last_a}{eb[25] | (eb[26] & 3) << 8}"
        else:
            local = f"{first_a}.{s1a}"
        dom = (domains_pj if seg == 3 else domains)[eb[26] >> 2]
        casing = eb[27] & 31
        if casing < 3:
            if casing < 2:
                local = local.title()
            else:
                local, dom = local.upper(), dom.upper()
        if not created:  # initial load: a customer since up to 15 years ago
            back = 1 + (pb[28] | pb[29] << 8) % max(1, min(5475, (age - 18) * 365))
            tod = (pb[30] | pb[31] << 8 | (pb[32] & 1) << 16) % 86400
            created = fmt(-back * 86400 + tod - base_sod)
        text = (
            f'{{"id":{ident},"cpf":"{cpf_hi[hi]}{cpf_lo[lo]}{reg}-{d2[c1 * 10 + c2]}",'
            f'"nome":"{nome}","email":"{local}@{dom}","telefone":"{city.tel}'
            f'{phone_a[pb[17] | (pb[18] & 15) << 8]}-{phone_b[pb[19] | (pb[20] & 63) << 8]}",'
            f'"data_nascimento":"{birth_year}-{month_days[(pb[9] | (pb[10] & 1) << 8) % 365]}",'
            f'"endereco":{street[0]}{numeros[ab[14] | (ab[15] & 7) << 8]}'
            f'","complemento":{complementos[ab[16]]}{street[1 + (pb[6] < 8)]},'
            f'"renda_mensal":{renda},"ativo":{ativo_tbl[pb[15] >> 3 ^ (mask & 4) << 3]},'
            f'"tags":{tags_tbl[seg][pb[23]]},"canal_origem":"{canais[(pb[10] >> 1) & 15]}",'
            f'"created_at":"{created}","updated_at":"{upd}"}}'
        )
        if i in bad_at:
            text = _make_bad(text, bad_at[i], (q >> 276) & 1)
        return text

    return line


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def generate_records(
    rows: int,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    span: timedelta = DEFAULT_SPAN,
) -> Iterator[str]:
    """Yield ``rows`` NDJSON lines (without newline) of the ``clientes`` stream.

    ``updated_at`` runs from ``start`` (default 2025-11-24T06:00:00-03:00; a
    naive datetime is read as -03:00 wall time) to ``start + span``.
    """
    line = _make_renderer(rows, seed, start, span, bad)  # validates eagerly
    return map(line, range(rows))


def record_line(
    i: int,
    rows: int,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    span: timedelta = DEFAULT_SPAN,
) -> str:
    """Line ``i`` of ``generate_records(rows, seed, ...)``, computed on its own."""
    return _make_renderer(rows, seed, start, span, bad)(i)


def file_mtimes(files: int, *, start: datetime | None = None, span: timedelta = DEFAULT_SPAN) -> list[datetime]:
    """The mtimes ``write_landing`` gives its files: file k (0-based) gets
    ``start + (k + 1) * span / files`` (whole seconds, strictly increasing), so
    it is never older than the newest ``updated_at`` inside it."""
    begin = _normalize_start(start)
    span_s = int(span.total_seconds())
    out: list[datetime] = []
    prev = -1
    for k in range(files):
        off = max(prev + 1, -(-(k + 1) * span_s // files))
        out.append(begin + timedelta(seconds=off))
        prev = off
    return out


@lru_cache(maxsize=2)
def _cached_renderer(rows: int, seed: int, start: datetime | None, span: timedelta, bad: bool) -> Callable[[int], str]:
    return _make_renderer(rows, seed, start, span, bad)


def _write_file(
    directory: Path,
    k: int,
    rows: int,
    files: int,
    seed: int,
    start: datetime | None,
    span: timedelta,
    bad: bool,
    gzip_every: int,
    fsync: bool,
) -> Path:
    """Write landing file ``k`` (0-based) atomically; return its final path."""
    line = _cached_renderer(rows, seed, start, span, bad)
    mtime = file_mtimes(files, start=start, span=span)[k]
    lo, hi = k * rows // files, (k + 1) * rows // files
    gz = gzip_every > 0 and (k + 1) % gzip_every == 0
    name = f"clientes_{k + 1:06d}.json"
    folder = directory / f"{mtime.year:04d}/{mtime.month:02d}/{mtime.day:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (name + ".gz" if gz else name)
    tmp = folder / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    stamp = int(mtime.timestamp())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            # the gzip header carries the final name and mtime: byte-for-byte stable
            out = (
                gzip.GzipFile(filename=final.name, mode="wb", fileobj=raw, mtime=stamp, compresslevel=6) if gz else raw
            )
            for a in range(lo, hi, 8192):
                text = "\n".join(map(line, range(a, min(hi, a + 8192))))
                out.write((text + "\n").encode("utf-8"))
            if gz:
                out.close()
            if fsync:
                raw.flush()
                os.fsync(raw.fileno())
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final


def write_landing(
    directory: Path,
    rows: int = 5000,
    files: int = 10,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad: bool = True,
    gzip_every: int = 0,
    span: timedelta = DEFAULT_SPAN,
    workers: int = 1,
    fsync: bool = False,
) -> list[Path]:
    """Write the stream as ``files`` NDJSON files under ``directory``.

    File k (1-based) is ``YYYY/MM/DD/clientes_<k:06d>.json`` (``.json.gz`` when
    ``gzip_every > 0`` and k is a multiple of it), the date being that of the
    file's mtime (see ``file_mtimes``) in -03:00.  Rows are split evenly (file
    k holds rows ``(k-1)*rows//files`` up to ``k*rows//files``; with more files
    than rows some files are empty).  Each file is written to a hidden
    temporary name (``.clientes_…tmp``) in its folder, given its mtime, then
    renamed into place, so a reader never sees a partial file; ``fsync=True``
    also flushes it to disk first (slower, survives power loss).  The
    concatenated lines equal ``generate_records`` with the same arguments.
    ``workers > 1`` writes files in that many forked processes (same bytes);
    it falls back to one process when the caller runs other threads or the
    platform cannot fork.
    Returns the paths in file order.
    """
    if files < 1:
        raise ValueError("files must be >= 1")
    if gzip_every < 0:
        raise ValueError("gzip_every must be >= 0")
    directory = Path(directory)
    _make_renderer(rows, seed, start, span, bad)  # validate before writing anything
    args = (rows, files, seed, start, span, bad, gzip_every, fsync)
    # Forking is only safe from a single-threaded process (and, unlike spawn,
    # it does not re-import the caller's __main__); otherwise write serially.
    if (
        workers <= 1
        or files == 1
        or threading.active_count() > 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return [_write_file(directory, k, *args) for k in range(files)]
    _static(), _hash_tables(seed)  # built once here, inherited by the workers
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, files), mp_context=ctx) as pool:
        futures = [pool.submit(_write_file, directory, k, *args) for k in range(files)]
        return [f.result() for f in futures]
