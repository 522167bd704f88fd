"""The docs commands as a user runs them: `docs build` (--json, --since), `docs serve` (rebuilds on request,
loopback only) and `plan --format mermaid|json|text`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

SPEC = {
    "table": "pedidos",
    "description": "Pedidos do e-commerce",
    "owner": "vendas",
    "source": {"path": "pedidos/"},
    "silver": {
        "keys": ["id"],
        "sequence_by": "id",
        "columns": {"id": "cast(id as bigint)", "uf": "upper(uf)", "valor": "cast(valor as double)"},
        "expectations": [{"name": "valor_positivo", "rule": "valor > 0", "action": "quarantine"}],
    },
    "gold": {
        "por_uf": {"sql": "SELECT uf, sum(valor) AS total FROM silver.pedidos GROUP BY uf"},
        "top_uf": {"sql": "SELECT uf FROM gold.por_uf ORDER BY total DESC LIMIT 1"},
    },
    "checks": {"silver.pedidos": [{"row_count": {"min": 1}}], "gold.por_uf": [{"not_null": ["uf"]}]},
}


@pytest.fixture
def ran(project, run_cli):
    p = project(SPEC)
    p.write_landing("pedidos", "a.json", [{"id": 1, "uf": "sp", "valor": 10}, {"id": 2, "uf": "rj", "valor": -1}])
    code, out, err = run_cli("run", "--all", cwd=p.root)
    assert code == 0, out + err
    return p


@pytest.mark.slow
def test_docs_build_json_and_text(ran, run_cli):
    code, out, err = run_cli("docs", "build", "--out", "site", "--json", cwd=ran.root)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["pages"] == 2 and doc["tables"] == 1 and doc["target"] == "local"
    assert doc["ledger"]["runs"]["rows"] == doc["ledger"]["runs"]["total"] > 0
    assert Path(doc["index"]) == ran.root / "site" / "index.html" and Path(doc["index"]).is_file()
    page = (ran.root / "site" / "tables" / "pedidos.html").read_text()
    assert "gold.top_uf" in page and "valor_positivo" in page

    code, out, err = run_cli("docs", "build", "-o", str(ran.root / "other"), cwd=ran.root)
    assert code == 0, err
    assert "wrote 2 page(s) for 1 table(s) of target local" in out and "index.html" in out


@pytest.mark.slow
def test_docs_build_on_a_bad_config_or_since_is_a_usage_error(ran, run_cli):
    code, out, err = run_cli("docs", "build", "--since", "soon", cwd=ran.root)
    assert code == 2 and "--since" in err
    (ran.root / "afile").write_text("x")
    code, out, err = run_cli("docs", "build", "--out", "afile", cwd=ran.root)
    assert code == 2 and "a file is there" in err
    (ran.root / "configs" / "tables" / "bad.yaml").write_text("table: bad\nsource: {}\n")
    code, out, err = run_cli("docs", "build", cwd=ran.root)
    assert code == 2 and "bad.yaml" in err
    assert not (ran.root / "site").exists()


def test_docs_help_has_examples(capsys):
    from lh360.cli import run

    for args in (["docs", "--help"], ["docs", "build", "--help"], ["docs", "serve", "--help"]):
        assert run(args) == 0
        out = capsys.readouterr().out
        assert "Example:" in out and "lh360 docs" in out.split("Example:", 1)[1]


@pytest.mark.slow
def test_plan_format_mermaid_draws_lineage_and_numbered_steps(ran, run_cli):
    code, out, err = run_cli("plan", "--format", "mermaid", cwd=ran.root)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert '    landing__pedidos["landing.pedidos"]' in lines
    assert '    bronze__pedidos["bronze.pedidos<br/>1. ingest"]' in lines
    assert '    silver__pedidos["silver.pedidos<br/>2. refine<br/>5. validate"]' in lines
    assert '    gold__por_uf["gold.por_uf<br/>3. aggregate<br/>6. validate"]' in lines
    assert '    gold__top_uf["gold.top_uf<br/>4. aggregate"]' in lines
    assert '    quarantine__pedidos["quarantine.pedidos"]' in lines
    for edge in (
        "landing__pedidos --> bronze__pedidos",
        "silver__pedidos --> gold__por_uf",
        "gold__por_uf --> gold__top_uf",
    ):
        assert f"  {edge}" in lines
    assert "  class bronze__pedidos,silver__pedidos,gold__por_uf,gold__top_uf planned" in lines
    assert all(line.startswith(("flowchart", "  ")) for line in lines)  # nothing else on stdout

    code, out, err = run_cli("plan", "--to", "bronze", "--format", "mermaid", cwd=ran.root)
    assert code == 0, err
    assert "silver__pedidos" not in out and '["bronze.pedidos<br/>1. ingest"]' in out


@pytest.mark.slow
def test_plan_json_stays_and_format_json_is_the_same_document(ran, run_cli):
    outs = []
    for args in (["plan", "--json"], ["plan", "--format", "json"], ["plan", "--format", "mermaid", "--json"]):
        code, out, err = run_cli(*args, cwd=ran.root)
        assert code == 0, err
        outs.append(json.loads(out))
    assert outs[0]["steps"] and outs[0] == outs[1] == outs[2]
    code, out, err = run_cli("plan", "--format", "text", cwd=ran.root)
    assert code == 0 and out.startswith("plan for target local")
    code, out, err = run_cli("plan", "--format", "svg", cwd=ran.root)
    assert code == 2


def test_site_server_rebuilds_pages_not_assets(tmp_path):
    from lh360.site.serve import SiteServer

    builds = []

    def rebuild():
        builds.append(time.monotonic())
        (tmp_path / "index.html").write_text(f"<p>build {len(builds)}</p>")
        (tmp_path / "assets").mkdir(exist_ok=True)
        (tmp_path / "assets" / "site.css").write_text("p {}")

    server = SiteServer(tmp_path, rebuild, port=0, min_interval=0.0)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert _get(server.url) == (200, "<p>build 1</p>")
        assert _get(server.url + "index.html") == (200, "<p>build 2</p>")
        assert _get(server.url + "assets/site.css") == (200, "p {}")
        assert len(builds) == 2  # the stylesheet did not rebuild
    finally:
        server.shutdown()


def test_site_server_shows_a_failed_build_and_recovers(tmp_path):
    from lh360.errors import ConfigError
    from lh360.site.serve import SiteServer

    state = {"broken": True}

    def rebuild():
        if state["broken"]:
            raise ConfigError("tables/x.yaml:3: silver.keys: required")
        (tmp_path / "index.html").write_text("fine")

    server = SiteServer(tmp_path, rebuild, port=0, min_interval=60.0)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, body = _get(server.url)
        assert code == 500 and "silver.keys: required" in body
        state["broken"] = False
        assert _get(server.url) == (200, "fine")  # a failed build is retried at once, whatever min_interval
    finally:
        server.shutdown()


@pytest.mark.slow
def test_docs_serve_rebuilds_on_request_and_stops_on_ctrl_c(ran, tmp_path):
    env = {**os.environ, "LH360_CONFIG": str(ran.config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lh360", "docs", "serve", "--port", "0", "--out", str(tmp_path / "site")],
        cwd=ran.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+/)", line).group(1)
        code, index = _get(url)
        assert code == 200 and "tables/pedidos.html" in index and "tables/clientes2.html" not in index
        # a new spec appears on the next page load: the site is rebuilt from the specs and ledgers
        (ran.root / "configs" / "tables" / "clientes2.yaml").write_text(
            yaml.safe_dump({"table": "clientes2", "source": {"path": "clientes2/"}})
        )
        time.sleep(1.2)  # past the rebuild interval
        code, index = _get(url)
        assert code == 200 and "tables/clientes2.html" in index
        assert _get(url + "tables/clientes2.html")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted by SIGINT" in err, err  # how every command ends on Ctrl-C


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
