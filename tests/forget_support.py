"""Helpers of the erasure tests: a clientes lakehouse from the demo data, its people, and a search of every
byte of every file (gzip and Parquet values included) for a person's values."""

from __future__ import annotations

import gzip
import hmac
import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, TEST_PII_KEY


def clientes_spec() -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs" / "tables" / "clientes.yaml").read_text())


def build(project, *, rows: int = 400, files: int = 4, seed: int = 7, name: str = "p", validate: bool = True):
    """A project with the demo clientes spec and landing zone (every other file gzipped), run once."""
    from datetime import UTC, datetime

    from lh360.context import Lakehouse
    from lh360.demo.generator import DEFAULT_SPAN, write_landing

    p = project(clientes_spec(), name=name)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - DEFAULT_SPAN
    write_landing(p.landing / "clientes", rows=rows, files=files, seed=seed, gzip_every=2, start=start)
    project_ = p.load()
    lh = Lakehouse(project_, project_.target())
    if validate:
        summary = lh.run(["clientes"])
        assert summary.failed_step in (None, "validate"), summary.error
    else:
        lh.ingest(["clientes"])
        lh.promote(["clientes"], "gold")
    return p


def records(p) -> list[dict[str, Any]]:
    """Every landed record that parses (gzip read through)."""
    out = []
    for path in sorted((p.landing / "clientes").rglob("*.json*")):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        for line in data.decode().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def someone(p, versions: int = 2) -> dict[str, Any]:
    """A person (by id) landed at least `versions` times with one CPF."""
    by_id: dict[Any, list[dict]] = {}
    for rec in records(p):
        by_id.setdefault(rec.get("id"), []).append(rec)
    for ident, recs in sorted(by_id.items(), key=lambda kv: str(kv[0])):
        if ident is not None and len(recs) >= versions and len({r.get("cpf") for r in recs}) == 1:
            if isinstance(recs[0].get("cpf"), str) and len(recs[0]["cpf"]) == 14:
                return recs[0]
    raise AssertionError("no person with several versions in the sample")


def hmac_hex(value: str) -> str:
    return hmac.new(TEST_PII_KEY.encode(), value.encode(), "sha256").hexdigest()


def needles(p, person: dict[str, Any]) -> list[str]:
    """Strings that belong to `person` alone in the landed data: CPF (formatted, digits, its HMAC), e-mail."""
    cpf = person["cpf"]
    digits = "".join(ch for ch in cpf if ch.isdigit())
    out = [cpf, digits, hmac_hex(digits)]
    others = [r for r in records(p) if r.get("id") != person["id"]]
    for value in (person.get("email"), str(person.get("email", "")).lower(), person.get("nome")):
        if value and not any(value in json.dumps(r, ensure_ascii=False) for r in others):
            out.append(value)
    return out


def holders(root: Path, wanted: list[str]) -> list[str]:
    """Files under `root` holding any of `wanted` in their bytes, their gunzipped bytes, or their Parquet
    values (every column, nested ones as text): `file: value`."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        texts = [data]
        if data[:2] == b"\x1f\x8b":
            try:
                texts.append(gzip.decompress(data))
            except (OSError, EOFError):
                pass
        if data[:4] == b"PAR1":
            texts.append(_parquet_text(path).encode())
        for value in wanted:
            if any(value.encode() in t for t in texts):
                found.append(f"{path.relative_to(root)}: {value}")
    return found


def _parquet_text(path: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return json.dumps(table.to_pylist(), default=str, ensure_ascii=False)
