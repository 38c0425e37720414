#!/usr/bin/env bash
# Build the Debian packages python3-scingestor and scingestor-tango.
#
#   bash scripts/build-deb.sh [--install-deps] [--no-lintian] [OUTPUT_DIR]
#
#   --install-deps   as root: apt-get update and install the build dependencies
#                    (the packages in BUILD_DEPS below) first
#   --no-lintian     do not run lintian
#   --keep           keep the temporary build directory (for debugging)
#   --check-deps     only check that the build tools and dependencies are
#                    installed (exit 0 if so, 3 if not) and build nothing
#   OUTPUT_DIR       where the .deb, .buildinfo, .changes files, the build log
#                    and the lintian report go (default: build/deb/)
#
# The repository is copied to a temporary directory and built there with
# "dpkg-buildpackage -us -uc -b", so the working tree stays clean. The build
# needs no network. The script exits non-zero if the build fails or lintian
# reports errors (warnings are printed and allowed).
set -euo pipefail

BUILD_DEPS=(
    dpkg-dev
    fakeroot
    debhelper
    dh-python
    pybuild-plugin-pyproject
    python3-all
    python3-setuptools
    python3-wheel
    lintian
)

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

install_deps=0
keep=0
run_lintian=1
check_only=0
outdir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --install-deps) install_deps=1 ;;
        --no-lintian) run_lintian=0 ;;
        --check-deps) check_only=1 ;;
        --keep) keep=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "build-deb.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *)
            if [ -n "$outdir" ]; then
                echo "build-deb.sh: only one output directory may be given" >&2
                exit 2
            fi
            outdir="$1"
            ;;
    esac
    shift
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
outdir="${outdir:-$repo/build/deb}"

# Debian's tools and the system python3 only: no pyenv shims, virtualenvs or
# user site-packages may leak into the build.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP VIRTUAL_ENV PYENV_VERSION \
    PIP_INDEX_URL PIP_EXTRA_INDEX_URL || true
export PYTHONNOUSERSITE=1
export LC_ALL=C.UTF-8
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck}"

if [ "$install_deps" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build-deb.sh: --install-deps needs root (apt-get)" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${BUILD_DEPS[@]}"
fi

missing_tools=()
for tool in dpkg-buildpackage dpkg-checkbuilddeps dh fakeroot; do
    command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
if [ "$run_lintian" = 1 ] && ! command -v lintian >/dev/null 2>&1; then
    missing_tools+=(lintian)
fi
if [ ${#missing_tools[@]} -gt 0 ]; then
    echo "build-deb.sh: missing tools: ${missing_tools[*]}" >&2
    echo "  install them with: apt-get install ${BUILD_DEPS[*]}" >&2
    echo "  (or run this script as root with --install-deps)" >&2
    exit 3
fi
if ! (cd "$repo" && dpkg-checkbuilddeps); then
    echo "build-deb.sh: build dependencies of debian/control are not installed" >&2
    echo "  install them with: apt-get install ${BUILD_DEPS[*]}" >&2
    exit 3
fi
if [ "$check_only" = 1 ]; then
    echo "build-deb.sh: build tools and dependencies are installed"
    exit 0
fi

version="$(cd "$repo" && dpkg-parsechangelog -S Version)"
upstream="${version%-*}"
workdir="$(mktemp -d "${TMPDIR:-/tmp}/scingestor-deb.XXXXXX")"
if [ "$keep" = 1 ]; then
    echo "build-deb.sh: keeping $workdir"
else
    trap 'rm -rf "$workdir"' EXIT
fi
srcdir="$workdir/scingestor-$upstream"
mkdir -p "$srcdir" "$outdir"
outdir="$(cd "$outdir" && pwd)"

# Copy the tree without VCS data, virtualenvs, build output and caches.
tar -C "$repo" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude=./artifacts --exclude=./.pybuild --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
    --exclude=.ruff_cache . | tar -C "$srcdir" -xf -

log="$outdir/build.log"
echo "build-deb.sh: building scingestor $version in $srcdir (log: $log)"
start=$(date +%s)
if ! (cd "$srcdir" && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (full log: $log)" >&2
    exit 1
fi
echo "build-deb.sh: built in $(( $(date +%s) - start )) s"

# Replace the results of an earlier build.
rm -f "$outdir"/python3-scingestor_*.deb "$outdir"/scingestor-tango_*.deb \
    "$outdir"/scingestor_*.buildinfo "$outdir"/scingestor_*.changes
mv "$workdir"/*.deb "$workdir"/*.buildinfo "$workdir"/*.changes "$outdir"/
ls -l "$outdir"/*.deb

status=0
if [ "$run_lintian" = 1 ]; then
    report="$outdir/lintian.txt"
    echo "build-deb.sh: lintian"
    # --fail-on error: warnings and informational tags are shown but allowed.
    if lintian --fail-on error --info --display-info \
        "$outdir"/scingestor_*.changes >"$report" 2>&1; then
        echo "build-deb.sh: lintian: no errors"
    else
        echo "build-deb.sh: lintian reported errors" >&2
        status=1
    fi
    # Without the explanations added by --info.
    grep -E '^[EWIPXO]: ' "$report" || echo "(no lintian tags)"
fi
exit $status
