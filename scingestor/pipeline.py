"""Ingestion of the entries of one dataset list: generate metadata, publish, record."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .beamtime import ScanDirContext
from .config import IngestorConfig
from .listproto import Entry, EntryKind, UnsafeNameError, read_entries
from .metadata import (
    MeasurementState,
    MetadataError,
    MetadataGenerator,
    is_multi_file,
    load_documents,
    load_json,
    mtime,
)
from .runner import GeneratorError, GeneratorRunner
from .scicat.client import SciCatAuthError, SciCatConnectionError, SciCatError
from .scicat.publish import DatasetPublisher, DatasetValidationError
from .state import IngestedList, Record, Stamps, atomic_write

logger = logging.getLogger(__name__)


class BatchPostponed(Exception):
    """SciCat cannot be used right now (no login, unreachable, 5xx): try the list later."""


@dataclass(frozen=True)
class EntryOutcome:
    """What happened to one entry, reported to the service for its status."""

    ctx: ScanDirContext
    entry: Entry
    ok: bool
    stamps: Optional[Stamps]
    error: str = ""
    skipped: bool = False  # unchanged: nothing had to be sent


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


def _is_server_side(exc: SciCatError) -> bool:
    status = getattr(exc, "status", None)
    return status is None or (isinstance(status, int) and status >= 500)


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
        self._on_outcome = on_outcome
        self._stop = stop_event or threading.Event()
        self._dry_run = dry_run
        self._lists: dict[str, IngestedList] = {}
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

    def forget(self, ctx: ScanDirContext) -> None:
        """Drop cached state of a list that is no longer watched."""
        self._lists.pop(ctx.ingested_path, None)
        for key in [key for key in self._backoff if key[0] == ctx.list_path]:
            del self._backoff[key]

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
                outcome = self._process_entry(ctx, entry, state, started, reingest_all, ingested)
                result.processed += 1
                if outcome.stamps is not None:
                    if reingest_all:
                        new_records.append(Record(entry.line, outcome.stamps))
                    elif not self._dry_run:
                        ingested.record(entry.line, outcome.stamps)
                self._account(ctx, entry, outcome, result)
            if reingest_all and not self._dry_run and not self._stop.is_set():
                ingested.replace_all(new_records)
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
            will_retry = outcome.stamps is None or self._cfg.retry_failed_dataset_ingestion
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
    ) -> EntryOutcome:
        try:
            if reingest_all or entry.is_reingest:
                return self._reingest(ctx, entry, state, started, ingested)
            return self._ingest(ctx, entry, state, started, ingested)
        except (SciCatAuthError, SciCatConnectionError) as exc:
            raise BatchPostponed(str(exc)) from exc
        except SciCatError as exc:
            if _is_server_side(exc):
                raise BatchPostponed(str(exc)) from exc
            logger.error("%s: %s", entry.scanname, exc)
            return EntryOutcome(ctx, entry, False, self._failed_stamps(ingested, entry), str(exc))
        except (GeneratorError, UnsafeNameError, MetadataError, OSError) as exc:
            logger.warning("%s:%d: %s: %s", ctx.list_path, entry.lineno, entry.scanname, exc)
            return EntryOutcome(ctx, entry, False, None, str(exc))

    def _failed_stamps(self, ingested: IngestedList, entry: Entry) -> Stamps:
        previous = ingested.reference(entry.line)
        return previous if previous is not None else Stamps(0, 0, 0)

    def _prepare(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: set[str],
        regenerate_datablock: bool,
    ) -> tuple[bool, bool, bool, bool]:
        """Make sure the metadata files exist; returns which were generated now.

        Returns ``(dataset_existed, dataset_generated, datablock_generated,
        attachment_generated)``.
        """
        cfg = self._cfg
        paths = self._generator.paths(ctx, entry)
        dataset_existed = os.path.isfile(paths.dataset)
        dataset_generated = datablock_generated = attachment_generated = False
        if not dataset_existed and (
            cfg.force_generate_measurement or entry.scanname not in started
        ):
            self._generator.generate_dataset(ctx, entry, state)
            dataset_generated = True
        if (
            regenerate_datablock
            or cfg.single_datablock_ingestion
            or not os.path.isfile(paths.datablock)
        ):
            self._generator.generate_datablock(ctx, entry, state)
            datablock_generated = True
        if cfg.ingest_dataset_attachment and not os.path.isfile(paths.attachment):
            attachment_generated = self._generator.generate_attachment(ctx, entry, state)
        self._generator.run_callback(ctx, entry, state)
        return dataset_existed, dataset_generated, datablock_generated, attachment_generated

    def _documents(self, path: str, skip_multi: bool) -> Optional[list[dict]]:
        """Datablock or attachment documents of a file; None when unusable."""
        if not os.path.isfile(path):
            return []
        try:
            if skip_multi and is_multi_file(path):
                return []
            return load_documents(path)
        except MetadataError as exc:
            logger.error("%s", exc)
            return None

    def _dataset_document(self, path: str) -> Optional[dict]:
        try:
            document = load_json(path)
        except MetadataError as exc:
            logger.error("%s", exc)
            return None
        if not isinstance(document, dict):
            logger.error("%s: not a JSON object", path)
            return None
        return document

    def _ingest(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: set[str],
        ingested: IngestedList,
    ) -> EntryOutcome:
        """Normal ingestion of a plain scan line (spec 05 §5.2)."""
        cfg = self._cfg
        paths = self._generator.paths(ctx, entry)
        self._prepare(ctx, entry, state, started, regenerate_datablock=False)
        previous = ingested.last_stamps(entry.line) or Stamps(0, 0, 0)
        if cfg.skip_scan_dataset_ingestion:
            return EntryOutcome(ctx, entry, True, Stamps(0, 0, 0), skipped=True)
        if not (os.path.isfile(paths.dataset) and os.path.isfile(paths.datablock)):
            reason = "no dataset metadata was generated"
            logger.warning("%s: %s", entry.scanname, reason)
            return EntryOutcome(ctx, entry, False, Stamps(0, previous.datablock, 0), reason)
        document = self._dataset_document(paths.dataset)
        if document is None:
            return EntryOutcome(ctx, entry, False, Stamps(0, 0, 0), "invalid dataset metadata")
        if self._dry_run:
            logger.info("dry run: would ingest %s (%s)", entry.scanname, document.get("pid"))
            return EntryOutcome(ctx, entry, True, None)
        pid = self._publish_dataset(ctx, document, state)
        t_ds = mtime(paths.dataset)
        t_db, t_at = self._publish_children(ctx, entry, pid, paths, replace=False)
        ok = t_db != -1 and t_at != -1
        stamps = Stamps(t_ds, t_db if t_db else previous.datablock, t_at)
        return EntryOutcome(
            ctx, entry, ok, stamps, "" if ok else "a datablock or attachment failed"
        )

    def _publish_dataset(self, ctx: ScanDirContext, document: dict, state: MeasurementState) -> str:
        try:
            result = self._publisher.ingest_dataset(
                document,
                beamtime_id=ctx.beamtime.beamtime_id,
                proposal_id_expected=self._generator.expected_proposal_id(ctx),
                measurement=state.measurement if state.active else "",
            )
        except DatasetValidationError as exc:
            raise SciCatError("VALIDATE", ctx.list_path, 400, str(exc)) from exc
        logger.info("Dataset %s: %s", result.pid, result.action)
        return result.pid

    def _publish_children(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        pid: str,
        paths,
        *,
        replace: bool,
        datablocks: bool = True,
        attachments: bool = True,
    ) -> tuple[float, float]:
        """Send datablocks and attachments; returns their stamps (0 none, -1 failed)."""
        cfg = self._cfg
        t_db: float = 0
        t_at: float = 0
        if datablocks:
            blocks = self._documents(paths.datablock, cfg.skip_multi_datablock_ingestion)
            if blocks is None:
                t_db = -1
            else:
                try:
                    self._publisher.sync_datablocks(pid, blocks, replace=replace)
                    t_db = mtime(paths.datablock)
                except SciCatError as exc:
                    if _is_server_side(exc):
                        raise
                    logger.error("%s: datablock: %s", entry.scanname, exc)
                    t_db = -1
        if attachments and cfg.ingest_dataset_attachment and os.path.isfile(paths.attachment):
            docs = self._documents(paths.attachment, cfg.skip_multi_attachment_ingestion)
            if docs is None:
                t_at = -1
            else:
                try:
                    self._publisher.sync_attachments(
                        pid,
                        docs,
                        replace_all=replace,
                    )
                    t_at = mtime(paths.attachment)
                except SciCatError as exc:
                    if _is_server_side(exc):
                        raise
                    logger.error("%s: attachment: %s", entry.scanname, exc)
                    t_at = -1
        return t_db, t_at

    def _reingest(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        started: set[str],
        ingested: IngestedList,
    ) -> EntryOutcome:
        """Re-ingestion of one line (spec 05 §5.7): send only what changed."""
        cfg = self._cfg
        gen = self._generator
        paths = gen.paths(ctx, entry)
        reference = ingested.reference(entry.line)
        dataset_existed, _, datablock_generated, attachment_generated = self._prepare(
            ctx, entry, state, started, regenerate_datablock=False
        )
        # datablock: refresh a single-object file from the current data files
        datablock_changed = datablock_generated
        if (
            not datablock_generated
            and os.path.isfile(paths.datablock)
            and not is_multi_file(paths.datablock)
        ):
            fresh = gen.stream_datablock(ctx, entry, state)
            try:
                current = load_json(paths.datablock)
            except MetadataError:
                current = None
            if current != fresh:
                atomic_write(paths.datablock, json.dumps(fresh, indent=4))
                datablock_changed = True
        send_dataset = (
            not dataset_existed
            or reference is None
            or (mtime(paths.dataset) > reference.dataset and cfg.dataset_update_strategy != "no")
        )
        send_datablocks = (
            datablock_changed or reference is None or mtime(paths.datablock) > reference.datablock
        )
        send_attachments = (
            attachment_generated
            or reference is None
            or mtime(paths.attachment) > reference.attachment
        )
        if not (os.path.isfile(paths.dataset) and os.path.isfile(paths.datablock)):
            reason = "no dataset metadata was generated"
            logger.warning("%s: %s", entry.scanname, reason)
            return EntryOutcome(ctx, entry, False, reference or Stamps(0, 0, 0), reason)
        document = self._dataset_document(paths.dataset)
        if document is None:
            return EntryOutcome(
                ctx, entry, False, reference or Stamps(0, 0, 0), "invalid dataset metadata"
            )
        if not (send_dataset or send_datablocks or send_attachments):
            return EntryOutcome(ctx, entry, True, reference, skipped=True)
        if self._dry_run:
            logger.info(
                "dry run: would re-ingest %s (dataset=%s datablocks=%s attachments=%s)",
                entry.scanname,
                send_dataset,
                send_datablocks,
                send_attachments,
            )
            return EntryOutcome(ctx, entry, True, None)
        file_pid = str(document.get("pid", ""))
        pid = file_pid
        previous = reference or Stamps(0, 0, 0)
        t_ds = previous.dataset
        if send_dataset:
            pid = self._publish_dataset(ctx, document, state)
            t_ds = mtime(paths.dataset)
            if pid != file_pid and not is_multi_file(paths.datablock):
                gen.generate_datablock(ctx, entry, state)
                send_datablocks = True
        t_db, t_at = self._publish_children(
            ctx,
            entry,
            pid,
            paths,
            replace=True,
            datablocks=send_datablocks,
            attachments=send_attachments,
        )
        ok = t_db != -1 and t_at != -1
        stamps = Stamps(
            t_ds,
            t_db if send_datablocks else previous.datablock,
            t_at if send_attachments else previous.attachment,
        )
        return EntryOutcome(
            ctx, entry, ok, stamps, "" if ok else "a datablock or attachment failed"
        )


def _earliest(current: Optional[float], candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
