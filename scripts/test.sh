#!/usr/bin/env bash
# Install everything the tests need (into .venv, and checkov into its own .venv-checkov) and run them.
# Usage: bash scripts/test.sh [pytest args…]      (CI runs exactly this, through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  PY=.venv/bin/python
else
  PY=python
fi

echo "== installing lh360 with its test extras"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,spark]"

# checkov pins many libraries of its own: it lives in a separate virtualenv so it cannot break ours
if [ ! -x .venv-checkov/bin/checkov ]; then
  echo "== installing checkov into .venv-checkov"
  "${PYTHON:-python3}" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov==3.3.30"
fi

# the IAM evaluator of tests/iam (@cloud-copilot/iam-simulate, Node >= 20), pinned by its package-lock.json
if [ ! -d tests/iam/node_modules/@cloud-copilot/iam-simulate ] || [ tests/iam/package-lock.json -nt tests/iam/node_modules ]; then
  echo "== installing the IAM evaluator into tests/iam/node_modules"
  command -v npm >/dev/null || { echo "scripts/test.sh: tests/iam needs Node >= 20 with npm" >&2; exit 1; }
  npm ci --prefix tests/iam --no-audit --no-fund --loglevel=error
fi

# the browser tests (tests/test_docs_browser.py) drive Debian's chromium through Playwright's Python package
# (a test extra); Playwright's own browser download is never used. They skip, saying why, only when chromium
# cannot be installed here.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "== installing chromium (apt-get) for the browser tests"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends chromium fonts-dejavu-core >/dev/null; } \
      || echo "warning: apt-get could not install chromium: the browser tests will be skipped"
  else
    echo "warning: chromium is missing and apt-get cannot run here: the browser tests will be skipped"
  fi
fi

echo "== ruff"
"$PY" -m ruff check lh360 tests benchmarks scripts
"$PY" -m ruff format --check lh360 tests benchmarks scripts

echo "== mypy"
"$PY" -m mypy

echo "== pytest"
# parallel workers (pytest-xdist), one more than the cores: much of the suite waits on subprocesses, Delta
# commits, a Spark JVM and timeouts under test (measured on 2 cores: 3 workers 13 min, 2 workers 14 min);
# LH360_TEST_WORKERS=0 runs it in one process
WORKERS=${LH360_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}
exec "$PY" -m pytest -n "$WORKERS" "$@"
