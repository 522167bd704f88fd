"""The S3 requests lh360's Spark job makes on Databricks, derived from the job's own path helpers.

Spark does not run against moto here, so its requests are modelled: the paths come from the payload the ops box
sends (`lh360.engines.databricks.requests.step_payload`) and the job's helpers (`state_path`, `checkpoint_location`,
`metrics_path`); the operations on each path are those of its role in the job:

* the landing prefix: Auto Loader lists it and reads the files (read-only);
* a Delta table read (bronze in refine, silver in aggregate): list and read the log (a missing
  `_last_checkpoint` is a 404), read data files;
* a Delta table written (bronze, silver, quarantine, gold, the metrics table): data files (also as multipart
  uploads, and aborting them), conditional log commits, checkpoints, log clean-up and VACUUM deletes;
* a streaming checkpoint (`checkpointLocation`) and Auto Loader's `schemaLocation`: list, read, write and clean
  up their files.

Each modelled call goes through the same HTTP -> IAM mapping as the recorded requests (tests/iam/actions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.iam.actions import Authz, Environment, authorizations


@dataclass
class Call:
    """A modelled HTTP request, shaped like tests/aws/recorder.HttpRequest."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    body: Any = None
    answer: Any = None
    service: str = "s3"
    access_key: str | None = None
    note: str = ""

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" if v else k for k, v in sorted(self.query.items()))
        return f"{self.method} {self.path}{'?' + query if query else ''}{' (' + self.note + ')' if self.note else ''}"


def _bucket_key(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def landing_reads(uri: str) -> list[Call]:
    bucket, prefix = _bucket_key(uri)
    note = f"Auto Loader reads {uri}"
    return [
        Call("GET", f"/{bucket}", {"location": ""}, note=note),
        Call("GET", f"/{bucket}", {"list-type": "2", "prefix": f"{prefix}/"}, note=note),
        Call("GET", f"/{bucket}", {"list-type": "2", "prefix": f"{prefix}/", "delimiter": "/"}, note=note),
        Call("GET", f"/{bucket}/{prefix}/2025/06/01/part-000.json", note=note),
        Call("HEAD", f"/{bucket}/{prefix}/2025/06/01/part-000.json", note=note),
    ]


def delta_reads(uri: str) -> list[Call]:
    bucket, t = _bucket_key(uri)
    note = f"Delta read of {uri}"
    return [
        Call("GET", f"/{bucket}", {"location": ""}, note=note),
        Call("GET", f"/{bucket}", {"list-type": "2", "prefix": f"{t}/_delta_log/"}, note=note),
        Call("GET", f"/{bucket}/{t}/_delta_log/_last_checkpoint", status=404, note=note),
        Call("GET", f"/{bucket}/{t}/_delta_log/00000000000000000000.json", note=note),
        Call("GET", f"/{bucket}/{t}/_delta_log/00000000000000000010.checkpoint.parquet", note=note),
        Call("GET", f"/{bucket}/{t}/part-00000-0.c000.snappy.parquet", {"partNumber": "1"}, note=note),
        Call("HEAD", f"/{bucket}/{t}/part-00000-0.c000.snappy.parquet", note=note),
    ]


def delta_writes(uri: str) -> list[Call]:
    bucket, t = _bucket_key(uri)
    note = f"Delta write of {uri}"
    part = f"/{bucket}/{t}/part-00001-1.c000.snappy.parquet"
    return [
        *delta_reads(uri),
        Call("PUT", part, note=note),
        Call("POST", part, {"uploads": ""}, note=note + " (multipart)"),
        Call("PUT", part, {"partNumber": "1", "uploadId": "u1"}, note=note + " (multipart)"),
        Call("GET", part, {"uploadId": "u1"}, note=note + " (multipart)"),
        Call("POST", part, {"uploadId": "u1"}, note=note + " (multipart)"),
        Call("DELETE", part, {"uploadId": "u2"}, note=note + " (aborted upload)"),
        Call("GET", f"/{bucket}", {"uploads": "", "prefix": f"{t}/"}, note=note + " (pending uploads)"),
        Call("PUT", f"/{bucket}/{t}/_delta_log/00000000000000000001.json", headers={"if-none-match": "*"}, note=note),
        Call("PUT", f"/{bucket}/{t}/_delta_log/00000000000000000010.checkpoint.parquet", note=note),
        Call("PUT", f"/{bucket}/{t}/_delta_log/_last_checkpoint", note=note),
        Call("DELETE", f"/{bucket}/{t}/_delta_log/00000000000000000000.json", note=note + " (log clean-up)"),
        Call("DELETE", f"/{bucket}/{t}/part-00000-0.c000.snappy.parquet", note=note + " (VACUUM)"),
        Call("POST", f"/{bucket}", {"delete": ""}, body=[f"{t}/part-00000-0.c000.snappy.parquet"], note=note),
    ]


def stream_state(uri: str, files: tuple[str, ...]) -> list[Call]:
    bucket, d = _bucket_key(uri)
    note = f"stream state {uri}"
    out = [Call("GET", f"/{bucket}", {"list-type": "2", "prefix": f"{d}/"}, note=note)]
    for name in files:
        out += [
            Call("PUT", f"/{bucket}/{d}/{name}", note=note),
            Call("GET", f"/{bucket}/{d}/{name}", note=note),
            Call("HEAD", f"/{bucket}/{d}/{name}", status=404, note=note + " (not there yet)"),
            Call("DELETE", f"/{bucket}/{d}/{name}", note=note + " (clean-up)"),
        ]
    return out


CHECKPOINT_FILES = ("metadata", "offsets/0", "commits/0", "sources/0/0", "state/0/0/1.delta")
SCHEMA_FILES = ("_schemas/0",)


def job_calls(payloads: dict[str, dict[str, Any]]) -> list[Call]:
    """Every modelled call of the ingest, refine and aggregate steps of one table."""
    from lh360.spark import contract

    calls: list[Call] = []
    ingest, refine, aggregate = payloads["ingest"], payloads["refine"], payloads["aggregate"]
    calls += landing_reads(ingest["paths"]["landing"])
    calls += stream_state(contract.state_path(ingest, "schema"), SCHEMA_FILES)
    calls += stream_state(contract.checkpoint_location(ingest, "bronze"), CHECKPOINT_FILES)
    calls += delta_writes(ingest["paths"]["bronze"])
    calls += delta_reads(refine["paths"]["bronze"])
    calls += stream_state(contract.checkpoint_location(refine, "silver"), CHECKPOINT_FILES)
    calls += delta_writes(refine["paths"]["silver"])
    calls += delta_writes(refine["paths"]["quarantine"])
    calls += delta_writes(contract.metrics_path(refine))
    calls += delta_reads(aggregate["paths"]["silver"])
    for entry in aggregate["gold"].values():
        calls += delta_writes(entry["path"])
    return calls


def external_location_checks(locations: dict[str, dict[str, Any]]) -> list[Call]:
    """What Unity Catalog's validation of an external location does with the storage credential: list and
    read under its URL and, unless read-only, write and delete a file there."""
    calls = []
    for name, loc in locations.items():
        bucket, prefix = _bucket_key(loc["url"])
        probe = f"/{bucket}/{prefix + '/' if prefix else ''}_databricks_validation_{name}"
        note = f"validation of external location {name}"
        calls += [
            Call("GET", f"/{bucket}", {"list-type": "2", "prefix": f"{prefix}/" if prefix else ""}, note=note),
            Call("HEAD", probe, status=404, note=note),
        ]
        if not loc.get("read_only"):
            calls += [Call("PUT", probe, note=note), Call("GET", probe, note=note), Call("DELETE", probe, note=note)]
    return calls


def authorize(calls: list[Call], env: Environment) -> list[Authz]:
    return [a for call in calls for a in authorizations(call, env)]
