"""The CLI as cron sees it: help with examples, one JSON document, no colours when piped, clean exits."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.ingest_support import cli, make_project, write_lines

ANSI = re.compile(r"\x1b\[")


def all_commands() -> list[str]:
    from lh360.cli import _register, app

    _register()
    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_every_command_has_help_with_an_example():
    from lh360.cli import app

    commands = all_commands()
    assert {"demo", "init", "tables", "lint", "plan", "landing", "ingest"} <= set(commands)
    for command in app.registered_commands:
        doc = command.callback.__doc__ or ""
        assert doc.strip(), f"{command.name}: no help text"
        assert "Example:" in doc and "lh360 " in doc.split("Example:", 1)[1], f"{command.name}: help has no example"


@pytest.mark.parametrize("command", all_commands())
def test_help_runs_for_every_command(command, capsys):
    from lh360.cli import run

    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example:" in out
    assert not ANSI.search(out)


@pytest.mark.parametrize(
    "command, shown",
    [
        (["promote"], "--to <silver|gold>"),
        (["plan"], "--to <bronze|silver|gold>"),
        (["validate"], "--format <table|json|junit>"),
        (["validate"], "--engine <duckdb|athena|databricks-sql>"),
        (["validate"], "--layer <bronze|silver|gold>"),
        ([], "--log-format <text|json>"),
        ([], "[env var: LH360_TARGET]"),
        ([], "[env var: LH360_CONFIG]"),
    ],
)
def test_help_shows_the_choices_and_environment_variables(command, shown, capsys):
    from lh360.cli import run

    assert run([*command, "--help"]) == 0
    assert shown in " ".join(capsys.readouterr().out.split())


def test_shell_completion_completes_commands_and_choices(tmp_path):
    env = {**__import__("os").environ, "_LH360_COMPLETE": "complete_bash", "COMP_WORDS": "lh360 pro", "COMP_CWORD": "1"}
    proc = subprocess.run([sys.executable, "-m", "lh360"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.stdout.split() == ["promote"]
    env.update(COMP_WORDS="lh360 promote --to ", COMP_CWORD="3")
    proc = subprocess.run([sys.executable, "-m", "lh360"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.stdout.split() == ["silver", "gold"]
    proc = subprocess.run([sys.executable, "-m", "lh360", "--show-completion", "bash"], capture_output=True, text=True)
    assert "_lh360_completion" in proc.stdout


def test_target_and_config_come_from_the_environment(tmp_path, capsys, monkeypatch):
    from lh360.cli import run

    make_project(tmp_path)
    monkeypatch.setenv("LH360_CONFIG", str(tmp_path / "configs" / "lh360.yaml"))
    monkeypatch.setenv("LH360_TARGET", "nope")
    monkeypatch.chdir("/")
    assert run(["tables"]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err
    monkeypatch.setenv("LH360_TARGET", "local")
    assert run(["tables", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "local"


@pytest.fixture
def ingested(tmp_path):
    make_project(tmp_path)
    write_lines(tmp_path / "landing" / "eventos" / "a.json", [json.dumps({"id": i}) for i in range(10)])
    assert cli(tmp_path, "ingest", "eventos").returncode == 0
    return tmp_path


@pytest.mark.slow
def test_json_is_one_document_on_stdout_and_flags_go_anywhere(ingested):
    for args in (
        ["--json", "tables"],
        ["tables", "--json"],
        ["landing", "--json"],
        ["plan", "--json"],
        ["ingest", "--all", "--json"],
    ):
        proc = cli(ingested, *args)
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)  # exactly one document
        assert isinstance(doc, dict)
    doc = json.loads(cli(ingested, "tables", "--json").stdout)
    bronze = next(t for t in doc["tables"] if t["layer"] == "bronze")
    assert bronze["rows"] == 10 and bronze["version"] == 1  # version 0 is the empty table


@pytest.mark.slow
def test_no_colour_or_bars_when_piped(ingested):
    write_lines(ingested / "landing" / "eventos" / "b.json", [json.dumps({"id": 99})])
    for args in (["ingest", "eventos"], ["tables"], ["landing"], ["plan"], ["lint"]):
        proc = cli(ingested, *args)
        assert not ANSI.search(proc.stdout + proc.stderr), args


@pytest.mark.slow
def test_json_logs_on_request(ingested):
    proc = cli(ingested, "--log-format", "json", "ingest", "eventos")
    assert proc.returncode == 0
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert any(entry["msg"] == "ingest done" and entry["table"] == "eventos" for entry in logs)


@pytest.mark.slow
def test_usage_errors_exit_2(ingested):
    assert cli(ingested, "ingest").returncode == 2  # neither tables nor --all
    assert cli(ingested, "ingest", "nope").returncode == 2
    assert cli(ingested, "--target", "nope", "tables").returncode == 2
    assert cli(ingested, "frobnicate").returncode == 2


@pytest.mark.slow
def test_repeated_read_and_exit_never_dies_at_exit(ingested):
    """delta-rs can abort the interpreter at exit (its to_pyarrow_* readers did): 30 runs that read Delta all exit 0."""
    codes = [cli(ingested, "tables", "--json").returncode for _ in range(30)]
    assert codes == [0] * 30


@pytest.mark.slow
def test_landing_sla_breach_exits_1(tmp_path):
    spec = {"table": "eventos", "source": {"path": "eventos/"}, "landing": {"max_age": "1h", "min_files": 1}}
    make_project(tmp_path, spec)
    write_lines(tmp_path / "landing" / "eventos" / "old.json", [json.dumps({"id": 1})], mtime=1_600_000_000)
    write_lines(tmp_path / "landing" / "eventos" / "empty.json", [], mtime=1_600_000_000)
    proc = cli(tmp_path, "landing", "--json")
    assert proc.returncode == 1
    (report,) = json.loads(proc.stdout)["tables"]
    assert report["status"] == "breach" and report["pending_files"] == 2
    assert report["empty_files"] == ["empty.json"]
    assert any("over the SLA" in p for p in report["problems"])
    write_lines(tmp_path / "landing" / "eventos" / "new.json", ["{not json"])
    proc = cli(tmp_path, "landing", "--json")
    (report,) = json.loads(proc.stdout)["tables"]
    assert proc.returncode == 0 and report["status"] == "ok"
    assert report["unreadable"][0]["file"] == "new.json" and report["unreadable"][0]["line"] == 1


@pytest.mark.slow
def test_init_scaffolds_a_project_that_lints(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lh360", "init", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "lh360", "lint"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_packaged_templates_match_the_repo_configs():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for rel in ("configs/lh360.yaml", "configs/tables/clientes.yaml"):
        assert (repo / rel).read_text() == (repo / "lh360" / "templates" / rel).read_text(), rel


@pytest.mark.slow
def test_plan_shows_pending_files_and_schema_changes_and_writes_nothing(ingested):
    write_lines(ingested / "landing" / "eventos" / "b.json", [json.dumps({"id": 11, "novo": "x"})])
    before = sorted(p.relative_to(ingested) for p in (ingested / "lake").rglob("*"))
    doc = json.loads(cli(ingested, "plan", "--json").stdout)
    after = sorted(p.relative_to(ingested) for p in (ingested / "lake").rglob("*"))
    assert before == after
    step = next(s for s in doc["steps"] if s["kind"] == "ingest")
    assert step["pending_files"] == 1 and step["files"] == ["b.json"]
    assert {"column": "novo", "change": "new", "type": "VARCHAR", "outcome": "added to bronze"} in step[
        "schema_changes"
    ]
