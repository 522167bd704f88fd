"""An erasure request (`lh360 forget`), as every engine sees it: the subject and the journal that makes an
interrupted erasure finish on a rerun.

`Subject`: the table, the key columns and values as given (`--key cpf=…`), and `request`, an HMAC of the
canonical key under the PII key (lh360.pii): the erasure's id in journals, Delta commits and the erasure
ledger, which never hold the values themselves.

`Journal` (`<lake>/_lh360/state/<table>/forget/<request>.json`) is written before the first change and
deleted after the last. It holds no value either: the landing files to rewrite (names), whether bronze was
append-only, rows erased so far per layer, and `fingerprints`, HMACs of the subject's values per column
(how its rows are recognised in check samples once bronze no longer holds them). A rerun of the same
request finds it and finishes: every step is idempotent (a layer already erased matches nothing).
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from lh360 import pii
from lh360.config import ResolvedTarget
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import delete_noncurrent, store_for


@dataclass(frozen=True)
class Subject:
    table: str
    keys: dict[str, str]  # column → value, as given
    request: str  # HMAC of the canonical key: the erasure's id (lh360.pii.hmac_hex)

    @property
    def columns(self) -> list[str]:
        return list(self.keys)


def key_columns(spec: TableSpec) -> list[str]:
    """The columns a subject can be named by: silver's (as silver.columns computes them), else bronze's."""
    if spec.silver is not None and spec.silver.columns:
        return list(spec.silver.columns)
    return []


def parse_keys(spec: TableSpec, items: list[str]) -> dict[str, str]:
    """`["cpf=009.946.509-49", …]` → {column: value}; a usage error for a malformed item or an unknown
    column (naming the ones there are)."""

    if not items:
        raise UsageError("name the subject: --key COLUMN=VALUE (e.g. --key cpf=123.456.789-09)")
    known = key_columns(spec)
    keys: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column or value == "":
            raise UsageError(f"--key {item.split('=', 1)[0]}=…: expected COLUMN=VALUE")
        if known and column not in known:
            raise UsageError(f"--key {column}: {spec.table} has no such column; its columns: {', '.join(known)}")
        if column in keys and keys[column] != value:
            raise UsageError(f"--key {column} given twice with different values")
        keys[column] = value
    return keys


def subject(spec: TableSpec, keys: dict[str, str]) -> Subject:
    canonical = json.dumps({"table": spec.table, "keys": dict(sorted(keys.items()))}, sort_keys=True)
    key = pii.key_bytes("lh360 forget records the erasure under an HMAC of its key")
    return Subject(spec.table, dict(keys), pii.hmac_hex(canonical, key)[:32])


def fingerprint(value: str) -> str:
    """How a journal remembers one of the subject's values: an HMAC under a key derived from the PII key, so
    that it is not the value silver stores for a hashed column (which `--vacuum` must leave nowhere)."""

    derived = hmac.digest(pii.key_bytes("lh360 forget"), b"lh360 forget fingerprints", "sha256")
    return hmac.digest(derived, value.encode("utf-8"), "sha256").hex()


@dataclass
class Journal:
    """See the module docstring. `data` is saved as JSON."""

    target: ResolvedTarget
    table: str
    request: str
    data: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    @property
    def uri(self) -> str:
        return Lake(self.target.lake).state(self.table, "forget", f"{self.request}.json")

    @classmethod
    def open(cls, target: ResolvedTarget, subject: Subject, run_id: str | None = None) -> Journal:
        j = cls(target, subject.table, subject.request)
        store = store_for(target.lake, target.settings.aws)
        try:
            j.data = json.loads(store.read_bytes(j.uri))
            j.resumed = True
        except (FileNotFoundError, ValueError):
            j.data = {}
        except Exception as exc:  # S3: NoSuchKey
            if "NoSuchKey" not in f"{type(exc).__name__} {exc}" and "404" not in str(exc):
                raise
            j.data = {}
        if not j.data:
            j.resumed = False
            j.data = {"request": subject.request, "table": subject.table, "started_at": time.time(), "run_id": run_id}
        return j

    def save(self) -> None:
        store_for(self.target.lake, self.target.settings.aws).write_bytes(
            self.uri, json.dumps(self.data, sort_keys=True).encode()
        )

    def close(self) -> None:
        """Delete the journal, and on a versioned bucket its older versions too (its fingerprints are the
        subject's, however keyed)."""
        store_for(self.target.lake, self.target.settings.aws).delete(self.uri)
        delete_noncurrent([self.uri], self.target.settings.aws)

    # what the steps record

    def counted(self, relation: str) -> dict[str, int]:
        """Rows and files erased from `relation` by this request so far (an interrupted run's included)."""
        return dict(self.data.get("layers", {}).get(relation, {"rows": 0, "files": 0}))

    def count(self, relation: str, rows: int, files: int) -> None:
        layers = self.data.setdefault("layers", {})
        before = layers.get(relation, {"rows": 0, "files": 0})
        layers[relation] = {"rows": before["rows"] + rows, "files": before["files"] + files}
        self.save()

    def fingerprints(self) -> dict[str, set[str]]:
        return {c: set(v) for c, v in self.data.get("fingerprints", {}).items()}

    def add_fingerprints(self, found: dict[str, set[str]]) -> None:
        merged = self.fingerprints()
        for c, values in found.items():
            merged.setdefault(c, set()).update(values)
        self.data["fingerprints"] = {c: sorted(v) for c, v in sorted(merged.items())}
