"""The rule for optional parts (tests/parts.py): a skip locally, a failure in CI.

The end-to-end tests run a small test file in a fresh pytest process with the
``parts`` plugin and check its outcome: a missing part must *fail* the run when
``CI`` or ``SCINGESTOR_REQUIRE_ALL`` asks for strict mode.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Dict, Optional

import parts
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
STRICT_VARIABLES = ("CI", parts.STRICT_ENV, parts.ABSENT_ENV)

INNER = '''
import pytest
from parts import import_part, require_part

@pytest.mark.part("sardana", False, "no Sardana executable at /nowhere/Sardana")
def test_marked():
    pass

def test_called():
    require_part("tango-starter", False, "no Starter executable")

def test_imported():
    import_part("no_such_module_scingestor", "taurus")

def test_plain_skip():
    pytest.skip("a reason of its own")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_present():
    require_part("inotify", True, "unused")
    import_part("os", "tango")
'''


def run_inner(tmp_path, **env_values: str) -> subprocess.CompletedProcess:
    """Run INNER with ``-p parts`` in a clean strictness environment plus ``env_values``."""
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in STRICT_VARIABLES}
    env.update(env_values)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "parts", "-p", "no:cacheprovider", "-q", "-rfEs",
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


def outcomes(result: subprocess.CompletedProcess) -> Dict[str, int]:
    """The counts of pytest's last line, e.g. {"failed": 2, "passed": 1, "error": 1}.

    A failure in a ``part`` marker happens at set-up: pytest counts it as an error.
    """
    last = result.stdout.strip().splitlines()[-1]
    return {word.rstrip("s") if word == "errors" else word: int(count)
            for count, word in re.findall(r"(\d+) (failed|passed|skipped|errors?)\b", last)}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in STRICT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("values, expected", [
    ({}, False),
    ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "YES"}, True),
    ({"CI": "false"}, False), ({"CI": ""}, False),
    ({parts.STRICT_ENV: "1"}, True), ({parts.STRICT_ENV: "true"}, True),
    ({parts.STRICT_ENV: "0", "CI": "true"}, False),
])
def test_strict_mode_from_the_environment(clean_env, values: Dict[str, str],
                                          expected: bool) -> None:
    for name, value in values.items():
        clean_env.setenv(name, value)
    assert parts.strict() is expected


def test_a_missing_part_is_a_skip_locally(clean_env) -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        parts.require_part("sardana", False, "no Sardana executable")
    assert str(info.value) == ("required part 'sardana' is missing: no Sardana executable; "
                               f"install: {parts.INSTALL['sardana']}")


def test_a_missing_part_is_a_failure_in_ci(clean_env) -> None:
    clean_env.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        parts.require_part("tango-starter", False, "no Starter executable")
    message = str(info.value)
    assert message.startswith("required part 'tango-starter' is missing: no Starter executable")
    assert "apt-get install --no-install-recommends tango-starter" in message


def test_an_available_part_passes_in_both_modes(clean_env) -> None:
    assert parts.require_part("tango", True, "unused") is None
    clean_env.setenv(parts.STRICT_ENV, "1")
    assert parts.require_part("tango", True, "unused") is None
    assert parts.import_part("json", "tango").dumps([]) == "[]"


def test_absent_parts_count_as_missing(clean_env) -> None:
    clean_env.setenv(parts.ABSENT_ENV, "taurus, sardana")
    assert parts.absent_parts() == {"taurus", "sardana"}
    with pytest.raises(pytest.skip.Exception, match="'sardana' is missing: .*ABSENT_PARTS"):
        parts.require_part("sardana", True)
    with pytest.raises(pytest.skip.Exception, match="'taurus' is missing"):
        parts.import_part("json", "taurus")
    parts.require_part("tango", True)  # not listed: still available


@pytest.mark.parametrize("strict_env", [None, {"CI": "true"}, {parts.STRICT_ENV: "1"}])
def test_a_pytest_run_fails_only_in_strict_mode(tmp_path,
                                                strict_env: Optional[Dict[str, str]]) -> None:
    result = run_inner(tmp_path, **(strict_env or {}))
    output = result.stdout + result.stderr
    if strict_env is None:
        assert result.returncode == 0, output
        assert outcomes(result) == {"passed": 1, "skipped": 4}, output
    else:
        assert result.returncode == 1, output
        assert outcomes(result) == {"failed": 3, "error": 1, "passed": 1}, output
        assert "strict mode (CI or SCINGESTOR_REQUIRE_ALL=1) allows no skip: a reason of its own" \
            in output
    assert "1 xfailed" in result.stdout.strip().splitlines()[-1]
    for part, hint in (("sardana", "no Sardana executable at /nowhere/Sardana"),
                       ("tango-starter", "no Starter executable"),
                       ("taurus", "cannot import no_such_module_scingestor")):
        assert f"required part '{part}' is missing: {hint}" in output, output


def test_absent_parts_fail_a_strict_run(tmp_path) -> None:
    result = run_inner(tmp_path, CI="true", SCINGESTOR_ABSENT_PARTS="inotify")
    assert result.returncode == 1
    assert outcomes(result) == {"failed": 4, "error": 1}, result.stdout
    assert "required part 'inotify' is missing: SCINGESTOR_ABSENT_PARTS lists it" in result.stdout
