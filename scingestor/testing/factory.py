"""Build beamtime directories with real NeXus, FIO, detector and PNG files."""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from typing import Any, Dict, Iterable, List, Optional, Sequence

import h5py
import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BEAMTIME_ID = "99001234"
DEFAULT_PROPOSAL_ID = "11112222"


def beamtime_metadata(beamtime_id: str = DEFAULT_BEAMTIME_ID,
                      proposal_id: str = DEFAULT_PROPOSAL_ID, beamline: str = "p00",
                      proposal_type: str = "I", core_path: Optional[str] = None,
                      owner_group: Optional[str] = None,
                      access_groups: Optional[Sequence[str]] = None,
                      facility: str = "PETRA III") -> Dict[str, Any]:
    """Return a beamtime metadata document: the content of ``beamtime-metadata-<id>.json``.

    ``core_path`` None gives the default ``/asap3/...`` path; ``""`` omits it.
    """
    if core_path is None:
        core_path = f"/asap3/petra3/gpfs/{beamline}/2024/data/{beamtime_id}"
    doc: Dict[str, Any] = {
        "beamtimeId": beamtime_id,
        "proposalId": proposal_id,
        "proposalType": proposal_type,
        "beamline": beamline,
        "beamlineAlias": beamline.upper(),
        "facility": facility,
        "title": "Demo beamtime title",
        "eventStart": "2024-03-04 09:00:00",
        "eventEnd": "2024-03-08 09:00:00",
        "generated": "2024-03-01 10:00:00",
        "leader": {"lastname": "Lead", "email": "leader@example.org", "username": "llead"},
        "pi": {"lastname": "Prince", "email": "pi@example.org", "username": "pprince"},
        "applicant": {"lastname": "Appl", "email": "applicant@example.org",
                      "username": "aappl"},
        "users": {"doorDb": ["aappl"], "special": [], "unknown": []},
    }
    if core_path:
        doc["corePath"] = core_path
    if owner_group is not None:
        doc["ownerGroup"] = owner_group
    if access_groups is not None:
        doc["accessGroups"] = list(access_groups)
    return doc


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    """Return a valid RGB PNG image of the given size (a colour gradient)."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width)
                        for v in ((x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1),
                                  128))
        for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _text(group: h5py.Group, name: str, value: str) -> h5py.Dataset:
    return group.create_dataset(name, data=value, dtype=h5py.string_dtype())


def _write_entry(entry: h5py.Group, title: str, points: int, start: str, end: str,
                 sample_id: str) -> None:
    entry.attrs["NX_class"] = "NXentry"
    _text(entry, "title", title)
    _text(entry, "start_time", start)
    _text(entry, "end_time", end)
    _text(entry, "program_name", "NexDaTaS")
    _text(entry, "experiment_description", 'technique: "saxs"')
    instrument = entry.create_group("instrument")
    instrument.attrs["NX_class"] = "NXinstrument"
    name = _text(instrument, "name", "PETRA III P00")
    name.attrs["short_name"] = "P00"
    detector = instrument.create_group("detector")
    detector.attrs["NX_class"] = "NXdetector"
    distance = detector.create_dataset("distance", data=1.25)
    distance.attrs["units"] = "m"
    sample = entry.create_group("sample")
    sample.attrs["NX_class"] = "NXsample"
    _text(sample, "name", "water")
    _text(sample, "chemical_formula", "H2O")
    _text(sample, "description", f'sample_id: "{sample_id}"')
    data = entry.create_group("data")
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = "counts"
    data.attrs["axes"] = "energy"
    energy = data.create_dataset("energy", data=np.linspace(8.9, 9.1, points))
    energy.attrs["units"] = "keV"
    grid = np.linspace(-3.0, 3.0, points)
    data.create_dataset("counts", data=(1000.0 * np.exp(-grid * grid) + 10.0))


class BeamtimeFactory:
    """Creates a beamtime directory under ``root`` and writes scans into it.

    ``beamtime_dir`` holds ``beamtime-metadata-<id>.json``; ``scandir``
    (default ``<beamtime_dir>/raw``) holds the scans and the dataset list.
    """

    def __init__(self, root: Any, beamtime_id: str = DEFAULT_BEAMTIME_ID,
                 proposal_id: str = DEFAULT_PROPOSAL_ID, beamline: str = "p00",
                 proposal_type: str = "I", core_path: Optional[str] = None,
                 owner_group: Optional[str] = None,
                 access_groups: Optional[Sequence[str]] = None, scan_subdir: str = "raw",
                 beamtime_subdir: str = "beamtime", write_metadata: bool = True) -> None:
        self.root = os.path.abspath(str(root))
        self.beamtime_id = beamtime_id
        self.proposal_id = proposal_id
        self.beamline = beamline
        self.beamtime_dir = os.path.join(self.root, beamtime_subdir)
        self.scandir = os.path.join(self.beamtime_dir, scan_subdir)
        self.metadata = beamtime_metadata(beamtime_id, proposal_id, beamline, proposal_type,
                                          core_path, owner_group, access_groups)
        os.makedirs(self.scandir, exist_ok=True)
        self.metadata_path = os.path.join(self.beamtime_dir,
                                          f"beamtime-metadata-{beamtime_id}.json")
        if write_metadata:
            self.write_metadata()

    # -- beamtime ------------------------------------------------------------------

    def write_metadata(self, **changes: Any) -> str:
        """(Re)write the beamtime metadata file, applying ``changes``; return its path."""
        self.metadata.update(changes)
        _write_atomic(self.metadata_path, json.dumps(self.metadata, indent=2).encode())
        return self.metadata_path

    def make_scandir(self, relpath: str) -> str:
        """Create a scan directory below the beamtime directory and return it."""
        path = os.path.join(self.beamtime_dir, relpath)
        os.makedirs(path, exist_ok=True)
        return path

    def _dir(self, scandir: Optional[str]) -> str:
        path = scandir or self.scandir
        os.makedirs(path, exist_ok=True)
        return path

    # -- scans ---------------------------------------------------------------------

    def write_nexus_scan(self, name: str, points: int = 100, detector_files: int = 0,
                         png: bool = False, multi_entries: Optional[Iterable[str]] = None,
                         subdir_layout: bool = False, scandir: Optional[str] = None,
                         title: str = "demo energy scan",
                         start_time: str = "2024-03-05T10:00:00+01:00",
                         end_time: str = "2024-03-05T10:05:00+01:00",
                         sample_id: str = "H2O/42") -> str:
        """Write ``<name>.nxs`` (or ``<name>/<name>.nxs`` with ``subdir_layout``).

        ``multi_entries`` writes one NXentry per name instead of ``scan``.
        Returns the master file path.
        """
        base = self._dir(scandir)
        folder = os.path.join(base, name) if subdir_layout else base
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{name}.nxs")
        entries = list(multi_entries) if multi_entries else ["scan"]
        tmp = path + ".part"
        with h5py.File(tmp, "w") as handle:
            for entry in entries:
                _write_entry(handle.create_group(entry), title, points, start_time, end_time,
                             sample_id)
        os.replace(tmp, path)
        self._extras(base, name, detector_files, png)
        return path

    def write_fio_scan(self, name: str, points: int = 3, detector_files: int = 0,
                       png: bool = False, scandir: Optional[str] = None,
                       ended: str = "Tue Mar  5 10:10:05 2024") -> str:
        """Write a FIO scan ``<name>.fio`` with comments, parameters and data."""
        base = self._dir(scandir)
        path = os.path.join(base, f"{name}.fio")
        lines = [
            "!", "! Comments", "!", "%c",
            f"dscan mot01 -1.0 1.0 {max(points - 1, 1)} 0.1",
            "user demo Acquisition started at Tue Mar  5 10:10:00 2024",
            "!", "! Parameter", "!", "%p",
            "energy = 8980.0", "sample = water",
            "!", "! Data", "!", "%d",
            " Col 1 mot01 DOUBLE", " Col 2 ct01 DOUBLE",
        ]
        for index in range(points):
            position = -1.0 + 2.0 * index / max(points - 1, 1)
            lines.append(f" {position:.4f} {10.0 + 50.0 * (1.0 - abs(position)):.1f}")
        lines.append(f"! Acquisition ended at {ended}")
        _write_atomic(path, ("\n".join(lines) + "\n").encode())
        self._extras(base, name, detector_files, png)
        return path

    def write_png(self, name: str, scandir: Optional[str] = None, width: int = 4,
                  height: int = 4) -> str:
        """Write ``<name>.png`` (a real image) and return its path."""
        path = os.path.join(self._dir(scandir), f"{name}.png")
        _write_atomic(path, png_bytes(width, height))
        return path

    def write_detector_files(self, name: str, count: int, scandir: Optional[str] = None,
                             detector: str = "pilatus", size: int = 64) -> List[str]:
        """Write ``count`` detector frames into ``<scan>/``; return their paths."""
        folder = os.path.join(self._dir(scandir), name)
        os.makedirs(folder, exist_ok=True)
        paths = []
        for index in range(count):
            path = os.path.join(folder, f"{detector}_{index:05d}.cbf")
            _write_atomic(path, bytes((index + i) % 256 for i in range(size)))
            paths.append(path)
        return paths

    def _extras(self, base: str, name: str, detector_files: int, png: bool) -> None:
        if detector_files:
            self.write_detector_files(name, detector_files, scandir=base)
        if png:
            self.write_png(name, scandir=base)

    # -- dataset list --------------------------------------------------------------

    def list_name(self) -> str:
        """Default dataset list file name."""
        return f"scicat-datasets-{self.beamtime_id}.lst"

    def ingested_name(self) -> str:
        """Default ingested list file name."""
        return f"scicat-ingested-datasets-{self.beamtime_id}.lst"

    def list_path(self, scandir: Optional[str] = None) -> str:
        """Path of the dataset list file in ``scandir`` (default scan dir)."""
        return os.path.join(scandir or self.scandir, self.list_name())

    def ingested_path(self, scandir: Optional[str] = None, var_dir: Optional[str] = None) -> str:
        """Path of the ingested list (``var_dir`` + scan dir when a var dir is used)."""
        directory = scandir or self.scandir
        if var_dir and var_dir != "/":
            directory = var_dir.rstrip("/") + directory
        return os.path.join(directory, self.ingested_name())

    def append_list(self, scandir: Optional[str], *lines: str) -> str:
        """Append records like Sardana: open for append, write ``\\n`` + record, close."""
        path = self.list_path(scandir)
        for line in lines:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("\n" + line)
        return path

    def read_ingested(self, scandir: Optional[str] = None,
                      var_dir: Optional[str] = None) -> List[str]:
        """Non-empty lines of the ingested list (empty list if absent)."""
        path = self.ingested_path(scandir, var_dir)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            return [line for line in handle.read().split("\n") if line.strip()]


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary name, then rename over ``path``."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
