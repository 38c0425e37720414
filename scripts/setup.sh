#!/usr/bin/env bash
# Create .venv (if needed) and install scingestor with everything its tests and demo use.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,tango,sardana,gui]'
# Debian packaging tools, used by tests/test_debian_package.py (installed when we are root).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && ! bash scripts/build-deb.sh --check-deps >/dev/null 2>&1; then
    bash scripts/build-deb.sh --install-deps --check-deps >/dev/null \
        || echo "setup.sh: warning: Debian packaging tools could not be installed" >&2
fi
