"""Tests of scingestor.logsetup: format, levels, destination, rotation, masking."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Iterator

import pytest

from scingestor.logsetup import (
    LOG_LEVELS,
    IngestorFormatter,
    mask_secrets,
    register_secret,
    setup_logging,
    shutdown_logging,
)

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{4}"


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    shutdown_logging()
    root.setLevel(level)


def test_plain_format_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", None, False)
    logging.getLogger("scingestor.watch").info("BeamtimeWatcher: Adding watch %d: %s", 1, "/bt")
    logging.getLogger("other").warning("careful")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "INFO : BeamtimeWatcher: Adding watch 1: /bt\nWARNING : careful\n"
    )


def test_timestamp_format(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("debug", None, True)
    logging.getLogger("x").debug("tick")
    err = capsys.readouterr().err
    assert re.fullmatch(STAMP + r" : DEBUG : tick\n", err), err


def test_timestamp_is_tenths_of_milliseconds() -> None:
    created = time.mktime((2024, 3, 1, 10, 15, 2, 0, 0, -1)) + 0.12345
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = created
    record.msecs = 123.45
    text = IngestorFormatter(timestamps=True).format(record)
    assert text == "2024-03-01 10:15:02.1234 : INFO : hello"
    assert IngestorFormatter(timestamps=False).format(record) == "INFO : hello"


def test_level_applies_to_handler_and_root(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("warning", None, False)
    log = logging.getLogger("x")
    log.info("hidden")
    log.warning("shown")
    log.error("also shown")
    assert capsys.readouterr().err == "WARNING : shown\nERROR : also shown\n"
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_all_five_levels_accepted(level: str) -> None:
    setup_logging(level, None, False)
    assert logging.getLogger().level == getattr(logging, level.upper())


@pytest.mark.parametrize("level", ["DEBUG", "Info", "verbose", "", "10"])
def test_bad_level(level: str) -> None:
    with pytest.raises(ValueError) as info:
        setup_logging(level, None, False)
    message = str(info.value)
    assert repr(level) in message
    assert "debug, info, warning, error, critical" in message


def test_second_setup_replaces_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", None, False)
    setup_logging("info", None, True)
    logging.getLogger("x").info("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(STAMP + " : INFO : once", lines[0])


def test_log_file_instead_of_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "ingestor.log"
    setup_logging("info", str(log_file), False)
    logging.getLogger("x").info("to the file")
    shutdown_logging()
    assert capsys.readouterr().err == ""
    assert log_file.read_text(encoding="utf-8") == "INFO : to the file\n"


def _run(log_file: Path, message: str) -> None:
    setup_logging("info", str(log_file), False)
    logging.getLogger("x").info(message)
    shutdown_logging()


def test_rotation_across_two_runs(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestor.log"
    _run(log_file, "first run")
    first = log_file.read_text(encoding="utf-8")
    _run(log_file, "second run")
    assert (tmp_path / "ingestor.log.1").read_text(encoding="utf-8") == first
    assert log_file.read_text(encoding="utf-8") == "INFO : second run\n"
    assert not (tmp_path / "ingestor.log.2").exists()


def test_rotation_keeps_five_backups(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestor.log"
    for run in range(8):
        _run(log_file, f"run {run}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ingestor.log"] + [f"ingestor.log.{i}" for i in range(1, 6)]
    assert log_file.read_text(encoding="utf-8") == "INFO : run 7\n"
    assert (tmp_path / "ingestor.log.1").read_text(encoding="utf-8") == "INFO : run 6\n"
    assert (tmp_path / "ingestor.log.5").read_text(encoding="utf-8") == "INFO : run 2\n"


def test_no_rotation_while_running(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestor.log"
    setup_logging("info", str(log_file), False)
    for index in range(2000):
        logging.getLogger("x").info("line %d %s", index, "x" * 200)
    shutdown_logging()
    assert not (tmp_path / "ingestor.log.1").exists()
    assert len(log_file.read_text(encoding="utf-8").splitlines()) == 2000


def test_unusable_log_file(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "ingestor.log"
    with pytest.raises(ValueError) as info:
        setup_logging("info", str(path), False)
    assert str(path) in str(info.value)


def test_secret_masked_in_message_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cret-Value-4711"
    register_secret(secret)
    setup_logging("info", None, False)
    log = logging.getLogger("x")
    log.info("login with %s failed", secret)
    try:
        raise RuntimeError(f"server said: bad password {secret}")
    except RuntimeError:
        log.exception("request failed for %s", "user")
    err = capsys.readouterr().err
    assert secret not in err
    assert "INFO : login with *** failed\n" in err
    assert "RuntimeError: server said: bad password ***" in err


def test_short_values_not_registered() -> None:
    register_secret("ab")
    register_secret("")
    assert mask_secrets("ab cab") == "ab cab"
    register_secret("longer-secret-1")
    assert mask_secrets("x longer-secret-1 y") == "x *** y"
