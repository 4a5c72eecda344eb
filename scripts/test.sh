#!/usr/bin/env bash
# The project's checks, in order: format, lint, types, import layers, module sizes, tests
# (with no arguments, the suite runs a second time on a Redis Cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff format --check src tests bench examples
ruff check src tests bench examples
mypy
lint-imports
python scripts/module_sizes.py
pytest -q "$@"
if [ $# -eq 0 ]; then
    # the engine's suite again, on a private three-primary Redis Cluster
    pytest -q --redis-cluster --ignore=tests/faults tests
fi
