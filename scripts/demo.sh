#!/usr/bin/env bash
# Sets up (see setup.sh) and runs the demo on a private, embedded Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/conveyor demo "$@"
