#!/usr/bin/env bash
# The project's checks, in order: format, lint, types, import layers, module sizes, the
# installed wheel, tests
# (with no arguments, the suite runs a second time on a Redis Cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff format --check src tests bench examples scripts
ruff check src tests bench examples scripts
mypy
lint-imports
python scripts/module_sizes.py
if [ $# -eq 0 ]; then
    # the wheel and sdist as a user installs them, in a fresh virtualenv outside the repository
    python scripts/wheel_check.py
fi
pytest -q "$@"
if [ $# -eq 0 ]; then
    # the engine's suite again, on a private three-primary Redis Cluster
    pytest -q --redis-cluster --ignore=tests/faults tests
fi
