"""Where every layer of a table lives under a target's lake URI: one layout, whichever engine writes."""

from __future__ import annotations

from dataclasses import dataclass

from lh360.storage import join

LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Lake:
    uri: str

    def table(self, layer: str, name: str) -> str:
        if layer not in (*LAYERS, "quarantine"):
            raise ValueError(f"unknown layer {layer!r}")
        return join(self.uri, layer, name)

    def state(self, table: str, *parts: str) -> str:
        return join(self.uri, "_lh360", "state", table, *parts)

    @property
    def runs(self) -> str:
        return join(self.uri, "_lh360", "runs")

    @property
    def checks(self) -> str:
        return join(self.uri, "_lh360", "checks")

    def locks(self) -> str:
        return join(self.uri, "_lh360", "locks")


def landing_prefix(landing: str, source_path: str) -> str:
    """Where a table's files land: its spec's `source.path` under the target's landing URI."""
    return join(landing, source_path)
