"""Run nxstools' ``nxsfileinfo`` inside this process, exactly as its command-line tool would.

Starting a Python interpreter per metadata file costs seconds per scan; the
in-process run reuses one argument parser and produces the same stdout bytes
and output files as ``nxsfileinfo ARGS`` run as a program.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

logger = logging.getLogger(__name__)

#: nxsfileinfo is not thread-safe (it also changes the umask and sys.stdout is shared).
_LOCK = threading.Lock()


@dataclass(frozen=True)
class NxsResult:
    """Outcome of one in-process ``nxsfileinfo`` run, as a subprocess would report it."""

    status: int
    stdout: str
    stderr: str


class NxsFileInfo:
    """An ``nxsfileinfo`` command line interpreter kept in memory (parser built once)."""

    def __init__(self) -> None:
        self._parser: Optional[argparse.ArgumentParser] = None
        self._runners: dict[str, Any] = {}
        self._error_class: type = Exception

    def _build(self) -> None:
        # Mirrors nxstools.nxsfileinfo.main(): same parser, same sub-commands.
        from nxstools import nxsfileinfo as nfi
        from nxstools.nxsargparser import ErrorException, NXSArgParser

        parser = NXSArgParser(
            prog="nxsfileinfo",
            description="Command-line tool for showing meta data from Nexus Files",
            epilog="For more help:\n  nxsfileinfo <sub-command> -h",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.cmdrunners = [
            ("field", nfi.Field),
            ("general", nfi.General),
            ("metadata", nfi.Metadata),
            ("groupmetadata", nfi.GroupMetadata),
            ("origdatablock", nfi.OrigDatablock),
            ("sample", nfi.Sample),
            ("instrument", nfi.Instrument),
            ("attachment", nfi.Attachment),
        ]
        self._runners = parser.createSubParsers()
        self._parser = parser
        self._error_class = ErrorException

    def _main(self, args: Sequence[str]) -> None:
        """The body of ``nxsfileinfo``'s ``main()`` for ``args`` (prints and may exit)."""
        if self._parser is None:
            self._build()
        parser = self._parser
        assert parser is not None
        try:
            options = parser.parse_args(list(args))
        except self._error_class as exc:
            sys.stderr.write(f"Error: {exc}\n")
            parser.print_help()
            print("")
            raise SystemExit(255) from None
        if options.subparser is None:
            sys.stderr.write("Error: too few arguments\n")
            parser.print_help()
            print("")
            raise SystemExit(255)
        result = self._runners[options.subparser].run(options)
        if result and str(result).strip():
            print(result)

    def warm_up(self) -> None:
        """Import nxstools and build the parser now, so the first scan does not wait."""
        with _LOCK:
            if self._parser is None:
                self._build()

    def run(self, args: Sequence[str]) -> NxsResult:
        """Run ``nxsfileinfo args``; stdout/stderr are captured, exits become a status."""
        out, err = io.StringIO(), io.StringIO()
        status = 0
        with _LOCK:
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                        _no_redraw_after_save():
                    try:
                        self._main(args)
                    except SystemExit as exc:
                        status = _exit_status(exc.code, err)
                    except Exception as exc:  # noqa: BLE001 - a crash of the tool, as its exit 1
                        err.write(f"{type(exc).__name__}: {exc}\n")
                        status = 1
            finally:
                if status:
                    # A failed run may leave an HDF5 file object behind in a dead frame.
                    gc.collect()
        return NxsResult(status, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _no_redraw_after_save() -> Iterator[None]:
    """Skip the redraw that ``pyplot.savefig`` makes *after* writing the image.

    nxsfileinfo renders a thumbnail into a buffer with ``pyplot.savefig`` and
    closes the figure; pyplot then draws the whole figure once more (to reset
    colours for interactive windows), which is a third of the cost of a plotted
    scan and changes nothing that was written (the in-process output is
    compared byte for byte with the program's by tests/test_nxsrunner.py).
    """
    agg = sys.modules.get("matplotlib.backends.backend_agg")
    if agg is None and "matplotlib" in sys.modules:
        import matplotlib.backends.backend_agg as agg
    if agg is None:
        yield
        return
    canvas = agg.FigureCanvasAgg
    own = canvas.__dict__.get("draw_idle")
    canvas.draw_idle = _no_draw
    try:
        yield
    finally:
        if own is None:
            del canvas.draw_idle
        else:
            canvas.draw_idle = own


def _no_draw(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


def _exit_status(code: Any, err: io.StringIO) -> int:
    """The process exit status ``sys.exit(code)`` would give."""
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    err.write(f"{code}\n")
    return 1


_DEFAULT: Optional[NxsFileInfo] = None
_DEFAULT_GUARD = threading.Lock()


def shared_nxsfileinfo() -> NxsFileInfo:
    """The process-wide :class:`NxsFileInfo` (one parser, built on first use)."""
    global _DEFAULT
    with _DEFAULT_GUARD:
        if _DEFAULT is None:
            _DEFAULT = NxsFileInfo()
        return _DEFAULT
