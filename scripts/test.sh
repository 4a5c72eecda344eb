#!/usr/bin/env bash
# The project's checks, in order: format, lint, types, import layers and cycles, module sizes, the
# docs site, the installed wheel, tests
# (with no arguments, the suite runs a second time on a Redis Cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff format --check src tests bench examples scripts docs
ruff check src tests bench examples scripts docs
mypy
lint-imports
python scripts/import_cycles.py
python scripts/module_sizes.py
# the documentation site: a broken link, page or reference fails the build
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
if [ $# -eq 0 ]; then
    # the wheel and sdist as a user installs them, in a fresh virtualenv outside the repository
    python scripts/wheel_check.py
fi
pytest -q "$@"
if [ $# -eq 0 ]; then
    # the engine's suite again, on a private three-primary Redis Cluster
    pytest -q --redis-cluster --ignore=tests/faults tests
fi
