"""The IAM policies terraform/ renders, evaluated offline with a real IAM evaluator (@cloud-copilot/iam-simulate):

* the Unity Catalog storage credential's role can do everything lh360's Spark job does on S3, and Unity
  Catalog can validate every external location with it;
* no lh360 identity can write outside lh360's prefixes (synthetic writes, each one denied), while the writes
  each one needs stay allowed (so a policy that allows nothing cannot pass);
* the HTTP -> IAM mapping of tests/iam/actions.py, request kind by request kind.

What the ops box and the deployer do is recorded from a prod-like pipeline on moto: tests/aws/test_least_privilege.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.iam.actions import Authz, Environment, Unmapped, authorizations
from tests.iam.lh360_platform import Platform, render
from tests.iam.simulate import evaluate, problems
from tests.iam.spark_requests import Call, authorize, external_location_checks, job_calls

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_SPEC = REPO / "lh360" / "templates" / "configs" / "tables" / "clientes.yaml"


@pytest.fixture(scope="module", params=["prod", "dev"])
def platform(request) -> Platform:
    return render(request.param)


def _env(platform: Platform) -> Environment:
    target = platform.target()
    return Environment(platform.region, platform.account, platform.bucket_keys, target["athena"]["output"])


def _payloads(platform: Platform) -> dict[str, dict]:
    from lh360.config import ResolvedTarget, Target, load_spec
    from lh360.engines.databricks.requests import step_payload

    settings = Target.model_validate(platform.target())
    target = ResolvedTarget(name=platform.env, settings=settings, landing=settings.landing, lake=settings.lake)
    spec = load_spec(TEMPLATE_SPEC)
    return {step: step_payload(target, spec, step, "run-1") for step in ("ingest", "refine", "aggregate")}


def test_the_unity_catalog_role_can_do_what_the_spark_job_does(platform):
    payloads = _payloads(platform)
    assert payloads["aggregate"]["gold"], "the template spec has gold tables"
    authz = authorize(job_calls(payloads), _env(platform))
    assert len(authz) > 100
    assert problems(evaluate(platform, [("unity_catalog", a) for a in authz])) == []


def test_unity_catalog_can_validate_every_external_location(platform):
    locations = platform.external_locations
    assert {"landing", "lake_bronze", "lake_state"} <= set(locations)
    authz = authorize(external_location_checks(locations), _env(platform))
    assert problems(evaluate(platform, [("unity_catalog", a) for a in authz])) == []


# (principal, bucket role, key): writes each principal must NOT be able to make
OUT_OF_PREFIX = {
    "ops_box": [
        ("landing", "raw/clientes/new.json"),
        ("lake", "bronze/clientes/part-0.parquet"),
        ("lake", "bronze/clientes/_delta_log/00000000000000000009.json"),
        ("lake", "silver/clientes/uf=SP/part-0.parquet"),
        ("lake", "gold/clientes_por_uf/_delta_log/_last_checkpoint"),
        ("lake", "_lh360x/runs/part-0.parquet"),
        ("lake", "x.parquet"),
        ("other", "anything"),
    ],
    "unity_catalog": [
        ("landing", "raw/clientes/new.json"),
        ("lake", "_lh360/runs/part-0.parquet"),
        ("lake", "_lh360/checks/_delta_log/00000000000000000001.json"),
        ("lake", "_lh360/stateful/x"),
        ("lake", "bronzeish/x"),
        ("lake", "x.parquet"),
        ("results", "q/x.csv"),
        ("other", "anything"),
    ],
    "deployer": [
        ("lake", "bronze/clientes/_delta_log/00000000000000000009.json"),
        ("lake", "_lh360/runs/part-0.parquet"),
        ("landing", "raw/x.json"),
        ("results", "x.csv"),
    ],
}
# writes each principal needs: the evaluation must allow them (a policy denying everything cannot pass)
IN_PREFIX = {
    "ops_box": [("lake", "_lh360/runs/part-0.parquet"), ("lake", "_lh360/state/clientes/listing.json")],
    "unity_catalog": [
        ("lake", "bronze/clientes/part-0.parquet"),
        ("lake", "_lh360/state/clientes/checkpoint/bronze/offsets/0"),
        ("lake", "_unity_catalog/x"),
    ],
    "deployer": [],
}


def _bucket(platform: Platform, role: str) -> str:
    return {
        "landing": platform.landing_bucket,
        "lake": platform.lake_bucket,
        "results": platform.results_bucket,
        "other": "some-other-bucket",
    }[role]


def _writes(platform: Platform, role: str, key: str) -> list[Authz]:
    bucket, env = _bucket(platform, role), _env(platform)
    path = f"/{bucket}/{key}"
    calls = [
        Call("PUT", path),
        Call("PUT", path, headers={"if-none-match": "*"}),
        Call("POST", path, {"uploads": ""}),
        Call("POST", path, {"uploadId": "u"}),
        Call("DELETE", path),
        Call("POST", f"/{bucket}", {"delete": ""}, body=[key]),
    ]
    return [a for c in calls for a in authorizations(c, env) if a.action.startswith("s3:")]


@pytest.mark.parametrize("principal", sorted(OUT_OF_PREFIX))
def test_no_identity_writes_outside_lh360s_prefixes(platform, principal):
    requests = [(principal, a) for role, key in OUT_OF_PREFIX[principal] for a in _writes(platform, role, key)]
    allowed = [v.describe() for v in evaluate(platform, requests) if v.allowed]
    assert allowed == [], "writes outside lh360's prefixes must be denied"


@pytest.mark.parametrize("principal", sorted(IN_PREFIX))
def test_each_identity_can_write_where_lh360_needs_it(platform, principal):
    requests = [(principal, a) for role, key in IN_PREFIX[principal] for a in _writes(platform, role, key)]
    assert problems(evaluate(platform, requests)) == []


def test_glue_writes_are_the_deployers_alone_and_only_in_lh360_databases(platform):
    env = _env(platform)
    databases = platform.target()["athena"]["databases"]

    def create(db: str) -> list[Authz]:
        call = Call(
            "POST",
            "/",
            headers={"x-amz-target": "AWSGlue.CreateTable"},
            body={"DatabaseName": db, "TableInput": {"Name": "t"}},
        )
        call.service = "glue"
        return authorizations(call, env)

    def delete(db: str) -> list[Authz]:
        call = Call(
            "POST", "/", headers={"x-amz-target": "AWSGlue.DeleteTable"}, body={"DatabaseName": db, "Name": "t"}
        )
        call.service = "glue"
        return authorizations(call, env)

    verdicts = evaluate(
        platform,
        [("deployer", a) for a in create(databases["silver"])]
        + [
            (p, a)
            for p in ("deployer", "ops_box", "unity_catalog")
            for a in create("default") + delete(databases["silver"])
        ]
        + [("ops_box", a) for a in create(databases["silver"])],
    )
    allowed = {(v.principal, v.authz.action, v.authz.resource.rsplit(":", 1)[1]) for v in verdicts if v.allowed}
    db = databases["silver"]
    assert ("deployer", "glue:CreateTable", f"table/{db}/t") in allowed
    assert not {a for a in allowed if a[0] != "deployer" or a[2] in ("table/default/t", "database/default")}
    assert not {a for a in allowed if a[1] == "glue:DeleteTable" and a[2].startswith("table/")}


# ---- the HTTP -> IAM mapping ---------------------------------------------------------------------------------


ENV = Environment("sa-east-1", "123456789012", {"lake": "arn:aws:kms:sa-east-1:123456789012:key/k"}, "s3://results/q/")


def _one(call: Call, action: str) -> Authz:
    (found,) = [a for a in authorizations(call, ENV) if a.action == action]
    return found


def test_listing_maps_to_list_bucket_with_its_prefix():
    a = _one(
        Call("GET", "/lake", {"list-type": "2", "prefix": "bronze/t/_delta_log/", "start-after": "x"}), "s3:ListBucket"
    )
    assert a.resource == "arn:aws:s3:::lake" and a.context["s3:prefix"] == "bronze/t/_delta_log/"
    assert _one(Call("GET", "/lake", {"list-type": "2"}), "s3:ListBucket").context["s3:prefix"] == ""


def test_multipart_listing_has_no_prefix_key():
    a = _one(Call("GET", "/landing", {"uploads": "", "prefix": "raw/t/"}), "s3:ListBucketMultipartUploads")
    assert "s3:prefix" not in a.context


def test_head_is_get_object_and_a_404_also_needs_list_bucket_on_the_key():
    found = authorizations(Call("HEAD", "/lake/t/_delta_log/_last_checkpoint", status=404), ENV)
    assert [(a.action, a.resource, a.context.get("s3:prefix")) for a in found] == [
        ("s3:GetObject", "arn:aws:s3:::lake/t/_delta_log/_last_checkpoint", None),
        ("s3:ListBucket", "arn:aws:s3:::lake", "t/_delta_log/_last_checkpoint"),
    ]


def test_reads_and_writes_of_kms_buckets_need_the_key_through_s3():
    get = authorizations(Call("GET", "/lake/t/part-0.parquet"), ENV)
    assert [a.action for a in get] == ["s3:GetObject", "kms:Decrypt"]
    assert get[1].context["kms:ViaService"] == "s3.sa-east-1.amazonaws.com"
    create = authorizations(Call("POST", "/lake/t/big.parquet", {"uploads": ""}), ENV)
    assert [a.action for a in create] == ["s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"]
    assert create[0].context["s3:ObjectCreationOperation"] == "CreateMultipartUpload"


def test_conditional_put_carries_its_condition_key():
    a = _one(
        Call("PUT", "/lake/t/_delta_log/00000000000000000001.json", headers={"if-none-match": "*"}), "s3:PutObject"
    )
    assert a.context["s3:if-none-match"] == "*" and a.context["s3:ObjectCreationOperation"] == "PutObject"


def test_copy_and_batch_delete():
    copy = authorizations(Call("PUT", "/lake/b", headers={"x-amz-copy-source": "/lake/a"}), ENV)
    assert {(a.action, a.resource) for a in copy} >= {
        ("s3:PutObject", "arn:aws:s3:::lake/b"),
        ("s3:GetObject", "arn:aws:s3:::lake/a"),
    }
    batch = authorizations(Call("POST", "/lake", {"delete": ""}, body=["x/1", "x/2"]), ENV)
    assert [(a.action, a.resource) for a in batch] == [
        ("s3:DeleteObject", "arn:aws:s3:::lake/x/1"),
        ("s3:DeleteObject", "arn:aws:s3:::lake/x/2"),
    ]


def test_athena_calls_map_to_the_querys_workgroup_and_athena_writes_the_result():
    env = Environment(
        "sa-east-1", "123456789012", {"results": "arn:aws:kms:sa-east-1:123456789012:key/k"}, "s3://results/q/"
    )
    start = Call("POST", "/", headers={"x-amz-target": "AmazonAthena.StartQueryExecution"}, body={"WorkGroup": "wg"})
    start.service, start.answer = "athena", {"QueryExecutionId": "qid"}
    found = authorizations(start, env)
    assert found[0] == Authz("athena:StartQueryExecution", "arn:aws:athena:sa-east-1:123456789012:workgroup/wg")
    put = next(a for a in found if a.action == "s3:PutObject")
    assert put.resource == "arn:aws:s3:::results/q/qid.csv" and put.context["aws:CalledVia"] == ["athena.amazonaws.com"]
    get = Call(
        "POST", "/", headers={"x-amz-target": "AmazonAthena.GetQueryExecution"}, body={"QueryExecutionId": "qid"}
    )
    get.service = "athena"
    assert authorizations(get, env)[0].resource.endswith(":workgroup/wg")
    other = Call(
        "POST", "/", headers={"x-amz-target": "AmazonAthena.GetQueryResults"}, body={"QueryExecutionId": "nope"}
    )
    with pytest.raises(Unmapped):
        authorizations(other, env)


def test_glue_table_calls_need_catalog_database_and_table():
    call = Call("POST", "/", headers={"x-amz-target": "AWSGlue.GetTable"}, body={"DatabaseName": "db", "Name": "t"})
    call.service = "glue"
    assert [a.resource.split(":", 5)[5] for a in authorizations(call, ENV)] == ["catalog", "database/db", "table/db/t"]


@pytest.mark.parametrize(
    "call",
    [
        Call("GET", "/lake/t/x", {"tagging": ""}),
        Call("PUT", "/lake", {"policy": ""}),
        Call("POST", "/", headers={"x-amz-target": "AWSGlue.DeleteDatabase"}, body={"Name": "db"}),
    ],
    ids=lambda c: c.describe(),
)
def test_a_request_the_table_does_not_know_is_not_guessed(call):
    with pytest.raises(Unmapped):
        authorizations(call, ENV)
