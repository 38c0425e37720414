"""One pass over every configured beamtime: re-ingest what changed (``scicat_dataset_ingest``)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import tree
from .beamtime import BeamtimeError, BlacklistReader, ScanDirContext, load_beamtime, scandir_context
from .config import IngestorConfig
from .credentials import CredentialSource
from .listproto import read_entries
from .pipeline import BatchPostponed, EntryOutcome, ListProcessor
from .runner import GeneratorRunner
from .scicat.client import SciCatClient
from .scicat.publish import DatasetPublisher

logger = logging.getLogger(__name__)


@dataclass
class Summary:
    """What one pass did."""

    lists: int = 0
    ingested: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems


def find_lists(cfg: IngestorConfig, summary: Summary) -> list[ScanDirContext]:
    """Every dataset list the daemon would watch, beamtime by beamtime, in walk order.

    The directories, beamtime files and scan directories are chosen by
    :mod:`scingestor.tree`, the daemon's rules: ``beamtime_dirs`` and the
    sub-directories of ``beamtime_base_dir``, the blacklists, ``max_scandir_depth``,
    ``watch_scandir_subdir``, and no descent below a ``scandir_blacklist``
    directory. Problems (unreadable directories or beamtime files) are logged
    and added to ``summary``.
    """

    def problem(text: str) -> None:
        summary.problems.append(text)
        logger.warning("%s", text)

    blacklist = BlacklistReader(cfg.beamtimeid_blacklist_file)
    contexts: list[ScanDirContext] = []
    seen: set[str] = set()
    for directory in tree.beamtime_dirs(cfg, problem):
        logger.info("DatasetIngest: beamtime path: %s", directory)
        try:
            files = tree.beamtime_files(cfg, directory)
        except (OSError, ValueError) as exc:
            problem(f"{directory}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if tree.beamtime_dir_blacklisted(cfg, directory):
            continue
        for path in sorted(files):
            logger.info("DatasetIngest: beamtime file: %s", os.path.basename(path))
            try:
                beamtime = load_beamtime(path)
            except BeamtimeError as exc:
                problem(str(exc))
                continue
            if tree.beamtime_excluded(cfg, beamtime, blacklist):
                continue
            policy = tree.ScanPolicy.for_beamtime(cfg, beamtime)
            for scandir in tree.find_list_dirs(policy, beamtime.directory, logger.warning):
                ctx = scandir_context(cfg, beamtime, scandir)
                if ctx.list_path in seen:
                    continue
                seen.add(ctx.list_path)
                logger.info("DatasetIngest: dataset list: %s", ctx.list_path)
                contexts.append(ctx)
    return contexts


def count_entries(contexts: list[ScanDirContext]) -> int:
    """Number of scan lines (commands excluded) in the lists."""
    total = 0
    for ctx in contexts:
        try:
            total += sum(1 for entry in read_entries(ctx.list_path) if not entry.is_command)
        except OSError:
            continue
    return total


class Reingestor:
    """Runs the re-ingestion pass with the same pipeline as the daemon."""

    def __init__(
        self,
        cfg: IngestorConfig,
        *,
        dry_run: bool = False,
        on_outcome: Optional[Callable[[EntryOutcome], None]] = None,
    ) -> None:
        credentials = None
        if cfg.ingestor_credential_file:
            credentials = CredentialSource(cfg.ingestor_credential_file, cfg.ingestor_username)
        self._cfg = cfg
        self._stop = threading.Event()
        self._client = SciCatClient(cfg, credentials, stop_event=self._stop)
        self._on_outcome = on_outcome
        self._processor = ListProcessor(
            cfg,
            DatasetPublisher(cfg, self._client),
            GeneratorRunner(cfg),
            on_outcome=self._outcome,
            stop_event=self._stop,
            dry_run=dry_run,
        )
        self._summary = Summary()

    def stop(self) -> None:
        """Ask the pass to end after the current entry."""
        self._stop.set()

    def _outcome(self, outcome: EntryOutcome) -> None:
        summary = self._summary
        if outcome.ok and outcome.skipped:
            summary.unchanged += 1
        elif outcome.ok:
            summary.ingested += 1
        else:
            summary.failed += 1
            summary.failures.append(
                f"{outcome.ctx.list_path}: {outcome.entry.line}: {outcome.error}"
            )
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def run(self, contexts: list[ScanDirContext], summary: Summary) -> Summary:
        """Re-ingest every list; beamtimes and lists are independent of each other."""
        self._summary = summary
        try:
            for ctx in contexts:
                if self._stop.is_set():
                    break
                summary.lists += 1
                try:
                    self._processor.process(ctx, reingest_all=True)
                except BatchPostponed as exc:
                    summary.problems.append(f"{ctx.list_path}: SciCat not usable: {exc}")
                    logger.error("%s: SciCat not usable: %s", ctx.list_path, exc)
                except OSError as exc:
                    summary.problems.append(f"{ctx.list_path}: {exc}")
                    logger.warning("%s", exc)
        finally:
            self._processor.close()
            self._client.close()
        return summary
