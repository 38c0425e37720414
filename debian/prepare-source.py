#!/usr/bin/python3
"""Copy the Python sources to the directory pybuild builds from (debian/rules).

    python3 debian/prepare-source.py SOURCE_DIR BUILD_DIR

The tree is copied without debian/, VCS data, virtualenvs, build output and
caches. If the installed setuptools predates PEP 639 (setuptools < 77, e.g.
Debian 12's 66.1), the copy's pyproject.toml is adapted so that it can build:

* ``license = "SPDX expression"`` becomes ``license = {text = "..."}`` (the
  form older setuptools validates; the wheel metadata says the same license);
* ``license-files = [...]`` in ``[project]`` is dropped (unknown to them);
* ``"setuptools>=77"`` in ``[build-system] requires`` is relaxed (pybuild does
  not check it, but the copy should not claim what the build does not use).

The original tree is never modified. With a newer setuptools the copy is
unchanged.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".pybuild", "build", "dist", "artifacts", "*.egg-info",
    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
)


def setuptools_version() -> tuple[int, ...]:
    import setuptools

    parts = []
    for part in setuptools.__version__.split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def adapt_pyproject(text: str) -> str:
    """Rewrite PEP 639 license fields of ``[project]`` for setuptools < 77."""
    out = []
    section = None
    skipping_array = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        header = re.match(r"^\[([^\[\]]+)\]\s*(#.*)?$", stripped)
        if header:
            section = header.group(1).strip()
            skipping_array = False
        if skipping_array:
            if "]" in line:
                skipping_array = False
            continue
        if section == "project":
            lic = re.match(r'^(\s*license\s*=\s*)(["\'])(.*)\2(\s*(#.*)?)$', line.rstrip("\n"))
            if lic:
                newline = "\n" if line.endswith("\n") else ""
                line = f'{lic.group(1)}{{text = "{lic.group(3)}"}}{lic.group(4)}{newline}'
            elif re.match(r"^\s*license-files\s*=", line):
                value = line.split("=", 1)[1]
                if value.count("[") > value.count("]"):
                    skipping_array = True
                continue
        elif section == "build-system":
            line = re.sub(r'(["\']setuptools)\s*>=\s*(7[7-9]|[89]\d)[^"\']*(["\'])',
                          r"\1>=61\3", line)
        out.append(line)
    return "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(argv[1]).resolve()
    target = Path(argv[2])
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ignore_debian = source / "debian"

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(IGNORE(directory, names))
        if Path(directory).resolve() == source:
            ignored.add(ignore_debian.name)
        return ignored

    shutil.copytree(source, target, ignore=ignore, symlinks=True)
    pyproject = target / "pyproject.toml"
    version = setuptools_version()
    if pyproject.exists() and version < (77,):
        original = pyproject.read_text(encoding="utf-8")
        adapted = adapt_pyproject(original)
        if adapted != original:
            pyproject.write_text(adapted, encoding="utf-8")
            print(f"prepare-source: adapted {pyproject} for setuptools "
                  f"{'.'.join(map(str, version))} (PEP 639 license fields)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
