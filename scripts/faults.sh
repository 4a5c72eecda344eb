#!/usr/bin/env bash
# Runs the fault suite (tests/faults: real processes, real signals, a real
# redis-server) RUNS times (default 1) and rewrites the table in
# docs/reliability.md from what happened.
#   bash scripts/faults.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
for _ in $(seq "$runs"); do
  CONVEYOR_FAULT_REPORT="$report" .venv/bin/pytest -q -p no:cacheprovider tests/faults
done
.venv/bin/python tests/faults/render.py "$report" docs/reliability.md
