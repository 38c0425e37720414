"""Scans of one list sent concurrently, recorded in list order (``max_scans_in_flight``).

The worker thread prepares the entries of a list one after another (metadata
generation stays in list order, in that thread) and hands each prepared scan's
publish stage to a :class:`SendPool` of a fixed number of threads: at most
``bound`` scans are being sent at once, whatever the number of lists. A
:class:`SendBatch` (one pass over one list) keeps the scans in list order and
gives their results back to the worker thread in that order, so the ingested
list is written in list order and the outcome callbacks run in the worker
thread (docs/architecture.md "Threads", README "SciCat access").

Ordering rules, enforced by :meth:`SendBatch.ready` *before* an entry is
prepared (the entry then sees exactly what it would see one after another):

* an entry waits until no earlier entry of the same scan (``key``) is unrecorded
  (a ``scan:ts`` line after the scan's earlier line);
* a ``barrier`` entry (a measurement dataset) waits until every earlier entry
  was sent and recorded (a measurement after its member scans);
* every entry waits for a free slot: at most ``bound`` scans being sent
  (:meth:`SendPool.sending`) plus ``preparing`` whose metadata is being made, so
  that making a scan's metadata never holds one of the ``bound`` sending slots.

A job that raises :class:`BatchPostponed` (SciCat down, login refused) stops
the batch: nothing more is submitted, the jobs in flight finish (or fail),
what completed is recorded, and the :class:`BatchPostponed` is raised.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Deque, Dict, Generic, Iterator, Optional, Tuple, TypeVar

R = TypeVar("R")

#: Called in the worker thread with (payload, result) of each completed scan, in list order.
Finish = Callable[[Any, Any], None]


class SendPool:
    """A fixed pool of ``bound`` sending threads (none when ``bound`` is 1).

    A second pool of ``bound`` threads sends a scan's thumbnail while its
    sending thread sends the datablock (:meth:`parts`).
    """

    def __init__(self, bound: int, preparing: int = 0) -> None:
        self.bound = max(1, int(bound))
        #: scans whose metadata is being made, beside the ``bound`` being sent
        self.preparing = max(0, int(preparing)) if self.bound > 1 else 0
        self._sending = threading.BoundedSemaphore(self.bound)
        self._executors: Dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    @property
    def jobs(self) -> int:
        """Scans a batch may have started and not finished: preparing or sending."""
        return self.bound + self.preparing

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Hold one of the ``bound`` sending slots (around a scan's requests)."""
        with self._sending:
            yield

    def parts(self) -> Optional[ThreadPoolExecutor]:
        """Threads for the second request of a scan (None when ``bound`` is 1)."""
        return self._threads("scingestor-part", self.bound)

    def executor(self) -> Optional[ThreadPoolExecutor]:
        """The thread pool (created on first use); None: send in the caller's thread."""
        return self._threads("scingestor-send", self.jobs)

    def _threads(self, name: str, count: int) -> Optional[ThreadPoolExecutor]:
        if self.bound == 1:
            return None
        with self._lock:
            if name not in self._executors:
                self._executors[name] = ThreadPoolExecutor(max_workers=count,
                                                           thread_name_prefix=name)
            return self._executors[name]

    def close(self) -> None:
        """Stop the threads (after the jobs in flight)."""
        with self._lock:
            executors = list(self._executors.values())
            self._executors.clear()
        for executor in executors:
            executor.shutdown(wait=True)


class SendBatch(Generic[R]):
    """The scans of one pass over a list, in list order (see the module documentation)."""

    def __init__(self, pool: SendPool, finish: Finish,
                 postponed: Tuple[type, ...]) -> None:
        self._bound = pool.jobs
        self._executor = pool.executor()
        self._finish = finish
        self._postponed_types = postponed
        self._queue: Deque[Tuple[str, Future[R], Any]] = collections.deque()
        self._keys: Dict[str, int] = collections.Counter()
        self._postponed: Optional[BaseException] = None
        self._error: Optional[BaseException] = None

    @property
    def stopped(self) -> bool:
        """True once a scan was postponed (nothing more is submitted)."""
        return self._postponed is not None or self._error is not None

    def ready(self, key: str, *, barrier: bool = False) -> None:
        """Wait until an entry of scan ``key`` may be prepared and submitted.

        Raises the postponement (after the scans in flight were recorded) if there is one.
        """
        self._collect()
        while self._queue and (barrier or self._keys.get(key) or self._running() >= self._bound):
            if self.stopped:
                break
            self._wait_one()
        if self.stopped:
            self.drain()

    def submit(self, key: str, job: Callable[[], R], payload: Any) -> None:
        """Send ``job`` (after :meth:`ready`); its result is finished in list order."""
        future: Future[R]
        if self._executor is None:
            future = Future()
            try:
                future.set_result(job())
            except Exception as exc:  # noqa: BLE001 - given back by drain/ready
                future.set_exception(exc)
        else:
            future = self._executor.submit(job)
        self._enqueue(key, future, payload)

    def done(self, key: str, result: R, payload: Any) -> None:
        """An entry that needed no sending: finished in list order too."""
        future: Future[R] = Future()
        future.set_result(result)
        self._enqueue(key, future, payload)

    def drain(self) -> None:
        """Wait for every scan in flight, finish them in order, raise a postponement."""
        while self._queue:
            self._wait_one()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._postponed is not None:
            raise self._postponed

    # -- internals -------------------------------------------------------------------
    def _enqueue(self, key: str, future: Future[R], payload: Any) -> None:
        self._queue.append((key, future, payload))
        self._keys[key] += 1
        self._collect()

    def _running(self) -> int:
        return sum(1 for _, future, _ in self._queue if not future.done())

    def _wait_one(self) -> None:
        running = [future for _, future, _ in self._queue if not future.done()]
        if running:
            wait(running, return_when=FIRST_COMPLETED)
        self._collect()

    def _collect(self) -> None:
        """Finish the completed scans at the head of the queue, in list order."""
        while self._queue and self._queue[0][1].done():
            key, future, payload = self._queue.popleft()
            self._keys[key] -= 1
            if not self._keys[key]:
                del self._keys[key]
            exc = future.exception()
            if exc is None:
                self._finish(payload, future.result())
            elif isinstance(exc, self._postponed_types):
                if self._postponed is None:
                    self._postponed = exc
            elif self._error is None:
                self._error = exc
        if self._postponed is None:  # a scan behind the head: stop submitting at once
            for _, future, _ in self._queue:
                if future.done() and isinstance(future.exception(), self._postponed_types):
                    self._postponed = future.exception()
                    break
