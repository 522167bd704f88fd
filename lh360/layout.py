"""Where everything lives under a target's lake URI: one layout, whichever engine writes. Each table's layers,
and lh360's own folder `_lh360/`: the ledgers (runs, checks, erasures), per-table state, and the table locks."""

from __future__ import annotations

from dataclasses import dataclass

from lh360.storage import join

LAYERS = ("bronze", "silver", "gold")
LEDGERS = ("runs", "checks", "erasures")
PRIVATE = "_lh360"  # lh360's own folder under the lake


@dataclass(frozen=True)
class Lake:
    uri: str

    def table(self, layer: str, name: str) -> str:
        if layer not in (*LAYERS, "quarantine"):
            raise ValueError(f"unknown layer {layer!r}")
        return join(self.uri, layer, name)

    def state(self, table: str, *parts: str) -> str:
        return join(self.uri, PRIVATE, "state", table, *parts)

    def ledger(self, name: str) -> str:
        """A ledger's Delta table (`lh360.<name>` in SQL)."""
        if name not in LEDGERS:
            raise ValueError(f"unknown ledger {name!r}")
        return join(self.uri, PRIVATE, name)

    @property
    def runs(self) -> str:
        return self.ledger("runs")

    @property
    def checks(self) -> str:
        return self.ledger("checks")

    @property
    def erasures(self) -> str:
        return self.ledger("erasures")

    def locks(self) -> str:
        return join(self.uri, PRIVATE, "locks")

    def lock(self, table: str) -> str:
        """A table's lock: the object of an S3 lake, the file of a local one."""
        return join(self.locks(), f"{table}.lock")


def landing_prefix(landing: str, source_path: str) -> str:
    """Where a table's files land: its spec's `source.path` under the target's landing URI."""
    return join(landing, source_path)
