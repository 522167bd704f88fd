"""Turn `terraform output -json` of terraform/envs (any environment) into an lh360 target.

The root in terraform/envs/ (applied per environment with its variable and backend files)
exports one output per target field, all named ``lh360_*``. ``target_from_terraform_outputs`` maps them onto a
``databricks`` target in the format of configs/lh360.yaml (like the template's ``prod`` target), for ``lh360 init --from-terraform OUTPUTS.json``.

Only what Terraform knows goes in: no credentials and no profiles (those come from
Databricks unified auth and the AWS default chain), and never the value of an
output Terraform marks ``sensitive``. Pure standard library, so it imports fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REQUIRED_OUTPUTS", "OPTIONAL_OUTPUTS", "target_from_terraform_outputs"]

#: Outputs a target cannot do without.
REQUIRED_OUTPUTS: tuple[str, ...] = (
    "lh360_landing_uri",
    "lh360_lake_uri",
    "lh360_aws_region",
    "lh360_databricks_catalog",
    "lh360_databricks_warehouse_id",
    "lh360_athena_workgroup",
    "lh360_athena_databases",
    "lh360_athena_output",
)

#: Outputs used when present.
OPTIONAL_OUTPUTS: tuple[str, ...] = (
    "lh360_databricks_host",
    "lh360_databricks_workspace_dir",
)

DEFAULT_WORKSPACE_DIR = "/Workspace/Shared/lh360"

_S3_OUTPUTS = ("lh360_landing_uri", "lh360_lake_uri", "lh360_athena_output")
_REQUIRED_LAYERS = ("bronze", "silver", "gold")
_OPTIONAL_LAYERS = ("ledger",)


def target_from_terraform_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Build a ``databricks`` target mapping from parsed ``terraform output -json``.

    ``outputs`` maps each output name to ``{"value": ..., "type": ..., "sensitive": bool}``.
    Outputs not named in REQUIRED_OUTPUTS or OPTIONAL_OUTPUTS are ignored.

    Raises ValueError, naming the output(s), when a required output is missing or null,
    is marked sensitive, or has a value of the wrong shape.
    """
    if not isinstance(outputs, Mapping):
        raise ValueError(f"expected the JSON object printed by `terraform output -json`, got {type(outputs).__name__}")

    values: dict[str, Any] = {}
    missing: list[str] = []
    for name in REQUIRED_OUTPUTS + OPTIONAL_OUTPUTS:
        if name not in outputs:
            if name in REQUIRED_OUTPUTS:
                missing.append(name)
            continue
        entry = outputs[name]
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise ValueError(
                f"terraform output {name} is not in `terraform output -json` format "
                '(expected {"value": ..., "type": ..., "sensitive": ...})'
            )
        if entry.get("sensitive"):
            # Never copy a secret into a config file; a required output must not be one.
            if name in REQUIRED_OUTPUTS:
                raise ValueError(
                    f"terraform output {name} is marked sensitive; lh360 does not copy sensitive "
                    "outputs into its config (mark it sensitive = false if it is not a secret)"
                )
            continue
        if entry["value"] is None:
            if name in REQUIRED_OUTPUTS:
                missing.append(name)
            continue
        values[name] = entry["value"]

    if missing:
        noun = "output" if len(missing) == 1 else "outputs"
        raise ValueError(
            f"terraform {noun} missing: {', '.join(missing)} "
            "(run `terraform output -json` in terraform/envs after `terraform apply` of the environment)"
        )

    for name in REQUIRED_OUTPUTS + OPTIONAL_OUTPUTS:
        if name in values and name != "lh360_athena_databases":
            _require_text(name, values[name])
    for name in _S3_OUTPUTS:
        if not values[name].startswith("s3://"):
            raise ValueError(f"terraform output {name} must be an s3:// URI, got {values[name]!r}")

    databricks: dict[str, Any] = {}
    if "lh360_databricks_host" in values:
        databricks["host"] = values["lh360_databricks_host"]
    databricks["catalog"] = values["lh360_databricks_catalog"]
    databricks["compute"] = "serverless"
    databricks["warehouse_id"] = values["lh360_databricks_warehouse_id"]
    databricks["workspace_dir"] = values.get("lh360_databricks_workspace_dir", DEFAULT_WORKSPACE_DIR)

    return {
        "engine": "databricks",
        "landing": values["lh360_landing_uri"],
        "lake": values["lh360_lake_uri"],
        "aws": {"region": values["lh360_aws_region"]},
        "databricks": databricks,
        "validator": "athena",
        "athena": {
            "workgroup": values["lh360_athena_workgroup"],
            "databases": _databases(values["lh360_athena_databases"]),
            "output": values["lh360_athena_output"],
        },
    }


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"terraform output {name} must be a non-empty string, got {value!r}")


def _databases(value: Any) -> dict[str, str]:
    name = "lh360_athena_databases"
    if not isinstance(value, Mapping):
        raise ValueError(f"terraform output {name} must be a map of layer to Glue database, got {value!r}")
    absent = [layer for layer in _REQUIRED_LAYERS if layer not in value]
    if absent:
        raise ValueError(f"terraform output {name} has no {', '.join(absent)} database")
    databases: dict[str, str] = {}
    for layer in _REQUIRED_LAYERS + _OPTIONAL_LAYERS:
        if layer in value:
            _require_text(f"{name}.{layer}", value[layer])
            databases[layer] = value[layer]
    return databases
