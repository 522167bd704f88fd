#!/usr/bin/env bash
# Smoke test of lh360 against YOUR AWS account: landing -> ingest on S3 -> deploy (Glue) -> validate on Athena,
# on a tiny generated landing zone under a scratch prefix of your own buckets; everything it creates is removed
# at the end (--keep keeps it). Not run in CI (it needs a real account); see README "Smoke test on a real account".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/smoke-aws.sh --landing s3://BUCKET[/PREFIX] --lake s3://BUCKET[/PREFIX] [options]

Runs lh360 landing, ingest, promote --to gold, deploy (Glue) and validate --engine athena on ~100 generated
rows under a scratch prefix lh360-smoke-<run id>/ of the given locations, then deletes the objects, the
Glue tables and the Glue databases it created.

Options (or environment variables):
  --landing URI        LH360_SMOKE_LANDING        where to put the generated landing files (read/write)
  --lake URI           LH360_SMOKE_LAKE           where to write the Delta tables (read/write)
  --athena-output URI  LH360_SMOKE_ATHENA_OUTPUT  Athena result location (default: the workgroup's own)
  --workgroup NAME     LH360_SMOKE_WORKGROUP      Athena workgroup (default: primary)
  --region REGION      LH360_SMOKE_REGION         default: AWS_REGION, else sa-east-1
  --profile NAME       LH360_SMOKE_PROFILE        a named AWS profile (default: the default credential chain)
  --keep                                          keep what the run created (prints where it is)
  -h, --help                                      this help

Credentials come from the default AWS chain (or --profile). The identity needs, on the scratch prefixes only:
s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject (and kms:GenerateDataKey/kms:Decrypt if the buckets
use SSE-KMS); glue:CreateDatabase, glue:GetDatabase, glue:CreateTable, glue:GetTable, glue:UpdateTable,
glue:GetTables, glue:DeleteTable and glue:DeleteDatabase on the catalog and the lh360_smoke_* databases;
athena:GetWorkGroup, athena:StartQueryExecution, athena:GetQueryExecution and athena:GetQueryResults on the
workgroup, and s3:PutObject/s3:GetObject on its output location (Athena uses your rights). A missing
permission is reported as "missing permission <action> on <resource>".
Athena results of a workgroup that enforces its own output location stay there (its lifecycle removes them).
Exit codes: 0 passed, 1 a step failed (the message says which and why), 2 bad usage.
EOF
}

LANDING=${LH360_SMOKE_LANDING:-}
LAKE=${LH360_SMOKE_LAKE:-}
ATHENA_OUTPUT=${LH360_SMOKE_ATHENA_OUTPUT:-}
WORKGROUP=${LH360_SMOKE_WORKGROUP:-primary}
REGION=${LH360_SMOKE_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-sa-east-1}}}
PROFILE=${LH360_SMOKE_PROFILE:-}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --landing) LANDING=${2:?--landing needs a value}; shift 2 ;;
    --lake) LAKE=${2:?--lake needs a value}; shift 2 ;;
    --athena-output) ATHENA_OUTPUT=${2:?--athena-output needs a value}; shift 2 ;;
    --workgroup) WORKGROUP=${2:?--workgroup needs a value}; shift 2 ;;
    --region) REGION=${2:?--region needs a value}; shift 2 ;;
    --profile) PROFILE=${2:?--profile needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "smoke-aws: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ "$LANDING" != s3://?* ]]; then
  echo "smoke-aws: --landing s3://BUCKET[/PREFIX] (or LH360_SMOKE_LANDING) is required; see --help" >&2
  exit 2
fi
if [[ "$LAKE" != s3://?* ]]; then
  echo "smoke-aws: --lake s3://BUCKET[/PREFIX] (or LH360_SMOKE_LAKE) is required; see --help" >&2
  exit 2
fi
if [ -n "$ATHENA_OUTPUT" ] && [[ "$ATHENA_OUTPUT" != s3://?* ]]; then
  echo "smoke-aws: --athena-output must be an s3:// URI" >&2
  exit 2
fi

cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
RUN_ID=$(date -u +%Y%m%d%H%M%S)-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lh360-smoke.XXXXXX")
export LH360_SMOKE_RUN_ID=$RUN_ID LH360_SMOKE_WORK=$WORK LH360_SMOKE_LANDING=$LANDING LH360_SMOKE_LAKE=$LAKE \
  LH360_SMOKE_ATHENA_OUTPUT=$ATHENA_OUTPUT LH360_SMOKE_WORKGROUP=$WORKGROUP LH360_SMOKE_REGION=$REGION \
  LH360_SMOKE_PROFILE=$PROFILE LH360_CONFIG=$WORK/configs/lh360.yaml
[ -n "$PROFILE" ] && export AWS_PROFILE=$PROFILE
# the smoke data is synthetic and erased at the end: without a key of yours, a throwaway one hashes its CPFs
if [ -z "${LH360_PII_KEY:-}" ] && [ -z "${LH360_PII_KEY_FILE:-}" ]; then
  LH360_PII_KEY="lh360-smoke-$RUN_ID-$RANDOM$RANDOM"
  export LH360_PII_KEY
fi

helper() { "$PY" scripts/smoke_aws.py "$@"; }

cleanup() {
  local code=$?
  if [ "$KEEP" = 1 ]; then
    echo "== kept (--keep): $WORK, the scratch prefixes lh360-smoke-$RUN_ID/ and the Glue databases lh360_smoke_${RUN_ID//-/_}_*"
  else
    echo "== cleaning up"
    helper cleanup || echo "smoke-aws: cleanup incomplete (see above): remove what is listed by hand" >&2
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT

step() {  # step NAME ALLOWED_EXIT_CODES -- lh360 args...
  local name=$1 allowed=$2
  shift 3
  echo "== $name: lh360 $*"
  local code=0
  "$PY" -m lh360 "$@" 2>"$WORK/$name.err" | tee "$WORK/$name.out" || code=${PIPESTATUS[0]}
  cat "$WORK/$name.err" >&2
  if [[ " $allowed " != *" $code "* ]]; then
    echo "smoke-aws: step $name failed (exit $code)" >&2
    helper explain "$name" "$WORK/$name.err" >&2 || true
    exit 1
  fi
}

echo "== preflight (run $RUN_ID, region $REGION)"
helper preflight
helper generate
step landing "0 1" -- -t smoke landing
step ingest "0" -- -t smoke ingest clientes
step promote "0" -- -t smoke promote clientes --to gold
step deploy "0" -- -t smoke deploy
step validate "0 1" -- -t smoke validate --engine athena
helper verify
echo "== smoke test passed: landing -> ingest on S3 -> deploy (Glue) -> validate on Athena"
