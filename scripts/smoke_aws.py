"""The AWS side of scripts/smoke-aws.sh: preflight, a tiny landing zone, the smoke target, explanations of
failures, verification and clean-up. Configured by the LH360_SMOKE_* variables the shell script exports.

Usage: python scripts/smoke_aws.py preflight|generate|explain STEP ERRFILE|verify|cleanup
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

LAYERS = ("bronze", "silver", "gold", "ledger")

# what each step needs, for a failure whose error does not name the permission
NEEDS = {
    "landing": "s3:ListBucket (landing prefix), s3:ListBucketMultipartUploads and s3:GetObject on the landing "
    "bucket; s3:ListBucket, s3:GetObject and s3:PutObject on the lake prefix",
    "ingest": "s3:ListBucket and s3:GetObject on the landing prefix; s3:ListBucket, s3:GetObject, s3:PutObject and "
    "s3:DeleteObject on the lake prefix (kms:GenerateDataKey and kms:Decrypt with SSE-KMS)",
    "promote": "s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the lake prefix",
    "deploy": "glue:GetDatabase, glue:CreateDatabase, glue:GetTable, glue:CreateTable, glue:UpdateTable on the "
    "catalog and the lh360_smoke_* databases; s3:ListBucket and s3:GetObject on the lake prefix",
    "validate": "athena:StartQueryExecution, GetQueryExecution, GetQueryResults on the workgroup; glue:GetTable on "
    "the lh360_smoke_* tables; s3:GetObject and s3:ListBucket on the lake prefix and s3:PutObject on the Athena "
    "output (Athena uses the caller's rights)",
}


class Settings:
    def __init__(self) -> None:
        env = os.environ
        self.run_id = env["LH360_SMOKE_RUN_ID"]
        self.work = Path(env["LH360_SMOKE_WORK"])
        self.region = env["LH360_SMOKE_REGION"]
        self.profile = env.get("LH360_SMOKE_PROFILE") or None
        self.workgroup = env.get("LH360_SMOKE_WORKGROUP") or "primary"
        scratch = f"lh360-smoke-{self.run_id}"
        self.landing = _join(env["LH360_SMOKE_LANDING"], scratch)
        self.lake = _join(env["LH360_SMOKE_LAKE"], scratch)
        output = env.get("LH360_SMOKE_ATHENA_OUTPUT") or ""
        self.athena_output = _join(output, scratch) + "/" if output else None
        self.databases = {layer: f"lh360_smoke_{self.run_id.replace('-', '_')}_{layer}" for layer in LAYERS}

    def session(self):
        import boto3

        return boto3.Session(profile_name=self.profile, region_name=self.region)


def _join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _denied(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation")


def _reason(exc: Exception) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', str(exc))}".strip()


def preflight(s: Settings) -> int:
    """Who we are, then one probe per permission the run needs: each failure names the action and resource."""
    session = s.session()
    try:
        who = session.client("sts").get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - no credentials, expired SSO session, no network ...
        print(f"smoke-aws: no usable AWS credentials ({_reason(exc)}): log in or pass --profile", file=sys.stderr)
        return 1
    print(f"   account {who['Account']}, identity {who['Arn']}")
    s3 = session.client("s3")
    problems: list[str] = []

    def probe(action: str, resource: str, call) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none hides the others
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                problems.append(f"bucket {resource.split(':::')[1].split('/')[0]} does not exist (in {s.region}?)")
            elif _denied(exc):
                problems.append(f"missing permission {action} on {resource} ({_reason(exc)})")
            else:
                problems.append(f"{action} on {resource} failed: {_reason(exc)}")

    locations = [("landing", s.landing), ("lake", s.lake)]
    athena = session.client("athena")
    try:
        workgroup = athena.get_work_group(WorkGroup=s.workgroup)["WorkGroup"]
    except Exception as exc:  # noqa: BLE001
        problems.append(f"missing permission athena:GetWorkGroup on workgroup {s.workgroup} ({_reason(exc)})")
        workgroup = {}
    output = s.athena_output or ((workgroup.get("Configuration") or {}).get("ResultConfiguration") or {}).get(
        "OutputLocation"
    )
    if workgroup and not output:
        problems.append(f"workgroup {s.workgroup} has no result location: pass --athena-output s3://...")
    if output:
        locations.append(("athena output", output.rstrip("/")))
    for _, uri in locations:
        bucket, prefix = _split(uri)
        key = f"{prefix}/_lh360_smoke_probe".lstrip("/")
        arn = f"arn:aws:s3:::{bucket}"
        probe(
            "s3:ListBucket",
            f"{arn} (prefix {prefix}/)",
            lambda b=bucket, p=prefix: s3.list_objects_v2(Bucket=b, Prefix=p + "/", MaxKeys=1),
        )
        probe("s3:PutObject", f"{arn}/{key}", lambda b=bucket, k=key: s3.put_object(Bucket=b, Key=k, Body=b"probe"))
        probe("s3:GetObject", f"{arn}/{key}", lambda b=bucket, k=key: s3.get_object(Bucket=b, Key=k)["Body"].read())
        probe("s3:DeleteObject", f"{arn}/{key}", lambda b=bucket, k=key: s3.delete_object(Bucket=b, Key=k))
    for problem in dict.fromkeys(problems):
        print(f"smoke-aws: {problem}", file=sys.stderr)
    return 1 if problems else 0


def generate(s: Settings) -> int:
    """~100 rows of the demo's clientes in two files under the landing scratch prefix, and configs/ with a
    `smoke` target (local engine, landing and lake on S3, checks on Athena)."""
    from lh360.demo.generator import write_landing

    write_landing(s.work / "gen", rows=100, files=2, seed=7, start=datetime.now(UTC) - timedelta(hours=1))
    s3 = s.session().client("s3")
    bucket, prefix = _split(s.landing)
    for path in sorted(p for p in (s.work / "gen").rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix}/clientes/{path.relative_to(s.work / 'gen').as_posix()}")
    subprocess.run([sys.executable, "-m", "lh360", "init", str(s.work)], check=True, capture_output=True, text=True)
    config_path = s.work / "configs" / "lh360.yaml"
    config = yaml.safe_load(config_path.read_text())
    athena = {"workgroup": s.workgroup, "databases": s.databases}
    if s.athena_output:
        athena["output"] = s.athena_output
    aws = {"region": s.region, **({"profile": s.profile} if s.profile else {})}
    smoke = {
        "engine": "local",
        "landing": s.landing,
        "lake": s.lake,
        "aws": aws,
        "validator": "athena",
        "athena": athena,
    }
    config["targets"] = {"smoke": smoke}
    config["default_target"] = "smoke"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"   landing {s.landing}/clientes/ (2 files), lake {s.lake}, Glue databases lh360_smoke_..._*")
    return 0


_NOT_AUTHORIZED = re.compile(r"not authorized to perform:? ([\w:*-]+) on resource:? \"?([^\s\"]+)")
_HTTP_DENIED = re.compile(r"(GET|PUT|HEAD|DELETE|POST) (https?://\S+)[^\n]*?(403|Forbidden|AccessDenied)", re.I)
_S3_ACTION = {"GET": "s3:GetObject (s3:ListBucket for a listing)", "HEAD": "s3:GetObject", "PUT": "s3:PutObject"}


def explain(step: str, errfile: str) -> int:
    """Name the missing permission from the step's stderr when AWS said which; else what the step needs."""
    text = Path(errfile).read_text(errors="replace") if Path(errfile).is_file() else ""
    found = [f"missing permission {a} on {r}" for a, r in _NOT_AUTHORIZED.findall(text)]
    for method, url, _ in _HTTP_DENIED.findall(text):
        path = re.sub(r"^https?://[^/]+/", "", url).split("?")[0]
        action = _S3_ACTION.get(method.upper(), "s3:DeleteObject" if method.upper() == "DELETE" else "s3:*")
        found.append(f"S3 refused {method} {path}: missing permission {action} on arn:aws:s3:::{path}")
    if "NoSuchBucket" in text:
        found.append("a bucket does not exist: check --landing/--lake and --region")
    for line in dict.fromkeys(found):
        print(f"smoke-aws: {line}")
    print(f"smoke-aws: step {step} needs {NEEDS.get(step, 'see scripts/smoke-aws.sh --help')}")
    return 0


def verify(s: Settings) -> int:
    glue = s.session().client("glue")
    table = glue.get_table(DatabaseName=s.databases["silver"], Name="clientes")["Table"]
    if (table.get("Parameters") or {}).get("table_type", "").upper() != "DELTA":
        print(f"smoke-aws: {s.databases['silver']}.clientes is not registered as a Delta table", file=sys.stderr)
        return 1
    print(f"   Glue: {s.databases['silver']}.clientes -> {table['StorageDescriptor']['Location']} (table_type=DELTA)")
    return 0


def cleanup(s: Settings) -> int:
    """Delete the scratch prefixes' objects and the smoke Glue databases with their tables."""
    session = s.session()
    s3, glue = session.client("s3"), session.client("glue")
    failed = False
    for uri in filter(None, (s.landing, s.lake, (s.athena_output or "").rstrip("/"))):
        bucket, prefix = _split(uri)
        removed = 0
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                    removed += len(keys)
            print(f"   removed {removed} objects under {uri}/")
        except Exception as exc:  # noqa: BLE001 - report and go on with the rest
            failed = True
            print(f"smoke-aws: could not remove {uri}/: {_reason(exc)}", file=sys.stderr)
    for database in s.databases.values():
        try:
            tables = [
                t["Name"]
                for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
                for t in page["TableList"]
            ]
            for name in tables:
                glue.delete_table(DatabaseName=database, Name=name)
            glue.delete_database(Name=database)
            print(f"   removed Glue database {database} ({len(tables)} tables)")
        except glue.exceptions.EntityNotFoundException:
            continue
        except Exception as exc:  # noqa: BLE001
            failed = True
            print(f"smoke-aws: could not remove Glue database {database}: {_reason(exc)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "explain":
        return explain(argv[1], argv[2])
    actions = {"preflight": preflight, "generate": generate, "verify": verify, "cleanup": cleanup}
    if command not in actions:
        print(__doc__, file=sys.stderr)
        return 2
    return actions[command](Settings())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
