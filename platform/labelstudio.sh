#!/usr/bin/env bash
# Installs Label Studio (the interchange peer the tests talk to) into its own virtual environment,
# .venv-labelstudio: it pins its own dependencies (Django included), so it must stay apart from Loupe's .venv.
# Idempotent: does nothing when the pinned version is already there.
#   platform/labelstudio.sh            install (about 3 minutes and 1 GB the first time)
#   platform/labelstudio.sh --check    exit 0 if installed, 1 if not
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VERSION=${LS_VERSION:-1.23.2}
VENV=.venv-labelstudio
PYTHON=${PYTHON:-python3}
installed() {
  [ -x "$VENV/bin/label-studio" ] && [ -f "$VENV/.loupe-ls-$LS_VERSION" ]
}
if [ "${1:-}" = "--check" ]; then
  installed && exit 0 || exit 1
fi
if installed; then
  echo "[labelstudio] ready: $(pwd)/$VENV (label-studio $LS_VERSION)"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "[labelstudio] installing label-studio==$LS_VERSION into $VENV (about 3 minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "label-studio==$LS_VERSION"
touch "$VENV/.loupe-ls-$LS_VERSION"
echo "[labelstudio] ready: $(pwd)/$VENV (label-studio $LS_VERSION)"
