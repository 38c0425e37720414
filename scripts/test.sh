#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check scingestor scingestor_gui tango_ds sardana_macros tests bench
.venv/bin/python -m pytest -q "$@"
