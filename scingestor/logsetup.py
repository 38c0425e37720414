"""Logging set-up shared by the command-line tools.

Lines look like ``LEVEL : message``; with timestamps
``YYYY-MM-DD HH:MM:SS.ffff : LEVEL : message`` (tenths of a millisecond).
A log file is rotated once, at start-up (``FILE`` → ``FILE.1`` …, 5 backups).
Registered secret values are masked in every line as a last line of defence.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

logger = logging.getLogger(__name__)

#: The accepted ``-l`` values, in increasing severity.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: Number of rotated log files kept (``FILE.1`` … ``FILE.5``).
LOG_BACKUPS = 5
#: Secrets shorter than this are not masked (masking them would garble every line).
MIN_SECRET_LENGTH = 4
MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed: logging.Handler | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line written by the handler of :func:`setup_logging`."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def unregister_secret(value: str) -> None:
    """Stop masking ``value`` (a token that was replaced): the registry holds live secrets."""
    with _secrets_lock:
        _secrets.discard(value)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    with _secrets_lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class SecretMaskFilter(logging.Filter):
    """Replace registered secrets in the message, exception and stack text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        if not _secrets:
            return True
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


class IngestorFormatter(logging.Formatter):
    """``LEVEL : message``, optionally prefixed with a tenth-of-millisecond timestamp."""

    def __init__(self, timestamps: bool = False) -> None:
        fmt = "%(asctime)s : %(levelname)s : %(message)s" if timestamps else (
            "%(levelname)s : %(message)s"
        )
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """Return ``YYYY-MM-DD HH:MM:SS.ffff`` in local time."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        return f"{stamp}.{min(int(record.msecs * 10), 9999):04d}"


def level_number(level: str) -> int:
    """Return the logging level of a lower-case ``-l`` name; ``ValueError`` otherwise."""
    if level not in LOG_LEVELS:
        raise ValueError(
            f"invalid log level {level!r}: use one of {', '.join(LOG_LEVELS)}"
        )
    return getattr(logging, level.upper())


def rotate_log_file(path: str, backups: int = LOG_BACKUPS) -> None:
    """Shift ``path`` → ``path.1`` … ``path.<backups>`` (the oldest is dropped)."""
    if not os.path.lexists(path):
        return
    for index in range(backups - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.lexists(older):
            os.replace(older, f"{path}.{index + 1}")
    os.replace(path, f"{path}.1")


def _file_handler(log_file: str) -> logging.Handler:
    try:
        rotate_log_file(log_file)
        return logging.FileHandler(log_file, mode="a", encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"cannot write log file {log_file}: {reason}") from None


def setup_logging(level: str, log_file: str | None = None, timestamps: bool = False) -> None:
    """Configure the root logger: one handler on stderr or on ``log_file``.

    Raises ``ValueError`` for an unknown level name or an unusable log file.
    Calling it again replaces the handler installed by the previous call.
    """
    number = level_number(level)
    handler = _file_handler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setLevel(number)
    handler.setFormatter(IngestorFormatter(timestamps))
    handler.addFilter(SecretMaskFilter())
    global _installed
    root = logging.getLogger()
    with _secrets_lock:
        old, _installed = _installed, handler
    if old is not None:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)


def shutdown_logging() -> None:
    """Remove and close the handler installed by :func:`setup_logging`, if any."""
    global _installed
    with _secrets_lock:
        old, _installed = _installed, None
    if old is not None:
        logging.getLogger().removeHandler(old)
        old.close()
