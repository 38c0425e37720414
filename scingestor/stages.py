"""The two stages of one entry: metadata (generate and read its files) and publish (send).

:class:`EntryStages` holds the rules of a plain scan line (README "Dataset
lists") and of a re-ingestion (README "Re-ingestion"); the list processor
(:mod:`scingestor.pipeline`) decides where and when they run. The metadata
stage of a scan runs in a slot of the :class:`~scingestor.genpool.GenerationPool`
(this process or a worker process); the publish stage in a sending thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Container, Optional

from .beamtime import ScanDirContext
from .checked import CheckedDatablocks
from .config import IngestorConfig
from .genpool import GenerationPool
from .journal import IntentJournal
from .listproto import Entry
from .metadata import MeasurementState
from .outcome import Done, EntryOutcome, Result, Step
from .prepare import PreparedScan, ScanPreparer
from .scicat.errors import InvalidDocumentError
from .send import ScanSender, SendResult
from .state import IngestedList, Stamps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Known:
    """What the ingested list and the intent journal say about a line before it runs."""

    previous: Optional[Stamps] = None  # the latest record, complete or not
    reference: Optional[Stamps] = None  # the latest complete record (re-ingestion)
    fresh: bool = False  # never recorded and never tried: certainly not in SciCat
    checks: Optional[CheckedDatablocks] = None  # datablocks known to match (the tool)


class EntryStages:
    """Metadata and publish stage of plain and re-ingested entries."""

    def __init__(self, cfg: IngestorConfig, preparer: ScanPreparer, pool: GenerationPool,
                 sender: ScanSender, *, dry_run: bool = False) -> None:
        self._cfg = cfg
        self._preparer = preparer
        self._pool = pool
        self._sender = sender
        self._dry_run = dry_run

    def known(self, entry: Entry, ingested: IngestedList, journal: IntentJournal,
              reingest: bool, checks: Optional[CheckedDatablocks] = None) -> Known:
        """Read what is known of ``entry``; a fresh line is journaled before it is sent.

        Fresh means: a plain line never recorded and never tried, so no request
        of it can have reached SciCat and the existence checks are skipped
        (README "SciCat access", "Three requests for a new scan").
        """
        previous = ingested.last_stamps(entry.line)
        reference = ingested.reference(entry.line) if reingest else None
        fresh = (previous is None and reference is None and not entry.is_reingest
                 and entry.line not in journal)
        sends = not self._dry_run and not (
            self._cfg.skip_scan_dataset_ingestion and not reingest)
        if fresh and sends:
            journal.add(entry.line)  # durable before the first request that creates anything
        return Known(previous, reference, fresh and sends, checks)

    def _prepare(self, ctx: ScanDirContext, entry: Entry, state: MeasurementState,
                 started: Container[str], **options: Any) -> PreparedScan:
        grouped = frozenset([entry.scanname]) if entry.scanname in started else frozenset()
        return self._pool.prepare(ctx, entry, state, grouped, **options)

    def ingest(self, ctx: ScanDirContext, entry: Entry, state: MeasurementState,
               started: Container[str], known: Known) -> Step:
        """Normal ingestion of a plain scan line (README "Dataset lists")."""
        prepared = self._prepare(ctx, entry, state, started,
                                 salvage=known.previous is None)
        if known.checks is not None and prepared.datablock_check is not None:
            known.checks.add(entry.line, prepared.datablock_check)
        previous = known.previous or Stamps(0, 0, 0)
        if self._cfg.skip_scan_dataset_ingestion:
            return EntryOutcome(ctx, entry, Result.UNCHANGED), Stamps(0, 0, 0)
        check_files(prepared)
        if self._dry_run:
            logger.info("dry run: would ingest %s (%s)", entry.scanname, prepared.pid)
            return EntryOutcome(ctx, entry, Result.DRY_RUN), None
        measurement = _measurement(state)

        def send() -> Done:  # the publish stage, in a sending thread
            dataset = self._sender.send_dataset(ctx, prepared, measurement, fresh=known.fresh)
            block, thumb = self._sender.send_children(dataset.pid, prepared, replace=False,
                                                      fresh=dataset.fresh)
            sent = SendResult(dataset.pid, True, prepared.dataset_mtime, block, thumb,
                              action=dataset.action)
            return finish(ctx, entry, sent, Stamps(0, previous.datablock, 0))
        return send

    def reingest(self, ctx: ScanDirContext, entry: Entry, state: MeasurementState,
                 started: Container[str], known: Known) -> Step:
        """Re-ingestion of one line (README "Re-ingestion"): send only what changed."""
        reference = known.reference
        checks = known.checks
        prepared = self._prepare(ctx, entry, state, started, refresh_datablock=True,
                                 checked=checks.get(entry.line) if checks else None,
                                 salvage=known.previous is None)
        if checks is not None and prepared.datablock_check is not None:
            checks.add(entry.line, prepared.datablock_check)
        last = reference or Stamps(0, 0, 0)
        send_dataset = reference is None or prepared.dataset_changed or (
            prepared.dataset_mtime > last.dataset
            and self._cfg.dataset_update_strategy != "no")
        send_datablocks = (reference is None or prepared.datablock.changed
                           or prepared.datablock.mtime > last.datablock)
        send_attachments = (reference is None or prepared.attachment.changed
                            or prepared.attachment.mtime > last.attachment)
        check_files(prepared)
        if not (send_dataset or send_datablocks or send_attachments):
            return EntryOutcome(ctx, entry, Result.UNCHANGED), reference
        if self._dry_run:
            logger.info(
                "dry run: would re-ingest %s (dataset=%s datablocks=%s attachments=%s)",
                entry.scanname, send_dataset, send_datablocks, send_attachments)
            return EntryOutcome(ctx, entry, Result.DRY_RUN), None
        measurement = _measurement(state)

        def send() -> Done:  # the publish stage, in a sending thread
            current, pid, action, blocks, fresh = prepared, prepared.pid, "", send_datablocks, False
            if send_dataset:
                dataset = self._sender.send_dataset(ctx, current, measurement, fresh=known.fresh)
                pid, action, fresh = dataset.pid, dataset.action, dataset.fresh
                if pid != current.pid and not current.datablock.multi:
                    # a new version: its datablock is made again
                    current = self._pool.run_local(
                        lambda: self._preparer.remake_datablock(ctx, entry, state, prepared))
                    blocks = True
            block, thumb = self._sender.send_children(
                pid, current, replace=True, datablocks=blocks, attachments=send_attachments,
                fresh=fresh)
            sent = SendResult(pid, send_dataset, current.dataset_mtime, block, thumb,
                              action=action)
            return finish(ctx, entry, sent, last)
        return send


def check_files(prepared: PreparedScan) -> None:
    """Both the dataset and the datablock file must exist and the dataset be usable."""
    if prepared.dataset_error:
        raise InvalidDocumentError(prepared.dataset_error)
    if prepared.dataset is None or not prepared.datablock.exists:
        raise InvalidDocumentError("no dataset metadata was generated")


def finish(ctx: ScanDirContext, entry: Entry, sent: SendResult,
           previous: Stamps) -> tuple[EntryOutcome, Stamps]:
    """The outcome and the stamps to record of a sent scan."""
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


def _measurement(state: MeasurementState) -> str:
    return state.measurement if state.active else ""
