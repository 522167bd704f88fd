"""`lh360 forget`: the right to erasure (LGPD art. 18), the parts every engine shares.

The context (`Lakehouse.forget`) runs an erasure: under the table's lock (and those of the specs whose gold
reads its silver) it opens the request's journal (lh360.erasure), lets the engine erase the subject from
the landing files, bronze, silver and quarantine, then, here:

* scrubs the check ledger's samples: a sample row is the subject's when one of its values is one of the
  subject's (compared through the HMACs in the journal's fingerprints, column by column);
* recomputes the gold relations that read the table's silver (through the engine);
* purges (`--vacuum`) or marks the tables for the next `maintain` (`pending_purges`, `purge_done`): old
  Parquet files, log entries and checkpoints still hold the subject's values until then;
* appends one row to the erasure ledger (`<lake>/_lh360/erasures`): when, which table, which key columns,
  the request's HMAC and rows per layer; never a value.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lh360.config import Project, ResolvedTarget
from lh360.delta import open_table
from lh360.deps import gold_graph, gold_order
from lh360.engines.local.duck import connect
from lh360.engines.local.rewrite import TableFiles, commit_metadata
from lh360.erasure import Journal, Subject, fingerprint
from lh360.layout import Lake
from lh360.storage import store_for

if TYPE_CHECKING:
    from lh360.engines.base import ForgetResult

CHECKS_LEDGER = "lh360.checks"


def dependent_gold(project: Project, table: str) -> list[str]:
    """The gold relations that read silver.<table>, directly or through other gold, in dependency order."""

    graph = gold_graph(project.specs)
    wanted = {f"silver.{table}"}
    changed = True
    while changed:
        changed = False
        for relation, reads in graph.items():
            if relation not in wanted and reads & wanted:
                wanted.add(relation)
                changed = True
    return [r for r in gold_order(project.specs) if r in wanted]


def relations_of(spec: Any) -> list[str]:
    """The lake tables of a spec an erasure rewrites: bronze, and silver and quarantine when it has silver."""
    t = spec.table
    return [f"bronze.{t}", *([f"silver.{t}", f"quarantine.{t}"] if spec.silver is not None else [])]


def existing(target: ResolvedTarget, relations: list[str]) -> list[str]:
    """The relations (layer.name, lh360.runs|checks) that exist in the lake (one layout for every engine)."""

    out = []
    for relation in relations:
        layer, name = relation.split(".", 1)
        uri = Lake(target.lake).ledger(name) if layer == "lh360" else Lake(target.lake).table(layer, name)
        if open_table(uri, target.settings.aws) is not None:
            out.append(relation)
    return out


# ---- the check ledger's samples ----------------------------------------------------------------------


def scrub_samples(target: ResolvedTarget, subject: Subject, fingerprints: dict[str, set[str]]) -> int:
    """Remove the subject's rows from the samples of the check ledger (one commit); returns how many."""

    if not fingerprints:
        return 0
    removed = 0

    def theirs(row: Any) -> bool:
        return isinstance(row, dict) and any(
            v is not None and c in fingerprints and fingerprint(_text(v)) in fingerprints[c] for c, v in row.items()
        )

    def clean(table: Any) -> Any:
        import pyarrow as pa

        nonlocal removed
        samples = table.column("sample").to_pylist()
        out, changed = [], False
        for text in samples:
            try:
                rows = json.loads(text) if text else None
            except ValueError:
                rows = None
            if not isinstance(rows, list):
                out.append(text)
                continue
            kept = [r for r in rows if not theirs(r)]
            if len(kept) != len(rows):
                changed, removed = True, removed + len(rows) - len(kept)
                out.append(json.dumps(kept) if kept else None)
            else:
                out.append(text)
        if not changed:
            return None
        i = table.schema.get_field_index("sample")
        return table.set_column(i, table.schema.field(i), pa.array(out, pa.string()))

    con = connect()
    try:
        with tempfile.TemporaryDirectory(prefix="lh360-forget-") as tmp:
            ledger = TableFiles(con, Lake(target.lake).checks, target.settings.aws, Path(tmp))
            if not ledger.exists or "sample" not in ledger.types:
                return 0
            rels = sorted({rel for rel, *_ in ledger.scan('"sample" IS NOT NULL', [])})
            ledger.transform(rels, clean, commit_metadata("forget", subject.request), what=CHECKS_LEDGER)
    finally:
        con.close()
    return removed


def _text(value: Any) -> str:
    """A sample value as the lake's text of it (CAST(x AS VARCHAR)): what fingerprints hash."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- what still remembers the subject until it is purged ---------------------------------------------


def _purge_uri(target: ResolvedTarget, table: str) -> str:
    return Lake(target.lake).state(table, "purge.json")


def mark_purge(target: ResolvedTarget, table: str, relations: list[str]) -> None:
    """Note the tables whose old files, log entries and checkpoints still hold an erased subject: the next
    `lh360 maintain` (or `forget --vacuum`) purges them."""
    pending = set(pending_purges(target, [table]).get(table, [])) | set(relations)
    doc = {"relations": sorted(pending), "since": time.time()}
    store_for(target.lake, target.settings.aws).write_bytes(_purge_uri(target, table), json.dumps(doc).encode())


def pending_purges(target: ResolvedTarget, tables: list[str]) -> dict[str, list[str]]:
    """table → the relations an erasure left to purge (what `maintain` must VACUUM with retention 0, then
    checkpoint and clean the log of: Engine.purge)."""
    store = store_for(target.lake, target.settings.aws)
    out = {}
    for table in tables:
        try:
            doc = json.loads(store.read_bytes(_purge_uri(target, table)))
        except Exception as exc:
            if isinstance(exc, (FileNotFoundError, ValueError)) or "NoSuchKey" in f"{type(exc).__name__} {exc}":
                continue
            raise
        if doc.get("relations"):
            out[table] = list(doc["relations"])
    return out


def purge_done(target: ResolvedTarget, table: str) -> None:
    store_for(target.lake, target.settings.aws).delete(_purge_uri(target, table))


# ---- the erasure ledger --------------------------------------------------------------------------------


def ledger_row(result: ForgetResult, subject: Subject, journal: Journal) -> dict[str, Any]:
    """The erasure ledger's row; `requested_at` is when the request's first run began (a rerun that finishes
    an interrupted one writes the row that run did not)."""

    t = result.table

    def rows(layer: str) -> int:
        return result.layers.get(f"{layer}.{t}", {}).get("rows", 0)

    return {
        "erasure_id": subject.request,
        "table": t,
        "key_columns": ",".join(subject.columns),
        "requested_at": datetime.fromtimestamp(float(journal.data["started_at"]), UTC),
        "finished_at": datetime.now(UTC),
        "landing_lines": rows("landing"),
        "landing_files": result.layers.get(f"landing.{t}", {}).get("files", 0),
        "bronze_rows": rows("bronze"),
        "silver_rows": rows("silver"),
        "quarantine_rows": rows("quarantine"),
        "sample_rows": result.layers.get(CHECKS_LEDGER, {}).get("rows", 0),
        "gold_recomputed": json.dumps(result.gold),
        "noncurrent_versions": result.noncurrent_versions,
        "vacuumed": result.vacuumed,
        "resumed": result.resumed,
        "status": "erased" if result.matched else "nothing_matched",
        "engine": result.engine,
    }
