"""`lh360 lint` on a project with a Databricks target: casts that fail under ANSI mode (serverless, Spark 4)
are warnings naming file, line and field, with the ANSI-safe spelling; the shipped example has none."""

from __future__ import annotations

import json

import pytest

from tests.databricks_support import REPO, cli, make_project

SPEC = (REPO / "configs" / "tables" / "clientes.yaml").read_text()


def project(tmp_path, spec_text=SPEC, databricks=True):
    root = tmp_path / "p"
    root.mkdir()
    make_project(root, spec_text=spec_text)
    if not databricks:  # only the local target
        import yaml

        cfg = root / "configs" / "lh360.yaml"
        doc = yaml.safe_load(cfg.read_text())
        del doc["targets"]["prod"]
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def unsafe_spec() -> str:
    text = SPEC.replace("updated_at: try_to_timestamp(updated_at)", "updated_at: to_timestamp(updated_at)")
    text = text.replace(
        "data_nascimento: try_cast(data_nascimento as date)", "data_nascimento: to_date(data_nascimento)"
    )
    text = text.replace("cep: regexp_replace(endereco.cep, '[^0-9]', '')", "cep: cast(endereco.cep as int)")
    return text.replace("id: try_cast(id as bigint)", "id: cast(id as bigint)")  # id is hinted bigint: safe


@pytest.mark.slow
def test_the_shipped_example_is_ansi_safe(tmp_path):
    assert (REPO / "configs" / "tables" / "clientes.yaml").read_text() == (
        REPO / "lh360" / "templates" / "configs" / "tables" / "clientes.yaml"
    ).read_text()
    proc = cli(project(tmp_path), "lint", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["warnings"] == []


@pytest.mark.slow
def test_casts_that_fail_under_ansi_are_warnings_on_databricks_targets(tmp_path):
    root = project(tmp_path, unsafe_spec())
    proc = cli(root, "lint")
    assert proc.returncode == 0, proc.stderr  # warnings do not fail lint
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    fields = sorted(line.split(": ")[2] for line in warnings)
    assert fields == ["silver.columns.cep", "silver.columns.data_nascimento", "silver.columns.updated_at"], warnings
    (ts,) = [w for w in warnings if "updated_at" in w]
    assert "clientes.yaml:" in ts and "try_to_timestamp(updated_at)" in ts and "ANSI" in ts
    doc = json.loads(cli(root, "lint", "--json").stdout)
    assert {w["field"] for w in doc["warnings"]} == {f for f in fields} and all(w["line"] for w in doc["warnings"])


@pytest.mark.slow
def test_no_ansi_warning_without_a_databricks_target(tmp_path):
    proc = cli(project(tmp_path, unsafe_spec(), databricks=False), "lint", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["warnings"] == []
