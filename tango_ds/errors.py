"""The ``DevFailed`` reasons of the ``SciCatIngestor`` commands and their argument checks.

docs/tango.md "Commands" lists the reasons; "The directory argument: ``…In``
commands" the ``[scandir, args…]`` form checked by :func:`scandir_args`.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import tango

#: ``DevFailed`` reasons raised by the commands.
BAD_ARGUMENT = "SciCatIngestor_BadArgument"
CONFIG_ERROR = "SciCatIngestor_ConfigError"
NOT_CONFIGURED = "SciCatIngestor_NotConfigured"
IO_ERROR = "SciCatIngestor_IOError"


def throw(reason: str, message: str, origin: str) -> None:
    """Raise ``DevFailed`` with ``reason`` and ``message``, from ``SciCatIngestor.<origin>``."""
    tango.Except.throw_exception(reason, message, f"SciCatIngestor.{origin}")


def scandir_args(origin: str, argin: Sequence[str], names: Sequence[str]) -> List[str]:
    """``[scandir, *names]`` of an ``...In`` command, checked (see docs/tango.md)."""
    values = list(argin)
    if len(values) != 1 + len(names):
        wanted = ", ".join(["scandir", *names])
        throw(BAD_ARGUMENT, f"{origin} takes [{wanted}], got {len(values)} value(s)", origin)
    scandir = values[0].strip()
    if not scandir or not os.path.isabs(scandir):
        throw(BAD_ARGUMENT, f"{origin}: the scan directory must be an absolute path, "
              f"not {values[0]!r}", origin)
    return [os.path.normpath(scandir), *values[1:]]
