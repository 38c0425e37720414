"""Metadata generation on several cores (``metadata_workers``).

The metadata stage of a scan (:meth:`scingestor.prepare.ScanPreparer.prepare`:
nxsfileinfo reading the files and rendering the thumbnail) costs CPU, and
Python runs it on one core. A :class:`GenerationPool` has ``workers`` slots:
the first is this process (the in-process generator, as before), the others
are worker processes (:mod:`scingestor.genworker`) started when a second scan
needs generating while the first still is, and kept for the next burst. A
single scan therefore never waits for a process start, and a burst keeps
``workers`` cores busy. A worker that dies fails only the scan it was making
(a :class:`GeneratorError`, tried again later) and is replaced on demand.
See docs/architecture.md "Metadata generation on several cores".
"""

from __future__ import annotations

import copyreg
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
import types
from typing import Any, Callable, List, Mapping, Optional, TypeVar

from .config import IngestorConfig
from .generators import GeneratorError
from .prepare import PreparedScan, ScanPreparer

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``metadata_workers: 0`` means this many at most (and no more than the usable CPUs).
AUTO_MAX_WORKERS = 4
#: Seconds a scan waits for this process's slot before it goes to a worker process.
PATIENCE = 0.01


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(setting: int) -> int:
    """The number of generation slots for a ``metadata_workers`` value (0: automatic)."""
    if setting > 0:
        return setting
    return max(1, min(AUTO_MAX_WORKERS, usable_cpus()))


def read_only(content: Mapping[str, Any]) -> types.MappingProxyType:
    """A read-only view of a copy of ``content`` (how a pickled mapping proxy comes back)."""
    return types.MappingProxyType(dict(content))


def _reduce_read_only(proxy: types.MappingProxyType) -> tuple:
    return read_only, (dict(proxy),)


#: Configuration and beamtimes hold read-only mappings, which pickle cannot send by itself.
_DISPATCH = copyreg.dispatch_table.copy()
_DISPATCH[types.MappingProxyType] = _reduce_read_only


class WorkerProcess:
    """One :mod:`scingestor.genworker` process and its two pipes."""

    def __init__(self, cfg: IngestorConfig, in_process: bool) -> None:
        # the host's import path (a device server or a test may have extended sys.path)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "scingestor.genworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env=env,
        )
        level = logging.getLogger("scingestor").getEffectiveLevel()
        try:
            self._send((cfg, in_process, level))
        except OSError:
            self.close(timeout=1.0)
            raise
        logger.debug("metadata worker %d started", self._proc.pid)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, message: Any) -> None:
        assert self._proc.stdin is not None
        pickler = pickle.Pickler(self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _DISPATCH
        pickler.dump(message)
        self._proc.stdin.flush()

    def prepare(self, *args: Any, **kwargs: Any) -> PreparedScan:
        """Run ``ScanPreparer.prepare`` in the worker; its log records are logged here."""
        try:
            self._send(("prepare", args, kwargs))
            assert self._proc.stdout is not None
            status, value, records = pickle.load(self._proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            try:
                code: Optional[int] = self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            raise WorkerDied(
                f"the metadata worker process {self._proc.pid} ended"
                f" (exit status {code}): {exc or 'no answer'}") from None
        for record in records:
            logging.getLogger(record.name).handle(record)
        if status != "ok":
            raise value
        return value

    def close(self, timeout: float = 5.0) -> None:
        """End the process: close its input, then wait (kill it when it does not end)."""
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class WorkerDied(GeneratorError):
    """A worker process ended while making a scan's metadata (the scan is tried again)."""


class GenerationPool:
    """``workers`` slots for the metadata stage: this process first, then worker processes."""

    def __init__(self, cfg: IngestorConfig, local: ScanPreparer, *, in_process: bool = True,
                 workers: Optional[int] = None) -> None:
        self._cfg = cfg
        self._local = local
        self._in_process = in_process
        self.workers = worker_count(cfg.metadata_workers if workers is None else workers)
        self._cond = threading.Condition()
        self._local_busy = False
        self._local_since = 0.0
        self._idle: List[WorkerProcess] = []
        self._started = 0
        self._closed = False

    @property
    def parallel(self) -> bool:
        """True when more than one scan can be prepared at a time."""
        return self.workers > 1

    def processes(self) -> List[int]:
        """Pids of the idle worker processes (tests, diagnostics)."""
        with self._cond:
            return [worker.pid for worker in self._idle]

    def run_local(self, work: Callable[[], T]) -> T:
        """Run ``work`` in this process's slot (e.g. a re-made datablock)."""
        with self._cond:
            while self._local_busy:
                self._cond.wait()
            self._local_busy = True
            self._local_since = time.monotonic()
        try:
            return work()
        finally:
            self._release(None)

    def prepare(self, *args: Any, **kwargs: Any) -> PreparedScan:
        """``ScanPreparer.prepare`` in the first free slot (waits for one)."""
        worker = self._acquire()
        if worker is None:
            try:
                return self._local.prepare(*args, **kwargs)
            finally:
                self._release(None)
        try:
            result = worker.prepare(*args, **kwargs)
        except WorkerDied:
            worker.close(timeout=1.0)
            self._release(None, lost=True)
            raise
        except BaseException:
            self._release(worker)
            raise
        self._release(worker)
        return result

    def _acquire(self) -> Optional[WorkerProcess]:
        """None: the local slot; else a worker process (started here when needed).

        A scan waits for this process's slot while the scan in it has been there
        for less than ``PATIENCE`` s: a cheap one (nothing to generate, as on an
        unchanged re-ingestion) is over before a worker could have answered.
        """
        with self._cond:
            while True:
                if not self._local_busy:
                    self._local_busy = True
                    self._local_since = time.monotonic()
                    return None
                waited = time.monotonic() - self._local_since
                if waited < PATIENCE:
                    self._cond.wait(PATIENCE - waited)
                    continue
                if self._idle:
                    return self._idle.pop()
                if self._started < self.workers - 1 and not self._closed:
                    self._started += 1
                    break
                self._cond.wait()
        try:
            return WorkerProcess(self._cfg, self._in_process)
        except OSError as exc:
            self._release(None, lost=True)
            raise GeneratorError(f"cannot start a metadata worker process: {exc}") from None

    def _release(self, worker: Optional[WorkerProcess], *, lost: bool = False) -> None:
        retired = None
        with self._cond:
            if lost:
                self._started -= 1
            elif worker is None:
                self._local_busy = False
            elif self._closed:
                self._started -= 1
                retired = worker
            else:
                self._idle.append(worker)
            self._cond.notify_all()
        if retired is not None:
            retired.close()

    def close(self) -> None:
        """End the idle worker processes; busy ones end when they are given back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.close()
