"""Ingestion of the entries of one dataset list: generate metadata, publish, record."""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .beamtime import ScanDirContext
from .config import IngestorConfig
from .journal import IntentJournal
from .listproto import Entry, EntryKind, UnsafeNameError, read_entries
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
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._reported_invalid: set[tuple[str, str]] = set()
        self._groups: dict[str, tuple[Optional[str], Optional[list[str]]]] = {}

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

    def forget(self, ctx: ScanDirContext) -> None:
        """Drop cached state of a list that is no longer watched."""
        self._lists.pop(ctx.ingested_path, None)
        self._journals.pop(ctx.ingested_path, None)
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
        """``(line, retried)`` for each line whose latest ingested-list record failed (-1).

        ``retried``: the line does not count as ingested, so a pass tries it again.
        """
        ingested = self.ingested_list(ctx)
        latest: dict[str, Stamps] = {}
        for record in ingested.records:
            if record.stamps is not None:
                latest[record.key] = record.stamps
        return [(key, not ingested.is_ingested(key)) for key, stamps in latest.items()
                if -1 in (stamps.dataset, stamps.datablock, stamps.attachment)]

    def waiting(self, ctx: ScanDirContext) -> tuple[list[Entry], Optional[str]]:
        """Entries not yet ingested (commands excluded) and the open measurement."""
        entries = read_entries(ctx.list_path)
        ingested = self.ingested_list(ctx)
        ingested.refresh()
        state = MeasurementState()
        waiting = []
        for entry in entries:
            if entry.kind is EntryKind.START and self._cfg.execute_commands:
                state.start(entry.measurement)
            elif entry.kind is EntryKind.STOP and self._cfg.execute_commands:
                state.stop()
            elif not entry.is_command and entry.kind is not EntryKind.INVALID:
                if not ingested.is_ingested(entry.line):
                    waiting.append(entry)
        return waiting, (state.measurement if state.active else None)

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
        result = ListResult()
        ingested = self.ingested_list(ctx)
        with ingested.locked():
            ingested.refresh()
            journal = self.journal(ctx)
            journal.refresh()
            entries = read_entries(ctx.list_path)
            ctx = self._complete_groups(ctx)
            state = MeasurementState()
            started: set[str] = set()
            new_records: list[Record] = []
            now = time.time()
            for entry in entries:
                if self._stop.is_set():
                    break
                if entry.is_command:
                    self._command(ctx, entry, state, started, reingest_all)
                    continue
                if entry.kind is EntryKind.INVALID:
                    self._report_invalid(ctx, entry)
                    continue
                if not reingest_all and ingested.is_ingested(entry.line):
                    continue
                if self._empty_measurement(ctx, entry, started):
                    continue
                backoff = self._backoff.get((ctx.list_path, entry.line))
                if backoff is not None and backoff.due > now and not reingest_all:
                    result.waiting += 1
                    result.retry_at = _earliest(result.retry_at, backoff.due)
                    continue
                outcome, stamps = self._process_entry(
                    ctx, entry, state, started, reingest_all, ingested)
                result.processed += 1
                if stamps is not None:
                    if reingest_all:
                        new_records.append(Record(entry.line, stamps))
                    elif not self._dry_run:
                        ingested.record(entry.line, stamps)
                self._account(ctx, entry, outcome, result)
            if reingest_all and not self._dry_run and not self._stop.is_set():
                ingested.replace_all(new_records)
            journal.compact(ingested.is_ingested)
        result.measurement = state.measurement if state.active else None
        return result

    def _empty_measurement(self, ctx: ScanDirContext, entry: Entry, started: set[str]) -> bool:
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

    def _command(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: set[str],
        reingest_all: bool,
    ) -> None:
        if not self._cfg.execute_commands or reingest_all:
            return
        if entry.kind is EntryKind.START:
            state.start(entry.measurement)
            started.add(entry.measurement)
        elif entry.kind is EntryKind.STOP:
            if not state.active:
                self._report_once(ctx, entry, "'__command__ stop' without a running measurement")
            state.stop()
        else:
            self._report_once(ctx, entry, entry.reason)

    def _report_invalid(self, ctx: ScanDirContext, entry: Entry) -> None:
        self._report_once(ctx, entry, entry.reason)

    def _report_once(self, ctx: ScanDirContext, entry: Entry, reason: str) -> None:
        key = (ctx.list_path, f"{entry.lineno}:{entry.line}")
        if key not in self._reported_invalid:
            self._reported_invalid.add(key)
            logger.warning(
                "%s:%d: %s: line ignored: %r", ctx.list_path, entry.lineno, reason, entry.line
            )

    # -- one entry -------------------------------------------------------------------------
    def _process_entry(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: set[str],
        reingest_all: bool,
        ingested: IngestedList,
    ) -> tuple[EntryOutcome, Optional[Stamps]]:
        """Ingest or re-ingest one entry: its outcome and the stamps to record (None: none)."""
        try:
            if reingest_all or entry.is_reingest:
                return self._reingest(ctx, entry, state, started, ingested)
            return self._ingest(ctx, entry, state, started, ingested)
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
        result = Result.FAILED if errors else Result.INGESTED
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
        started: set[str],
        ingested: IngestedList,
    ) -> tuple[EntryOutcome, Optional[Stamps]]:
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
        dataset = self._sender.send_dataset(ctx, prepared, _measurement(state), fresh=fresh)
        block, thumb = self._sender.send_children(dataset.pid, prepared, replace=False,
                                                  fresh=dataset.fresh)
        sent = SendResult(dataset.pid, True, prepared.dataset_mtime, block, thumb,
                          action=dataset.action)
        return self._finish(ctx, entry, sent, Stamps(0, previous.datablock, 0))

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
        started: set[str],
        ingested: IngestedList,
    ) -> tuple[EntryOutcome, Optional[Stamps]]:
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
        pid = prepared.pid
        action = ""
        if send_dataset:
            dataset = self._sender.send_dataset(ctx, prepared, _measurement(state))
            pid, action = dataset.pid, dataset.action
            if pid != prepared.pid and not prepared.datablock.multi:
                prepared = self._preparer.remake_datablock(ctx, entry, state, prepared)
                send_datablocks = True
        block, thumb = self._sender.send_children(
            pid, prepared, replace=True, datablocks=send_datablocks,
            attachments=send_attachments)
        sent = SendResult(pid, send_dataset, prepared.dataset_mtime, block, thumb, action=action)
        return self._finish(ctx, entry, sent, known)


def _measurement(state: MeasurementState) -> str:
    return state.measurement if state.active else ""


def _earliest(current: Optional[float], candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
