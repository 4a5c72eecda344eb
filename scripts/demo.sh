#!/usr/bin/env bash
# Sets up (see setup.sh) and runs everything on a private, embedded Redis:
# workers, the scheduler, the API and dashboard and a demo workload, until
# Ctrl-C (`conveyor up`). `bash scripts/demo.sh --tour` runs the short
# scripted tour instead (`conveyor demo`), which ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--tour" ]; then
  shift
  exec .venv/bin/conveyor demo "$@"
fi
exec .venv/bin/conveyor up "$@"
