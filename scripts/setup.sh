#!/usr/bin/env bash
# Sets up a fresh machine: redis-server (Debian package) when missing and a
# virtualenv in .venv.
#
#   bash scripts/setup.sh            Conveyor with its server extra: what the demo runs
#   bash scripts/setup.sh --dev      + the checks, the tests, the docs and the example apps
#   bash scripts/setup.sh --browser  --dev, + Debian's chromium for the dashboard's browser tests
#
# A second run with nothing changed installs nothing: the packages are
# installed again only when a pyproject.toml changed or more was asked for.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=demo
browser=no
for arg in "$@"; do
  case "$arg" in
    --dev) mode=dev ;;
    --browser) mode=dev; browser=yes ;;
    *) echo "usage: $0 [--dev] [--browser]" >&2; exit 2 ;;
  esac
done

# Debian packages: redis-server for the engine, chromium for the dashboard's
# browser tests (driven by Playwright through its executable path).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "$browser" = yes ]; then
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

# What is installed is recorded as "<mode> <hash of the pyproject files>";
# a dev install covers the demo's.
stamp=.venv/.conveyor-setup
wanted="$(cat pyproject.toml examples/*/pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  read -r had_mode had_hash <"$stamp" || true
  if [ "${had_hash:-}" = "$wanted" ] && { [ "${had_mode:-}" = "$mode" ] || [ "${had_mode:-}" = dev ]; }; then
    exit 0
  fi
fi
rm -f "$stamp"

# dependency groups (the dev tools) need pip 25.1 or newer
if ! .venv/bin/python -c 'import sys, pip; sys.exit(0 if tuple(map(int, pip.__version__.split(".")[:2])) >= (25, 1) else 1)'; then
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [ "$mode" = dev ]; then
  .venv/bin/python -m pip install -q -e '.[all]' --group dev
  # the reference applications, each its own package on Conveyor's public API
  .venv/bin/python -m pip install -q -e examples/setlist -e examples/distribution -e examples/events
else
  .venv/bin/python -m pip install -q -e '.[server]'
fi
echo "$mode $wanted" >"$stamp"
