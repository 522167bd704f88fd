"""The shape of the house (scripts/import_graph.py reads it from the source): imports point one way, engines
are chosen by the registry alone, and `lh360 --help` loads no heavy library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import import_graph  # noqa: E402


def test_no_import_cycle_anywhere_in_lh360():
    assert import_graph.cycles(import_graph.load()) == []


def test_no_engine_or_validator_name_is_compared_outside_engines():
    assert import_graph.engine_name_switches() == []


def test_engines_never_import_orchestration():
    """Engines sit below the context, the plan, the CLI and the checks' orchestration: never the reverse."""
    modules = import_graph.load()
    upward = ("lh360.context", "lh360.plan", "lh360.cli", "lh360.checks", "lh360.landing", "lh360.demo")
    found = [
        f"{name} → {target}"
        for name, mod in modules.items()
        if name.startswith("lh360.engines")
        for target in {*mod.top, *(t for _, t in mod.local)}
        if target.startswith(upward)
    ]
    assert found == []


def test_the_import_graph_finds_a_cycle_when_there_is_one(tmp_path, monkeypatch):
    """The checker itself can fail: two modules importing each other inside functions form a cycle."""
    pkg = tmp_path / "lh360"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from lh360 import b\n")
    (pkg / "b.py").write_text("from lh360.a import f\n")
    monkeypatch.setattr(import_graph, "ROOT", tmp_path)
    monkeypatch.setattr(import_graph, "PACKAGE", pkg)
    assert import_graph.cycles(import_graph.load()) == [["lh360.a", "lh360.b"]]


def test_every_function_level_import_keeps_a_heavy_library_off_the_import_path_or_says_why():
    assert import_graph.unjustified_local_imports(import_graph.load()) == []


def test_the_import_graph_flags_a_function_level_import_with_no_reason(tmp_path, monkeypatch):
    """The checker itself can fail: a light import inside a function with no comment belongs at the top; a heavy
    library, an lh360 module that loads one, or a comment saying why justify it (a lint directive does not)."""
    pkg = tmp_path / "lh360"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("import duckdb\n")
    (pkg / "light.py").write_text("X = 1\n")
    (pkg / "a.py").write_text(
        "def f():\n"
        "    import json\n"  # line 2: no reason
        "    import duckdb\n"
        "    from lh360 import heavy\n"
        "    from lh360 import light  # type: ignore[attr-defined]\n"  # line 5: a directive is no reason
        "    # light's import runs a registration: at call time\n"
        "    from lh360.light import X\n"
        "    import os  # os.environ is patched by the caller\n"
    )
    monkeypatch.setattr(import_graph, "ROOT", tmp_path)
    monkeypatch.setattr(import_graph, "PACKAGE", pkg)
    assert import_graph.unjustified_local_imports(import_graph.load()) == [
        "lh360/a.py:2: json",
        "lh360/a.py:5: lh360.light",
    ]


def test_help_loads_no_heavy_library():
    code = (
        "import sys; from lh360.cli import run; "
        "sys.argv = ['lh360', '--help']\n"
        "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(import_graph.HEAVY)!r})\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_one_identifier_quoting_helper():
    """SQL identifiers and string literals are quoted by lh360.sql alone (lh360/spark/ is the self-contained
    job lh360 uploads: it keeps its own)."""
    from lh360.sql import quote_ident, quote_literal

    assert quote_ident('a "b"') == '"a ""b"""'
    assert quote_literal("d'Ávila") == "'d''Ávila'"
    copies = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "lh360").rglob("*.py"))
        if path.name != "sql.py" and "spark" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if """.replace('"', '""')""" in line or """.replace("'", "''")""" in line
    ]
    assert copies == []


def test_comments_cite_only_files_in_the_repository():
    """The design notes and reviews lh360 was built from are not in the repository: what the code needs
    from them is said where it is needed, never as a citation."""
    import re

    outside = re.compile(r"\b(NOTES|DESIGN)\.md\b|\breviews/|\bseeds/")
    cited = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("lh360", "tests", "scripts", "benchmarks", "docs", "terraform")
        for path in sorted((REPO / folder).rglob("*"))
        if path.suffix in {".py", ".md", ".sh", ".tf", ".mjs", ".yaml"} and "node_modules" not in path.parts
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if outside.search(line) and path.name != "test_architecture.py"
    ]
    assert cited == []
