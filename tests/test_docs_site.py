"""`lh360 docs build` on a real demo lake: what every page holds, read back from the HTML the build wrote and
compared with the lake, the ledgers and the specs."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.docs_support import DemoLake, build_demo_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> DemoLake:
    return build_demo_lake(tmp_path_factory.mktemp("docs") / "demo")


@pytest.fixture(scope="module")
def site(lake, tmp_path_factory):
    from lh360.site import build_site

    out = tmp_path_factory.mktemp("site")
    result = build_site(lake.lakehouse(), out)
    return SimpleNamespace(out=out, result=result, data=result.data)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def parse(path: Path) -> Elements:
    doc = Elements()
    doc.feed(path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.slow
def test_the_site_has_an_index_and_a_page_per_table(site, lake):
    assert (site.out / "index.html").is_file()
    assert sorted(p.name for p in (site.out / "tables").iterdir()) == ["clientes.html", "regioes.html"]
    assert (site.out / "assets" / "site.css").is_file() and (site.out / "assets" / "site.js").is_file()
    assert site.result.pages == 3 and site.result.tables == 2
    index = parse(site.out / "index.html")
    links = {a["href"] for a in index.find("a", **{"class": "table-link"})}
    assert links == {"tables/clientes.html", "tables/regioes.html"}


def test_the_lineage_graph_has_every_relation_and_the_gold_to_gold_edge(site):
    index = parse(site.out / "index.html")
    nodes = {a["data-node"]: a for a in index.find("a") if "data-node" in a}
    assert set(nodes) == {
        "landing.clientes",
        "bronze.clientes",
        "silver.clientes",
        "quarantine.clientes",
        "gold.clientes_por_uf",
        "gold.clientes_por_segmento",
        "landing.regioes",
        "bronze.regioes",
        "silver.regioes",
        "quarantine.regioes",
        "gold.clientes_por_regiao",
    }
    # each node opens its table's page, at its section
    assert nodes["gold.clientes_por_regiao"]["href"] == "tables/regioes.html#gold.clientes_por_regiao"
    assert nodes["silver.clientes"]["href"] == "tables/clientes.html#silver.clientes"
    edges = {(p["data-from"], p["data-to"]) for p in index.find("path") if "data-from" in p}
    assert ("gold.clientes_por_uf", "gold.clientes_por_regiao") in edges  # from the gold SQL's references
    assert ("silver.regioes", "gold.clientes_por_regiao") in edges
    assert ("bronze.clientes", "quarantine.clientes") in edges and ("landing.clientes", "bronze.clientes") in edges
    # every node ran ok in the demo: coloured ok
    assert {a["class"] for a in nodes.values()} == {"node st-ok"}


def test_a_failed_last_run_colours_its_node_and_shows_the_error(lake, tmp_path):
    from lh360.errors import EngineError
    from lh360.site import build_site

    lh = lake.lakehouse()
    with pytest.raises(EngineError):
        with lh.ledger.step("regioes", "gold.clientes_por_regiao", "aggregate"):
            raise EngineError("the warehouse is down")
    try:
        build_site(lake.lakehouse(), tmp_path)
        nodes = {a["data-node"]: a for a in parse(tmp_path / "index.html").find("a") if "data-node" in a}
        assert nodes["gold.clientes_por_regiao"]["class"] == "node st-failed"
        assert nodes["gold.clientes_por_uf"]["class"] == "node st-ok"
        page = (tmp_path / "tables" / "regioes.html").read_text()
        assert "the warehouse is down" in page
    finally:  # the module's other tests expect an all-ok lake: a later ok run of the same step
        lh2 = lake.lakehouse()
        with lh2.ledger.step("regioes", "gold.clientes_por_regiao", "aggregate"):
            pass


def test_table_page_shows_rows_and_versions_per_layer_from_the_delta_logs(site, lake):
    from lh360.inventory import inventory

    lh = lake.lakehouse()
    expected = {r["relation"]: r for r in inventory(lh.project, lh.target)}
    page = parse(site.out / "tables" / "clientes.html")
    text = (site.out / "tables" / "clientes.html").read_text()
    for relation in ("bronze.clientes", "silver.clientes", "gold.clientes_por_uf", "gold.clientes_por_segmento"):
        (row,) = page.find("tr", id=relation)
        assert row is not None
        info = site.data.tables[0].layer(relation)
        assert (info.rows, info.version) == (expected[relation]["rows"], expected[relation]["version"])
        cells = re.search(rf'<tr id="{re.escape(relation)}">(.*?)</tr>', text).group(1)
        assert f"{info.rows:,}" in cells and f">{info.version}<" in cells


def test_table_page_shows_spec_facts_schema_silver_sql_and_expectations(site):
    page = (site.out / "tables" / "clientes.html").read_text()
    assert "Clientes da base transacional RT2" in page and "Fernando Wellington A. Amaral" in page
    assert "feature: FEAT-2025-INT" in page  # tags
    # schema with types from the Delta log, and the silver columns' SQL
    assert "<code>renda_mensal</code></td><td><code>decimal(18,2)</code>" in page
    assert "regexp_replace(cpf, &#x27;[^0-9]&#x27;, &#x27;&#x27;)" in page
    # expectations with their SQL and action; the refine SQL the engine would run
    assert "<code>cpf_11_digitos</code>" in page and "length(cpf) = 11" in page and "act-quarantine" in page
    assert "the refine SQL this target runs" in page
    # gold SQL, and the checks' SQL in the validator's dialect
    assert "FROM silver.clientes WHERE ativo GROUP BY uf" in page
    assert "SQL of the checks on silver.clientes" in page


def test_landing_sla_and_its_current_state(site, lake, tmp_path):
    page = (site.out / "tables" / "regioes.html").read_text()
    assert "newest file at most 1h old" in page and "at least 1 file(s)" in page
    land = site.data.tables[1].landing
    assert land.status == "ok" and land.files == 1 and land.pending_files == 0

    # an old file breaches the SLA: the landing node turns orange
    import os

    from lh360.site import build_site

    old = time.time() - 3 * 3600
    landing = next((lake.root / "lakehouse" / "landing" / "regioes").glob("*.json"))
    os.utime(landing, (old, old))
    try:
        result = build_site(lake.lakehouse(), tmp_path)
        assert result.data.tables[1].landing.status == "breach"
        nodes = {a["data-node"]: a for a in parse(tmp_path / "index.html").find("a") if "data-node" in a}
        assert nodes["landing.regioes"]["class"] == "node st-breach"
        assert "over the SLA of 1h" in (tmp_path / "tables" / "regioes.html").read_text()
    finally:
        now = time.time()
        os.utime(landing, (now, now))


def test_quarantine_counts_by_rule_match_the_quarantine_table(site, lake):
    from lh360.engines.local.duck import LakeCatalog, connect

    con = connect()
    LakeCatalog(con, lake.lakehouse().target).attach("quarantine", "clientes")
    expected = dict(
        con.execute(
            "SELECT r, count(*) FROM (SELECT unnest(_failed_rules) AS r FROM quarantine.clientes) GROUP BY r"
        ).fetchall()
    )
    con.close()
    assert expected and site.data.tables[0].quarantine_by_rule == expected
    assert site.data.tables[1].quarantine_by_rule == {"uf_duas_letras": 1}
    page = (site.out / "tables" / "regioes.html").read_text()
    assert re.search(r"<code>uf_duas_letras</code></td><td class=\"num\">1</td>", page)


def test_every_check_has_a_chart_with_one_point_per_ledger_row(site, lake):
    rows = lake.ledger_rows("checks")
    expected: dict[str, int] = {}
    for r in rows:
        key = f"{r['relation']}.{r['check']}"
        expected[key] = expected.get(key, 0) + 1
    charts = {}
    for page in ("clientes", "regioes"):
        for svg in parse(site.out / "tables" / f"{page}.html").find("svg"):
            if "data-check" in svg:
                charts[svg["data-check"]] = int(svg["data-points"])
    assert charts == expected
    assert min(expected.values()) >= 2  # the demo ran validate more than once
    html = (site.out / "tables" / "clientes.html").read_text()
    chart = re.search(r'<svg class="chart"[^>]*data-check="silver.clientes.row_count".*?</svg>', html).group(0)
    assert chart.count('<circle class="pt s-pass"') == expected["silver.clientes.row_count"]
    assert 'class="bound"' in chart and "min 1" in chart  # the threshold line


def test_run_timeline_has_one_bar_per_run_ledger_row(site, lake):
    rows = lake.ledger_rows("runs")
    lanes = {}
    for svg in parse(site.out / "tables" / "clientes.html").find("svg"):
        if "data-lane" in svg:
            lanes[svg["data-lane"]] = int(svg["data-runs"])
    expected: dict[str, int] = {}
    for r in rows:
        named = r["table"] == "*" or "clientes" in r["table"].split(",")
        if r["table"] == "clientes" or (r["step"] == "validate" and named):
            key = f"{r['relation']}:{r['step']}"
            expected[key] = expected.get(key, 0) + 1
    assert lanes == expected
    assert lanes["silver.clientes:refine"] >= 2


def test_the_site_fetches_nothing_from_anywhere(site):
    for path in site.out.rglob("*"):
        if path.suffix not in (".html", ".css", ".js"):
            continue
        text = path.read_text()
        for m in re.finditer(r'(?:src|href)="([^"]*)"', text):
            assert "://" not in m.group(1) and not m.group(1).startswith("//"), (path, m.group(1))
        assert "@import" not in text and "url(" not in text.replace("xmlns", "")
        assert "fetch(" not in text and "XMLHttpRequest" not in text


def test_history_window_and_ledger_totals(lake, tmp_path):
    from lh360.site import build_site

    result = build_site(lake.lakehouse(), tmp_path, since_s=1.0, now=time.time() + 10 * 86400)
    assert result.data.ledger["runs"]["rows"] == 0 and result.data.ledger["runs"]["total"] > 0
    charts = [s for s in parse(tmp_path / "tables" / "clientes.html").find("svg") if "data-check" in s]
    assert charts and all(s["data-points"] == "0" for s in charts)
    # relations that did not run in the window still show their last run (from the whole ledger)
    nodes = {a["data-node"]: a for a in parse(tmp_path / "index.html").find("a") if "data-node" in a}
    assert nodes["silver.clientes"]["class"] == "node st-ok"


def test_a_project_that_never_ran_builds_a_grey_site(project, tmp_path):
    from lh360.config import load_project
    from lh360.context import Lakehouse
    from lh360.site import build_site

    p = project(
        {
            "table": "t",
            "source": {"path": "t/"},
            "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "id"}},
        }
    )
    loaded = load_project(p.config)
    result = build_site(Lakehouse(loaded, loaded.target()), tmp_path / "site")
    nodes = {a["data-node"]: a for a in parse(tmp_path / "site" / "index.html").find("a") if "data-node" in a}
    assert set(nodes) == {"landing.t", "bronze.t", "silver.t"}
    assert nodes["bronze.t"]["class"] == nodes["silver.t"]["class"] == "node st-none"  # never run
    assert nodes["landing.t"]["class"] == "node st-breach"  # no file yet: fewer than min_files 1
    assert result.data.ledger["runs"] == {"rows": 0, "total": 0, "error": None}
    assert "not built yet" in (tmp_path / "site" / "index.html").read_text()


def test_a_removed_spec_loses_its_page(lake, tmp_path):
    from lh360.site import build_site

    stale = tmp_path / "tables" / "gone.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    build_site(lake.lakehouse(), tmp_path)
    assert not stale.exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_site_json_summarises_the_build(site):
    doc = json.loads((site.out / "site.json").read_text())
    assert [t["table"] for t in doc["tables"]] == ["clientes", "regioes"]
    assert doc["tables"][0]["relations"]["silver.clientes"]["rows"] == site.data.tables[0].layer("silver.clientes").rows


def test_pii_tags_are_shown_where_the_spec_model_carries_them():
    from lh360.site.collect import pii_tags

    silver = SimpleNamespace(columns={"cpf": SimpleNamespace(pii={"kind": "cpf", "silver": "hash"}), "uf": "uf"})
    assert pii_tags(SimpleNamespace(silver=silver)) == {"cpf": {"kind": "cpf", "silver": "hash"}}
    assert pii_tags(SimpleNamespace(pii={"email": {"kind": "email"}}, silver=None)) == {"email": {"kind": "email"}}
    assert pii_tags(SimpleNamespace(silver=SimpleNamespace(columns={"id": "id"}))) == {}


@pytest.mark.parametrize(
    "kind, observed, checked_at, value",
    [
        ("row_count", "4546", 0.0, 4546.0),
        ("not_null", "0", 0.0, 0.0),
        ("reconcile", '{"left": 10, "right": 7.5}', 0.0, 2.5),
        ("freshness", '"2026-01-01T00:00:00"', 1767229200.0, 1.0),  # one hour after midnight UTC
        ("freshness", '"2026-01-01T00:00:00+00:00"', 1767232800.0, 2.0),
        ("row_count", None, 0.0, None),
        ("freshness", '"not a time"', 0.0, None),
    ],
)
def test_the_value_a_check_chart_plots(kind, observed, checked_at, value):
    from lh360.site.collect import check_value

    assert check_value(kind, observed, checked_at) == value
