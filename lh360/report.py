"""Human renderings of results (rich tables on a terminal, plain text when piped)."""

from __future__ import annotations

from typing import Any

from lh360.cli._output import human_bytes


def render_ingest(out: Any, results: list[Any]) -> None:
    from rich.table import Table

    t = Table(title="ingest", title_justify="left")
    for col in ("table", "files", "bytes", "rows", "rescued", "malformed", "batches", "bronze version", "new columns"):
        t.add_column(col, justify="left" if col in ("table", "new columns") else "right")
    for r in results:
        d = r.as_dict()
        t.add_row(
            d["table"], str(d["files"]), human_bytes(d["bytes"]), f"{d['rows']:,}", f"{d['rescued']:,}", f"{d['malformed']:,}",
            str(len(d["batches"])), "-" if d["bronze_version"] is None else str(d["bronze_version"]),
            ", ".join(d.get("new_columns") or []) or "-",
        )
    out.print(t)
    for r in results:
        d = r.as_dict()
        if d["files"] == 0:
            out.print(f"{d['table']}: no new landing files")


def render_plan(out: Any, plan: Any) -> None:
    out.print(f"plan for target {plan.target} (engine {plan.engine}); nothing is written")
    for i, step in enumerate(plan.steps, 1):
        d = step.detail
        out.print(f"\n{i}. {step.kind} → {step.relation}")
        if step.kind == "ingest" and d:
            out.print(
                f"   {d['pending_files']} new landing file(s), {human_bytes(d['pending_bytes'])}, "
                f"{d['batches']} batch(es); schema_evolution {d['schema_evolution']}"
            )
            for f in d["files"]:
                out.print(f"   + {f}")
            if d["pending_files"] > len(d["files"]):
                out.print(f"   … and {d['pending_files'] - len(d['files'])} more")
            for ch in d.get("schema_changes", []):
                if ch["change"] == "new":
                    extra = f" → {ch['outcome']}" if ch.get("outcome") else ""
                    out.print(f"   schema: new column {ch['column']} {ch['type']}{extra}")
                else:
                    out.print(f"   schema: {ch['column']} stored {ch['stored']}, files look like {ch['type']} → {ch['outcome']}")
        for key, value in d.items():
            if step.kind != "ingest" and key not in ("sql",):
                out.print(f"   {key}: {value}")
        if step.sql:
            out.print("   SQL:")
            for line in step.sql.strip().splitlines():
                out.print(f"     {line}", markup=False, highlight=False)
