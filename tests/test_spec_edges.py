"""Specs at the edges: one gold table per name, alias bombs, YAML 1.2 scalars, types and durations that can
never run, and where errors find their line (a source map on the loaded objects, no module state)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lh360.errors import ConfigError


def _spec(table: str, **extra) -> dict:
    return {
        "table": table,
        "source": {"path": f"{table}/"},
        "silver": {"keys": ["id"], "sequence_by": "id", "columns": {"id": "cast(id as bigint)"}},
        **extra,
    }


# ---- 2.4: two specs, one gold table -----------------------------------------------------------------


def _two_owners(project):
    a = _spec("a", gold={"summary": {"sql": "SELECT 'a' AS owner, count(*) AS n FROM silver.a"}})
    b = _spec("b", gold={"summary": {"sql": "SELECT 'b' AS owner, count(*) AS n FROM silver.b"}})
    return project([a, b])


def test_two_specs_defining_one_gold_table_is_a_spec_error_naming_both(project):
    p = _two_owners(project)
    with pytest.raises(ConfigError) as info:
        p.load()
    err = info.value
    a, b = (p.root / "configs" / "tables" / f"{t}.yaml" for t in "ab")
    text = str(err)
    assert err.file == str(b) and err.field == "gold.summary" and err.line == 11, text
    assert f"{a}:11" in text, text


@pytest.mark.slow
def test_lint_and_every_command_exit_2_on_a_duplicate_gold_table(project, run_cli):
    p = _two_owners(project)
    p.write_landing("a", "1.json", [{"id": 1}])
    for args in (("lint",), ("run", "--all"), ("tables",), ("validate", "a")):
        code, out, err = run_cli(*args, cwd=p.root)
        assert code == 2, (args, out, err)
        assert "a.yaml:11" in err and "b.yaml:11" in err and "gold.summary" in err, (args, err)
    assert not (p.lake / "gold").exists()


# ---- 4.2: alias bombs --------------------------------------------------------------------------------

BOMB = """\
x-notes:
  a: &a [x, x, x, x, x, x, x, x, x]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.timeout(20)
def test_an_alias_bomb_is_refused_fast(project):
    p = project(_spec("ev"))
    spec_file = p.root / "configs" / "tables" / "ev.yaml"
    spec_file.write_text(spec_file.read_text() + BOMB)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        p.load()
    assert time.monotonic() - started < 0.5
    assert "alias" in info.value.reason and info.value.file == str(spec_file)


@pytest.mark.timeout(20)
def test_lint_refuses_an_alias_bomb_with_exit_2(project, run_cli):
    p = project(_spec("ev"))
    config = p.config
    config.write_text(config.read_text() + BOMB)
    code, out, err = run_cli("lint", cwd=p.root, timeout=15)
    assert code == 2 and "alias" in err and str(config) in err, (out, err)


def test_a_recursive_alias_is_refused(tmp_path):
    from lh360.yamlio import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert "alias" in info.value.reason and info.value.line == 1


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    from lh360.yamlio import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text("base: &b {engine: local, lake: x}\nprod:\n  <<: *b\n  lake: y\nlist: [*b, *b]\n")
    data = load_yaml(path)
    assert data["prod"] == {"engine": "local", "lake": "y"} and data["list"] == [data["base"]] * 2


# ---- finding 20: YAML 1.2 scalars ------------------------------------------------------------------------


def test_values_keep_the_text_the_user_wrote(tmp_path):
    from lh360.yamlio import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text(
        "values: [NO, SE, ON, off, yes, Y, n, 2024-01-01, 1:30, 010, 0o17, 0x1F, 1e3, .5, ~, null, true, False]\n"
    )
    assert load_yaml(path)["values"] == [
        "NO", "SE", "ON", "off", "yes", "Y", "n", "2024-01-01", "1:30", 10, 15, 31, 1000.0, 0.5, None, None, True, False
    ]  # fmt: skip


def test_accepted_values_with_yaml_11_booleans_are_checked_as_text(project):
    from lh360.checks import run_validation
    from lh360.engines.local.ingest import ingest
    from lh360.engines.local.query import DuckDBRunner
    from lh360.engines.local.refine import refine

    spec = _spec("ev")
    spec["silver"]["columns"]["uf"] = "uf"
    p = project(spec)
    spec_file = p.root / "configs" / "tables" / "ev.yaml"
    spec_file.write_text(
        spec_file.read_text() + "checks:\n  silver.ev:\n    - accepted_values: {column: uf, values: [NO, SE, ON]}\n"
    )
    p.write_landing("ev", "1.json", [{"id": 1, "uf": "SE"}, {"id": 2, "uf": "NO"}, {"id": 3, "uf": "ON"}])
    loaded = p.load()
    assert loaded.specs["ev"].checks["silver.ev"][0].values == ["NO", "SE", "ON"]
    ingest(loaded.target(), loaded.specs["ev"])
    refine(loaded.target(), loaded.specs["ev"])
    runner = DuckDBRunner(loaded.target())
    try:
        (result,) = run_validation(loaded, loaded.target(), runner).results
    finally:
        runner.close()
    assert result.status == "pass", result


def test_the_validate_table_shows_thresholds_with_brackets(tmp_path):
    import io

    from rich.console import Console

    from lh360.checks.validate import CheckResult, ValidationReport
    from lh360.cli.render import render_validation

    report = ValidationReport(target="local", dialect="duckdb")
    report.results.append(
        CheckResult(
            relation="silver.ev",
            table="ev",
            check="accepted_values_uf",
            kind="accepted_values",
            severity="error",
            status="fail",
            threshold="in [NO, SE, ON]",
            observed=1,
            message="1 row outside [NO, SE, ON] [bold]x[/bold]",
        )
    )
    buf = io.StringIO()
    render_validation(Console(file=buf, width=250, color_system=None), report)
    text = buf.getvalue()
    assert "in [NO, SE, ON]" in text and "[bold]x[/bold]" in text, text


# ---- 7.2: lint rejects what can never run ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "hint", ["decimal(3,5)", "decimal(99,2)", "decimal(0,0)", "array<decimal(40,2)>", "struct<a:decimal(5,6)>"]
)
def test_impossible_decimal_hints_are_spec_errors(project, run_cli, hint):
    spec = {"table": "ev", "source": {"path": "ev/"}, "bronze": {"schema_hints": {"x": hint}}}
    p = project(spec)
    code, out, err = run_cli("lint", cwd=p.root)
    assert code == 2, (out, err)
    assert f"{p.root / 'configs' / 'tables' / 'ev.yaml'}:" in err and "bronze.schema_hints" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("hint", ["binary(10)", "int(5)", "struct<a:int,a:int>", "float(60)"])
def test_hints_the_local_engine_cannot_hold_are_lint_errors(project, run_cli, hint):
    spec = {"table": "ev", "source": {"path": "ev/"}, "bronze": {"schema_hints": {"x": hint}}}
    p = project(spec)
    code, out, err = run_cli("lint", cwd=p.root)
    assert code == 2, (out, err)
    assert f"{p.root / 'configs' / 'tables' / 'ev.yaml'}:6: bronze.schema_hints.x:" in err, err


@pytest.mark.parametrize("hint", ["decimal(38,38)", "decimal(1,0)", "decimal(18,2)", "array<decimal(38,0)>"])
def test_possible_decimal_hints_pass(hint):
    from lh360.types import parse_type

    parse_type(hint)


@pytest.mark.slow
@pytest.mark.parametrize(
    "cast", ["cast(x as decimal(3,5))", "cast(x as decimal(99,2))", "x::decimal(40,1)", "cast(x as binary(10))"]
)
def test_impossible_casts_in_spec_sql_are_lint_errors(project, run_cli, cast):
    spec = _spec("ev")
    spec["silver"]["columns"]["x"] = cast
    p = project(spec)
    code, out, err = run_cli("lint", cwd=p.root)
    assert code == 2, (out, err)
    assert "silver.columns.x" in err and ("decimal" in err.lower() or "binary" in err.lower()), err


@pytest.mark.parametrize("max_age", ["99999999999999d", "99999999999999999999s", "999999999d"])
def test_an_overflowing_max_age_is_a_spec_error_with_its_line(project, run_cli, max_age):
    p = project({"table": "ev", "source": {"path": "ev/"}, "landing": {"max_age": max_age}})
    code, out, err = run_cli("lint", cwd=p.root)
    assert code == 2, (out, err)
    assert f"{p.root / 'configs' / 'tables' / 'ev.yaml'}:5: landing.max_age:" in err, err
    assert "OverflowError" not in err


def test_a_long_but_possible_max_age_passes(project):
    p = project({"table": "ev", "source": {"path": "ev/"}, "landing": {"max_age": "3650d"}})
    assert p.load().specs["ev"].landing.max_age.days == 3650


# ---- issue 10: the source map travels with the loaded objects --------------------------------------


def test_yamlio_keeps_no_module_state():
    import lh360.yamlio as yamlio

    assert not hasattr(yamlio, "_ROOTS") and not hasattr(yamlio, "remember_root")


def test_lint_finds_lines_from_the_specs_it_loaded(project, tmp_path):
    """Two projects loaded one after the other: each error names its own file's line."""
    from lh360.lint import lint

    bad_column = _spec("ev")
    bad_column["silver"]["columns"]["x"] = "cast(x as)"
    first = project(bad_column, name="one")
    padded = project(bad_column, name="two")
    spec_file = padded.root / "configs" / "tables" / "ev.yaml"
    spec_file.write_text("# a comment\n# another\n" + spec_file.read_text())
    for p, line in ((first, 10), (padded, 12)):
        _, errors = lint(str(p.config))
        (err,) = errors
        assert (err.file, err.line, err.field) == (
            str(p.root / "configs" / "tables" / "ev.yaml"),
            line,
            "silver.columns.x",
        )


def test_a_spec_knows_the_lines_of_its_fields(project):
    p = project(_spec("ev"))
    spec = p.load().specs["ev"]
    assert spec.source_map.file == str(p.root / "configs" / "tables" / "ev.yaml")
    assert spec.source_map.line(["silver", "columns", "id"]) == 9
    assert spec.source_map.line(["table"]) == 1


def test_yaml_file_edges_keep_their_messages(tmp_path: Path):
    from lh360.yamlio import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert "duplicate key" in info.value.reason and info.value.line == 2
