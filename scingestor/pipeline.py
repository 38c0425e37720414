"""Ingestion of the entries of one dataset list: generate metadata, publish, record."""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Container, Optional, Tuple, Union

from .beamtime import ScanDirContext
from .config import IngestorConfig
from .failures import failed_lines
from .inflight import SendBatch, SendPool
from .journal import IntentJournal
from .listproto import Entry, EntryKind, UnsafeNameError, read_entries
from .liststate import ListState, Pending
from .metadata import MeasurementState, MetadataError, MetadataGenerator
from .prepare import PreparedScan, ScanPreparer
from .runner import GeneratorError, GeneratorRunner
from .scicat.errors import InvalidDocumentError, SciCatAuthError, SciCatError, TransientError
from .scicat.publish import DatasetPublisher
from .send import ScanSender, SendResult
from .state import IngestedList, Record, Stamps

logger = logging.getLogger(__name__)


class BatchPostponed(Exception):
    """SciCat cannot be used right now: try the list later; nothing was recorded.

    ``outage`` is True when SciCat did not answer (or answered 5xx): the batch
    resumes as soon as it answers again. False means it answered but the login
    failed: the batch waits with back-off.
    """

    def __init__(self, reason: str, *, outage: bool) -> None:
        super().__init__(reason)
        self.outage = outage


class Result(enum.Enum):
    """What happened to one entry."""

    INGESTED = "ingested"  # something was sent
    UNCHANGED = "unchanged"  # nothing had to be sent
    FAILED = "failed"
    DRY_RUN = "dry run"  # would have been sent


@dataclass(frozen=True)
class EntryOutcome:
    """What happened to one entry, reported to the service and the tools.

    ``recorded`` failures are written to the ingested list (SciCat refused the
    scan, or a file was unusable); the others (the metadata could not be made)
    are not, and are tried again after the back-off in any case.
    """

    ctx: ScanDirContext
    entry: Entry
    result: Result
    error: str = ""
    recorded: bool = False
    pid: str = ""
    action: str = ""  # the dataset: created, patched, new_version, unchanged, skipped; "" not sent
    datablocks: int = 0  # OrigDatablocks posted or rewritten
    thumbnails: int = 0  # attachments posted or rewritten

    @property
    def ok(self) -> bool:
        return self.result is not Result.FAILED

    @property
    def skipped(self) -> bool:
        """True when nothing had to be sent."""
        return self.result is Result.UNCHANGED


@dataclass
class ListResult:
    """Summary of one pass over a list."""

    processed: int = 0
    ingested: int = 0
    unchanged: int = 0
    failed: int = 0
    waiting: int = 0
    retry_at: Optional[float] = None
    measurement: Optional[str] = None
    errors: list[str] = field(default_factory=list)


@dataclass
class _Backoff:
    attempts: int = 0
    due: float = 0.0


OutcomeCallback = Callable[[EntryOutcome], None]
#: An entry's outcome and the stamps to record (None: nothing is recorded).
Done = Tuple[EntryOutcome, Optional[Stamps]]
#: What the metadata stage of an entry gives: a result, or the publish stage still to run.
Step = Union[Done, Callable[[], Done]]


class ListProcessor:
    """Processes dataset lists; shared by the daemon and ``scicat_dataset_ingest``."""

    def __init__(
        self,
        cfg: IngestorConfig,
        publisher: DatasetPublisher,
        runner: GeneratorRunner,
        *,
        on_outcome: Optional[OutcomeCallback] = None,
        stop_event: Optional[threading.Event] = None,
        dry_run: bool = False,
    ) -> None:
        self._cfg = cfg
        self._publisher = publisher
        self._generator = MetadataGenerator(cfg, runner)
        self._preparer = ScanPreparer(cfg, self._generator)
        self._sender = ScanSender(publisher, self._generator,
                                  ingest_attachments=cfg.ingest_dataset_attachment)
        self._on_outcome = on_outcome
        self._stop = stop_event or threading.Event()
        self._dry_run = dry_run
        self._lists: dict[str, IngestedList] = {}
        self._journals: dict[str, IntentJournal] = {}
        self._states: dict[str, ListState] = {}
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._reported_invalid: set[tuple[str, str]] = set()
        self._groups: dict[str, tuple[Optional[str], Optional[list[str]]]] = {}
        # a fixed number of sending threads, whatever the number of lists (inflight.py)
        self._pool = SendPool(cfg.max_scans_in_flight)
        # the in-process nxsfileinfo is not thread-safe: every generator call holds this
        self._generate_lock = threading.Lock()

    def close(self) -> None:
        """Stop the sending threads (call after the last :meth:`process`)."""
        self._pool.close()

    # -- bookkeeping -------------------------------------------------------------------
    def ingested_list(self, ctx: ScanDirContext) -> IngestedList:
        ingested = self._lists.get(ctx.ingested_path)
        if ingested is None:
            ingested = IngestedList(
                ctx.ingested_path,
                retry_failed=self._cfg.retry_failed_dataset_ingestion,
                retry_failed_attachment=(
                    self._cfg.retry_failed_attachment_ingestion
                    and self._cfg.ingest_dataset_attachment
                ),
            )
            self._lists[ctx.ingested_path] = ingested
        return ingested

    def journal(self, ctx: ScanDirContext) -> IntentJournal:
        """The intent journal beside the list's ingested list (see :mod:`.journal`)."""
        journal = self._journals.get(ctx.ingested_path)
        if journal is None:
            journal = self._journals[ctx.ingested_path] = IntentJournal(ctx.ingested_path)
        return journal

    def list_state(self, ctx: ScanDirContext) -> ListState:
        """The in-memory state of a dataset list (README "Dataset lists")."""
        state = self._states.get(ctx.list_path)
        if state is None:
            state = ListState(
                ctx.list_path,
                execute_commands=self._cfg.execute_commands,
                report=lambda entry, reason: self._report_once(ctx, entry, reason),
            )
            self._states[ctx.list_path] = state
        return state

    def forget(self, ctx: ScanDirContext) -> None:
        """Drop cached state of a list that is no longer watched."""
        self._lists.pop(ctx.ingested_path, None)
        self._journals.pop(ctx.ingested_path, None)
        self._states.pop(ctx.list_path, None)
        for key in [key for key in self._backoff if key[0] == ctx.list_path]:
            del self._backoff[key]

    # -- failed scans (the service's failed set, docs/tango.md "FailedScans") -----------
    def retry_due(self, list_path: str, line: str) -> float:
        """Epoch seconds of the next attempt of a failed line (0 when it has no back-off)."""
        backoff = self._backoff.get((list_path, line))
        return backoff.due if backoff is not None else 0.0

    def retry_now(self, list_path: str, line: str) -> bool:
        """Let a failed line run at the next pass, ignoring its back-off; False if none."""
        backoff = self._backoff.get((list_path, line))
        if backoff is None:
            return False
        backoff.due = 0.0
        return True

    def recorded_failures(self, ctx: ScanDirContext) -> list[tuple[str, bool]]:
        """``(line, retried)`` for each line that leaves its scan failed in the ingested list.

        The rule is :func:`scingestor.failures.failed_lines` (a later successful
        re-ingest line settles a scan). ``retried``: the line does not count as
        ingested, so a pass tries it again.
        """
        ingested = self.ingested_list(ctx)
        return [(line, not ingested.is_ingested(line))
                for line in failed_lines(ingested.records)]

    def _read(self, ctx: ScanDirContext, ingested: IngestedList) -> ListState:
        """Read what was appended to the list since the last pass (O(new lines))."""
        ingested.refresh()
        state = self.list_state(ctx)
        state.update(ingested.generation, ingested.is_ingested)
        return state

    def waiting(self, ctx: ScanDirContext) -> tuple[list[Entry], Optional[str]]:
        """Entries not yet ingested (commands excluded) and the open measurement.

        Costs O(appended lines + waiting entries), not O(list) (docs/architecture.md
        "Reading only what was appended").
        """
        ingested = self.ingested_list(ctx)
        state = self._read(ctx, ingested)
        return state.waiting(ingested.is_ingested), state.measurement

    def _complete_groups(self, ctx: ScanDirContext) -> ScanDirContext:
        bt = ctx.beamtime
        if not self._cfg.owner_access_groups_from_proposal or bt.has_own_groups():
            return ctx
        if bt.path not in self._groups:
            self._groups[bt.path] = self._publisher.fetch_proposal_groups(
                bt.proposal_id, bt.beamtime_id
            )
        owner, access = self._groups[bt.path]
        return dataclasses.replace(ctx, beamtime=bt.with_groups(owner, access))

    # -- one pass over a list ------------------------------------------------------------
    def process(self, ctx: ScanDirContext, *, reingest_all: bool = False) -> ListResult:
        """Process the waiting entries of a list (all entries with ``reingest_all``).

        Raises :class:`BatchPostponed` when SciCat cannot be used; nothing is lost then.
        """
        ingested = self.ingested_list(ctx)
        with ingested.locked():
            if reingest_all:
                ingested.refresh()
                return self._process_all(self._complete_groups(ctx), ingested)
            state = self._read(ctx, ingested)
            journal = self.journal(ctx)
            journal.refresh()
            ctx = self._complete_groups(ctx)
            result = ListResult()
            now = time.time()

            def finish(item: Pending, done: Done) -> None:
                outcome, stamps = done
                if stamps is not None and not self._dry_run:
                    ingested.record(item.entry.line, stamps)
                if ingested.is_ingested(item.entry.line):
                    state.done(item)
                self._account(ctx, item.entry, outcome, result)

            batch: SendBatch[Done] = SendBatch(self._pool, finish, (BatchPostponed,))
            for item in state.pending():
                if self._stop.is_set():
                    break
                entry = item.entry
                started = state.started_before(item)
                # an earlier line of this scan recorded; a measurement after its members
                batch.ready(entry.scanname, barrier=entry.scanname in started)
                if self._stop.is_set():
                    break  # nothing more is submitted; what is in flight is recorded
                if ingested.is_ingested(entry.line):
                    state.done(item)
                    continue
                if self._empty_measurement(ctx, entry, started):
                    continue
                backoff = self._backoff.get((ctx.list_path, entry.line))
                if backoff is not None and backoff.due > now:
                    result.waiting += 1
                    result.retry_at = _earliest(result.retry_at, backoff.due)
                    continue
                result.processed += 1
                self._start(batch, ctx, entry, MeasurementState(*item.replay), started,
                            False, ingested, item)
            batch.drain()  # records the rest in list order; raises BatchPostponed
            journal.compact(ingested.is_ingested)
        result.measurement = state.measurement
        return result

    def _process_all(self, ctx: ScanDirContext, ingested: IngestedList) -> ListResult:
        """Re-ingestion of every entry of the list (``scicat_dataset_ingest``): commands
        are not executed, the ingested list is replaced at the end."""
        result = ListResult()
        new_records: list[Record] = []

        def finish(entry: Entry, done: Done) -> None:
            outcome, stamps = done
            if stamps is not None:
                new_records.append(Record(entry.line, stamps))
            self._account(ctx, entry, outcome, result)

        batch: SendBatch[Done] = SendBatch(self._pool, finish, (BatchPostponed,))
        measurements: set[str] = set()
        for entry in read_entries(ctx.list_path):
            if self._stop.is_set():
                break
            if entry.kind is EntryKind.START:
                measurements.add(entry.measurement)
            if entry.is_command:
                continue
            if entry.kind is EntryKind.INVALID:
                self._report_once(ctx, entry, entry.reason)
                continue
            batch.ready(entry.scanname, barrier=entry.scanname in measurements)
            if self._stop.is_set():
                break
            result.processed += 1
            self._start(batch, ctx, entry, MeasurementState(), set(), True, ingested, entry)
        batch.drain()
        if not self._dry_run and not self._stop.is_set():
            ingested.replace_all(new_records)
        return result

    def _empty_measurement(self, ctx: ScanDirContext, entry: Entry,
                           started: Container[str]) -> bool:
        """A measurement line of a measurement that grouped no scan: nothing to send."""
        if entry.scanname not in started or self._cfg.force_generate_measurement:
            return False
        if os.path.isfile(self._generator.paths(ctx, entry).dataset):
            return False
        self._report_once(ctx, entry, f"measurement {entry.scanname!r} has no scans yet")
        return True

    def _account(
        self, ctx: ScanDirContext, entry: Entry, outcome: EntryOutcome, result: ListResult
    ) -> None:
        key = (ctx.list_path, entry.line)
        if outcome.ok:
            self._backoff.pop(key, None)
            if outcome.skipped:
                result.unchanged += 1
            else:
                result.ingested += 1
        else:
            result.failed += 1
            result.errors.append(f"{entry.line}: {outcome.error}")
            backoff = self._backoff.setdefault(key, _Backoff())
            backoff.attempts += 1
            delay = min(
                self._cfg.retry_backoff_initial * (2 ** (backoff.attempts - 1)),
                self._cfg.retry_backoff_max,
            )
            backoff.due = time.time() + delay
            will_retry = not outcome.recorded or self._cfg.retry_failed_dataset_ingestion
            if will_retry:
                result.retry_at = _earliest(result.retry_at, backoff.due)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _report_once(self, ctx: ScanDirContext, entry: Entry, reason: str) -> None:
        key = (ctx.list_path, f"{entry.lineno}:{entry.line}")
        if key not in self._reported_invalid:
            self._reported_invalid.add(key)
            logger.warning(
                "%s:%d: %s: line ignored: %r", ctx.list_path, entry.lineno, reason, entry.line
            )

    # -- one entry -------------------------------------------------------------------------
    def _start(self, batch: SendBatch[Done], ctx: ScanDirContext, entry: Entry,
               state: MeasurementState, started: Container[str], reingest_all: bool,
               ingested: IngestedList, payload: object) -> None:
        """Ingest or re-ingest one entry: its metadata stage here, in list order, its
        publish stage in the batch (the sending threads, at most ``max_scans_in_flight``)."""
        stage = self._reingest if (reingest_all or entry.is_reingest) else self._ingest
        with self._generate_lock:
            step = self._guard(ctx, entry, lambda: stage(ctx, entry, state, started, ingested))
        if callable(step):
            send = step
            batch.submit(entry.scanname, lambda: self._guard(ctx, entry, send), payload)
        else:
            batch.done(entry.scanname, step, payload)

    def _guard(self, ctx: ScanDirContext, entry: Entry, stage: Callable[[], Step]) -> Step:
        """Run a stage of one entry; a failure becomes its outcome (or BatchPostponed)."""
        try:
            return stage()
        except TransientError as exc:
            raise BatchPostponed(str(exc), outage=True) from exc
        except SciCatAuthError as exc:
            raise BatchPostponed(str(exc), outage=False) from exc
        except (SciCatError, InvalidDocumentError) as exc:
            # SciCat said no (4xx), or our document is wrong: recorded as failed
            logger.error("%s: %s", entry.scanname, exc)
            return EntryOutcome(ctx, entry, Result.FAILED, str(exc), recorded=True), Stamps(
                -1, 0, 0)
        except (GeneratorError, UnsafeNameError, MetadataError, OSError) as exc:
            # the metadata could not be made: nothing recorded, tried again later
            logger.warning("%s:%d: %s: %s", ctx.list_path, entry.lineno, entry.scanname, exc)
            return EntryOutcome(ctx, entry, Result.FAILED, str(exc)), None

    def _finish(self, ctx: ScanDirContext, entry: Entry, sent: SendResult,
                previous: Stamps) -> tuple[EntryOutcome, Stamps]:
        errors = sent.errors
        for error in errors:
            logger.error("%s: %s", entry.scanname, error)
        wrote = (sent.action not in ("", "unchanged", "skipped")
                 or sent.datablock.count or sent.attachment.count)
        result = Result.FAILED if errors else (Result.INGESTED if wrote else Result.UNCHANGED)
        outcome = EntryOutcome(ctx, entry, result, "; ".join(errors), recorded=bool(errors),
                               pid=sent.pid, action=sent.action,
                               datablocks=sent.datablock.count,
                               thumbnails=sent.attachment.count)
        return outcome, sent.stamps(previous)

    def _ingest(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: Container[str],
        ingested: IngestedList,
    ) -> Step:
        """Normal ingestion of a plain scan line (README "Dataset lists")."""
        prepared = self._preparer.prepare(ctx, entry, state, started)
        previous = ingested.last_stamps(entry.line) or Stamps(0, 0, 0)
        if self._cfg.skip_scan_dataset_ingestion:
            return EntryOutcome(ctx, entry, Result.UNCHANGED), Stamps(0, 0, 0)
        self._check_files(prepared)
        if self._dry_run:
            logger.info("dry run: would ingest %s (%s)", entry.scanname, prepared.pid)
            return EntryOutcome(ctx, entry, Result.DRY_RUN), None
        # never recorded and never tried: certainly not in SciCat, so no existence checks
        journal = self.journal(ctx)
        fresh = ingested.last_stamps(entry.line) is None and entry.line not in journal
        if fresh:
            journal.add(entry.line)  # durable before the first request that creates anything
        measurement = _measurement(state)

        def send() -> Done:  # the publish stage, in a sending thread
            dataset = self._sender.send_dataset(ctx, prepared, measurement, fresh=fresh)
            block, thumb = self._sender.send_children(dataset.pid, prepared, replace=False,
                                                      fresh=dataset.fresh)
            sent = SendResult(dataset.pid, True, prepared.dataset_mtime, block, thumb,
                              action=dataset.action)
            return self._finish(ctx, entry, sent, Stamps(0, previous.datablock, 0))
        return send

    @staticmethod
    def _check_files(prepared: PreparedScan) -> None:
        """Both the dataset and the datablock file must exist and the dataset be usable."""
        if prepared.dataset_error:
            raise InvalidDocumentError(prepared.dataset_error)
        if prepared.dataset is None or not prepared.datablock.exists:
            raise InvalidDocumentError("no dataset metadata was generated")

    def _reingest(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: Container[str],
        ingested: IngestedList,
    ) -> Step:
        """Re-ingestion of one line (README "Re-ingestion"): send only what changed."""
        reference = ingested.reference(entry.line)
        prepared = self._preparer.prepare(ctx, entry, state, started, refresh_datablock=True)
        known = reference or Stamps(0, 0, 0)
        send_dataset = reference is None or prepared.dataset_changed or (
            prepared.dataset_mtime > known.dataset
            and self._cfg.dataset_update_strategy != "no")
        send_datablocks = (reference is None or prepared.datablock.changed
                           or prepared.datablock.mtime > known.datablock)
        send_attachments = (reference is None or prepared.attachment.changed
                            or prepared.attachment.mtime > known.attachment)
        self._check_files(prepared)
        if not (send_dataset or send_datablocks or send_attachments):
            return EntryOutcome(ctx, entry, Result.UNCHANGED), reference
        if self._dry_run:
            logger.info(
                "dry run: would re-ingest %s (dataset=%s datablocks=%s attachments=%s)",
                entry.scanname, send_dataset, send_datablocks, send_attachments)
            return EntryOutcome(ctx, entry, Result.DRY_RUN), None
        measurement = _measurement(state)

        def send() -> Done:  # the publish stage, in a sending thread
            current, pid, action, blocks = prepared, prepared.pid, "", send_datablocks
            if send_dataset:
                dataset = self._sender.send_dataset(ctx, current, measurement)
                pid, action = dataset.pid, dataset.action
                if pid != current.pid and not current.datablock.multi:
                    with self._generate_lock:  # a new version: its datablock is made again
                        current = self._preparer.remake_datablock(ctx, entry, state, current)
                    blocks = True
            block, thumb = self._sender.send_children(
                pid, current, replace=True, datablocks=blocks, attachments=send_attachments)
            sent = SendResult(pid, send_dataset, current.dataset_mtime, block, thumb,
                              action=action)
            return self._finish(ctx, entry, sent, known)
        return send


def _measurement(state: MeasurementState) -> str:
    return state.measurement if state.active else ""


def _earliest(current: Optional[float], candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
