"""`lh360 docs`: a static site about one lakehouse on one target, built through `Lakehouse`.

    collect.py   what the site shows, as plain data (Delta logs, ledgers, landing state, the specs)
    graph.py     the lineage graph and its layered layout (also what `plan --format mermaid` draws)
    svg.py       the SVG: lineage, check charts, run timelines (drawn here: no library, no network)
    html.py      the pages
    serve.py     `docs serve`: the site on 127.0.0.1, rebuilt when a page is asked for
    static/      the stylesheet and the script every page links to

The site is a folder of relative links (index.html, tables/<table>.html, assets/, site.json) that opens from
file:// with nothing fetched from anywhere.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from lh360.errors import UsageError
from lh360.site.collect import DEFAULT_SINCE_S, SiteData, collect_site
from lh360.site.html import pages, site_json

if TYPE_CHECKING:
    from lh360.context import Lakehouse

ASSETS = ("site.css", "site.js")


@dataclass
class SiteBuild:
    out: Path
    pages: int
    tables: int
    bytes: int
    seconds: float
    data: SiteData

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "out": str(self.out),
            "index": str(self.out / "index.html"),
            "target": self.data.target,
            "pages": self.pages,
            "tables": self.tables,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "ledger": self.data.ledger,
            "notes": [n for t in self.data.tables for n in t.notes] + self.data.notes,
        }


def build_site(
    lh: Lakehouse, out: str | Path, *, since_s: float = DEFAULT_SINCE_S, now: float | None = None
) -> SiteBuild:
    """Collect everything and write the site under `out` (created if needed). Only the site's own files are
    written or replaced (index.html, site.json, assets/, tables/); a table page whose spec is gone is removed."""
    started = time.monotonic()
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file is there; give a folder for the site")
    data = collect_site(lh, since_s=since_s, now=now)
    rendered = pages(data)
    rendered["site.json"] = site_json(data)
    for name in ASSETS:
        rendered[f"assets/{name}"] = resources.files("lh360.site").joinpath("static", name).read_text("utf-8")
    written = 0
    for rel, text in rendered.items():
        written += _write(out / rel, text)
    _remove_stale_pages(out / "tables", {Path(rel).name for rel in rendered if rel.startswith("tables/")})
    return SiteBuild(out, len(rendered) - len(ASSETS) - 1, len(data.tables), written, time.monotonic() - started, data)


def _write(path: Path, text: str) -> int:
    """Write through a temporary file and rename, so `docs serve` never serves half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)


def _remove_stale_pages(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for page in folder.glob("*.html"):
        if page.name not in keep:
            page.unlink(missing_ok=True)
