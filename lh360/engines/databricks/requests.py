"""What lh360 sends to Databricks for a step: the job's payload and the exact `jobs/runs/submit` body (also
what `lh360 plan` shows), and its bytes on the wire: lh360 posts them itself, so no SDK round trip can
drop a key between the plan and the service."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from lh360 import pii
from lh360.config import ExistingCluster, ResolvedTarget
from lh360.engines.databricks.client import settings_of, workspace_dir_fs
from lh360.engines.databricks.code import JOB_FILE
from lh360.engines.databricks.contract import sdk_too_old, submit_problems
from lh360.engines.databricks.journal import Entry, run_name
from lh360.errors import ConfigError, UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.sql import parse_query, quote, resolve, to_sql
from lh360.storage import join
from lh360.yamlio import dotted

PAYLOADS_DIR = "payloads"
ENVIRONMENT_KEY = "lh360"
ENVIRONMENT_VERSION = "2"  # serverless environment: Python 3.11, pyspark via Spark Connect
# bytes of {"parameters": [...]} on the wire; the service documents 10,000 bytes for the parameters of
# run-now and nothing for submit: larger payloads go to a file (payload_file)
MAX_INLINE_PARAMETERS = 8000
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SUBMIT_PATH = "/api/2.2/jobs/runs/submit"
SERVER_TIMEOUT_GRACE = 60  # the run's own timeout_seconds = lh360's timeout + this (a dead ops box still stops it)


def gold_sql_databricks(sql: str, catalog: str, views: dict[tuple[str, str], str] | None = None) -> str:
    """Spec gold SQL (Spark SQL over silver.x / gold.x) with every table as `catalog`.`layer`.`name`, or as
    the temp view `views` names for it (silver read through silver.pii's gold rules, lh360.pii)."""
    from sqlglot import exp

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
    return ".".join(quote(p, "databricks") for p in (catalog, "silver", f"{table}_quarantine"))


def step_payload(
    target: ResolvedTarget,
    spec: TableSpec,
    step: str,
    logical_id: str,
    gold_name: str | None = None,
    stream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The job's payload (lh360/spark/job.py's format) for one step of one table (aggregate: one gold table).
    `stream`: the checkpoint generation of an ingest/refine stream (`state_generation`, `recover`), or the
    refine stream's that a replay's app transaction follows."""
    s = settings_of(target)
    lake = Lake(target.lake)
    t = spec.table
    paths = {
        "landing": join(target.landing, spec.source.path) + "/",
        "state": lake.state(t),
        "bronze": lake.table("bronze", t),
    }
    if step in ("refine", "aggregate", "replay"):
        paths.update(silver=lake.table("silver", t), quarantine=lake.table("quarantine", t))
    payload: dict[str, Any] = {
        "step": step,
        "table": t,
        "run_id": logical_id,
        "catalog": s.catalog,
        "spec": spec.model_dump(mode="json", exclude={"checks"}),
        "paths": paths,
    }
    if step in ("refine", "replay"):
        payload["tables"] = {"quarantine": quarantine_table(s.catalog, t)}
    if step == "replay":  # rules on protected columns keep refine's verdict (lh360.pii.recorded_rules)
        payload["recorded_rules"] = pii.recorded_rules(spec)
    payload.update(stream or {})
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
    """The payload as compact JSON in which no `{{` can ever appear: every `{` inside a string is written
    `\\u007b`. Databricks substitutes `{{job.id}}`-style dynamic value references in task parameters (and
    refuses unknown ones in a known namespace), so a spec holding `{{...}}` would otherwise change or fail
    on its way to the job; outside strings JSON never puts two `{` side by side. json.loads reads it back
    unchanged."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return _JSON_STRING.sub(lambda m: m.group(0).replace("{", "\\u007b"), text)


def payload_file(target: ResolvedTarget, token: str) -> str:
    """Where a payload too large for a task parameter goes: the lake's private `_lh360/payloads/` (the ops
    box writes its ledgers there; the job reads the lake), removed once the run has ended. Never a
    workspace folder such as /Shared, which every workspace user can read."""
    return join(target.lake, "_lh360", PAYLOADS_DIR, f"{token}.json")


def parameters_wire_size(params: list[str]) -> int:
    """Bytes of `{"parameters": [...]}` as it goes on the wire (quotes escaped, non-ASCII as \\uXXXX): what
    the service's parameter limit measures."""
    return len(_wire_json({"parameters": params}))


def submit_body(
    target: ResolvedTarget,
    spec: TableSpec,
    step: str,
    entry: Entry,
    *,
    timeout: float | None,
    gold_name: str | None = None,
    stream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of `POST /api/2.2/jobs/runs/submit` for one step (what `lh360 plan` shows; `wire()`
    gives its exact bytes). Refused with exit 2 when the Databricks API's contract does not have a key or
    value of it (contract.py)."""
    s = settings_of(target)
    payload = payload_json(step_payload(target, spec, step, entry.logical_id, gold_name, stream))
    params = ["--step", step, "--payload", payload]
    if parameters_wire_size(params) > MAX_INLINE_PARAMETERS:
        params = ["--step", step, "--payload-file", payload_file(target, entry.token)]
    task: dict[str, Any] = {
        "task_key": f"lh360_{step}",
        "spark_python_task": {"python_file": f"{workspace_dir_fs(s.workspace_dir)}/{JOB_FILE}", "parameters": params},
    }
    body: dict[str, Any] = {
        "run_name": run_name(step, gold_name or spec.table, entry.submitter),
        "idempotency_token": entry.token,
    }
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
    if s.run_viewers:
        body["access_control_list"] = [viewer.acl() for viewer in s.run_viewers]
    check_body(target, body)
    return body


def wire(body: dict[str, Any]) -> bytes:
    """The exact bytes lh360 posts for `body` (and `lh360 plan --json` shows as `wire_body`)."""
    return _wire_json(body)


def _wire_json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


UC_ACCESS_MODES = {  # data_security_mode values whose clusters can read and write Unity Catalog tables
    "SINGLE_USER", "USER_ISOLATION", "DATA_SECURITY_MODE_AUTO", "DATA_SECURITY_MODE_STANDARD",
    "DATA_SECURITY_MODE_DEDICATED",
}  # fmt: skip


def check_body(target: ResolvedTarget, body: dict[str, Any]) -> None:
    """Refuse (exit 2, naming the key) a body the Databricks API would refuse or the SDK would not carry:
    a user's `new_cluster` key or enum value is a config error of the target; anything else lh360 built
    means the installed databricks-sdk is too old to know it."""

    problems = submit_problems(body)
    if not problems:
        _check_new_cluster(target, body)
        return
    first = problems[0]
    if first.parts[:3] == ("tasks", 0, "new_cluster"):
        raise _cluster_error(target, first.parts[3:], first.reason + _more(problems))
    raise UsageError(
        f"jobs.submit body: {first}{_more(problems)}: " + (sdk_too_old() or "a bug in lh360, please report it")
    )


def _check_new_cluster(target: ResolvedTarget, body: dict[str, Any]) -> None:
    cluster = body["tasks"][0].get("new_cluster")
    if cluster is None:
        return
    problem = uc_access_problem(cluster)
    if problem:
        raise _cluster_error(target, ("data_security_mode",), problem)


def uc_access_problem(cluster: dict[str, Any]) -> str | None:
    """Why a cluster (a `new_cluster` spec, or what clusters/get returns) cannot run lh360's job, which
    writes Unity Catalog tables: its access mode; None when it can."""
    mode = cluster.get("data_security_mode")
    if mode in UC_ACCESS_MODES or (mode is None and cluster.get("kind")):
        return None  # with `kind` set, an unset mode is DATA_SECURITY_MODE_AUTO
    got = f"{mode!r} has no Unity Catalog access" if mode else "not set: the cluster would have no Unity Catalog access"
    return f"{got}; lh360's job writes Unity Catalog tables: use one of {', '.join(sorted(UC_ACCESS_MODES))}"


def existing_cluster_error(target: ResolvedTarget, message: str) -> ConfigError:
    """A ConfigError at `targets.<t>.databricks.compute.existing_cluster_id`, with its file and line."""
    return _compute_error(target, ("existing_cluster_id",), message)


def _cluster_error(target: ResolvedTarget, parts: tuple, message: str) -> ConfigError:
    """A ConfigError at `targets.<t>.databricks.compute.new_cluster.<parts>`, with its file and line."""
    return _compute_error(target, ("new_cluster", *parts), message)


def _compute_error(target: ResolvedTarget, parts: tuple, message: str) -> ConfigError:
    path = ("targets", target.name, "databricks", "compute", *parts)
    source = target.config_source
    return ConfigError(
        message,
        file=source.file if source else None,
        line=source.line(path) if source else None,
        field=dotted(path),
    )


def _more(problems: list) -> str:
    return f" (and {len(problems) - 1} more: {'; '.join(map(str, problems[1:4]))})" if len(problems) > 1 else ""
