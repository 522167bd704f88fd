"""Every human rendering of lh360's results: rich tables on a terminal, plain text when piped. Library code
returns data (typed results, reports, plans); only the CLI renders it, here."""

from __future__ import annotations

import copy
import json
from typing import Any

from lh360.cli._output import Output, ago, human_bytes

LEFT, RIGHT = "left", "right"


def table(out: Output, title: str | None, columns: list[tuple[str, str]], rows: list[list[str]]) -> None:
    """A rich table; `columns` are (name, LEFT | RIGHT). Cell text is shown as is (no rich markup)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for name, justify in columns:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        t.add_row(*(Text(cell) for cell in row))
    out.print(t)


def say(out: Output, text: str) -> None:
    """One plain line (no markup: table names and values may hold brackets)."""
    out.print(text, markup=False, highlight=False)


def _v(v: Any) -> str:
    return "-" if v is None else str(v)


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


# ---- one line per finished step (the console's step_finished) ---------------------------------------


def step_line(result: Any) -> str | None:
    """What a finished step says on a terminal and in text logs; None for steps a table reports instead."""
    step = getattr(result, "step", None)
    if step == "refine":
        if result.noop:
            due = _full_refresh_due(result.table) if result.full_refresh_due else ""
            return f"refine {result.table}: nothing new in bronze (silver v{_v(result.silver_version)})" + due
        how = " (full refresh)" if result.full_refresh else ""
        due = _full_refresh_due(result.table) if result.full_refresh_due else ""
        return (
            f"refine {result.table}{how}: {result.rows_in:,} bronze rows → {result.rows_out:,} written to silver "
            f"(quarantined {result.quarantined:,}, dropped {result.dropped:,}) → silver v{_v(result.silver_version)}"
            + due
        )
    if step == "aggregate":
        return f"aggregate {result.relation}: {result.rows_out:,} rows → v{_v(result.version)}"
    if step == "maintain":
        return f"maintain {result.relation}: {maintenance_text(result)}"
    if step == "forget":
        return None  # render_forget reports it
    if hasattr(result, "breached"):  # a LandingReport
        state = "SLA BREACH: " + "; ".join(result.problems) if result.breached else "ok"
        return f"landing {result.table}: {result.pending_files} new file(s) of {result.files}; {state}"
    return None


def _full_refresh_due(table: str) -> str:
    return (
        f"; FULL REFRESH DUE: silver was built with another version of the spec "
        f"(lh360 promote {table} --to silver --full-refresh)"
    )


# ---- ingest ------------------------------------------------------------------------------------------


def render_ingest(out: Output, results: list[Any]) -> None:
    if any(r.run is not None for r in results):
        render_runs(out, results, "ingest")
        return
    cols = ["table", "files", "bytes", "rows", "rescued", "malformed", "batches", "bronze version", "new columns"]
    rows = [
        [
            r.table,
            str(r.files),
            human_bytes(r.bytes),
            f"{r.rows:,}",
            f"{r.rescued:,}",
            f"{r.malformed:,}",
            str(len(r.batches)),
            _v(r.bronze_version),
            ", ".join(r.new_columns) or "-",
        ]
        for r in results
    ]
    table(out, "ingest", [(c, LEFT if c in ("table", "new columns") else RIGHT) for c in cols], rows)
    for r in results:
        if r.files == 0:
            say(out, f"{r.table}: no new landing files")
        for warning in r.warnings:
            say(out, f"{r.table}: warning: {warning}")


def render_runs(out: Output, results: list[Any], title: str = "databricks runs") -> None:
    """Steps that ran remotely: step, table, run, state, time, rows, run page."""
    cols = ["step", "table", "run", "state", "time", "rows in", "rows out", "run page"]
    rows = []
    for r in results:
        run = r.run
        state = "DETACHED " + (run.state or "") if run.detached else (run.result_state or run.state or "-")
        rows.append(
            [
                r.step,
                r.table,
                _v(run.run_id),
                state,
                ago(r.seconds or 0),
                _n(run.job.get("rows_in")),
                _n(run.job.get("rows_out")),
                run.run_page_url or "-",
            ]
        )
    table(out, title, [(c, RIGHT if c in ("run", "time", "rows in", "rows out") else LEFT) for c in cols], rows)


# ---- plan --------------------------------------------------------------------------------------------


def render_plan(out: Output, plan: Any) -> None:
    say(out, f"plan for target {plan.target} (engine {plan.engine}); nothing is written or sent")
    for i, step in enumerate(plan.steps, 1):
        d = step.detail
        say(out, f"\n{i}. {step.kind} → {step.relation}")
        if "jobs_submit" in d:
            _render_submit(out, d)
        elif d.get("on") == "warehouse":
            say(out, f"   on SQL warehouse {d.get('warehouse_id')} (Statement Execution API)")
        elif step.kind == "validate":
            say(out, f"   on {d.get('engine')}: {', '.join(d.get('checks') or [])}")
        elif step.kind == "ingest" and d:
            _render_ingest_detail(out, d)
        else:
            for key, value in d.items():
                say(out, f"   {key}: {value}")
        if step.sql:
            say(out, "   SQL:")
            for line in step.sql.strip().splitlines():
                say(out, f"     {line}")


MERMAID_LAYERS = ("landing", "bronze", "silver", "quarantine", "gold")


def plan_mermaid(plan: Any, graph: Any) -> str:
    """The plan as a Mermaid flowchart: the lineage its steps touch (landing → bronze → silver / quarantine
    → gold, gold-to-gold reads) with each node's planned steps, numbered in the order they run."""
    steps: dict[str, list[str]] = {}
    for i, step in enumerate(plan.steps, 1):
        steps.setdefault(step.relation, []).append(f"{i}. {step.kind}")
    wanted = set(steps)
    wanted |= {f"landing.{s.table}" for s in plan.steps if s.kind == "ingest"}
    wanted |= {f"quarantine.{s.table}" for s in plan.steps if s.kind == "refine"} & set(graph.nodes)
    frontier = list(wanted)
    while frontier:  # what the planned relations read, so each is drawn with its inputs
        node = frontier.pop()
        for src, dst in graph.edges:
            if dst == node and src not in wanted and src.split(".")[0] != "landing":
                wanted.add(src)
                frontier.append(src)
    lines = ["flowchart LR", f"  %% lh360 plan: target {plan.target}, engine {plan.engine}, {len(plan.steps)} step(s)"]
    for layer in MERMAID_LAYERS:
        ids = [nid for nid, n in graph.nodes.items() if n.layer == layer and nid in wanted]
        if not ids:
            continue
        lines.append(f"  subgraph {layer}")
        for nid in ids:
            label = "<br/>".join([nid, *steps.get(nid, [])])
            lines.append(f'    {_mermaid_id(nid)}["{_mermaid_text(label)}"]')
        lines.append("  end")
    for src, dst in graph.edges:
        if src in wanted and dst in wanted:
            lines.append(f"  {_mermaid_id(src)} --> {_mermaid_id(dst)}")
    planned = [_mermaid_id(nid) for nid in graph.nodes if nid in steps]
    lines.append("  classDef planned fill:#e6f4e7,stroke:#2e7d32,stroke-width:2px")
    if planned:
        lines.append(f"  class {','.join(planned)} planned")
    return "\n".join(lines) + "\n"


def _mermaid_id(node: str) -> str:
    # layer names hold no underscore, so layer__name is unique
    return node.replace(".", "__", 1)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_site_build(out: Output, result: Any) -> None:
    """`docs build`: where the site is, its size and time, and what could not be read."""
    say(
        out,
        f"wrote {result.pages} page(s) for {result.tables} table(s) of target {result.data.target} to {result.out} "
        f"({human_bytes(result.bytes)}, {result.seconds:.2f}s); open {result.out / 'index.html'}",
    )
    for name, info in result.data.ledger.items():
        if info.get("error"):
            say(out, f"warning: the {name} ledger could not be read: {info['error']}")
    for note in [n for t in result.data.tables for n in t.notes]:
        say(out, f"warning: {note}")


def _render_ingest_detail(out: Output, d: dict[str, Any]) -> None:
    say(
        out,
        f"   {d['pending_files']} new landing file(s), {human_bytes(d['pending_bytes'])}, "
        f"{d['batches']} batch(es); schema_evolution {d['schema_evolution']}",
    )
    for f in d["files"]:
        say(out, f"   + {f}")
    if d["pending_files"] > len(d["files"]):
        say(out, f"   … and {d['pending_files'] - len(d['files'])} more")
    for ch in d.get("schema_changes", []):
        if ch["change"] == "new":
            extra = f" → {ch['outcome']}" if ch.get("outcome") else ""
            say(out, f"   schema: new column {ch['column']} {ch['type']}{extra}")
        else:
            say(out, f"   schema: {ch['column']} stored {ch['stored']}, files look like {ch['type']} → {ch['outcome']}")


def _render_submit(out: Output, d: dict[str, Any]) -> None:
    """A remote step: the exact jobs.submit body, its payload apart when inline, the Auto Loader options."""
    resumes = " (resumes an earlier submission that never saw its end)" if d.get("resumes_earlier_submission") else ""
    say(out, f"   jobs.submit  run_name {d['run_name']!r}  idempotency_token {d['idempotency_token']}{resumes}")
    body = copy.deepcopy(d["jobs_submit"])
    params = body["tasks"][0]["spark_python_task"]["parameters"]
    inline = "--payload" in params
    if inline:  # the payload is one long JSON string in the body (see --json): shown apart, indented
        params[params.index("--payload") + 1] = "<the payload below, as one line of JSON>"
    for line in json.dumps(body, indent=2, ensure_ascii=False).splitlines():
        say(out, f"     {line}")
    if inline:
        say(out, "   payload:")
        for line in json.dumps(d["payload"], indent=2, ensure_ascii=False).splitlines():
            say(out, f"     {line}")
    if d.get("wire_body"):  # the exact bytes lh360 posts
        say(out, f"   on the wire: {d['wire']}, {d['wire_bytes']} bytes:")
        say(out, f"     {d['wire_body']}")
    opts = d["job"].get("reader_options")
    if opts:
        say(out, "   Auto Loader options:")
        for k, v in opts.items():
            say(out, f"     {k} = {v}")
    if d.get("full_refresh_due"):
        say(out, f"   FULL REFRESH DUE: {d['full_refresh_due']}")
    refresh = d["job"].get("full_refresh") or d.get("full_refresh_job")
    if refresh:  # the job rebuilds silver (a pending full refresh), or what --full-refresh would have it do
        say(out, f"   full refresh{' (this run)' if d['job'].get('full_refresh') else ''}: {refresh['how']}")
        for key in ("quarantine_sql", "silver_sql"):
            say(out, f"     {refresh[key]}")


# ---- landing -----------------------------------------------------------------------------------------


def render_landing(out: Output, target: str, reports: list[Any]) -> None:
    cols = ["table", "files", "pending", "pending bytes", "newest", "age / SLA", "status"]
    rows = [
        [
            r.table,
            str(r.files),
            str(r.pending_files),
            human_bytes(r.pending_bytes),
            r.newest_file or "-",
            f"{'-' if r.newest_age_s is None else ago(r.newest_age_s)} / {ago(r.max_age_s) if r.max_age_s else 'none'}",
            "BREACH" if r.breached else "ok",
        ]
        for r in reports
    ]
    table(out, f"landing on target {target}", [(c, LEFT) for c in cols], rows)
    for r in reports:
        for problem in r.problems:
            say(out, f"{r.table}: SLA breach: {problem}")
        for warning in r.warnings:
            say(out, f"{r.table}: warning: {warning}")
        for rel in r.empty_files:
            say(out, f"{r.table}: empty file {rel}")
        for bad in r.unreadable:
            where = f"{bad['file']}:{bad['line']}" if bad.get("line") else bad["file"]
            say(out, f"{r.table}: unreadable {where}: {bad['error']}")
        for up in r.uploading:
            say(out, f"{r.table}: upload in progress {up['file']} (started {ago(up['age_s'])} ago)")
        for late in r.late_files:
            say(out, f"{r.table}: landed below the listing watermark: {late}")
        _render_left_aside(out, r)
        lst = r.listing
        if lst and lst.get("requests"):
            after = f" after {lst['start_after']}" if lst.get("start_after") else ""
            say(
                out,
                f"{r.table}: {lst['mode']} listing{after} ({lst['reason']}): "
                f"{lst['requests']} request(s), {lst['objects']} object(s)",
            )


def _render_left_aside(out: Output, r: Any) -> None:
    """Landing files the ingest does not take now: settling, quarantined, rewritten, symlinks, future mtimes."""
    for w in r.settling:
        say(
            out,
            f"{r.table}: settling {w['file']} (changed {ago(w['age_s'])} ago; taken once unchanged for {ago(w['settle_s'])})",
        )
    for q in r.quarantined:
        say(out, f"{r.table}: quarantined {q['file']}: {q['error']} (skipped until the file changes)")
    for rw in r.rewritten:
        say(
            out,
            f"{r.table}: rewritten after ingest {rw['file']} (size {rw['ingested_size']} -> {rw['size']}): "
            "not ingested again",
        )
    for link in r.symlinks:
        say(out, f"{r.table}: symlink not followed {link['file']} -> {link['target']}: {link['reason']}")
    for fut in r.future_mtime:
        say(
            out,
            f"{r.table}: modification time in the future {fut['file']} ({ago(fut['ahead_s'])} ahead): "
            "counted as landed when first seen",
        )


# ---- promote / validate / history / sql -------------------------------------------------------------

_STATUS_TEXT = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def render_promote(out: Output, promotion: Any) -> None:
    remote = [r for r in (*promotion.refine, *promotion.aggregate) if r.run is not None]
    if remote:
        render_runs(out, remote, "promote")
        return
    if promotion.refine:
        cols = ["table", "bronze rows", "written", "inserted", "updated", "quarantined", "dropped", "warned"]
        cols += ["bronze version", "silver version"]
        rows = [
            [
                r.table,
                f"{r.rows_in:,}",
                f"{r.rows_out:,}",
                f"{r.inserted:,}",
                f"{r.updated:,}" if not r.closed else f"{r.closed:,} closed",
                f"{r.quarantined:,}",
                f"{r.dropped:,}",
                f"{sum(r.warned.values()):,}",
                _v(r.bronze_from) + " → " + _v(r.bronze_to),
                _v(r.silver_version),
            ]
            for r in promotion.refine
        ]
        table(out, "promote → silver", [(c, LEFT if c == "table" else RIGHT) for c in cols], rows)
    if promotion.aggregate:
        rows = [
            [a.relation, f"{a.rows_out:,}", _v(a.version), ", ".join(f"{k} v{v}" for k, v in a.sources.items())]
            for a in promotion.aggregate
        ]
        gold_cols = [("relation", LEFT), ("rows", RIGHT), ("version", RIGHT), ("computed from", LEFT)]
        table(out, "promote → gold", gold_cols, rows)


def render_forget(out: Output, result: Any) -> None:
    """What an erasure removed, layer by layer (counts only: never a value)."""
    rows = [[relation, f"{n.get('rows', 0):,}", f"{n.get('files', 0):,}"] for relation, n in result.layers.items()]
    rows += [[relation, "recomputed", "-"] for relation in result.gold]
    title = f"forget {result.table} (erasure {result.request})" + (
        " — finished an interrupted run" if result.resumed else ""
    )
    table(out, title, [("layer", LEFT), ("rows / lines", RIGHT), ("files rewritten", RIGHT)], rows)
    if result.noncurrent_versions:
        say(out, f"deleted {result.noncurrent_versions:,} older S3 object version(s) holding the subject")
    if result.vacuumed:
        files = sum(p.get("files", 0) for p in result.purged.values())
        logs = sum(p.get("log_entries", 0) for p in result.purged.values())
        say(out, f"purged {files:,} old file(s) and {logs:,} log entr(y/ies) of {len(result.purged)} table(s)")
    else:
        say(out, "old files and Delta log entries still hold the subject until `lh360 maintain` or `forget --vacuum`")
    if not result.matched:
        say(out, "the key matched nothing (already erased, or never there)")
    for text in result.warnings:
        say(out, f"warning: {text}")


def render_validation(out: Output, report: Any) -> None:
    rows = []
    for r in report.results:
        observed = (
            r.observed if not isinstance(r.observed, dict) else ", ".join(f"{k}={v}" for k, v in r.observed.items())
        )
        rows.append(
            [
                r.relation,
                r.check,
                r.severity,
                _STATUS_TEXT[r.status],
                "-" if observed is None else str(observed),
                str(r.threshold),
                str(r.message),
            ]
        )
    cols = ["relation", "check", "severity", "status", "observed", "threshold", "message"]
    table(out, f"validate on {report.dialect}", [(c, LEFT) for c in cols], rows)
    for r in report.results:
        if r.sample and r.status in ("warn", "fail"):
            say(out, f"{r.relation}.{r.check}: sample failing rows")
            for row in r.sample:
                say(out, "  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    say(
        out,
        f"{report.count('pass')} passed, {report.count('warn')} warned, {report.count('fail')} failed, "
        f"{report.count('error')} could not run ({report.queries} queries, {report.seconds:.2f}s)",
    )


def junit_xml(report: Any) -> str:
    """JUnit XML: one testsuite per relation, one testcase per check; warn = passed with system-out."""
    from xml.etree import ElementTree as ET  # only --junit needs it: off the --help path

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
                text += "\n" + "\n".join(json.dumps(s, ensure_ascii=False, default=str) for s in r.sample)
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.message, type=r.kind).text = text
            elif r.status == "error":
                ET.SubElement(case, "error", message=r.message, type=r.kind).text = text
            else:
                ET.SubElement(case, "system-out").text = ("WARNING: " if r.status == "warn" else "") + text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def render_history(out: Output, rows: list[dict[str, Any]]) -> None:
    cols = ["started", "run id", "table", "step", "relation", "status", "rows in", "rows out", "quarantined"]
    cols += ["version", "seconds", "error"]
    numeric = ("rows in", "rows out", "quarantined", "version", "seconds")
    body = [
        [
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S") if r.get("started_at") else "-",
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
        ]
        for r in rows
    ]
    table(out, "run history (newest first)", [(c, RIGHT if c in numeric else LEFT) for c in cols], body)
    if not rows:
        say(out, "no runs recorded yet")


def render_rows(out: Output, columns: list[str], rows: list[tuple], title: str | None = None) -> None:
    table(out, title, [(c, LEFT) for c in columns], [["NULL" if v is None else str(v) for v in row] for row in rows])


def render_tables(out: Output, target: str, rows: list[dict[str, Any]]) -> None:
    cols = ["table", "layer", "relation", "rows", "version", "last commit", "last run"]
    body = [
        [
            r["table"],
            r["layer"],
            r["relation"],
            "-" if r["rows"] is None else f"{r['rows']:,}",
            _v(r["version"]),
            r["last_commit"] or "-",
            r.get("last_run") or "-",
        ]
        for r in rows
    ]
    table(out, f"tables on target {target}", [(c, RIGHT if c in ("rows", "version") else LEFT) for c in cols], body)
    for r in rows:
        if r.get("full_refresh_due"):
            say(
                out,
                f"full refresh due: {r['relation']} was built with another version of its spec; "
                f"lh360 promote {r['table']} --to silver --full-refresh",
            )


def deploy_line(action: Any) -> str:
    sql = f"  [{action.sql}]" if action.sql and action.status in ("todo", "done") else ""
    return f"{action.status:>8}  {action.kind:<15} {action.object}  {action.reason}{sql}"


def render_run_summary(out: Output, summary: Any) -> None:
    """`lh360 run`: the ingest and validation tables (refine/aggregate/maintain lines were said as they
    finished)."""
    if summary.ingest:
        render_ingest(out, summary.ingest)
    if summary.validation is not None:
        render_validation(out, summary.validation)
    for t in summary.full_refresh_due:
        say(
            out,
            f"full refresh due: silver.{t} was built with another version of its spec and this run promoted it "
            f"incrementally; rebuild it with lh360 promote {t} --to silver --full-refresh",
        )


def render_demo_summary(out: Output, demo: dict[str, Any], summary: Any) -> None:
    say(out, "")
    rows = [
        [rel, "-" if d["rows"] is None else f"{d['rows']:,}", _v(d["version"])] for rel, d in demo["layers"].items()
    ]
    table(out, "demo summary: rows per layer", [("relation", LEFT), ("rows", RIGHT), ("version", RIGHT)], rows)
    if demo["quarantined_by_rule"]:
        say(out, "quarantined rows by rule: " + ", ".join(f"{r} {n:,}" for r, n in demo["quarantined_by_rule"].items()))
    c = demo["checks"]
    if c:
        say(
            out,
            f"checks: {c.get('pass', 0)} passed, {c.get('warn', 0)} warned, {c.get('fail', 0)} failed"
            + (f", {c['error']} could not run" if c.get("error") else ""),
        )
    for relation, g in demo["gold"].items():
        render_rows(out, g["columns"], [tuple(r) for r in g["rows"]], title=f"{relation} (first rows)")
    if summary.exit_code:
        say(
            out,
            f"the run stopped at {summary.failed_step}: {summary.error} "
            "(the demo data carries a few deliberately bad records)",
        )
    say(out, 'next: lh360 sql "SELECT * FROM silver.clientes LIMIT 5" | lh360 history | lh360 validate')


# ---- maintenance -------------------------------------------------------------------------------------


def maintenance_text(r: Any) -> str:
    """What maintenance did to one table, in a few words."""
    parts = []
    for task in r.done:
        if task == "compact":
            parts.append(f"compacted {r.compacted_files:,} files into {r.compacted_into:,}")
        elif task == "checkpoint":
            parts.append(f"checkpoint at v{_v(r.checkpoint_version)}")
        elif task == "log_cleanup":
            parts.append(f"{r.logs_removed:,} log files removed")
        elif task == "vacuum":
            parts.append(f"vacuumed {r.vacuumed_files:,} files")
        else:
            parts.append(task)
    parts += [f"{task} skipped ({why})" for task, why in r.skipped.items()]
    return "; ".join(parts) or "nothing to do"


def render_maintenance(out: Output, results: list[Any]) -> None:
    """`lh360 maintain`: per table, its files and bytes before and after (each table's line was said as it
    finished)."""
    if not results:
        say(out, "nothing to maintain")
        return
    cols = [
        ("relation", LEFT),
        ("done", LEFT),
        ("files", RIGHT),
        ("bytes", RIGHT),
        ("version", RIGHT),
        ("seconds", RIGHT),
    ]
    rows = [
        [
            r.relation,
            ", ".join(r.done) or "-",
            f"{_n(r.files_before)} → {_n(r.files_after)}",
            f"{_bytes(r.bytes_before)} → {_bytes(r.bytes_after)}",
            f"{_v(r.version_before)} → {_v(r.version_after)}",
            f"{r.seconds:.2f}",
        ]
        for r in results
    ]
    table(out, "maintenance", cols, rows)


def _bytes(n: int | None) -> str:
    return "-" if n is None else human_bytes(n)


# ---- quarantine --------------------------------------------------------------------------------------


def render_quarantine(out: Output, listing: Any) -> None:
    """`lh360 quarantine list`: rows by rule and batch, then the totals."""
    rows = [
        [
            g.rule,
            _v(g.batch_id),
            f"{g.rows:,}",
            f"{g.pending:,}",
            f"{g.replayed:,}",
            g.first_quarantined_at or "-",
            g.last_quarantined_at or "-",
        ]
        for g in listing.groups
    ]
    cols = [("rule", LEFT), ("batch", RIGHT), ("rows", RIGHT), ("pending", RIGHT), ("replayed", RIGHT)]
    cols += [("first quarantined", LEFT), ("last quarantined", LEFT)]
    table(out, f"quarantine.{listing.table} (v{_v(listing.version)})", cols, rows)
    replayed = ", ".join(f"{n:,} {outcome}" for outcome, n in listing.replayed.items())
    say(
        out,
        f"{listing.rows:,} row(s): {listing.pending:,} pending"
        + (f", replayed: {replayed}" if replayed else "")
        + " (a row counts under every rule it failed)",
    )


def replay_line(r: Any) -> str:
    """What `quarantine replay` did, in one line."""
    if r.replay_run is None:
        return (
            f"replay {r.table}: {r.evaluated:,} quarantined row(s) evaluated, none passes today's rules; "
            "nothing written"
        )
    how = " (finished an interrupted replay)" if r.resumed else ""
    return (
        f"replay {r.table}{how}: {r.evaluated:,} evaluated, {r.passed:,} passed → silver ({r.inserted:,} inserted, "
        f"{r.updated:,} updated, {r.stale:,} older than silver's), {r.dropped:,} dropped, "
        f"{r.still_quarantined:,} still quarantined → silver v{_v(r.silver_version)}, "
        f"quarantine v{_v(r.quarantine_version)}"
    )
