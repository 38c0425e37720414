"""The core service: watching, the ingestion queue and the status, behind one object."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Optional

from .beamtime import Beamtime, ScanDirContext
from .commands import CommandMethods, Known, ListCommands, ServiceError
from .config import IngestorConfig
from .credentials import CredentialError, CredentialSource
from .failures import FailedSet
from .history import History
from .nxsrunner import shared_nxsfileinfo
from .pipeline import BatchPostponed, EntryOutcome, ListProcessor
from .recent import RecentScans
from .runner import GeneratorRunner
from .scicat.client import SciCatClient
from .scicat.publish import DatasetPublisher
from .status import StatusSnapshot, compose_status
from .watch.counts import WatchCounts
from .watch.discovery import DiscoverySnapshot
from .watch.sink import SinkCallbacks
from .watch.watcher import Watcher

logger = logging.getLogger(__name__)

StatusCallback = Callable[[StatusSnapshot], None]

#: Seconds between two checks whether SciCat answers again during an outage
#: (README "SciCat access"): waiting scans resume at most this long after it does.
PROBE_INTERVAL = 1.0
#: ``scans_per_minute`` counts the last RATE_WINDOW s; the status is refreshed every
#: RATE_REFRESH s while it is above 0, so it falls back to 0 when nothing arrives.
RATE_WINDOW, RATE_REFRESH = 300.0, 5.0
_REFRESH_STATUS = object()  # a worker "task": publish the status (the rate moved)
_NOT_WATCHING = WatchCounts("", 0, 0, 0)  # no watcher (not started, stopped)


__all__ = ["PROBE_INTERVAL", "IngestorService", "ServiceError", "StatusCallback"]


class IngestorService(RecentScans, CommandMethods):
    """Owns configuration, watching, the ingestion queue and the status snapshot.

    Threads: one watcher thread (inside :class:`Watcher`) and one ingestion worker,
    whatever the number of beamtimes and directories. The measurement and re-ingestion
    commands are a :class:`~scingestor.commands.ListCommands` it owns.
    """

    def __init__(self, cfg: IngestorConfig) -> None:
        self._cfg = cfg
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._subscribers: list[StatusCallback] = []
        self._status = StatusSnapshot(scicat_url=cfg.scicat_url,
                                      scicat_web_url=cfg.scicat_web_url)
        self._contexts: dict[str, ScanDirContext] = {}
        self._beamtimes: dict[str, Beamtime] = {}
        self._due: dict[str, float] = {}
        self._count_now: set[str] = set()
        self._jobs: list[Callable[[], None]] = []
        self._waiting: dict[str, int] = {}
        self._measurements: dict[str, str] = {}
        self._history = History()
        self._failed = FailedSet()
        self._rate_due = 0.0
        self._postpone_attempts = 0
        self._awaiting_scicat: set[str] = set()  # lists waiting for SciCat to answer again
        self._probe_due = 0.0
        self._scicat_problem = ""
        self._busy = False
        self._worker: Optional[threading.Thread] = None
        self._watcher: Optional[Watcher] = None
        self._fault = ""
        self._client: Optional[SciCatClient] = None
        self._processor: Optional[ListProcessor] = None
        self._commands = ListCommands(cfg, self._known, self._is_watched_dir,
                                      self._list_changed, self._reingest_beamtime)

    # -- life cycle -----------------------------------------------------------------------
    @property
    def config(self) -> IngestorConfig:
        return self._cfg

    def start(self) -> None:
        """Build the clients, scan the directories and start the two threads."""
        if self._worker is not None:
            return
        self._stop_event.clear()
        credentials = None
        if self._cfg.ingestor_credential_file:
            credentials = CredentialSource(
                self._cfg.ingestor_credential_file, self._cfg.ingestor_username
            )
        self._client = SciCatClient(self._cfg, credentials, stop_event=self._stop_event)
        publisher = DatasetPublisher(self._cfg, self._client)
        self._processor = ListProcessor(
            self._cfg,
            publisher,
            GeneratorRunner(self._cfg),
            on_outcome=self._outcome,
            stop_event=self._stop_event,
        )
        self._fault = ""
        self._failed.clear()  # the new processor has no back-off: derived again
        self._worker = threading.Thread(target=self._work, name="scingestor-ingest", daemon=True)
        self._worker.start()
        events = SinkCallbacks(
            self._beamtime_added,
            self._beamtime_removed,
            self._list_found,
            self._list_changed,
            self._list_removed,
        )
        self._watcher = Watcher(self._cfg, events, on_watched_changed=self._publish)
        self._watcher.start()
        with self._wakeup:
            # after the directory walk, so the import does not slow the start-up
            self._jobs.append(shared_nxsfileinfo().warm_up)
            self._wakeup.notify_all()
        self._publish()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and ingesting; the entry in progress is finished or abandoned safely."""
        self._stop_event.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        with self._wakeup:
            self._wakeup.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout)
        if self._processor is not None and (worker is None or not worker.is_alive()):
            self._processor.close()  # the sending threads (pipeline.py, inflight.py)
        with self._lock:
            self._due.clear()
            self._awaiting_scicat.clear()
            self._jobs.clear()
        self._publish()

    def set_fault(self, reason: str) -> None:
        """Put the service in FAULT (e.g. configuration errors found by an adapter)."""
        self._fault = reason
        self._publish()

    @property
    def running(self) -> bool:
        return self._worker is not None

    # -- status ---------------------------------------------------------------------------
    def status(self) -> StatusSnapshot:
        with self._lock:
            return self._status

    def subscribe(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(snapshot)`` on every status change; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, **changes: object) -> None:
        # the watcher's lock is never taken while holding ours (it calls us holding its own)
        watcher = self._watcher
        counts = watcher.counts() if watcher is not None else None
        with self._lock:
            snapshot = self._compose(counts, **changes)
            changed = snapshot != self._status
            self._status = snapshot
            subscribers = list(self._subscribers)
        if changed:
            for callback in subscribers:
                try:
                    callback(snapshot)
                except Exception:  # a subscriber must not break the service
                    logger.exception("status subscriber failed")

    def _compose(self, counts: Optional[WatchCounts], **changes: object) -> StatusSnapshot:
        history, watched = self._history, counts or _NOT_WATCHING
        return compose_status(
            dataclasses.replace(
                self._status, history_version=history.version,
                failed_version=self._failed.version, failed_scan_count=len(self._failed),
                scans_per_minute=round(history.rate(window=RATE_WINDOW), 3),
                last_success_time=history.last_success(),
                **changes),  # type: ignore[arg-type]
            fault=self._fault,
            running=self._worker is not None,
            scicat_problem=self._scicat_problem,
            pending=self._failed.pending(),
            queue=sum(self._waiting.values()),
            busy=self._busy,
            reachable=self._client.reachable if self._client is not None else False,
            watch_mode=watched.mode,
            beamtime_count=watched.beamtime_files,
            scandir_count=watched.scan_dirs,
            watch_version=watched.version,
            measurements=self._measurements,
        )

    def watched(self) -> DiscoverySnapshot:
        """What the watcher follows right now (nothing when stopped)."""
        watcher = self._watcher
        return watcher.snapshot() if watcher is not None else DiscoverySnapshot.stopped()

    def watched_beamtimes(self) -> list[str]:
        """The followed beamtime files, sorted, made now (the snapshot has only the count)."""
        watcher = self._watcher  # the watcher's lock is never taken while holding ours
        return watcher.beamtime_files() if watcher is not None else []

    def watched_scandirs(self) -> list[str]:
        """The watched scan directories, sorted, made now (the snapshot has only the count)."""
        watcher = self._watcher
        return watcher.scan_dirs() if watcher is not None else []

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is scheduled or running (tests, one-shot runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not (self._due or self._jobs or self._busy or self._count_now
                        or self._awaiting_scicat):
                    return True
            time.sleep(0.02)
        return False

    # -- watcher sink -------------------------------------------------------------------------
    def _beamtime_added(self, bt: Beamtime) -> None:
        with self._lock:
            self._beamtimes[bt.path] = bt

    def _beamtime_removed(self, path: str) -> None:
        logger.info("Beamtime file removed: %s", path)
        with self._lock:
            self._beamtimes.pop(path, None)

    def _list_found(self, ctx: ScanDirContext) -> None:
        self._schedule(ctx, delay=0.0)

    def _list_changed(self, ctx: ScanDirContext) -> None:
        self._schedule(ctx, delay=self._cfg.ingestion_delay_time, active=True)

    def _list_removed(self, ctx: ScanDirContext) -> None:
        logger.info("Dataset list no longer watched: %s", ctx.list_path)
        with self._wakeup:
            self._contexts.pop(ctx.list_path, None)
            self._due.pop(ctx.list_path, None)
            self._awaiting_scicat.discard(ctx.list_path)
            self._waiting.pop(ctx.list_path, None)
            self._measurements.pop(ctx.scanpath, None)
            self._failed.drop_list(ctx.list_path)
        self._publish()

    def _schedule(self, ctx: ScanDirContext, delay: float, active: bool = False) -> None:
        with self._wakeup:
            self._contexts[ctx.list_path] = ctx
            due = time.monotonic() + delay
            self._due[ctx.list_path] = min(self._due.get(ctx.list_path, due), due)
            self._count_now.add(ctx.list_path)
            if active:
                self._status = dataclasses.replace(self._status, current_scandir=ctx.scanpath)
            self._wakeup.notify_all()

    # -- worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop_event.is_set():
            task = self._next_task()
            if task is None:
                continue
            if task is _REFRESH_STATUS:
                self._publish()
                continue
            with self._lock:
                self._busy = True
            try:
                task()
            except Exception as exc:  # keep the worker alive whatever happens
                logger.exception("ingestion worker: unexpected error")
                self._error(f"internal error: {exc}")
            finally:
                with self._lock:
                    self._busy = False
                self._publish()

    def _next_task(self) -> Optional[Callable[[], None]]:
        with self._wakeup:
            while not self._stop_event.is_set():
                if self._jobs:
                    return self._jobs.pop(0)
                if self._count_now:
                    path = self._count_now.pop()
                    ctx = self._contexts.get(path)
                    if ctx is not None:
                        return lambda ctx=ctx: self._count(ctx)
                    continue
                now = time.monotonic()
                if self._rate_due and self._rate_due <= now:
                    active = self._history.active(RATE_WINDOW + RATE_REFRESH)
                    self._rate_due = now + RATE_REFRESH if active else 0.0
                    return _REFRESH_STATUS  # type: ignore[return-value]
                if self._awaiting_scicat and self._probe_due <= now:
                    self._probe_due = now + PROBE_INTERVAL
                    return self._probe
                if self._due:
                    path, due = min(self._due.items(), key=lambda item: item[1])
                    if due <= now:
                        del self._due[path]
                        if self._awaiting_scicat:  # SciCat is down: wait with the others
                            self._awaiting_scicat.add(path)
                            continue
                        ctx = self._contexts.get(path)
                        if ctx is not None:
                            return lambda ctx=ctx: self._process(ctx)
                        continue
                    self._wakeup.wait(self._wait_time(due - now, now))
                else:
                    self._wakeup.wait(self._wait_time(None, now))
        return None

    def _wait_time(self, until_due: Optional[float], now: float) -> Optional[float]:
        """How long the worker may sleep: until the next list, probe or rate refresh."""
        wake = [until_due] if until_due is not None else []
        if self._awaiting_scicat:
            wake.append(max(0.0, self._probe_due - now))
        if self._rate_due:
            wake.append(max(0.0, self._rate_due - now))
        return min(wake) if wake else None

    def _probe(self) -> None:
        """During an outage: does SciCat answer again? Then every waiting list goes now."""
        assert self._client is not None
        if not self._client.probe():
            return
        with self._wakeup:
            now = time.monotonic()
            waiting, self._awaiting_scicat = self._awaiting_scicat, set()
            for path in waiting:
                self._due[path] = now
            self._wakeup.notify_all()
        logger.info("SciCat answers again: resuming %d list(s)", len(waiting))

    def _count(self, ctx: ScanDirContext) -> None:
        assert self._processor is not None
        try:
            waiting, measurement = self._processor.waiting(ctx)
        except OSError as exc:
            logger.warning("%s cannot be read: %s", ctx.list_path, exc)
            return
        with self._lock:
            self._waiting[ctx.list_path] = len(waiting)
            self._set_measurement(ctx, measurement)
        if not self._failed.derived(ctx.list_path):  # once per list: after a restart
            self._failed.derive(ctx, self._processor.recorded_failures(ctx),
                                (entry.line for entry in waiting))

    def _set_measurement(self, ctx: ScanDirContext, measurement: Optional[str]) -> None:
        if measurement:
            self._measurements[ctx.scanpath] = measurement
        else:
            self._measurements.pop(ctx.scanpath, None)

    def _process(self, ctx: ScanDirContext) -> None:
        assert self._processor is not None
        try:
            result = self._processor.process(ctx)
        except BatchPostponed as exc:
            with self._lock:
                self._scicat_problem = str(exc)
            self._error(str(exc))
            if exc.outage:
                logger.warning("%s: SciCat does not answer (%s); waiting until it does",
                               ctx.list_path, exc)
                with self._wakeup:
                    if ctx.list_path in self._contexts:
                        if not self._awaiting_scicat:
                            self._probe_due = time.monotonic() + PROBE_INTERVAL
                        self._awaiting_scicat.add(ctx.list_path)
                return
            self._postpone_attempts += 1
            delay = min(
                self._cfg.retry_backoff_initial * 2 ** (self._postpone_attempts - 1),
                self._cfg.retry_backoff_max,
            )
            logger.warning(
                "%s: SciCat login failed (%s); retrying in %.1f s", ctx.list_path, exc, delay
            )
            self._reschedule(ctx, delay)
            return
        except FileNotFoundError:
            logger.info("%s disappeared", ctx.list_path)
            return
        except OSError as exc:
            logger.warning("%s cannot be processed: %s", ctx.list_path, exc)
            self._error(f"{ctx.list_path}: {exc}")
            return
        self._postpone_attempts = 0
        with self._lock:
            self._scicat_problem = ""
            self._waiting[ctx.list_path] = result.waiting
            self._set_measurement(ctx, result.measurement)
        if result.retry_at is not None:
            self._reschedule(ctx, max(0.0, result.retry_at - time.time()))

    def _reschedule(self, ctx: ScanDirContext, delay: float) -> None:
        with self._wakeup:
            if ctx.list_path in self._contexts:
                due = time.monotonic() + delay
                self._due[ctx.list_path] = min(self._due.get(ctx.list_path, due), due)
                self._wakeup.notify_all()

    def _error(self, text: str) -> None:
        self._publish(last_error=text, last_error_time=time.time())

    def _outcome(self, outcome: EntryOutcome) -> None:
        self._record_outcome(outcome)
        with self._lock:
            if outcome.ok and not self._rate_due:
                self._rate_due = time.monotonic() + RATE_REFRESH
            status = self._status
            if outcome.ok:
                changes = {
                    "ingested_count": status.ingested_count + (0 if outcome.skipped else 1),
                    "last_ingested_scan": outcome.entry.scanname,
                }
            else:
                changes = {
                    "failed_count": status.failed_count + 1,
                    "last_error": f"{outcome.entry.scanname}: {outcome.error}",
                    "last_error_time": time.time(),
                }
            waiting = self._waiting.get(outcome.ctx.list_path, 0)
            if waiting:
                self._waiting[outcome.ctx.list_path] = waiting - 1
        self._publish(**changes)

    # -- commands (the Tango device and the macros use these; scingestor/commands.py) -------
    def _known(self) -> Known:
        with self._lock:
            return (self._status.current_scandir, list(self._contexts.values()),
                    list(self._beamtimes.values()))

    def _is_watched_dir(self, path: str) -> bool:
        watcher = self._watcher
        return watcher is not None and watcher.is_scan_dir(path)

    def _reingest_beamtime(self, ctx: ScanDirContext) -> None:
        """Queue the re-ingestion of every list of ``ctx``'s beamtime (one worker job)."""
        contexts = [c for c in self._contexts.values() if c.beamtime.path == ctx.beamtime.path]

        def job() -> None:
            assert self._processor is not None
            for number, item in enumerate(contexts, start=1):
                self._publish(reingest_progress=f"{number}/{len(contexts)} {item.list_path}")
                try:
                    self._processor.process(item, reingest_all=True)
                except BatchPostponed as exc:
                    self._error(str(exc))
                    break
            self._publish(reingest_progress="")

        with self._wakeup:
            self._jobs.append(job)
            self._wakeup.notify_all()

    def credentials_problem(self) -> str:
        """A readable reason when the credential file cannot be used ('' when fine)."""
        path = self._cfg.ingestor_credential_file
        if not path:
            return ""
        try:
            CredentialSource(path, self._cfg.ingestor_username).get()
        except CredentialError as exc:
            return str(exc)
        return ""
