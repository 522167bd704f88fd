"""lh360.tf_outputs: `terraform output -json` of terraform/envs (any environment) -> an lh360 databricks target."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lh360.tf_outputs import OPTIONAL_OUTPUTS, REQUIRED_OUTPUTS, target_from_terraform_outputs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURE = HERE / "fixtures" / "outputs.prod.json"

EXPECTED_PROD_TARGET = {
    "engine": "databricks",
    "landing": "s3://lh360-prod-landing/raw",
    "lake": "s3://lh360-prod-lake",
    "aws": {"region": "sa-east-1"},
    "databricks": {
        "host": "https://dbc-1234abcd-5678.cloud.databricks.com",
        "catalog": "lakehouse360",
        "compute": "serverless",
        "warehouse_id": "8f3c2a1b4d5e6f70",
        "workspace_dir": "/Workspace/Shared/lh360",
    },
    "validator": "athena",
    "athena": {
        "workgroup": "lh360",
        "databases": {
            "bronze": "lh360_bronze",
            "silver": "lh360_silver",
            "gold": "lh360_gold",
            "ledger": "lh360_ledger",
        },
        "output": "s3://lh360-prod-athena-results/",
    },
}


@pytest.fixture
def outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def test_prod_outputs_become_the_prod_target(outputs):
    assert target_from_terraform_outputs(outputs) == EXPECTED_PROD_TARGET


def test_target_is_valid_for_the_config_model(outputs):
    config = pytest.importorskip("lh360.config")
    target = config.Target.model_validate(target_from_terraform_outputs(outputs))
    assert target.engine == "databricks"
    assert target.databricks.host == "https://dbc-1234abcd-5678.cloud.databricks.com"
    assert target.athena.databases["gold"] == "lh360_gold"


def test_fixture_matches_the_outputs_the_env_roots_declare(outputs):
    """The fixture must stay what `terraform output -json` of terraform/envs would print."""
    hcl2 = pytest.importorskip("hcl2")
    parsed = hcl2.loads((REPO / "terraform" / "envs" / "outputs.tf").read_text())
    declared = {name.strip('"') for block in parsed["output"] for name in block}
    assert declared == set(outputs)
    assert set(REQUIRED_OUTPUTS + OPTIONAL_OUTPUTS) <= set(outputs)


def test_the_input_is_not_modified_and_the_result_is_plain_data(outputs):
    before = copy.deepcopy(outputs)
    target = target_from_terraform_outputs(outputs)
    assert outputs == before
    target["athena"]["databases"]["gold"] = "changed"
    assert outputs["lh360_athena_databases"]["value"]["gold"] == "lh360_gold"
    assert json.loads(json.dumps(target)) == target


@pytest.mark.parametrize("name", REQUIRED_OUTPUTS)
def test_a_missing_required_output_is_named(outputs, name):
    del outputs[name]
    with pytest.raises(ValueError, match=name):
        target_from_terraform_outputs(outputs)


def test_every_missing_output_is_named_at_once():
    with pytest.raises(ValueError) as excinfo:
        target_from_terraform_outputs({})
    for name in REQUIRED_OUTPUTS:
        assert name in str(excinfo.value)


def test_a_null_required_output_counts_as_missing(outputs):
    outputs["lh360_databricks_warehouse_id"]["value"] = None
    with pytest.raises(ValueError, match="lh360_databricks_warehouse_id"):
        target_from_terraform_outputs(outputs)


def test_optional_outputs_may_be_absent(outputs):
    del outputs["lh360_databricks_host"]
    del outputs["lh360_databricks_workspace_dir"]
    databricks = target_from_terraform_outputs(outputs)["databricks"]
    assert "host" not in databricks
    assert databricks["workspace_dir"] == "/Workspace/Shared/lh360"


def test_a_sensitive_output_is_never_copied(outputs):
    secret = "dose-THIS-MUST-NOT-LEAK-0123456789"
    outputs["databricks_service_principal_secret"] = {"sensitive": True, "type": "string", "value": secret}
    outputs["lh360_databricks_host"] = {"sensitive": True, "type": "string", "value": secret}
    target = target_from_terraform_outputs(outputs)
    assert secret not in json.dumps(target)
    assert "host" not in target["databricks"]


def test_a_sensitive_required_output_is_refused(outputs):
    outputs["lh360_databricks_warehouse_id"]["sensitive"] = True
    with pytest.raises(ValueError, match="lh360_databricks_warehouse_id.*sensitive"):
        target_from_terraform_outputs(outputs)


def test_plain_values_instead_of_output_json_are_refused(outputs):
    plain = {name: entry["value"] for name, entry in outputs.items()}
    with pytest.raises(ValueError, match="terraform output -json"):
        target_from_terraform_outputs(plain)


@pytest.mark.parametrize("not_a_mapping", [[], "outputs", None])
def test_something_else_than_an_object_is_refused(not_a_mapping):
    with pytest.raises(ValueError, match="terraform output -json"):
        target_from_terraform_outputs(not_a_mapping)


def test_databases_need_bronze_silver_and_gold(outputs):
    del outputs["lh360_athena_databases"]["value"]["gold"]
    with pytest.raises(ValueError, match="lh360_athena_databases has no gold"):
        target_from_terraform_outputs(outputs)


def test_the_ledger_database_is_optional(outputs):
    del outputs["lh360_athena_databases"]["value"]["ledger"]
    databases = target_from_terraform_outputs(outputs)["athena"]["databases"]
    assert databases == {"bronze": "lh360_bronze", "silver": "lh360_silver", "gold": "lh360_gold"}


def test_a_database_map_of_the_wrong_type_is_refused(outputs):
    outputs["lh360_athena_databases"]["value"] = ["lh360_bronze", "lh360_silver", "lh360_gold"]
    with pytest.raises(ValueError, match="lh360_athena_databases must be a map"):
        target_from_terraform_outputs(outputs)


@pytest.mark.parametrize("name", ["lh360_landing_uri", "lh360_lake_uri", "lh360_athena_output"])
def test_storage_outputs_must_be_s3_uris(outputs, name):
    outputs[name]["value"] = "/tmp/not-s3"
    with pytest.raises(ValueError, match=f"{name} must be an s3:// URI"):
        target_from_terraform_outputs(outputs)


@pytest.mark.parametrize("bad", ["", "   ", 42, ["sa-east-1"]])
def test_text_outputs_must_be_non_empty_strings(outputs, bad):
    outputs["lh360_aws_region"]["value"] = bad
    with pytest.raises(ValueError, match="lh360_aws_region must be a non-empty string"):
        target_from_terraform_outputs(outputs)
