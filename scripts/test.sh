#!/usr/bin/env bash
# The project's checks, in order: format, lint, types, import layers, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff format --check src tests bench examples
ruff check src tests bench examples
mypy
lint-imports
pytest -q "$@"
