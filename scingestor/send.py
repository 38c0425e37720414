"""The publish stage: one :class:`PreparedScan` → SciCat → one :class:`SendResult`.

Transient SciCat errors and login failures propagate (the batch waits); a
refusal of the dataset propagates too (the scan failed); a refusal of a
datablock or thumbnail, or an unusable file, is kept in the result so that
the rest of the scan still goes in (README "SciCat access").
"""

from __future__ import annotations

import enum
import logging
from concurrent.futures import Executor, wait
from dataclasses import dataclass
from typing import Callable, Optional

from .beamtime import ScanDirContext
from .metadata import MetadataGenerator
from .prepare import MetadataPart, PreparedScan
from .scicat.errors import InvalidDocumentError, SciCatAuthError, SciCatError, TransientError
from .scicat.publish import DatasetPublisher, DatasetResult, SyncResult
from .state import Stamps

logger = logging.getLogger(__name__)


class PartState(enum.Enum):
    """What happened to a datablock or attachment file."""

    NOT_SENT = "not sent"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class PartResult:
    state: PartState = PartState.NOT_SENT
    mtime: float = 0.0
    error: str = ""
    count: int = 0  # objects posted or rewritten on the server

    def stamp(self, previous: float) -> float:
        """The ingested-list stamp: the file's mtime, ``-1`` failed, else ``previous``."""
        if self.state is PartState.SENT:
            return self.mtime
        if self.state is PartState.FAILED:
            return -1
        return previous


@dataclass(frozen=True)
class SendResult:
    """What the publish stage did with one scan."""

    pid: str
    dataset_sent: bool
    dataset_mtime: float
    datablock: PartResult = PartResult()
    attachment: PartResult = PartResult()
    action: str = ""  # what happened to the dataset (DatasetResult.action), "" not sent

    @property
    def errors(self) -> list[str]:
        return [part.error for part in (self.datablock, self.attachment) if part.error]

    def stamps(self, previous: Stamps) -> Stamps:
        """The ingested-list record of this result (``previous`` for what was not sent)."""
        return Stamps(self.dataset_mtime if self.dataset_sent else previous.dataset,
                      self.datablock.stamp(previous.datablock),
                      self.attachment.stamp(previous.attachment))


class ScanSender:
    """Sends a prepared scan's dataset, datablocks and thumbnails."""

    def __init__(self, publisher: DatasetPublisher, generator: MetadataGenerator,
                 *, ingest_attachments: bool,
                 parts: Optional[Callable[[], Optional[Executor]]] = None) -> None:
        self._publisher = publisher
        self._generator = generator
        self._ingest_attachments = ingest_attachments
        self._parts = parts or (lambda: None)

    def send_dataset(self, ctx: ScanDirContext, prepared: PreparedScan,
                     measurement: str, *, fresh: bool = False) -> DatasetResult:
        """Create/update the dataset (``fresh``: certainly never sent, no existence check).

        The result's pid may differ from the file's (a new version).
        """
        if prepared.dataset is None:
            raise InvalidDocumentError(prepared.dataset_error
                                       or "no dataset metadata was generated")
        result = self._publisher.ingest_dataset(
            prepared.dataset,
            beamtime_id=ctx.beamtime.beamtime_id,
            proposal_id_expected=self._generator.expected_proposal_id(ctx),
            measurement=measurement,
            fresh=fresh,
        )
        logger.info("Dataset %s: %s", result.pid, result.action)
        return result

    def send_children(self, pid: str, prepared: PreparedScan, *, replace: bool,
                      datablocks: bool = True, attachments: bool = True,
                      fresh: bool = False) -> tuple[PartResult, PartResult]:
        """Synchronise datablocks and thumbnails of dataset ``pid``.

        ``fresh``: the dataset was created just now, so it has none (no listing).
        """
        def block() -> PartResult:
            if not datablocks:
                return PartResult()
            return _send_part("datablock", prepared.datablock, lambda docs: (
                self._publisher.sync_datablocks(pid, docs, replace=replace, fresh=fresh)))

        def thumb() -> PartResult:
            if not (attachments and self._ingest_attachments and prepared.attachment.exists):
                return PartResult()
            return _send_part("attachment", prepared.attachment, lambda docs: (
                self._publisher.sync_attachments(pid, docs, replace_all=replace,
                                                 fresh=fresh)))

        executor = self._parts()
        if executor is None or not datablocks:
            return block(), thumb()
        # independent of each other once the dataset exists: both in flight at once
        pending = executor.submit(thumb)
        try:
            sent = block()
        finally:
            wait([pending])
        return sent, pending.result()


def _send_part(what: str, part: MetadataPart,
               send: Callable[[list[dict]], SyncResult]) -> PartResult:
    if part.error:
        return PartResult(PartState.FAILED, error=f"{what}: {part.error}")
    try:
        synced = send(list(part.documents))
    except (TransientError, SciCatAuthError):
        raise
    except SciCatError as exc:
        return PartResult(PartState.FAILED, error=f"{what}: {exc}")
    if not part.exists:
        return PartResult()
    return PartResult(PartState.SENT, part.mtime, count=synced.posted + synced.updated)
