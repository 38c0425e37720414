"""Beamtime metadata files and the paths derived from them for one scan directory."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import types
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from .config import IngestorConfig

logger = logging.getLogger(__name__)


class BeamtimeError(Exception):
    """A beamtime metadata file cannot be used (unreadable, not JSON, no id)."""


@dataclass(frozen=True)
class Beamtime:
    """One parsed ``beamtime-metadata-<id>.json`` file."""

    path: str
    metadata: Mapping[str, Any] = field(repr=False)
    owner_group: str
    access_groups: tuple[str, ...]

    @property
    def directory(self) -> str:
        """Directory holding the beamtime file (the beamtime directory)."""
        return os.path.dirname(self.path)

    @property
    def beamtime_id(self) -> str:
        return str(self.metadata["beamtimeId"])

    @property
    def proposal_id(self) -> str:
        return str(self.metadata.get("proposalId", ""))

    @property
    def beamline(self) -> str:
        return str(self.metadata.get("beamline", ""))

    @property
    def proposal_type(self) -> Optional[str]:
        value = self.metadata.get("proposalType")
        return None if value is None else str(value)

    @property
    def core_path(self) -> str:
        return str(self.metadata.get("corePath") or "")

    def has_own_groups(self) -> bool:
        """True when the file itself sets both ``ownerGroup`` and ``accessGroups``."""
        return "ownerGroup" in self.metadata and "accessGroups" in self.metadata

    def with_groups(
        self, owner_group: Optional[str], access_groups: Optional[list[str]]
    ) -> Beamtime:
        """Return a copy whose missing groups are completed (e.g. from a SciCat proposal)."""
        owner = self.owner_group
        access = self.access_groups
        if owner_group and "ownerGroup" not in self.metadata:
            owner = owner_group
        if access_groups and "accessGroups" not in self.metadata:
            access = tuple(str(group) for group in access_groups)
        return replace(self, owner_group=owner, access_groups=access)


def parse_beamtime(path: str, text: str) -> Beamtime:
    """Build a :class:`Beamtime` from the text of the file at ``path``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BeamtimeError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BeamtimeError(f"{path}: the top level is not a JSON object")
    if "beamtimeId" not in data or not str(data["beamtimeId"]).strip():
        raise BeamtimeError(f"{path}: the field 'beamtimeId' is missing")
    beamtime_id = str(data["beamtimeId"])
    beamline = str(data.get("beamline", ""))
    owner = str(data.get("ownerGroup") or f"{beamtime_id}-dmgt")
    groups = data.get("accessGroups")
    if isinstance(groups, list) and groups:
        access = tuple(str(group) for group in groups)
    else:
        access = (
            f"{beamtime_id}-dmgt",
            f"{beamtime_id}-clbt",
            f"{beamtime_id}-part",
            f"{beamline}dmgt",
            f"{beamline}staff",
        )
    return Beamtime(
        path=os.path.abspath(path),
        metadata=types.MappingProxyType(data),
        owner_group=owner,
        access_groups=access,
    )


def load_beamtime(path: str, retry_delay: float = 0.1) -> Beamtime:
    """Read and parse a beamtime file, trying once more after ``retry_delay``.

    The second try covers a file that is still being written.
    """
    last: Optional[Exception] = None
    for attempt in range(2):
        if attempt:
            time.sleep(retry_delay)
        try:
            with open(path, encoding="utf-8") as handle:
                return parse_beamtime(path, handle.read())
        except (OSError, UnicodeDecodeError, BeamtimeError) as exc:
            last = exc
    if isinstance(last, BeamtimeError):
        raise last
    raise BeamtimeError(f"{path}: cannot be read: {last}")


def is_beamtime_file_name(cfg: IngestorConfig, name: str) -> bool:
    """True if ``name`` (a base name) looks like a beamtime metadata file."""
    prefix, postfix = cfg.beamtime_filename_prefix, cfg.beamtime_filename_postfix
    return (
        name.startswith(prefix)
        and name.endswith(postfix)
        and len(name) >= len(prefix) + len(postfix)
    )


def _name_keywords(beamtime: Beamtime) -> dict[str, str]:
    return {"beamtimeid": beamtime.beamtime_id, "hostname": socket.gethostname()}


def list_file_name(cfg: IngestorConfig, beamtime: Beamtime) -> str:
    """Base name of the dataset list file of ``beamtime``."""
    return cfg.datasets_filename_pattern.format(**_name_keywords(beamtime))


def ingested_file_name(cfg: IngestorConfig, beamtime: Beamtime) -> str:
    """Base name of the ingested list file of ``beamtime``."""
    return cfg.ingested_datasets_filename_pattern.format(**_name_keywords(beamtime))


def var_dir(cfg: IngestorConfig, beamtime: Beamtime) -> str:
    """``ingestor_var_dir`` expanded for ``beamtime``; ``""`` when unset or ``/``."""
    raw = cfg.ingestor_var_dir or ""
    value = raw.format(
        beamtimeid=beamtime.beamtime_id,
        homepath=os.path.expanduser("~"),
        hostname=socket.gethostname(),
    )
    value = value.rstrip("/")
    return value


class BlacklistReader:
    """Beamtime-id blacklist file, re-read whenever it changes on disk."""

    def __init__(self, path: Optional[str]) -> None:
        self._path = path
        self._stamp: Optional[tuple[float, int]] = None
        self._ids: frozenset[str] = frozenset()

    def ids(self) -> frozenset[str]:
        """The blacklisted beamtime ids (empty if there is no file)."""
        if not self._path:
            return frozenset()
        try:
            stat = os.stat(self._path)
        except OSError:
            self._stamp, self._ids = None, frozenset()
            return self._ids
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            try:
                with open(self._path, encoding="utf-8", errors="replace") as handle:
                    self._ids = frozenset(line.strip() for line in handle if line.strip())
                self._stamp = stamp
            except OSError as exc:
                logger.warning("Beamtime id blacklist %s cannot be read: %s", self._path, exc)
        return self._ids


def is_blacklisted(cfg: IngestorConfig, beamtime: Beamtime, blacklist: BlacklistReader) -> bool:
    """True when the beamtime's proposal type or id is blacklisted."""
    ptype = beamtime.proposal_type
    if ptype is not None and ptype in cfg.beamtime_type_blacklist:
        return True
    return beamtime.beamtime_id in blacklist.ids()


class CorePaths:
    """Translation between the beamtime directory and its ``corePath`` form."""

    def __init__(self, cfg: IngestorConfig, beamtime: Beamtime) -> None:
        self.active = bool(cfg.use_corepath_as_scandir and beamtime.core_path)
        self.beamtime_dir = beamtime.directory
        self.core_dir = os.path.abspath(beamtime.core_path) if self.active else self.beamtime_dir

    def to_core(self, path: str) -> str:
        """Return ``path`` in core form (unchanged when core-path mode is off)."""
        return _swap_prefix(path, self.beamtime_dir, self.core_dir) if self.active else path

    def from_core(self, path: str) -> str:
        """Return ``path`` in beamtime-directory form."""
        return _swap_prefix(path, self.core_dir, self.beamtime_dir) if self.active else path


def _swap_prefix(path: str, old: str, new: str) -> str:
    if path == old:
        return new
    if path.startswith(old.rstrip("/") + "/"):
        return new.rstrip("/") + path[len(old.rstrip("/")) :]
    return path


@dataclass(frozen=True)
class ScanDirContext:
    """Everything about one scan directory that holds a dataset list file."""

    beamtime: Beamtime
    scandir: str
    scanpath: str
    list_path: str
    ingested_path: str
    metapath: str
    relpath: str
    beamtime_file: str

    @property
    def key(self) -> str:
        """Identity of the list (its path)."""
        return self.list_path


def scandir_context(cfg: IngestorConfig, beamtime: Beamtime, directory: str) -> ScanDirContext:
    """Compute the paths of a scan directory (``directory`` in beamtime form)."""
    core = CorePaths(cfg, beamtime)
    scandir = os.path.abspath(directory)
    scanpath = core.to_core(scandir)
    beamtime_file = core.to_core(beamtime.path)
    base = var_dir(cfg, beamtime)
    ingested_dir = base + scanpath if base else scanpath
    metapath = base + scanpath if (base and cfg.metadata_in_var_dir) else scanpath
    relpath = os.path.relpath(scanpath, core.core_dir)
    return ScanDirContext(
        beamtime=beamtime,
        scandir=scandir,
        scanpath=scanpath,
        list_path=os.path.join(scanpath, list_file_name(cfg, beamtime)),
        ingested_path=os.path.join(ingested_dir, ingested_file_name(cfg, beamtime)),
        metapath=metapath,
        relpath=relpath,
        beamtime_file=beamtime_file,
    )


def in_scandir_blacklist(cfg: IngestorConfig, core: CorePaths, directory: str) -> bool:
    """True when ``directory`` (either path form) is in ``scandir_blacklist``."""
    blacklist = cfg.scandir_blacklist
    if not blacklist:
        return False
    forms = {directory, core.to_core(directory), core.from_core(directory)}
    return any(form in blacklist for form in forms)
