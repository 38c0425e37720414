"""Run expanded generator commands: nxsfileinfo in-process, anything else as a program."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from typing import Iterator, Optional

from .config import IngestorConfig
from .generators import Command, GeneratorError
from .nxsrunner import NxsFileInfo, shared_nxsfileinfo

logger = logging.getLogger(__name__)

NXSFILEINFO = "nxsfileinfo"
TEMP_PREFIX = "_tmp_scingestor_"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _decode(data: Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", errors="replace")


class GeneratorRunner:
    """Runs :class:`~scingestor.generators.Command` objects for the pipeline.

    ``nxsfileinfo ...`` commands run in this process (unless ``in_process`` is
    false); other commands run as programs (``sh -c`` only when the template
    uses shell syntax) with ``generator_timeout``. Failures raise
    :class:`~scingestor.generators.GeneratorError`.
    """

    def __init__(
        self,
        cfg: IngestorConfig,
        in_process: bool = True,
        nxsfileinfo: Optional[NxsFileInfo] = None,
    ) -> None:
        self.cfg = cfg
        self.in_process = in_process
        self._nxs = nxsfileinfo

    def runs_in_process(self, command: Command) -> bool:
        """True when ``command`` would be run by the in-process nxsfileinfo."""
        return (
            self.in_process
            and not command.shell
            and bool(command.argv)
            and os.path.basename(command.argv[0]) == NXSFILEINFO
        )

    def run(self, command: Command, capture: bool = False) -> str:
        """Run ``command``; return its stdout when ``capture``, else ``""``."""
        if command.empty:
            logger.debug("%s: empty command, nothing to run", command.key)
            return ""
        level = logging.INFO if self.cfg.log_generator_commands else logging.DEBUG
        logger.log(level, "Generator %s: %s", command.key, command.text)
        if self.runs_in_process(command):
            status, out, err = self._run_in_process(command)
        else:
            status, out, err = self._run_program(command)
        if err.strip():
            logger.debug("%s stderr:\n%s", command.key, err.rstrip())
        if status != 0:
            reason = _last_line(err) or "no error message"
            raise GeneratorError(f"{command.key} failed with exit status {status}: {reason}")
        if capture:
            return out
        if out.strip():
            logger.debug("%s stdout:\n%s", command.key, out.rstrip())
        return ""

    def _run_in_process(self, command: Command) -> tuple[int, str, str]:
        if self._nxs is None:
            self._nxs = shared_nxsfileinfo()
        result = self._nxs.run(command.argv[1:])
        return result.status, result.stdout, result.stderr

    def _run_program(self, command: Command) -> tuple[int, str, str]:
        timeout = self.cfg.generator_timeout or None
        try:
            proc = subprocess.Popen(
                list(command.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise GeneratorError(
                f"{command.key}: cannot start {command.argv[0]!r}: {exc.strerror or exc}"
            ) from None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise GeneratorError(
                f"{command.key} did not finish within {timeout:g} s and was stopped"
            ) from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        status = proc.returncode
        if status < 0:
            err = err + f"\nkilled by signal {-status}".encode()
        return status, _decode(out), _decode(err)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command and everything it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


@contextlib.contextmanager
def temporary_master_copy(master: str, directory: str, hardlink: bool = False) -> Iterator[str]:
    """Yield a private copy ``<directory>/_tmp_scingestor_<n>_<name>`` of ``master``.

    ``n`` is the first free number. The copy is removed afterwards, also on
    error. A copy (not a link) is the default because the point is to read
    the scan without taking the HDF5 lock of the file the DAQ still writes;
    ``hardlink=True`` links instead when both are on one file system.
    """
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(master)
    number = 1
    while True:
        path = os.path.join(directory, f"{TEMP_PREFIX}{number}_{name}")
        try:
            if hardlink:
                try:
                    os.link(master, path)
                    break
                except FileExistsError:
                    raise
                except OSError:
                    pass
            _exclusive_copy(master, path)
            break
        except FileExistsError:
            number += 1
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _exclusive_copy(source: str, target: str) -> None:
    """Copy ``source`` to a new file ``target`` (FileExistsError if it exists)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            fd = -1
            shutil.copyfileobj(src, dst, 1024 * 1024)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
