#!/usr/bin/env bash
# Creates .venv and installs Loupe's pinned requirements into it (idempotent: skips what is already done).
#   platform/setup.sh            runtime requirements (web, worker, training)
#   platform/setup.sh --test     plus test tools, Debian's chromium, PostgreSQL and Redis servers
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WANT_TEST=0
[ "${1:-}" = "--test" ] && WANT_TEST=1

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
REQS=requirements/base.txt
[ "$WANT_TEST" = 1 ] && REQS=requirements/test.txt
STAMP=.venv/.loupe-installed-$(cat requirements/*.txt | sha256sum | cut -c1-16)-$WANT_TEST
if [ ! -f "$STAMP" ]; then
  echo "[setup] installing $REQS (torch 2.13.0 CPU comes from this machine's wheel cache where it has one)"
  # grep drops pip's notes about local mirrors this machine lacks; with pipefail a pip failure still stops here.
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
  .venv/bin/python -m pip install -q -r "$REQS" -c requirements/lock.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
  touch "$STAMP"
fi

if [ "$WANT_TEST" = 1 ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # pycocoevalcap (evaluation/benchmarks/captions.py) runs its PTB tokenizer and METEOR in Java.
  command -v java >/dev/null || missing+=(default-jre-headless)
  [ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # apt starts no servers in containers; the tests start their own PostgreSQL and Redis.
  fi
  # Label Studio, the interchange peer of tests/annotation/test_label_studio.py, in its own .venv-labelstudio.
  platform/labelstudio.sh
fi
echo "[setup] ready: $ROOT/.venv"
