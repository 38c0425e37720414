"""Ingestion of the entries of one dataset list: generate metadata, publish, record."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Container, Optional

from .beamtime import ScanDirContext
from .checked import CheckedDatablocks
from .config import IngestorConfig
from .failures import failed_lines
from .genpool import PATIENCE, GenerationPool
from .inflight import SendBatch, SendPool
from .journal import IntentJournal
from .listproto import Entry, EntryKind, UnsafeNameError, read_entries
from .liststate import ListState, Pending
from .metadata import MeasurementState, MetadataError, MetadataGenerator
from .outcome import BatchPostponed, Done, EntryOutcome, Result, Step
from .prepare import ScanPreparer
from .runner import GeneratorError, GeneratorRunner
from .scicat.errors import InvalidDocumentError, SciCatAuthError, SciCatError, TransientError
from .scicat.publish import DatasetPublisher
from .send import ScanSender
from .stages import EntryStages
from .state import IngestedList, Record, Stamps

__all__ = ["BatchPostponed", "EntryOutcome", "ListProcessor", "ListResult", "Result"]

logger = logging.getLogger(__name__)


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
        preparer = ScanPreparer(cfg, self._generator)
        # metadata of several scans generated at once (genpool.py, metadata_workers)
        self._generation = GenerationPool(cfg, preparer, in_process=runner.in_process)
        self._metadata_cost = 0.0  # seconds, a moving average of the metadata stages
        # a fixed number of sending threads, whatever the number of lists (inflight.py),
        # plus one per generation slot, so that making metadata holds no sending slot
        self._pool = SendPool(cfg.max_scans_in_flight,
                              self._generation.workers if self._generation.parallel else 0)
        sender = ScanSender(publisher, self._generator,
                            ingest_attachments=cfg.ingest_dataset_attachment,
                            parts=self._pool.parts)
        self._stages = EntryStages(cfg, preparer, self._generation, sender, dry_run=dry_run)
        self._on_outcome = on_outcome
        self._stop = stop_event or threading.Event()
        self._dry_run = dry_run
        self._lists: dict[str, IngestedList] = {}
        self._journals: dict[str, IntentJournal] = {}
        self._checks: dict[str, CheckedDatablocks] = {}
        self._states: dict[str, ListState] = {}
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._reported_invalid: set[tuple[str, str]] = set()
        self._groups: dict[str, tuple[Optional[str], Optional[list[str]]]] = {}

    def close(self) -> None:
        """Stop the sending threads and the metadata workers (after the last :meth:`process`)."""
        self._pool.close()
        self._generation.close()

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

    def checks(self, ctx: ScanDirContext) -> CheckedDatablocks:
        """Where the daemon appends the datablocks it made (see :mod:`.checked`)."""
        checks = self._checks.get(ctx.ingested_path)
        if checks is None:
            checks = self._checks[ctx.ingested_path] = CheckedDatablocks(
                ctx.ingested_path, load=False)
        return checks

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
        self._checks.pop(ctx.ingested_path, None)
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
                            False, ingested, item, None if self._dry_run else self.checks(ctx))
            batch.drain()  # records the rest in list order; raises BatchPostponed
            journal.compact(ingested.is_ingested)
        result.measurement = state.measurement
        return result

    def _process_all(self, ctx: ScanDirContext, ingested: IngestedList) -> ListResult:
        """Re-ingestion of every entry of the list (``scicat_dataset_ingest``): commands
        are not executed, the ingested list is replaced at the end."""
        result = ListResult()
        new_records: list[Record] = []
        self.journal(ctx).refresh()
        # datablocks known to match their files, looked up per line (not in a dry run)
        checks = None if self._dry_run else CheckedDatablocks(ctx.ingested_path)

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
            self._start(batch, ctx, entry, MeasurementState(), set(), True, ingested, entry,
                        checks)
        try:
            batch.drain()
        finally:
            if checks is not None:
                checks.compact()
        if not self._dry_run and not self._stop.is_set():
            ingested.replace_all(new_records)
            self.journal(ctx).compact(ingested.is_ingested)
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
               ingested: IngestedList, payload: object,
               checks: Optional[CheckedDatablocks] = None) -> None:
        """Ingest or re-ingest one entry (docs/architecture.md "Threads").

        What the ingested list and the journal know of the line is read here, in
        list order. Both stages then run in the batch (a sending thread, at most
        ``max_scans_in_flight``), the metadata stage in a free generation slot, so
        several scans are made at once. An entry that runs the grouping callback
        (a measurement member) is made here, one after another, as the callbacks
        of one measurement write the same files.
        """
        reingest = reingest_all or entry.is_reingest
        known = self._stages.known(entry, ingested, self.journal(ctx), reingest, checks)
        stage = self._stages.reingest if reingest else self._stages.ingest

        def metadata() -> Step:
            begin = time.monotonic()
            try:
                return stage(ctx, entry, state, started, known)
            finally:  # how long metadata stages take lately (a rough average is enough)
                self._metadata_cost = 0.7 * self._metadata_cost + 0.3 * (
                    time.monotonic() - begin)

        # cheap metadata stages (nothing to generate, e.g. an unchanged re-ingestion)
        # stay here: handing them to other threads would cost more than they do
        if (self._generation.parallel and self._metadata_cost >= PATIENCE
                and not self._generator.callback_due(state)):
            def both() -> Done:
                step = self._guard(ctx, entry, metadata)
                return self._send(ctx, entry, step) if callable(step) else step
            batch.submit(entry.scanname, both, payload)
            return
        step = self._guard(ctx, entry, metadata)
        if callable(step):
            send = step
            batch.submit(entry.scanname, lambda: self._send(ctx, entry, send), payload)
        else:
            batch.done(entry.scanname, step, payload)

    def _send(self, ctx: ScanDirContext, entry: Entry, send: Callable[[], Done]) -> Done:
        """The publish stage of one entry, in one of the ``max_scans_in_flight`` slots."""
        with self._pool.sending():
            return self._guard(ctx, entry, send)  # type: ignore[return-value]

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


def _earliest(current: Optional[float], candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
