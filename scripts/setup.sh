#!/usr/bin/env bash
# Sets up a fresh machine: redis-server (Debian package) when missing, a
# virtualenv in .venv with Conveyor and its development tools. With
# --browser, also Debian's chromium for the dashboard's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: redis-server for the engine, chromium for the dashboard's
# browser tests (driven by Playwright through its executable path).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${1:-}" = "--browser" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Python 3.11+ is required (found $("$PY" --version))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# the reference applications, each its own package on Conveyor's public API
.venv/bin/python -m pip install -q -e examples/setlist -e examples/distribution -e examples/events
