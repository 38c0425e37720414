"""The service's list commands: measurements and re-ingestion, written as dataset-list records.

README "Measurements" and "Re-ingestion at the end of a beamtime" describe the
operations; docs/tango.md "Commands" the device commands that call them. Every
command resolves a scan directory, then decides and appends its records under the
list's lock through :mod:`scingestor.listproto`; the service owns one
:class:`ListCommands` and offers its methods under the same names.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, List, Tuple

from . import listproto
from .beamtime import Beamtime, ScanDirContext, scandir_context
from .config import IngestorConfig

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A command cannot be carried out (unknown scan directory, bad name, ...)."""


def check_name(name: str, subdir: bool = False) -> None:
    """THE name rule (:func:`scingestor.listproto.check_name`) as a :class:`ServiceError`."""
    try:
        listproto.check_name(name, subdir=subdir)
    except listproto.UnsafeNameError as exc:
        raise ServiceError(str(exc)) from None


#: What the service knows right now: the most recently active scan dir, the list
#: contexts and the beamtimes (copied under the service's lock).
Known = Tuple[str, List[ScanDirContext], List[Beamtime]]


class ListCommands:
    """The measurement and re-ingestion commands on the dataset list of one scan directory.

    ``known()`` returns what the service follows (:data:`Known`), ``watched(path)``
    whether the watcher follows the scan directory ``path``; ``list_written(ctx)`` is
    told after records were appended; ``reingest_beamtime(ctx)`` queues the
    re-ingestion of every list of ``ctx``'s beamtime.
    """

    def __init__(
        self,
        cfg: IngestorConfig,
        known: Callable[[], Known],
        watched: Callable[[str], bool],
        list_written: Callable[[ScanDirContext], None],
        reingest_beamtime: Callable[[ScanDirContext], None],
    ) -> None:
        self._cfg = cfg
        self._known = known
        self._watched = watched
        self._list_written = list_written
        self._reingest_beamtime = reingest_beamtime

    def context_for(self, scandir: str = "") -> ScanDirContext:
        """The list context of ``scandir`` (either path form); '' = the most recently active."""
        current, contexts, beamtimes = self._known()
        target = scandir or current
        if not target and len(contexts) == 1:
            return contexts[0]
        target = os.path.abspath(target) if target else ""
        for ctx in contexts:
            if target in (ctx.scandir, ctx.scanpath):
                return ctx
        if not target:
            raise ServiceError("no scan directory is active yet: give one")
        if self._watched(target):
            # a watched scan directory without a list file yet: the first record creates it
            owners = [
                bt
                for bt in beamtimes
                if target == bt.directory or target.startswith(bt.directory.rstrip("/") + "/")
            ]
            if owners:
                owner = max(owners, key=lambda bt: len(bt.directory))
                return scandir_context(self._cfg, owner, target)
        raise ServiceError(f"{scandir or target} is not a watched scan directory")

    def current_measurement(self, scandir: str = "") -> str:
        """The measurement open in the list of ``scandir`` ('' when none), read from the list."""
        return listproto.current_measurement(self.context_for(scandir).list_path)

    def append_records(self, ctx: ScanDirContext, records: list[str]) -> None:
        """Append records to a dataset list (:func:`scingestor.listproto.append_records`)."""
        self.update_list(ctx, lambda _entries: records)

    def update_list(self, ctx: ScanDirContext,
                    decide: Callable[[list[listproto.Entry]], list[str]]) -> list[str]:
        """Read the list, decide the records and append them, under the list's lock."""
        try:
            records = listproto.update_list(ctx.list_path, decide)
        except listproto.UnsafeNameError as exc:
            raise ServiceError(str(exc)) from None
        except listproto.ListWriteError:
            raise
        except listproto.ListProtocolError as exc:
            raise ServiceError(str(exc)) from None
        logger.info("Appended %s to %s", records, ctx.list_path)
        self._list_written(ctx)
        return records

    def start_measurement(self, name: str, scandir: str = "") -> str:
        """Close the open measurement (if any) and open ``name``; returns the scan dir."""
        check_name(name)
        ctx = self.context_for(scandir)
        self.update_list(
            ctx, lambda entries: listproto.start_lines(listproto.measurement_of(entries), name))
        return ctx.scanpath

    def stop_measurement(self, scandir: str = "") -> str:
        """Close the open measurement and ask for its dataset; returns its name ('' if none)."""
        ctx = self.context_for(scandir)
        stopped: list[str] = []

        def decide(entries: list[listproto.Entry]) -> list[str]:
            current = listproto.measurement_of(entries) or ""
            stopped.append(current)
            return listproto.stop_lines(current)

        self.update_list(ctx, decide)
        return stopped[0]

    def update_measurement(self, scandir: str = "") -> str:
        """Send the open measurement's dataset now and keep it open."""
        ctx = self.context_for(scandir)
        updated: list[str] = []

        def decide(entries: list[listproto.Entry]) -> list[str]:
            current = listproto.measurement_of(entries)
            if not current:
                raise ServiceError(f"no measurement is open in {ctx.scanpath}")
            updated.append(current)
            return listproto.update_lines(current)

        self.update_list(ctx, decide)
        return updated[0]

    def make_measurement(self, name: str, scandir: str = "") -> str:
        """Start ``name`` and add the last scan of the list to it."""
        check_name(name)
        ctx = self.context_for(scandir)

        def decide(entries: list[listproto.Entry]) -> list[str]:
            scan = listproto.last_scan(entries)
            if scan is None:
                raise ServiceError(f"{ctx.list_path} has no scan to add to {name!r}")
            return listproto.make_lines(listproto.measurement_of(entries), name, scan)

        self.update_list(ctx, decide)
        return ctx.scanpath

    def reingest(self, scan: str = "", scandir: str = "") -> str:
        """Re-ingest one scan (a ``scan:ts`` line) or, with '', every scan of the beamtime."""
        ctx = self.context_for(scandir)
        if scan:
            check_name(scan, subdir=True)
            self.update_list(ctx, lambda _entries: [listproto.reingest_record(scan)])
            return scan
        self._reingest_beamtime(ctx)
        return ctx.beamtime.beamtime_id


class CommandMethods:
    """The commands under the service's own names (a base class of
    :class:`scingestor.service.IngestorService`, which sets ``_commands``)."""

    _commands: ListCommands

    def context_for(self, scandir: str = "") -> ScanDirContext:
        """The list context of ``scandir`` (either path form); '' = the most recently active."""
        return self._commands.context_for(scandir)

    def current_measurement(self, scandir: str = "") -> str:
        """The measurement open in the list of ``scandir`` ('' when none), read from the list."""
        return self._commands.current_measurement(scandir)

    def append_records(self, ctx: ScanDirContext, records: list[str]) -> None:
        """Append records to a dataset list (:func:`scingestor.listproto.append_records`)."""
        self._commands.append_records(ctx, records)

    def start_measurement(self, name: str, scandir: str = "") -> str:
        """Close the open measurement (if any) and open ``name``; returns the scan dir."""
        return self._commands.start_measurement(name, scandir)

    def stop_measurement(self, scandir: str = "") -> str:
        """Close the open measurement and ask for its dataset; returns its name ('' if none)."""
        return self._commands.stop_measurement(scandir)

    def update_measurement(self, scandir: str = "") -> str:
        """Send the open measurement's dataset now and keep it open."""
        return self._commands.update_measurement(scandir)

    def make_measurement(self, name: str, scandir: str = "") -> str:
        """Start ``name`` and add the last scan of the list to it."""
        return self._commands.make_measurement(name, scandir)

    def reingest(self, scan: str = "", scandir: str = "") -> str:
        """Re-ingest one scan (a ``scan:ts`` line) or, with '', every scan of the scan dir."""
        return self._commands.reingest(scan, scandir)
