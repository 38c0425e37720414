#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the demo: a local SciCat-compatible server,
# a demo beamtime with real NeXus scans, the ingestor, and what arrived in the catalogue.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/scingestor-demo "$@"
