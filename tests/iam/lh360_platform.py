"""The platform terraform/ describes for one environment, rendered offline from the HCL (tests/iam/hcl.py):
the identities lh360 runs as and their policies, the bucket and key policies, and the lh360_* outputs.

Principals:

* `ops_box`: the cron machine (`lh360 landing`, `run`, `validate`, `history`, `tables`, `sql` ...);
* `unity_catalog`: the role behind the Databricks storage credential, what the Spark job runs as on S3;
* `deployer`: the operator who runs `lh360 deploy` (Glue registration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.iam.hcl import ACCOUNT, Module, has_unknowns, load_tfvars

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "terraform" / "envs"


@dataclass
class Principal:
    name: str
    arn: str
    policies: list[tuple[str, dict[str, Any]]]


@dataclass
class Platform:
    env: str
    region: str
    account: str
    outputs: dict[str, Any]
    landing_bucket: str
    landing_prefix: str
    lake_bucket: str
    results_bucket: str
    kms_key_arn: str
    principals: dict[str, Principal] = field(default_factory=dict)
    bucket_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    external_locations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bucket_keys(self) -> dict[str, str]:
        return {b: self.kms_key_arn for b in (self.landing_bucket, self.lake_bucket, self.results_bucket)}

    def target(self) -> dict[str, Any]:
        """The lh360 target `lh360 init --from-terraform` writes from this environment's outputs."""
        from lh360.tf_outputs import target_from_terraform_outputs

        doc = {name: {"value": value, "type": "string", "sensitive": False} for name, value in self.outputs.items()}
        return target_from_terraform_outputs(doc)


def render(env: str = "prod") -> Platform:
    inputs = load_tfvars(ENVS / f"{env}.tfvars")
    root = Module(ENVS, inputs, inputs.get("aws_region", "sa-east-1"))
    storage = root.child("lake_storage")
    outputs = {
        name: root.output(name)
        for name in ("lh360_landing_uri", "lh360_lake_uri", "lh360_aws_region", "lh360_athena_workgroup")
        + ("lh360_athena_databases", "lh360_athena_output", "lh360_databricks_catalog", "lh360_databricks_host")
        + ("lh360_databricks_workspace_dir",)
    }
    outputs["lh360_databricks_warehouse_id"] = "wh-rendered-offline"  # computed by Databricks at apply
    platform = Platform(
        env=env,
        region=root.region,
        account=ACCOUNT,
        outputs=outputs,
        landing_bucket=storage.output("landing_bucket_name"),
        landing_prefix=storage.output("landing_prefix"),
        lake_bucket=storage.output("lake_bucket_name"),
        results_bucket=storage.output("athena_results_bucket_name"),
        kms_key_arn=storage.output("kms_key_arn"),
    )
    ops, access, deployer = root.child("ops_box"), root.child("databricks_access"), root.child("deployer")
    platform.principals = {
        "ops_box": Principal(
            "ops_box", ops.resource("aws_iam_role", "this").attr("arn"), [("ops-box", ops.policy("this"))]
        ),
        "unity_catalog": Principal(
            "unity_catalog", access.local("uc_role_arn"), [("uc-access", access.policy("unity_catalog_access"))]
        ),
        "deployer": Principal(
            "deployer",
            f"arn:aws:iam::{ACCOUNT}:role/{inputs['name_prefix']}-operator",
            [("deployer", deployer.policy("this"))],
        ),
    }
    policies = storage.resource("aws_s3_bucket_policy", "this")
    for key in ("landing", "lake", "athena_results"):
        bucket = storage.resource("aws_s3_bucket", "this").index(key).attr("id")
        platform.bucket_policies[bucket] = json.loads(policies.index(key).arg("policy"))
    platform.key_policies[platform.kms_key_arn] = json.loads(storage.resource("aws_kms_key", "this").arg("policy"))
    platform.external_locations = root.child("databricks_workspace").local("external_locations")
    unknown = has_unknowns([p.policies for p in platform.principals.values()] + [platform.bucket_policies])
    if unknown:
        raise AssertionError(f"policies depend on values known only after apply: {unknown}")
    return platform
