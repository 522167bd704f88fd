"""SiteData → the pages of the site: `index.html` (the lineage graph and the table list) and
`tables/<table>.html` (everything about one spec). Plain HTML with the SVG of lh360.site.svg, one stylesheet
and one small script from the package (assets/); every link is relative, so the site works from file://.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from lh360 import __version__
from lh360.durations import format_duration
from lh360.site.collect import CheckSeries, LayerInfo, SiteData, TableInfo
from lh360.site.graph import layout
from lh360.site.svg import age, check_chart, lineage_svg, number, run_lane, when

STATUS_WORDS = {"ok": "ok", "failed": "failed", "breach": "SLA breach", "busy": "busy", "none": "never run"}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def table_href(table: str, prefix: str = "") -> str:
    return f"{prefix}tables/{table}.html"


def pages(data: SiteData) -> dict[str, str]:
    """Relative path → HTML, for every page of the site."""
    out = {"index.html": index_page(data)}
    for table in data.tables:
        out[table_href(table.table)] = table_page(data, table)
    return out


# ---- shared frame --------------------------------------------------------------------------------------


def _page(title: str, body: str, data: SiteData, root: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{root}assets/site.css"></head><body>'
        f'<header class="top"><a class="brand" href="{root}index.html">lh360 · {_e(data.project)}</a>'
        f'<span class="target">target <b>{_e(data.target)}</b> · engine {_e(data.engine)} · '
        f"checks on {_e(data.validator)}</span>"
        f'<span class="built">built {_e(when(data.generated_at))}</span></header>'
        f"<main>{body}</main>"
        f"<footer>lh360 {_e(__version__)} · lake {_e(data.lake)} · history since {_e(when(data.since))} · "
        f"{_ledger_note(data)}</footer>"
        f'<script src="{root}assets/site.js"></script></body></html>\n'
    )


def _ledger_note(data: SiteData) -> str:
    parts = []
    for name in ("runs", "checks"):
        info = data.ledger.get(name, {})
        if info.get("error"):
            parts.append(f"{name} ledger unreadable: {_e(info['error'])}")
        else:
            parts.append(f"{name} ledger: {info.get('rows', 0):,} rows shown of {info.get('total', 0):,}")
    return " · ".join(parts)


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge st-{_e(status)}">{_e(text or STATUS_WORDS.get(status, status))}</span>'


def _check_badge(status: str) -> str:
    return f'<span class="badge s-{_e(status)}">{_e(status)}</span>'


# ---- node states: colour and one line per lineage node -------------------------------------------------


def node_states(data: SiteData) -> dict[str, dict[str, str]]:
    """node id → status (the colour: the last run's status, or the landing SLA), line and tooltip."""
    out: dict[str, dict[str, str]] = {}
    now = data.generated_at
    for t in data.tables:
        land = t.landing
        status = {"ok": "ok", "breach": "breach"}.get(land.status, "none")
        if land.error:
            line = "landing not readable"
        elif land.newest_age_s is None:
            line = "no files"
        else:
            line = f"newest {age(land.newest_age_s)} ago · {land.pending_files or 0} pending"
        title = "; ".join(land.problems) or (land.error or f"landing {STATUS_WORDS.get(status, status)}")
        out[f"landing.{t.table}"] = {"status": status, "line": line, "title": title}
        for layer in t.layers:
            out[layer.relation] = _layer_state(layer, now)
    return out


def _layer_state(layer: LayerInfo, now: float) -> dict[str, str]:
    run = layer.last_run
    status = run.status if run and run.status in STATUS_WORDS else ("failed" if run else "none")
    if not layer.exists:
        line = "not built yet"
    else:
        fresh = f"{age(now - layer.last_commit)} ago" if layer.last_commit else "?"
        line = f"{number(layer.rows)} {'row' if layer.rows == 1 else 'rows'} · {fresh}"
    title = (
        f"last run {run.step} {run.status} at {when(run.at)}" + (f": {run.error}" if run.error else "")
        if run
        else "never run"
    )
    if layer.exists and layer.last_commit:
        title += f"; last commit v{layer.version} {when(layer.last_commit)}"
    return {"status": status, "line": line, "title": title}


# ---- index ------------------------------------------------------------------------------------------


def index_page(data: SiteData) -> str:
    states = node_states(data)
    href = {nid: table_href(n.table) + f"#{nid}" for nid, n in data.lineage.nodes.items()}
    graph = lineage_svg(data.lineage, layout(data.lineage), states, href)
    failing_runs = sum(1 for s in states.values() if s["status"] == "failed")
    breaches = sum(1 for t in data.tables if t.landing.status == "breach")
    failing_checks = sum(1 for t in data.tables for c in t.checks if c.last_status in ("fail", "error"))
    warning_checks = sum(1 for t in data.tables for c in t.checks if c.last_status == "warn")
    cards = [
        ("tables", len(data.tables), "none"),
        ("relations failing their last run", failing_runs, "failed" if failing_runs else "ok"),
        ("landing SLA breaches", breaches, "breach" if breaches else "ok"),
        ("checks failing", failing_checks, "failed" if failing_checks else "ok"),
        ("checks warning", warning_checks, "breach" if warning_checks else "ok"),
    ]
    body = ['<section class="cards">']
    body += [f'<div class="card st-{s}"><b>{n}</b><span>{_e(label)}</span></div>' for label, n, s in cards]
    body.append("</section>")
    body.append(
        '<section id="lineage"><h2>Lineage</h2>'
        '<p class="legend">'
        + " ".join(_badge(s) for s in STATUS_WORDS)
        + " colour: the last run of each table (landing: its SLA now) · click a box for its page</p>"
        f'<div class="graph">{graph}</div></section>'
    )
    rows = []
    for t in data.tables:
        cells = []
        for layer in t.layers:
            st = states[layer.relation]
            cells.append(
                f'<a class="chip st-{_e(st["status"])}" href="{_e(href.get(layer.relation, table_href(t.table)))}" '
                f'title="{_e(st["title"])}">{_e(layer.relation)} <small>{_e(st["line"])}</small></a>'
            )
        land = states[f"landing.{t.table}"]
        rows.append(
            f'<tr data-table="{_e(t.table)}"><td><a class="table-link" href="{_e(table_href(t.table))}">'
            f'{_e(t.table)}</a><div class="desc">{_e(t.description or "")}</div></td>'
            f"<td>{_e(t.owner or '-')}</td><td>{_badge(land['status'])} <small>{_e(land['line'])}</small></td>"
            f'<td class="chips">{"".join(cells)}</td></tr>'
        )
    body.append(
        '<section id="tables"><h2>Tables</h2>'
        '<input id="filter" type="search" placeholder="filter tables, owners, tags" aria-label="filter tables">'
        '<table class="list"><thead><tr><th>table</th><th>owner</th><th>landing</th><th>layers</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )
    if data.notes:
        body.append('<section class="notes">' + "".join(f"<p>{_e(n)}</p>" for n in data.notes) + "</section>")
    return _page(f"lh360 · {data.project} · {data.target}", "".join(body), data, "")


# ---- one table --------------------------------------------------------------------------------------


def table_page(data: SiteData, t: TableInfo) -> str:
    now = data.generated_at
    body = [
        f'<nav class="crumbs"><a href="../index.html">lineage</a> › {_e(t.table)}</nav>',
        f'<h1 id="top">{_e(t.table)}</h1>',
        f'<p class="lead">{_e(t.description or "no description")}</p>',
        _facts(t),
        _layers_section(t, now),
        _landing_section(t),
        _schema_section(t),
    ]
    if t.silver is not None:
        body.append(_silver_section(t))
    if t.quarantine_by_rule is not None:
        body.append(_quarantine_section(t))
    body.append(_gold_section(t, data))
    body.append(_checks_section(t, data))
    body.append(_runs_section(t, data))
    if t.notes:
        body.append(
            '<section class="notes"><h2>Notes</h2>' + "".join(f"<p>{_e(n)}</p>" for n in t.notes) + "</section>"
        )
    return _page(f"{t.table} · lh360 · {data.project}", "".join(body), data, "../")


def _facts(t: TableInfo) -> str:
    tags = "".join(f'<span class="tag">{_e(k)}: {_e(v)}</span>' for k, v in sorted(t.tags.items())) or "-"
    src = t.source
    source = " · ".join(
        _e(v) for v in (src.get("system"), src.get("object"), f"{src.get('format')} files under {src.get('path')}") if v
    )
    return (
        '<dl class="facts">'
        f"<dt>owner</dt><dd>{_e(t.owner or '-')}</dd>"
        f"<dt>tags</dt><dd>{tags}</dd>"
        f"<dt>source</dt><dd>{source}</dd>"
        f"<dt>spec</dt><dd><code>{_e(t.file or '-')}</code></dd>"
        "</dl>"
    )


def _layers_section(t: TableInfo, now: float) -> str:
    rows = []
    for layer in t.layers:
        st = _layer_state(layer, now)
        run = layer.last_run
        last = f"{_badge(st['status'])} {_e(run.step)} {_e(when(run.at))}" if run else _badge("none")
        if run and run.error:
            last += f'<div class="err">{_e(run.error)}</div>'
        commit = (
            f"{_e(when(layer.last_commit))} <small>({_e(age(now - layer.last_commit))} ago)</small>"
            if layer.last_commit
            else "-"
        )
        rows.append(
            f'<tr id="{_e(layer.relation)}"><td><b>{_e(layer.relation)}</b></td>'
            f'<td class="num">{_e(number(layer.rows))}</td><td class="num">{_e(layer.version if layer.version is not None else "-")}</td>'
            f"<td>{commit}</td><td>{last}</td></tr>"
        )
    return (
        '<section id="layers"><h2>Layers</h2><table class="grid"><thead><tr><th>relation</th><th>rows</th>'
        f"<th>Delta version</th><th>last commit</th><th>last run</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></section>"
    )


def _landing_section(t: TableInfo) -> str:
    land = t.landing
    sla = []
    if land.max_age_s is not None:
        sla.append(f"newest file at most {format_duration(land.max_age_s)} old")
    sla.append(f"at least {land.min_files} file(s)" + (" in that window" if land.max_age_s is not None else ""))
    status = {"ok": "ok", "breach": "breach"}.get(land.status, "none")
    rows = [
        ("SLA", _e("; ".join(sla))),
        ("now", _badge(status, "ok" if status == "ok" else "SLA breach" if status == "breach" else "unknown")),
        ("prefix", f"<code>{_e(land.prefix or '-')}</code>"),
        ("files", _e(number(land.files))),
        ("pending", f"{_e(number(land.pending_files))} file(s), {_e(number(land.pending_bytes))} bytes"),
        (
            "newest file",
            f"<code>{_e(land.newest_file)}</code> ({_e(age(land.newest_age_s))} old)" if land.newest_file else "-",
        ),
    ]
    extra = "".join(f'<p class="err">{_e(p)}</p>' for p in land.problems)
    extra += "".join(f'<p class="warn">{_e(w)}</p>' for w in land.warnings)
    if land.error:
        extra += f'<p class="err">could not list the landing zone: {_e(land.error)}</p>'
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<section id="landing.{_e(t.table)}"><h2>Landing</h2><dl class="facts">{dl}</dl>{extra}</section>'


def _schema_section(t: TableInfo) -> str:
    blocks = []
    for layer in t.layers:
        if not layer.schema:
            continue
        head = "<th>column</th><th>type</th>" + ("<th>PII</th>" if t.pii else "")
        rows = "".join(
            f"<tr><td><code>{_e(name)}</code></td><td><code>{_e(typ)}</code></td>"
            + (f"<td>{_pii(t.pii.get(name))}</td>" if t.pii else "")
            + "</tr>"
            for name, typ in layer.schema
        )
        blocks.append(
            f"<details{' open' if layer.layer == 'silver' else ''}><summary>{_e(layer.relation)} "
            f"<small>{len(layer.schema)} columns</small></summary>"
            f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>'
        )
    if not blocks:
        blocks.append('<p class="empty">No layer has been written yet.</p>')
    return '<section id="schema"><h2>Schema</h2>' + "".join(blocks) + "</section>"


def _pii(tag: dict[str, Any] | None) -> str:
    if not tag:
        return ""
    return " ".join(f'<span class="tag pii">{_e(k)}: {_e(v)}</span>' for k, v in tag.items())


def _silver_section(t: TableInfo) -> str:
    s = t.silver
    assert s is not None
    facts = (
        '<dl class="facts">'
        f"<dt>keys</dt><dd>{_e(', '.join(s.keys))}</dd><dt>sequence by</dt><dd>{_e(s.sequence_by)}</dd>"
        f"<dt>history</dt><dd>SCD type {s.scd}</dd><dt>partitioned by</dt><dd>{_e(', '.join(s.partition_by) or '-')}</dd>"
        "</dl>"
    )
    head = "<th>column</th><th>SQL</th><th>type</th>" + ("<th>PII</th>" if t.pii else "")
    cols = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td><code>{_e(expr)}</code></td><td><code>{_e(typ or '-')}</code></td>"
        + (f"<td>{_pii(t.pii.get(name))}</td>" if t.pii else "")
        + "</tr>"
        for name, expr, typ in s.columns
    )
    exps = "".join(
        f'<tr><td><code>{_e(x.name)}</code></td><td><code class="sql">{_e(x.rule)}</code></td>'
        f'<td><span class="tag act-{_e(x.action)}">{_e(x.action)}</span></td><td class="num">{_e(number(x.failures))}</td></tr>'
        for x in s.expectations
    )
    refine = (
        f'<details><summary>the refine SQL this target runs</summary><pre class="sql">{_e(s.refine_sql)}</pre></details>'
        if s.refine_sql
        else ""
    )
    return (
        f'<section id="silver"><h2>Silver</h2>{facts}<h3>Columns</h3>'
        f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{cols}</tbody></table>'
        '<h3>Expectations</h3><table class="grid"><thead><tr><th>name</th><th>rule (SQL)</th><th>action</th>'
        f"<th>failing rows (window)</th></tr></thead><tbody>{exps or '<tr><td colspan=4>none</td></tr>'}</tbody></table>"
        f"{refine}</section>"
    )


def _quarantine_section(t: TableInfo) -> str:
    counts = t.quarantine_by_rule or {}
    top = max(counts.values(), default=0) or 1
    rows = "".join(
        f'<tr><td><code>{_e(rule)}</code></td><td class="num">{n:,}</td>'
        f'<td><span class="hbar" style="width:{max(2, round(200 * n / top))}px"></span></td></tr>'
        for rule, n in counts.items()
    )
    q = t.layer(f"quarantine.{t.table}")
    total = f"{number(q.rows)} rows in quarantine.{t.table}" if q and q.exists else "no quarantine table yet"
    return (
        f'<section id="quarantine"><h2>Quarantine by rule</h2><p>{_e(total)} (a row that failed two rules counts '
        'for both)</p><table class="grid"><thead><tr><th>rule</th><th>rows</th><th></th></tr></thead>'
        f"<tbody>{rows or '<tr><td colspan=3>none</td></tr>'}</tbody></table></section>"
    )


def _gold_section(t: TableInfo, data: SiteData) -> str:
    golds = [x for x in t.layers if x.layer == "gold"]
    if not golds:
        return ""
    blocks = []
    for g in golds:
        reads = ", ".join(f'<a href="{_e(_relation_href(r, data))}">{_e(r)}</a>' for r in g.reads) or "-"
        blocks.append(
            f"<h3>{_e(g.relation)}</h3>"
            + (f"<p>{_e(g.description)}</p>" if g.description else "")
            + f'<p>reads {reads}</p><pre class="sql">{_e(g.sql)}</pre>'
        )
    return '<section id="gold"><h2>Gold</h2>' + "".join(blocks) + "</section>"


def _relation_href(relation: str, data: SiteData) -> str:
    """A relation's section on its owner's page (a gold query may read another spec's tables)."""
    node = data.lineage.nodes.get(relation)
    return f"{node.table}.html#{relation}" if node else "../index.html#lineage"


def _checks_section(t: TableInfo, data: SiteData) -> str:
    if not t.checks:
        return '<section id="checks"><h2>Checks</h2><p class="empty">No checks.</p></section>'
    t0, t1 = _extent([t for c in t.checks for t in (c.at[:1] + c.at[-1:])], data)
    cards = [_check_card(c, t0, t1) for c in t.checks]
    sql = "".join(
        f'<details><summary>SQL of the checks on {_e(rel)}</summary><pre class="sql">{_e(text)}</pre></details>'
        for rel, text in t.checks_sql.items()
        if text
    )
    return (
        '<section id="checks"><h2>Checks</h2><p>One point per validate in the check ledger: the value observed '
        f'against the threshold, coloured by its verdict.</p><div class="charts">{"".join(cards)}</div>{sql}</section>'
    )


def _check_card(c: CheckSeries, t0: float, t1: float) -> str:
    last = c.last_status
    counts = {s: c.status.count(s) for s in ("pass", "warn", "fail", "error")}
    summary = " · ".join(f"{n} {s}" for s, n in counts.items() if n) or "never run"
    return (
        f'<figure class="check" id="check-{_e(c.relation)}.{_e(c.check)}">'
        f"<figcaption><b>{_e(c.relation)} · {_e(c.check)}</b> {_check_badge(last) if last else _badge('none')}"
        f"<br><small>{_e(c.kind)} · severity {_e(c.severity)} · threshold {_e(c.threshold)} · plotted: "
        f"{_e(c.unit)} · {len(c)} run(s): {_e(summary)}</small></figcaption>"
        f"{check_chart(c, t0, t1)}</figure>"
    )


def _runs_section(t: TableInfo, data: SiteData) -> str:
    if not t.runs:
        return '<section id="runs"><h2>Runs</h2><p class="empty">No runs in the window.</p></section>'
    t0, t1 = _extent(
        [a for s in t.runs for a in s.at[:1]], data, ends=[s.at[-1] + s.seconds[-1] for s in t.runs if s.at]
    )
    rows = []
    for s in t.runs:
        secs = sorted(s.seconds)
        failed = len(s) - s.status.count("ok")
        last = s.status[-1]
        rows.append(
            f"<tr><td><code>{_e('every relation' if s.relation == '*' else s.relation)}</code></td>"
            f'<td>{_e(s.step)}</td><td class="num">{len(s)}</td>'
            f'<td class="num">{failed}</td><td class="num">{secs[len(secs) // 2]:.1f}s</td>'
            f'<td class="num">{secs[-1]:.1f}s</td><td>{_badge(last if last in STATUS_WORDS else "failed", last)}</td>'
            f"<td>{run_lane(s, t0, t1)}</td></tr>"
        )
    return (
        '<section id="runs"><h2>Runs</h2><p>Every step in the run ledger since '
        f"{_e(when(data.since))}: one bar per run, as long as it took.</p>"
        '<table class="grid runs"><thead><tr><th>relation</th><th>step</th><th>runs</th><th>not ok</th>'
        f"<th>median</th><th>max</th><th>last</th><th>{_e(when(t0))} → {_e(when(t1))}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _extent(times: list[float], data: SiteData, ends: list[float] | None = None) -> tuple[float, float]:
    """The time axis of a page's charts: its points, padded so the first and last are not on the edge."""
    if not times:
        return data.since, data.generated_at
    t0, t1 = min(times), max([*times, *(ends or [])])
    pad = max((t1 - t0) * 0.01, 30.0)
    return t0 - pad, t1 + pad


def site_json(data: SiteData) -> str:
    """A small machine-readable summary beside the pages (site.json), for scripts that check a build."""
    doc = {
        "project": data.project,
        "target": data.target,
        "generated_at": data.generated_at,
        "tables": [
            {
                "table": t.table,
                "page": table_href(t.table),
                "relations": {x.relation: {"rows": x.rows, "version": x.version} for x in t.layers},
                "landing": t.landing.status,
                "checks": {f"{c.relation}.{c.check}": len(c) for c in t.checks},
            }
            for t in data.tables
        ],
    }
    return json.dumps(doc, indent=1, sort_keys=True)
