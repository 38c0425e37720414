"""What happened to one list entry, and the postponement of a pass (README "SciCat access")."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

from .beamtime import ScanDirContext
from .listproto import Entry
from .state import Stamps


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


#: An entry's outcome and the stamps to record (None: nothing is recorded).
Done = Tuple[EntryOutcome, Optional[Stamps]]
#: What the metadata stage of an entry gives: a result, or the publish stage still to run.
Step = Union[Done, Callable[[], Done]]
