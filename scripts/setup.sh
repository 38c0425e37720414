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
# A .venv copied from another checkout (cp -a) keeps that checkout's interpreter in the
# "#!" line of its scripts (Sardana, pytest...): they would run the other checkout's code.
.venv/bin/python - <<'EOF'
import os
import sys

bindir = os.path.join(sys.prefix, "bin")
own = os.path.join(bindir, "python").encode()
for name in os.listdir(bindir):
    path = os.path.join(bindir, name)
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as handle:
        data = handle.read()
    first, newline, rest = data.partition(b"\n")
    interpreter = first[2:].strip()
    if (first.startswith(b"#!") and interpreter.endswith(b"/.venv/bin/python")
            and interpreter != own):
        with open(path, "wb") as handle:
            handle.write(b"#!" + own + newline + rest)
EOF
# Debian packaging tools, used by tests/test_debian_package.py (installed when we are root).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && ! bash scripts/build-deb.sh --check-deps >/dev/null 2>&1; then
    bash scripts/build-deb.sh --install-deps --check-deps >/dev/null \
        || echo "setup.sh: warning: Debian packaging tools could not be installed" >&2
fi
# systemd-analyze (Debian package systemd), used by tests/test_systemd_unit.py to rate the
# unit's sandbox; systemd need not run as init. policy-rc.d keeps apt from starting services.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && ! command -v systemd-analyze >/dev/null 2>&1; then
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            systemd >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends systemd >/dev/null; }; } \
        || echo "setup.sh: warning: systemd (systemd-analyze) could not be installed" >&2
    if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
fi
# The Tango Starter (Debian package tango-starter), used by tests/test_tango_database.py.
# policy-rc.d keeps apt from starting the Starter service (it would need a Tango database).
starter_installed() {
    command -v Starter >/dev/null 2>&1 || [ -x /usr/lib/tango/Starter ] || [ -x /usr/bin/Starter ]
}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! starter_installed; then
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            tango-starter >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends tango-starter >/dev/null; }; } \
        || echo "setup.sh: warning: tango-starter could not be installed" >&2
    if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
fi
