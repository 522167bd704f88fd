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
            d["table"],
            str(d["files"]),
            human_bytes(d["bytes"]),
            f"{d['rows']:,}",
            f"{d['rescued']:,}",
            f"{d['malformed']:,}",
            str(len(d["batches"])),
            "-" if d["bronze_version"] is None else str(d["bronze_version"]),
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
                    out.print(
                        f"   schema: {ch['column']} stored {ch['stored']}, files look like {ch['type']} → {ch['outcome']}"
                    )
        for key, value in d.items():
            if step.kind != "ingest" and key not in ("sql",):
                out.print(f"   {key}: {value}")
        if step.sql:
            out.print("   SQL:")
            for line in step.sql.strip().splitlines():
                out.print(f"     {line}", markup=False, highlight=False)


# ---- promote / validate / history / sql -------------------------------------------------------------

_STATUS_TEXT = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def render_promote(out: Any, promoted: dict[str, list[Any]]) -> None:
    from rich.table import Table

    refined = [r.as_dict() for r in promoted.get("refine", [])]
    if refined:
        t = Table(title="promote → silver", title_justify="left")
        for col in (
            "table",
            "bronze rows",
            "written",
            "inserted",
            "updated",
            "quarantined",
            "dropped",
            "warned",
            "bronze version",
            "silver version",
        ):
            t.add_column(col, justify="left" if col == "table" else "right")
        for d in refined:
            warned = sum(d["warned"].values()) if d.get("warned") else 0
            t.add_row(
                d["table"],
                f"{d['rows_in']:,}",
                f"{d['rows_out']:,}",
                f"{d['inserted']:,}",
                f"{d['updated']:,}" if not d.get("closed") else f"{d['closed']:,} closed",
                f"{d['quarantined']:,}",
                f"{d['dropped']:,}",
                f"{warned:,}",
                _v(d.get("bronze_from")) + " → " + _v(d.get("bronze_to")),
                _v(d.get("silver_version")),
            )
        out.print(t)
    gold = [r.as_dict() for r in promoted.get("aggregate", [])]
    if gold:
        t = Table(title="promote → gold", title_justify="left")
        for col in ("relation", "rows", "version", "computed from"):
            t.add_column(col, justify="right" if col in ("rows", "version") else "left")
        for d in gold:
            t.add_row(
                d["relation"],
                f"{d['rows_out']:,}",
                _v(d.get("version")),
                ", ".join(f"{k} v{v}" for k, v in d["sources"].items()),
            )
        out.print(t)


def _v(v: Any) -> str:
    return "-" if v is None else str(v)


def render_validation(out: Any, report: Any) -> None:
    from rich.table import Table

    t = Table(title=f"validate on {report.dialect}", title_justify="left")
    for col in ("relation", "check", "severity", "status", "observed", "threshold", "message"):
        t.add_column(col)
    from rich.markup import escape

    for r in report.results:
        observed = (
            r.observed if not isinstance(r.observed, dict) else ", ".join(f"{k}={v}" for k, v in r.observed.items())
        )
        # cells hold spec and data text (`in [NO, SE]`): escaped, or rich would read `[...]` as markup
        t.add_row(
            *(
                escape(str(cell))
                for cell in (
                    r.relation,
                    r.check,
                    r.severity,
                    _STATUS_TEXT[r.status],
                    "-" if observed is None else observed,
                    r.threshold,
                    r.message,
                )
            )
        )
    out.print(t)
    for r in report.results:
        if r.sample and r.status in ("warn", "fail"):
            out.print(f"{r.relation}.{r.check}: sample failing rows", markup=False, highlight=False)
            for row in r.sample:
                out.print("  " + ", ".join(f"{k}={v}" for k, v in row.items()), markup=False, highlight=False)
    out.print(
        f"{report.count('pass')} passed, {report.count('warn')} warned, {report.count('fail')} failed, "
        f"{report.count('error')} could not run ({report.queries} queries, {report.seconds:.2f}s)",
        markup=False,
        highlight=False,
    )


def junit_xml(report: Any) -> str:
    """JUnit XML: one testsuite per relation, one testcase per check; warn = passed with system-out."""
    from xml.etree import ElementTree as ET

    suites = ET.Element(
        "testsuites",
        name=f"lh360 validate {report.target}",
        tests=str(len(report.results)),
        failures=str(report.count("fail")),
        errors=str(report.count("error")),
    )
    by_rel: dict[str, list[Any]] = {}
    for r in report.results:
        by_rel.setdefault(r.relation, []).append(r)
    for relation, results in by_rel.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=relation,
            tests=str(len(results)),
            failures=str(sum(r.status == "fail" for r in results)),
            errors=str(sum(r.status == "error" for r in results)),
        )
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=relation, name=r.check, time=f"{r.seconds or 0:.3f}")
            text = f"{r.message} (threshold {r.threshold}, observed {r.observed}, Delta version {r.delta_version})"
            if r.sample:
                import json

                text += "\n" + "\n".join(json.dumps(s, ensure_ascii=False, default=str) for s in r.sample)
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.message, type=r.kind).text = text
            elif r.status == "error":
                ET.SubElement(case, "error", message=r.message, type=r.kind).text = text
            else:
                ET.SubElement(case, "system-out").text = ("WARNING: " if r.status == "warn" else "") + text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def render_history(out: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title="run history (newest first)", title_justify="left")
    for col in (
        "started",
        "run id",
        "table",
        "step",
        "relation",
        "status",
        "rows in",
        "rows out",
        "quarantined",
        "version",
        "seconds",
        "error",
    ):
        t.add_column(
            col, justify="right" if col in ("rows in", "rows out", "quarantined", "version", "seconds") else "left"
        )
    for r in rows:
        started = r["started_at"].strftime("%Y-%m-%d %H:%M:%S") if r.get("started_at") else "-"
        t.add_row(
            started,
            r["run_id"],
            r["table"],
            r["step"],
            r["relation"],
            r["status"],
            _n(r.get("rows_in")),
            _n(r.get("rows_out")),
            _n(r.get("rows_quarantined")),
            _v(r.get("version_after")),
            f"{r['seconds']:.2f}" if r.get("seconds") is not None else "-",
            (r.get("error") or "")[:80],
        )
    out.print(t)
    if not rows:
        out.print("no runs recorded yet")


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}"


def render_rows(
    out: Any, columns: list[str], rows: list[tuple], title: str | None = None, limit: int | None = None
) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows[:limit] if limit else rows:
        t.add_row(*["NULL" if v is None else str(v) for v in row])
    out.print(t)
