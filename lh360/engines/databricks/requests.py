"""What lh360 sends to Databricks for a step: the job's payload and the exact `jobs/runs/submit` body (also
what `lh360 plan` shows)."""

from __future__ import annotations

import json
import math
from typing import Any

from lh360 import pii
from lh360.config import ExistingCluster, ResolvedTarget
from lh360.engines.databricks.client import settings_of, workspace_dir_fs
from lh360.engines.databricks.code import JOB_FILE
from lh360.engines.databricks.journal import Entry
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.storage import join

PAYLOADS_DIR = "payloads"
ENVIRONMENT_KEY = "lh360"
ENVIRONMENT_VERSION = "2"  # serverless environment: Python 3.11, pyspark via Spark Connect
MAX_INLINE_PAYLOAD = 8000  # bytes of --payload JSON; larger payloads go to a workspace file
SERVER_TIMEOUT_GRACE = 60  # the run's own timeout_seconds = lh360's timeout + this (a dead ops box still stops it)


def gold_sql_databricks(sql: str, catalog: str, views: dict[tuple[str, str], str] | None = None) -> str:
    """Spec gold SQL (Spark SQL over silver.x / gold.x) with every table as `catalog`.`layer`.`name`, or as
    the temp view `views` names for it (silver read through silver.pii's gold rules, lh360.pii)."""
    from sqlglot import exp

    from lh360.sql import parse_query, resolve, to_sql

    def qualify(layer: str, name: str):
        if views and (layer, name) in views:
            return exp.Table(this=exp.to_identifier(views[(layer, name)], quoted=True))
        return exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier(layer, quoted=True),
            catalog=exp.to_identifier(catalog, quoted=True),
        )

    return to_sql(resolve(parse_query(sql), qualify), "databricks")


def gold_owner(project: Any, relation: str) -> tuple[TableSpec, str]:
    """The spec that defines `relation` (gold.<name>), and <name>."""
    layer, _, name = relation.partition(".")
    for spec in project.specs.values():
        if layer == "gold" and name in spec.gold:
            return spec, name
    raise UsageError(f"no spec defines {relation!r} (a gold relation is gold.<name>)")


def quarantine_table(catalog: str, table: str) -> str:
    from lh360.sql import quote

    return ".".join(quote(p, "databricks") for p in (catalog, "silver", f"{table}_quarantine"))


def step_payload(
    target: ResolvedTarget, spec: TableSpec, step: str, logical_id: str, gold_name: str | None = None
) -> dict[str, Any]:
    """The job's payload (lh360/spark/job.py's format) for one step of one table (aggregate: one gold table)."""
    s = settings_of(target)
    lake = Lake(target.lake)
    t = spec.table
    paths = {
        "landing": join(target.landing, spec.source.path) + "/",
        "state": lake.state(t),
        "bronze": lake.table("bronze", t),
    }
    if step in ("refine", "aggregate"):
        paths.update(silver=lake.table("silver", t), quarantine=lake.table("quarantine", t))
    payload: dict[str, Any] = {
        "step": step,
        "table": t,
        "run_id": logical_id,
        "catalog": s.catalog,
        "spec": spec.model_dump(mode="json", exclude={"checks"}),
        "paths": paths,
    }
    if step == "refine":
        payload["tables"] = {"quarantine": quarantine_table(s.catalog, t)}
    if step == "aggregate":
        names = [gold_name] if gold_name else list(spec.gold)
        views = {n: pii.databricks_gold_views(spec, n, s.catalog) for n in names}  # personal data as pii.gold says
        payload["gold"] = {
            n: {
                "sql": gold_sql_databricks(
                    spec.gold[n].sql, s.catalog, {("silver", spec.table): next(iter(views[n]))} if views[n] else None
                ),
                "path": lake.table("gold", n),
            }
            for n in names
        }
        if any(views.values()):
            payload["pii_views"] = {n: v for n, v in views.items() if v}
    if s.pii_secret and step in ("refine", "aggregate"):
        scope, _, key = s.pii_secret.partition("/")
        payload["pii_secret"] = {"scope": scope, "key": key}
    return payload


def payload_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def payload_file(target: ResolvedTarget, token: str) -> str:
    """Where a payload too large for a task parameter is uploaded (a file path on the compute)."""
    return f"{workspace_dir_fs(settings_of(target).workspace_dir)}/{PAYLOADS_DIR}/{token}.json"


def submit_body(
    target: ResolvedTarget,
    spec: TableSpec,
    step: str,
    entry: Entry,
    *,
    timeout: float | None,
    gold_name: str | None = None,
) -> dict[str, Any]:
    """The exact JSON body of `POST /api/2.2/jobs/runs/submit` for one step (what `lh360 plan` shows)."""
    s = settings_of(target)
    payload = payload_json(step_payload(target, spec, step, entry.logical_id, gold_name))
    if len(payload.encode()) <= MAX_INLINE_PAYLOAD:
        params = ["--step", step, "--payload", payload]
    else:
        params = ["--step", step, "--payload-file", payload_file(target, entry.token)]
    task: dict[str, Any] = {
        "task_key": f"lh360_{step}",
        "spark_python_task": {"python_file": f"{workspace_dir_fs(s.workspace_dir)}/{JOB_FILE}", "parameters": params},
    }
    body: dict[str, Any] = {"run_name": f"lh360 {step} {gold_name or spec.table}", "idempotency_token": entry.token}
    compute = s.compute
    if compute == "serverless":
        task["environment_key"] = ENVIRONMENT_KEY
        body["environments"] = [
            {"environment_key": ENVIRONMENT_KEY, "spec": {"environment_version": ENVIRONMENT_VERSION}}
        ]
    elif isinstance(compute, ExistingCluster):
        task["existing_cluster_id"] = compute.existing_cluster_id
    else:
        task["new_cluster"] = dict(compute.new_cluster)
    body["tasks"] = [task]
    if timeout is not None:
        body["timeout_seconds"] = int(math.ceil(timeout)) + SERVER_TIMEOUT_GRACE
    return body


def sdk_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """submit_body → keyword arguments of `w.jobs.submit` (SDK dataclasses); the SDK sends back `body`."""
    from databricks.sdk.service.jobs import JobEnvironment, SubmitTask

    kw = dict(body)
    kw["tasks"] = [SubmitTask.from_dict(t) for t in body["tasks"]]
    if "environments" in body:
        kw["environments"] = [JobEnvironment.from_dict(e) for e in body["environments"]]
    return kw
