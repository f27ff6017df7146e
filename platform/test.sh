#!/usr/bin/env bash
# Sets up everything the tests need and runs the whole suite:
#   1. lint (ruff);
#   2. every test on the embedded default (SQLite, filesystem broker, real worker processes, Chromium);
#   3. the tests marked production_path again on PostgreSQL and Redis servers started here.
# Extra arguments go to both pytest runs (e.g. -x, -k name).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
platform/setup.sh --test
. .venv/bin/activate
export PYTHONUNBUFFERED=1

echo "[test] ruff"
ruff check .

echo "[test] suite on SQLite + filesystem broker"
# pytest exits 5 when it collects no test: with `set -e` that fails the run, as it must.
python -m pytest "$@"

echo "[test] production path on PostgreSQL + Redis"
SERVICES_DIR=$(mktemp -d /tmp/loupe-services.XXXXXX)
trap 'python platform/services.py stop "$SERVICES_DIR"; rm -rf "$SERVICES_DIR"' EXIT
eval "$(python platform/services.py start "$SERVICES_DIR")"
python -m pytest -m production_path "$@"
echo "[test] all green in $(( $(date +%s) - started )) s"
