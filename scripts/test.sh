#!/usr/bin/env bash
# Set up (if needed) and run the linter and the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
