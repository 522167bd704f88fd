#!/usr/bin/env bash
# A smoke test of lh360 against YOUR Databricks workspace and S3 bucket: deploy → ingest → promote →
# validate → quarantine replay on a tiny generated landing zone, in scratch tables and folders of its own,
# then cleanup.
#
# Usage:
#   scripts/smoke-databricks.sh --bucket s3://my-bucket/scratch --catalog my_scratch_catalog \
#       --warehouse-id 1234567890abcdef [--profile my-profile] [--aws-profile p] [--region sa-east-1] [--keep]
#   (or LH360_SMOKE_BUCKET, LH360_SMOKE_CATALOG, LH360_SMOKE_WAREHOUSE_ID, LH360_SMOKE_PROFILE, ...)
#
# What it needs (what a real `prod` target needs, see README "Running on Databricks"):
#   * Databricks credentials by the SDK's unified auth: --profile (~/.databrickscfg), or DATABRICKS_HOST and
#     DATABRICKS_TOKEN (or the DATABRICKS_* OAuth variables);
#   * AWS credentials that may write the bucket prefix (the default chain, or --aws-profile);
#   * a Unity Catalog external location covering the bucket prefix, with READ FILES, WRITE FILES and
#     CREATE EXTERNAL TABLE for your identity; USE CATALOG and CREATE SCHEMA on the catalog (best: a catalog
#     kept for scratch work);
#   * a SQL warehouse (for validate and for the cleanup's DROP TABLE).
#
# Everything it creates is named lh360_smoke_<id>: the landing and lake under <bucket>/lh360_smoke_<id>/,
# the tables <catalog>.{bronze,silver,gold}.lh360_smoke_<id>*, the job code under
# /Workspace/Shared/lh360_smoke_<id>; schemas it had to create are dropped again when empty. --keep leaves
# it all in place (the script prints what to remove by hand).
#
# Exit codes: 0 passed (or skipped: nothing configured, as in CI), 1 a step failed (the message says which
# and what to check), 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

BUCKET=${LH360_SMOKE_BUCKET:-}
CATALOG=${LH360_SMOKE_CATALOG:-}
WAREHOUSE=${LH360_SMOKE_WAREHOUSE_ID:-}
PROFILE=${LH360_SMOKE_PROFILE:-}
AWS_PROFILE_ARG=${LH360_SMOKE_AWS_PROFILE:-}
REGION=${LH360_SMOKE_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}
KEEP=0
ROWS=${LH360_SMOKE_ROWS:-200}

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bucket) BUCKET=$2; shift 2 ;;
    --catalog) CATALOG=$2; shift 2 ;;
    --warehouse-id) WAREHOUSE=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --aws-profile) AWS_PROFILE_ARG=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "smoke-databricks: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$BUCKET" ] && [ -z "$CATALOG" ] && [ -z "$WAREHOUSE" ]; then
  echo "smoke-databricks: SKIPPED: no workspace configured (pass --bucket, --catalog and --warehouse-id, or set"
  echo "  LH360_SMOKE_BUCKET, LH360_SMOKE_CATALOG and LH360_SMOKE_WAREHOUSE_ID); CI has no Databricks workspace."
  exit 0
fi
missing=""
[ -n "$BUCKET" ] || missing="$missing --bucket"
[ -n "$CATALOG" ] || missing="$missing --catalog"
[ -n "$WAREHOUSE" ] || missing="$missing --warehouse-id"
if [ -n "$missing" ]; then
  echo "smoke-databricks: missing$missing (see --help)" >&2
  exit 2
fi
case "$BUCKET" in s3://*) ;; *) echo "smoke-databricks: --bucket must be an s3:// URI, got $BUCKET" >&2; exit 2 ;; esac
if [ -z "$PROFILE" ] && [ -z "${DATABRICKS_HOST:-}" ] && [ -z "${DATABRICKS_CONFIG_PROFILE:-}" ]; then
  echo "smoke-databricks: no Databricks credentials: pass --profile, or set DATABRICKS_HOST and DATABRICKS_TOKEN" >&2
  exit 2
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
"$PY" -c "import lh360" 2>/dev/null || {
  echo "smoke-databricks: lh360 is not installed for $PY (python3 -m venv .venv && .venv/bin/pip install -e .)" >&2
  exit 2
}

ID="lh360_smoke_$(date -u +%Y%m%d%H%M%S)_$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/${ID}.XXXX")
export SMOKE_ID=$ID SMOKE_WORK=$WORK SMOKE_BUCKET=${BUCKET%/} SMOKE_CATALOG=$CATALOG SMOKE_WAREHOUSE=$WAREHOUSE \
  SMOKE_PROFILE=$PROFILE SMOKE_AWS_PROFILE=$AWS_PROFILE_ARG SMOKE_REGION=$REGION SMOKE_ROWS=$ROWS
export XDG_STATE_HOME="$WORK/state"  # the idempotency journal of this run only
export LH360_CONFIG="$WORK/configs/lh360.yaml"
lh() { "$PY" -m lh360 -t smoke "$@"; }
say() { echo "smoke-databricks: $*"; }

fail() {  # step, exit code, what to check
  echo "smoke-databricks: FAILED at '$1' (exit $2)" >&2
  echo "  what to check: $3" >&2
  if [ "$KEEP" = 1 ]; then echo "  its files stay in $WORK" >&2; else echo "  rerun with --keep to look at what it left" >&2; fi
  exit 1
}

cleanup() {
  local code=$?
  if [ "$KEEP" = 1 ]; then
    say "--keep: left in place: $SMOKE_BUCKET/$ID/, /Workspace/Shared/$ID, the tables $CATALOG.*.$ID*, $WORK"
    return
  fi
  say "cleanup"
  "$PY" - <<'PY' || echo "smoke-databricks: cleanup was incomplete (see above): remove what is left by hand" >&2
import os

from lh360.config import load_project

project = load_project(os.environ["LH360_CONFIG"])
target = project.target("smoke")
ident, cat = os.environ["SMOKE_ID"], os.environ["SMOKE_CATALOG"]
problems = []
try:  # the tables the job registered, then the schemas this run created (only when empty)
    from lh360.engines.databricks.statements import DatabricksSQLRunner

    sql = DatabricksSQLRunner(target, timeout=300)
    for layer, name in [("bronze", ident), ("silver", ident), ("silver", f"{ident}_quarantine"),
                        ("gold", f"{ident}_por_uf"), ("gold", f"{ident}_por_segmento")]:
        sql.execute(f"DROP TABLE IF EXISTS {sql.table_name(layer, name)}", timeout=300)
    created = os.path.join(os.environ["SMOKE_WORK"], "created-schemas")
    for schema in open(created).read().split() if os.path.exists(created) else []:
        try:
            sql.execute(f"DROP SCHEMA IF EXISTS `{cat}`.`{schema}` RESTRICT", timeout=300)
        except Exception as exc:  # not empty: someone else uses it now
            print(f"  kept schema {cat}.{schema}: {str(exc).splitlines()[0]}")
except Exception as exc:
    problems.append(f"tables: {str(exc).splitlines()[0]}")
try:  # the job code and anything else in the scratch workspace folder
    from lh360.engines.databricks.client import workspace_client

    workspace_client(target).workspace.delete(f"/Shared/{ident}", recursive=True)
except Exception as exc:
    if "does not exist" not in str(exc) and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
        problems.append(f"workspace folder: {str(exc).splitlines()[0]}")
try:  # landing and lake, hidden objects (_delta_log, _lh360) included
    from lh360.storage import s3_client, split_s3

    bucket, key = split_s3(f"{os.environ['SMOKE_BUCKET']}/{ident}/")
    s3 = s3_client(target.settings.aws)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
except Exception as exc:
    problems.append(f"s3: {str(exc).splitlines()[0]}")
for p in problems:
    print(f"  could not remove {p}")
raise SystemExit(1 if problems else 0)
PY
  rm -rf "$WORK"
  return $code
}
trap cleanup EXIT

say "scratch id $ID (work folder $WORK)"
"$PY" - <<'PY' || fail "setup" $? "the bucket URI, AWS credentials for it (--aws-profile/--region), and that lh360 is installed"
import os
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import yaml

from lh360.demo.generator import DEFAULT_SPAN, write_landing
from lh360.storage import store_for

ident, work = os.environ["SMOKE_ID"], Path(os.environ["SMOKE_WORK"])
base = f"{os.environ['SMOKE_BUCKET']}/{ident}"
aws = {k: v for k, v in (("profile", os.environ["SMOKE_AWS_PROFILE"]), ("region", os.environ["SMOKE_REGION"])) if v}
databricks = {
    "catalog": os.environ["SMOKE_CATALOG"], "compute": "serverless", "warehouse_id": os.environ["SMOKE_WAREHOUSE"],
    "workspace_dir": f"/Workspace/Shared/{ident}", "timeout": "45m",
}
if os.environ["SMOKE_PROFILE"]:
    databricks["profile"] = os.environ["SMOKE_PROFILE"]
config = {
    "project": "lh360-smoke", "default_target": "smoke", "tables_dir": "tables",
    "targets": {"smoke": {"engine": "databricks", "landing": f"{base}/landing", "lake": f"{base}/lake", "aws": aws,
                          "databricks": databricks, "validator": "databricks-sql"}},
}
(work / "configs" / "tables").mkdir(parents=True)
(work / "configs" / "lh360.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

# the shipped clientes spec, renamed to the scratch id (tables, gold tables, checks, SQL)
text = resources.files("lh360").joinpath("templates/configs/tables/clientes.yaml").read_text()
spec = yaml.safe_load(text)
spec["table"], spec["source"]["path"] = ident, f"{ident}/"
spec["gold"] = {f"{ident}_{k.removeprefix('clientes_')}": {**v, "sql": v["sql"].replace("silver.clientes", f"silver.{ident}")}
                for k, v in spec["gold"].items()}
spec["checks"] = {
    rel.replace("silver.clientes", f"silver.{ident}").replace("gold.clientes_", f"gold.{ident}_"): [
        yaml.safe_load(yaml.safe_dump(c).replace("gold.clientes_", f"gold.{ident}_").replace("silver.clientes", f"silver.{ident}"))
        for c in checks
    ]
    for rel, checks in spec["checks"].items()
}
(work / "configs" / "tables" / f"{ident}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))

# a tiny landing zone: the demo's generator (valid rows, updates, a few deliberately bad records)
local = work / "landing"
now = datetime.now(UTC)
files = write_landing(local, rows=int(os.environ["SMOKE_ROWS"]), files=2, seed=7,
                      start=now.replace(minute=0, second=0, microsecond=0) - DEFAULT_SPAN)
from lh360.config import load_project

target = load_project(work / "configs" / "lh360.yaml").target("smoke")
store = store_for(target.landing, target.settings.aws)
for f in files:
    store.upload(f, f"{target.landing}/{ident}/{f.relative_to(local).as_posix()}")
print(f"  {len(files)} landing files, {os.environ['SMOKE_ROWS']} rows, under {target.landing}/{ident}/")
PY

say "lint"
lh lint || fail "lint" $? "the generated spec in $WORK/configs (a bug of this script or of lh360)"

say "plan (offline: the exact jobs.submit bodies)"
lh plan --to gold > "$WORK/plan.txt" || fail "plan" $? "the target's databricks settings (exit 2 names the key)"

say "deploy"
lh deploy --json > "$WORK/deploy.json" || fail "deploy" $? \
  "your identity may create schemas in catalog $CATALOG (CREATE SCHEMA, USE CATALOG) and write /Workspace/Shared"
"$PY" -c "
import json, os
doc = json.load(open(os.path.join(os.environ['SMOKE_WORK'], 'deploy.json')))
made = [a['object'].split('.')[-1] for a in doc['actions'] if a['kind'] == 'create_schema' and a['status'] == 'done']
open(os.path.join(os.environ['SMOKE_WORK'], 'created-schemas'), 'w').write(' '.join(made))
" || true

say "ingest"
lh ingest "$ID" --json > "$WORK/ingest.json" || fail "ingest" $? \
  "an external location covering $BUCKET with READ FILES/WRITE FILES and CREATE EXTERNAL TABLE for your identity; the run page above has the job's log"
"$PY" -c "
import json, os, sys
t = json.load(open(os.path.join(os.environ['SMOKE_WORK'], 'ingest.json')))['tables'][0]
print(f\"  ingest: run {t['run_id']} {t['result_state']}: {t['files']} files, {t['rows']} rows, {t['rescued']} rescued\")
sys.exit(0 if t['files'] == 2 and t['rows'] > 0 else 1)
" || fail "ingest counters" 1 "the job's summary did not reach lh360 (get-output logs): see the run page"

say "ingest again (nothing new: each file exactly once)"
lh ingest "$ID" --json > "$WORK/ingest2.json" || fail "second ingest" $? "the Auto Loader checkpoint under $BUCKET/$ID/lake/_lh360/state"
"$PY" -c "
import json, os, sys
t = json.load(open(os.path.join(os.environ['SMOKE_WORK'], 'ingest2.json')))['tables'][0]
sys.exit(0 if t['files'] == 0 else 1)
" || fail "second ingest counters" 1 "files were ingested twice: the Auto Loader checkpoint or the bronze txnAppId"

say "promote --to gold"
lh promote "$ID" --to gold --json > "$WORK/promote.json" || fail "promote" $? \
  "MODIFY/SELECT on $CATALOG.silver and $CATALOG.gold; the run page above has the job's error"

say "validate on the SQL warehouse"
lh validate "$ID" --engine databricks-sql || fail "validate" $? \
  "warehouse $WAREHOUSE is running and may read $CATALOG.*; a failed check (exit 1) names itself above"

say "quarantine replay (nothing passes today's rules: nothing is written)"
lh quarantine replay "$ID" --json > "$WORK/replay0.json" || fail "replay" $? \
  "MODIFY on $CATALOG.silver (quarantine and silver are rewritten); the run page above has the job's error"
"$PY" -c "
import json, os, sys
r = json.load(open(os.path.join(os.environ['SMOKE_WORK'], 'replay0.json')))
print(f\"  replay: {r['evaluated']} quarantined rows judged again, {r['passed']} pass\")
sys.exit(0 if r['replay_run'] is None and r['passed'] == 0 and r['evaluated'] > 0 else 1)
" || fail "replay counters" 1 "quarantine should hold the generator's bad records, and none passes the same rules"

say "quarantine replay with uf_valida lifted (its rows merge into silver, exactly once)"
"$PY" - <<'PY' || fail "lift uf_valida" $? "the generated spec in $WORK/configs (a bug of this script)"
import os
from pathlib import Path

import yaml

path = Path(os.environ["SMOKE_WORK"]) / "configs" / "tables" / f"{os.environ['SMOKE_ID']}.yaml"
spec = yaml.safe_load(path.read_text())
spec["silver"]["expectations"] = [e for e in spec["silver"]["expectations"] if e["name"] != "uf_valida"]
path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
PY
lh quarantine replay "$ID" --json > "$WORK/replay1.json" || fail "replay after lifting a rule" $? \
  "MODIFY on $CATALOG.silver, and ALTER on $CATALOG.silver.${ID}_quarantine (replay adds its mark columns)"
lh quarantine replay "$ID" --json > "$WORK/replay2.json" || fail "replay again" $? "the run page above has the job's error"
"$PY" -c "
import json, os, sys
first, again = (json.load(open(os.path.join(os.environ['SMOKE_WORK'], f))) for f in ('replay1.json', 'replay2.json'))
print(f\"  replay {first['replay_run']}: {first['passed']} passed ({first['inserted']} inserted, {first['updated']} updated, \"
      f\"{first['stale']} stale); again: {again['passed']} passed\")
ok = first['replay_run'] == 0 and first['passed'] >= 1 and first['inserted'] + first['updated'] + first['stale'] == first['passed']
sys.exit(0 if ok and again['replay_run'] is None and again['passed'] == 0 else 1)
" || fail "replay counters after lifting a rule" 1 \
  "the invalid-uf rows should merge once: quarantine's marks (a repeated overwrite with txnAppId skipped) and silver's lh360.replay property"

say "PASSED: deploy, ingest (twice, each file once), promote to gold, validate and quarantine replay (exactly once) on workspace and bucket $BUCKET"
