"""A metadata generation worker process (``python -m scingestor.genworker``).

The parent (:mod:`scingestor.genpool`) starts it with pipes on stdin and
stdout and speaks pickles over them: first ``(config, in_process, log_level)``,
then one ``("prepare", args, kwargs)`` per scan, answered by
``("ok", PreparedScan, log_records)`` or ``("error", exception, log_records)``.
The worker runs :meth:`scingestor.prepare.ScanPreparer.prepare`, the same code
as the daemon's own thread (nxsfileinfo in-process, other generators as
programs), so the files it writes are the same. Its log records go back to the
parent, which logs them through its own handlers (and secret filter). It ends
when stdin is closed, i.e. also when the parent dies (docs/architecture.md
"Metadata generation on several cores").
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from typing import Any, BinaryIO, List

from .generators import GeneratorError
from .metadata import MetadataGenerator
from .prepare import ScanPreparer
from .runner import GeneratorRunner

logger = logging.getLogger(__name__)


class _Collector(logging.Handler):
    """Keeps the records of one request, ready to be pickled for the parent."""

    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)

    def take(self) -> List[logging.LogRecord]:
        records, self.records = self.records, []
        return records


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling, else a GeneratorError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception type may fail to pickle
        return GeneratorError(f"{type(exc).__name__}: {exc}")
    return exc


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until ``requests`` ends."""
    cfg, in_process, level = pickle.load(requests)
    collector = _Collector()
    root = logging.getLogger()
    root.handlers[:] = [collector]
    root.setLevel(level)
    preparer = ScanPreparer(cfg, MetadataGenerator(cfg, GeneratorRunner(cfg, in_process)))
    while True:
        try:
            name, args, kwargs = pickle.load(requests)
        except EOFError:
            return
        reply: tuple[str, Any, List[logging.LogRecord]]
        try:
            if name != "prepare":
                raise GeneratorError(f"unknown request {name!r}")
            reply = ("ok", preparer.prepare(*args, **kwargs), collector.take())
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
            reply = ("error", _picklable(exc), collector.take())
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:
            return  # the parent is gone


def main() -> None:
    """Serve on stdin/stdout; anything else printed to stdout goes to stderr."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a print in a library must not corrupt the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
