"""The job's streams on a `databricks` target, seen from the ops box: a lost checkpoint under a table that holds
data is refused (exit 3) with the way out, `--new-checkpoint [--generation NAME]` starts a new generation;
landing files holding a JSON array over several lines (which Auto Loader cannot read as the local engine
does) are refused by ingest and shown by landing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lh360.durations import parse_timeout
from lh360.engines.base import EngineOptions
from lh360.engines.databricks import DatabricksEngine
from lh360.engines.databricks.landing_format import multiline_array
from lh360.errors import EngineError, UsageError
from tests.databricks_support import cli, deploy_to, load, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

SUBMIT = "/api/2.2/jobs/runs/submit"


def engine(target, **options):
    return DatabricksEngine(
        target, EngineOptions(timeout=parse_timeout(options.pop("timeout", None)), **options), poll_interval=0.01
    )


@pytest.fixture
def prod(fake_ws, project_root):
    deploy_to(fake_ws, project_root)
    return load(project_root)


def lake(root: Path) -> Path:
    return root / "lake-prod"


def table_with_data(root: Path, layer: str) -> None:
    """A Delta table at <lake>/<layer>/clientes holding a row (as the job's earlier runs left it)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(str(lake(root) / layer / "clientes"), pa.table({"id": [1], "_source_file": ["x.json"]}))


def checkpoint_started(root: Path, folder: str) -> None:
    """What Structured Streaming writes first into a checkpoint it starts."""
    cp = lake(root) / "_lh360" / "state" / "clientes" / "checkpoint" / folder
    cp.mkdir(parents=True, exist_ok=True)
    (cp / "metadata").write_text('{"id":"x"}\n')


def sent_payload(fake_ws, i=-1) -> dict:
    return json.loads(fake_ws.submitted[i]["tasks"][0]["spark_python_task"]["parameters"][3])


# ---- lost checkpoints ---------------------------------------------------------------------------------


def test_a_lost_ingest_checkpoint_under_bronze_with_data_is_refused(fake_ws, prod, project_root):
    project, target = prod
    table_with_data(project_root, "bronze")  # bronze holds data; checkpoint/bronze is gone
    with pytest.raises(EngineError) as exc:
        engine(target).ingest(project.specs["clientes"])
    msg = exc.value.message
    assert exc.value.exit_code == 3
    assert "checkpoint/bronze is gone, but bronze already holds data" in msg
    assert "would be lost" in msg and "lh360 -t prod ingest clientes --new-checkpoint" in msg
    assert not fake_ws.requests_to(SUBMIT)


def test_a_lost_refine_checkpoint_under_silver_with_data_is_refused(fake_ws, prod, project_root):
    project, target = prod
    table_with_data(project_root, "silver")
    with pytest.raises(EngineError) as exc:
        engine(target).refine(project.specs["clientes"])
    assert "checkpoint/silver is gone" in exc.value.message
    assert "promote --to silver clientes --new-checkpoint" in exc.value.message
    assert not fake_ws.requests_to(SUBMIT)


def test_a_checkpoint_that_is_there_runs_as_before(fake_ws, prod, project_root):
    project, target = prod
    table_with_data(project_root, "bronze")
    checkpoint_started(project_root, "bronze")
    engine(target).ingest(project.specs["clientes"])
    assert "state_generation" not in sent_payload(fake_ws)


def test_new_checkpoint_starts_a_generation_the_next_runs_keep(fake_ws, prod, project_root):
    project, target = prod
    spec = project.specs["clientes"]
    table_with_data(project_root, "bronze")
    fake_ws.script_run("success", logs=summary_line(rows_in=5, rows_out=5, files=1))
    engine(target, new_checkpoint="rebuilt_1").ingest(spec)
    first = sent_payload(fake_ws)
    assert first["state_generation"] == "rebuilt_1" and first["recover"] is True
    marker = json.loads((lake(project_root) / "_lh360/state/clientes/generation-bronze.json").read_text())
    assert marker["generation"] == "rebuilt_1" and marker["previous"] is None

    checkpoint_started(project_root, "bronze-grebuilt_1")  # the job's first run started it
    engine(target).ingest(spec)
    second = sent_payload(fake_ws)
    assert second["state_generation"] == "rebuilt_1" and "recover" not in second

    from lh360.spark.contract import checkpoint_location, parse_payload, txn_app_id

    parsed = parse_payload(second, "ingest")
    assert checkpoint_location(parsed, "bronze").endswith("/checkpoint/bronze-grebuilt_1")
    assert txn_app_id(parsed, "ingest") == "lh360-ingest-clientes-grebuilt_1"


def test_a_minted_generation_and_bad_names(fake_ws, prod, project_root):
    project, target = prod
    engine(target, new_checkpoint="").ingest(project.specs["clientes"])
    assert sent_payload(fake_ws)["state_generation"][:2] == "20"  # minted from the time
    with pytest.raises(UsageError):
        engine(target, new_checkpoint="no spaces").ingest(project.specs["clientes"])


@pytest.mark.slow
def test_new_checkpoint_on_the_command_line(fake_ws, prod, project_root):
    table_with_data(project_root, "bronze")
    proc = cli(project_root, "-t", "prod", "ingest", "clientes")
    assert proc.returncode == 3 and "--new-checkpoint" in proc.stderr
    proc = cli(project_root, "-t", "prod", "ingest", "clientes", "--new-checkpoint", "--generation", "g2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sent_payload(fake_ws)["state_generation"] == "g2"
    proc = cli(project_root, "-t", "prod", "ingest", "clientes", "--generation", "g3")
    assert proc.returncode == 2 and "--new-checkpoint" in proc.stderr
    proc = cli(project_root, "ingest", "clientes", "--new-checkpoint")  # the local target
    assert proc.returncode == 2 and "only for runs on a remote engine" in proc.stderr


# ---- JSON arrays over several lines -------------------------------------------------------------------

PRETTY = json.dumps([{"id": 1, "nome": "ana"}, {"id": 2, "nome": "bia"}], indent=2).encode() + b"\n"
ONE_LINE = b'[{"id": 3, "nome": "caio"}, {"id": 4, "nome": "duda"}]\n'
NDJSON = b'{"id": 5, "nome": "eva"}\n{"id": 6, "nome": "fabio"}\n'


@pytest.mark.parametrize(
    "head, gz, expect",
    [
        (PRETTY, False, True),
        (b"\xef\xbb\xbf  " + PRETTY, False, True),
        (b'[{"id": 1},\n {"id": 2}]\n', False, True),
        (ONE_LINE, False, False),
        (NDJSON, False, False),
        (b'[{"id": 1}]\n[{"id": 2}]\n', False, False),  # an array per line: JSON Lines
        (b"[" + b"x" * 70000, False, False),  # one long line
        (gzip.compress(PRETTY, mtime=0), True, True),
        (gzip.compress(ONE_LINE, mtime=0), True, False),
    ],
)
def test_multiline_array_detection(head, gz, expect):
    assert multiline_array(head[: 64 * 1024], gz) is expect


def landing(root: Path, files: dict[str, bytes]) -> None:
    folder = root / "landing" / "clientes"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_ingest_refuses_multiline_arrays_naming_them_and_landing_shows_them(fake_ws, prod, project_root):
    project, target = prod
    landing(project_root, {"a.json": PRETTY, "b.json": ONE_LINE, "c.json": NDJSON})
    with pytest.raises(UsageError) as exc:
        engine(target).ingest(project.specs["clientes"])
    assert exc.value.exit_code == 2 and "1 landing file(s)" in exc.value.message and "(a.json)" in exc.value.message
    assert not fake_ws.requests_to(SUBMIT)
    proc = cli(project_root, "-t", "prod", "landing", "--json")
    assert "a.json" in proc.stdout and "JSON array written over several lines" in proc.stdout


def test_one_line_arrays_and_json_lines_are_ingested(fake_ws, prod, project_root):
    project, target = prod
    landing(project_root, {"b.json": ONE_LINE, "c.json": NDJSON})
    result = engine(target).ingest(project.specs["clientes"])
    assert result.run.result_state == "SUCCESS" and len(fake_ws.submitted) == 1
