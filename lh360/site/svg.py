"""SVG drawn by hand for the site (no chart library, no network): the lineage graph, a check's history and a
step's run timeline. Each function returns markup; every value in it is escaped here."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from typing import TYPE_CHECKING

from lh360.site.graph import Lineage, Placed

if TYPE_CHECKING:
    from lh360.site.collect import CheckSeries, StepSeries

NODE_W, NODE_H = 226, 46
COL_GAP, ROW_GAP = 64, 14
PAD = 24
LAYER_TITLES = {0: "landing", 1: "bronze", 2: "silver · quarantine", 3: "gold"}


def _a(value: object) -> str:
    """An attribute value."""
    return escape(str(value), quote=True)


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return _minute(int(epoch // 60))


@lru_cache(maxsize=1 << 16)
def _minute(minute: int) -> str:
    # charts label hundreds of thousands of points with a few thousand distinct minutes: format each once
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cls(status: str | None) -> str:
    """A status as a class-name suffix (statuses come from the ledgers: escape anything unexpected)."""
    return status if status in _KNOWN_STATUSES else _a(status)


_KNOWN_STATUSES = frozenset({"ok", "failed", "breach", "busy", "none", "pass", "warn", "fail", "error"})


def age(seconds: float | None) -> str:
    """3m, 5h, 2d: how long ago (or how old)."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit}"
    return f"{s:.0f}s"


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


# ---- lineage -----------------------------------------------------------------------------------------


def lineage_svg(
    graph: Lineage, placed: dict[str, Placed], labels: dict[str, dict[str, str]], href: dict[str, str]
) -> str:
    """The graph with a box per node: its name, `labels[id]["line"]` (freshness, rows) and the colour of
    `labels[id]["status"]`; each box links to `href[id]`."""
    if not placed:
        return '<p class="empty">No tables yet.</p>'
    cols = max(p.column for p in placed.values()) + 1
    rows = max(p.row for p in placed.values()) + 1
    width = PAD * 2 + cols * NODE_W + (cols - 1) * COL_GAP
    height = PAD * 2 + 18 + rows * NODE_H + (rows - 1) * ROW_GAP

    def x(p: Placed) -> float:
        return PAD + p.column * (NODE_W + COL_GAP)

    def y(p: Placed) -> float:
        return PAD + 18 + p.row * (NODE_H + ROW_GAP)

    parts = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">'
    ]
    for c in range(cols):
        title = LAYER_TITLES.get(c, "gold")
        parts.append(f'<text class="col-title" x="{PAD + c * (NODE_W + COL_GAP)}" y="{PAD}">{escape(title)}</text>')
    for src, dst in graph.edges:
        a, b = placed.get(src), placed.get(dst)
        if a is None or b is None:
            continue
        x1, y1 = x(a) + NODE_W, y(a) + NODE_H / 2
        x2, y2 = x(b), y(b) + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" data-from="{_a(src)}" data-to="{_a(dst)}" '
            f'd="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"/>'
        )
    for nid, p in placed.items():
        label = labels.get(nid, {})
        status = label.get("status", "none")
        parts.append(
            f'<a class="node st-{_a(status)}" href="{_a(href[nid])}" data-node="{_a(nid)}" data-layer="{_a(p.node.layer)}">'
            f"<title>{escape(nid)}: {escape(label.get('title', status))}</title>"
            f'<rect x="{x(p):.0f}" y="{y(p):.0f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<circle class="dot" cx="{x(p) + 13:.0f}" cy="{y(p) + 16:.0f}" r="5"/>'
            f'<text class="name" x="{x(p) + 24:.0f}" y="{y(p) + 20:.0f}">{escape(_clip(p.node.layer + "." + p.node.name, 28))}</text>'
            f'<text class="line" x="{x(p) + 12:.0f}" y="{y(p) + 37:.0f}">{escape(_clip(label.get("line", ""), 34))}</text>'
            "</a>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- a check's history -----------------------------------------------------------------------------


CHART_W, CHART_H = 520, 150
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 56, 12, 12, 24


def check_chart(series: CheckSeries, t0: float, t1: float) -> str:
    """Observed value over time, one point per check-ledger row coloured by its status, the allowed range
    as dashed lines. A row without a value (the check could not run) sits on the axis."""
    values = [v for v in series.value if v is not None]
    bounds = [b for b in (series.low, series.high) if b is not None]
    lo = min([0.0, *values, *bounds])
    hi = lo + _nice(max([*values, *bounds, lo + 1.0]) - lo)
    plot_w, plot_h = CHART_W - M_LEFT - M_RIGHT, CHART_H - M_TOP - M_BOTTOM
    span = max(t1 - t0, 1.0)

    def sx(t: float) -> float:
        return M_LEFT + (t - t0) / span * plot_w

    def sy(v: float) -> float:
        return M_TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" data-check="{_a(series.relation + "." + series.check)}" '
        f'data-points="{len(series)}" role="img" aria-label="{_a(series.check)} history">',
        f'<line class="axis" x1="{M_LEFT}" y1="{M_TOP + plot_h}" x2="{CHART_W - M_RIGHT}" y2="{M_TOP + plot_h}"/>',
        f'<line class="axis" x1="{M_LEFT}" y1="{M_TOP}" x2="{M_LEFT}" y2="{M_TOP + plot_h}"/>',
        f'<text class="tick" x="{M_LEFT - 4}" y="{M_TOP + 8}" text-anchor="end">{escape(_short(hi))}</text>',
        f'<text class="tick" x="{M_LEFT - 4}" y="{M_TOP + plot_h}" text-anchor="end">{escape(_short(lo))}</text>',
        f'<text class="tick" x="{M_LEFT}" y="{CHART_H - 6}">{escape(when(t0))}</text>',
        f'<text class="tick" x="{CHART_W - M_RIGHT}" y="{CHART_H - 6}" text-anchor="end">{escape(when(t1))}</text>',
    ]
    for bound, name in ((series.low, "min"), (series.high, "max")):
        if bound is not None:
            yb = sy(bound)
            out.append(
                f'<line class="bound" x1="{M_LEFT}" y1="{yb:.1f}" x2="{CHART_W - M_RIGHT}" y2="{yb:.1f}"/>'
                f'<text class="bound-label" x="{CHART_W - M_RIGHT - 2}" y="{yb - 3:.1f}" text-anchor="end">'
                f"{name} {escape(_short(bound))}</text>"
            )
    xs = [sx(t) for t in series.at]
    ys = [sy(v) if v is not None else M_TOP + plot_h for v in series.value]
    line = [f"{x:.1f},{y:.1f}" for x, y, v in zip(xs, ys, series.value) if v is not None]
    if len(line) > 1:
        out.append(f'<polyline class="trend" points="{" ".join(line)}"/>')
    unit = escape(series.unit)
    for x, y, at, status, value, message in zip(xs, ys, series.at, series.status, series.value, series.message):
        status = _cls(status)
        # the message says more than the value only when the check did not pass
        extra = f" · {escape(message)}" if message and status != "pass" else ""
        out.append(
            f'<circle class="pt s-{status}" cx="{x:.1f}" cy="{y:.1f}" r="3.2"><title>{when(at)} · '
            f"{status} · {number(value)} {unit}{extra}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def _nice(span: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k that is at least `span` × 1.05 (a round top for the y axis)."""

    target = max(span * 1.05, 1e-9)
    k = 10 ** math.floor(math.log10(target))
    return next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= target)


def _short(v: float) -> str:
    a = abs(v)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= size:
            return f"{v / size:.1f}{unit}"
    return f"{v:.0f}" if float(v).is_integer() or a >= 10 else f"{v:.2f}"


# ---- a step's runs ---------------------------------------------------------------------------------


LANE_W, LANE_H = 560, 26


def run_lane(series: StepSeries, t0: float, t1: float) -> str:
    """One bar per run-ledger row: where it started, as long as it took (2 px at least), its status colour."""
    span = max(t1 - t0, 1.0)
    usable = LANE_W - 8

    out = [
        f'<svg class="lane" xmlns="http://www.w3.org/2000/svg" width="{LANE_W}" height="{LANE_H}" '
        f'viewBox="0 0 {LANE_W} {LANE_H}" data-lane="{_a(series.relation + ":" + series.step)}" '
        f'data-runs="{len(series)}" role="img" aria-label="{_a(series.step)} runs">',
        f'<line class="axis" x1="4" y1="{LANE_H - 3}" x2="{LANE_W - 4}" y2="{LANE_H - 3}"/>',
    ]
    scale = usable / span
    height = LANE_H - 10
    for at, seconds, status, rows_out, error in zip(
        series.at, series.seconds, series.status, series.rows_out, series.error
    ):
        x1 = 4 + (at - t0) * scale
        w = max(2.0, seconds * scale)
        rows = f" · {rows_out:,} rows out" if rows_out is not None else ""
        err = f" · {escape(error[:200])}" if error else ""
        status = _cls(status)
        out.append(
            f'<rect class="bar st-{status}" x="{x1:.1f}" y="4" width="{w:.1f}" height="{height}"><title>'
            f"{when(at)} · {status} · {seconds:.1f}s{rows}{err}</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)
