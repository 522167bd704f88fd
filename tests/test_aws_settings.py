"""The `aws:` settings of a target: no shipped config forces a named profile (an empty variable means none),
`endpoint_url` is S3's alone and the other services have their own endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from lh360.config import AwsSettings, load_project
from lh360.errors import ConfigError
from lh360.storage import endpoint_for

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "configs" / "lh360.yaml", REPO / "lh360" / "templates" / "configs" / "lh360.yaml"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("LH360_AWS_PROFILE", "AWS_PROFILE", "AWS_ENDPOINT_URL", "DATABRICKS_WAREHOUSE_ID"):
        monkeypatch.delenv(name, raising=False)
    for service in ("S3", "ATHENA", "GLUE", "STS"):
        monkeypatch.delenv(f"AWS_ENDPOINT_URL_{service}", raising=False)
    return monkeypatch


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_shipped_configs_name_no_aws_profile(clean_env, config, value):
    if value is not None:
        clean_env.setenv("LH360_AWS_PROFILE", value)
    project = load_project(config)
    for name in project.config.targets:
        assert project.target(name).settings.aws.profile is None, name


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_a_profile_can_still_be_chosen_by_variable(clean_env, config):
    clean_env.setenv("LH360_AWS_PROFILE", "ops")
    assert load_project(config).target("prod").settings.aws.profile == "ops"


def test_empty_aws_strings_mean_unset():
    aws = AwsSettings(region="", profile="  ", endpoint_url="")
    assert (aws.region, aws.profile, aws.endpoint_url) == (None, None, None)


def test_terraform_targets_carry_no_profile():
    from lh360.tf_outputs import target_from_terraform_outputs

    outputs = (REPO / "tests" / "terraform" / "fixtures" / "outputs.prod.json").read_text()
    import json

    target = target_from_terraform_outputs(json.loads(outputs))
    assert "profile" not in target["aws"]


def test_endpoint_url_is_for_s3_only(clean_env):
    aws = AwsSettings(endpoint_url="http://minio:9000")
    assert endpoint_for("s3", aws) == "http://minio:9000"
    assert endpoint_for("athena", aws) is None  # the real Athena, not MinIO
    assert endpoint_for("glue", aws) is None


def test_other_services_have_their_own_endpoints(clean_env):
    aws = AwsSettings(endpoints={"athena": "http://athena:1", "glue": "http://glue:2", "sts": "http://sts:3"})
    assert [endpoint_for(s, aws) for s in ("athena", "glue", "sts", "s3")] == [
        "http://athena:1",
        "http://glue:2",
        "http://sts:3",
        None,
    ]


def test_botocore_environment_endpoints_still_apply(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL_GLUE", "http://glue-env:1")
    clean_env.setenv("AWS_ENDPOINT_URL", "http://all:2")
    aws = AwsSettings(endpoints={"athena": "http://athena:1"})
    assert [endpoint_for(s, aws) for s in ("athena", "glue", "s3")] == [
        "http://athena:1",
        "http://glue-env:1",
        "http://all:2",
    ]


def test_an_unknown_endpoint_service_is_a_config_error(tmp_path):
    (tmp_path / "tables").mkdir()
    config = tmp_path / "lh360.yaml"
    config.write_text(
        "project: p\ntargets:\n  t:\n    landing: a\n    lake: b\n    aws:\n      endpoints: {s3: 'http://x'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_project(config)
    assert err.value.field.startswith("targets.t.aws.endpoints.s3") and err.value.line == 7
    assert "athena" in err.value.reason and "glue" in err.value.reason
