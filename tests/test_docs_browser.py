"""The docs site in a real browser: Debian's headless Chromium driven by Playwright (its Python package, with
`executable_path`: Playwright's own browser download is never used). Opened from file://, as a user would
open a built site.

scripts/test.sh installs chromium with apt-get; these tests skip, saying so, only where it is missing.
"""

from __future__ import annotations

import shutil

import pytest

from tests.docs_support import DemoLake, build_demo_lake

pytestmark = pytest.mark.slow  # a demo lake and a browser: some 20 s

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# no background networking (a closed network refuses Chromium's own connections), a fresh profile
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs it: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (a test extra) is missing")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> DemoLake:
    return build_demo_lake(tmp_path_factory.mktemp("browser") / "demo")


@pytest.fixture(scope="module")
def site(lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = lake.cli("docs", "build", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def page(browser, site):
    """A page in a fresh context that records every request it makes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requests = []  # type: ignore[attr-defined]
    context.on("request", lambda request: page.requests.append(request.url))  # type: ignore[attr-defined]
    yield page
    context.close()


def test_the_index_renders_every_table_and_every_relation_of_the_demo(page, site, lake):
    page.goto((site / "index.html").as_uri())
    project = lake.lakehouse().project
    assert page.title().startswith("lh360 · lakehouse360")
    for name, spec in project.specs.items():
        link = page.locator("a.table-link", has_text=name)
        assert link.count() == 1 and link.is_visible()
        for relation in [f"landing.{name}", *spec.relations()]:
            node = page.locator(f'svg.lineage a.node[data-node="{relation}"]')
            assert node.count() == 1, relation
            box = node.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 20, relation  # laid out, on screen
    # the status colours come from the stylesheet: an ok node is filled green-ish, not black
    fill = page.locator('a.node[data-node="silver.clientes"] rect').evaluate("r => getComputedStyle(r).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")


def test_clicking_a_lineage_node_opens_its_table_page(page, site):
    page.goto((site / "index.html").as_uri())
    page.locator('svg.lineage a.node[data-node="gold.clientes_por_regiao"]').click()
    page.wait_for_url("**/tables/regioes.html#gold.clientes_por_regiao")
    assert page.locator("h1").inner_text() == "regioes"
    assert page.locator('tr[id="gold.clientes_por_regiao"]').is_visible()
    page.go_back()
    page.locator('svg.lineage a.node[data-node="quarantine.clientes"]').click()
    page.wait_for_url("**/tables/clientes.html#quarantine.clientes")
    assert page.locator("h1").inner_text() == "clientes"


def test_each_check_chart_has_one_point_per_run_in_the_check_ledger(page, site, lake):
    runs: dict[str, int] = {}
    for row in lake.ledger_rows("checks"):
        key = f"{row['relation']}.{row['check']}"
        runs[key] = runs.get(key, 0) + 1
    seen = {}
    for table in ("clientes", "regioes"):
        page.goto((site / "tables" / f"{table}.html").as_uri())
        for chart in page.locator("svg.chart").all():
            name = chart.get_attribute("data-check")
            points = chart.locator("circle.pt")
            seen[name] = points.count()
            width = float(chart.get_attribute("width"))
            xs = [float(x) for x in points.evaluate_all("cs => cs.map(c => c.getAttribute('cx'))")]
            assert all(0 < x < width for x in xs), name  # inside the chart
    assert seen == runs and min(runs.values()) >= 2


def test_the_site_makes_no_request_outside_itself(page, site):
    root = site.as_uri() + "/"
    page.goto(root + "index.html")
    page.locator("#filter").fill("regioes")
    assert page.locator('tr[data-table="clientes"]').is_hidden()  # the script runs, offline
    page.locator('svg.lineage a.node[data-node="silver.regioes"]').hover()
    page.locator('svg.lineage a.node[data-node="silver.regioes"]').click()
    page.wait_for_url("**/tables/regioes.html#silver.regioes")
    page.goto(root + "tables/clientes.html")
    page.locator("svg.chart circle.pt").first.hover()
    page.wait_for_load_state("networkidle")
    assert page.requests, "no request was recorded at all"
    outside = [url for url in page.requests if not url.startswith(root)]
    assert outside == []
    assert any(url.endswith("assets/site.css") for url in page.requests)
