"""``scingestor-demo``: the ingestor end to end on an embedded SciCat-compatible server.

Starts the development server on 127.0.0.1, writes a demo beamtime with real
NeXus and FIO scans, runs the ingestion service, appends scans to the dataset
list the way Sardana does, and prints what arrived in the catalogue.

With ``--full`` the beamline set-up instead: a SQLite Tango database, the
SciCatIngestor device server, a Sardana server with dummy elements and the
scingestor macros, and a measurement of two ``ascan``s run through the Door
(see docs/demo.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Optional, Sequence

from .config import config_from_mapping
from .logsetup import setup_logging
from .service import IngestorService
from .testing import BeamtimeFactory, start_dev_server
from .testing.setup import config_mapping, wait_for

logger = logging.getLogger(__name__)


def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_demo(workdir: str, scans: int) -> int:
    """Run the demo in ``workdir``; returns 0 when every scan arrived."""
    server = start_dev_server()
    service: Optional[IngestorService] = None
    try:
        _print(f"SciCat-compatible dev server: {server.url}")
        factory = BeamtimeFactory(workdir)
        _print(f"Demo beamtime {factory.beamtime_id}: {factory.beamtime_dir}")
        cfg = config_from_mapping(config_mapping(factory, server.url))
        service = IngestorService(cfg)
        factory.append_list(None)
        service.start()
        _print(f"Ingestor watching: {', '.join(service.watched_scandirs())}")
        names = []
        for index in range(1, scans + 1):
            name = f"demo_{index:05d}"
            if index % 3 == 0:
                factory.write_fio_scan(name, points=20)
            else:
                factory.write_nexus_scan(name, points=100, png=True, detector_files=3)
            names.append(name)
            started = time.monotonic()
            factory.append_list(None, name)
            _print(f"  appended {name} to {factory.list_name()}")
            wait_for(lambda n=name: server.dataset(f"{factory.beamtime_id}/{n}"), timeout=60)
            _print(f"  -> in SciCat after {time.monotonic() - started:.2f} s")
        service.wait_idle(30)
        _print()
        _print("Datasets in the catalogue:")
        for doc in server.datasets():
            pid = doc["pid"]
            files = sum(len(b.get("dataFileList", [])) for b in server.datablocks(pid))
            attachments = len(server.attachments(pid))
            _print(
                f"  {pid:28} {doc.get('type', ''):8} files={files:<3} "
                f"attachments={attachments} title={doc.get('description', '')!r}"
            )
        status = service.status()
        _print()
        _print(f"Ingestor status: {status.state.value}: {status.status}")
        _print(
            f"  ingested={status.ingested_count} failed={status.failed_count} "
            f"last={status.last_ingested_scan}"
        )
        arrived = all(server.dataset(f"{factory.beamtime_id}/{name}") for name in names)
        return 0 if arrived else 1
    finally:
        if service is not None:
            service.stop()
        server.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scingestor-demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scans", type=int, default=4,
                        help="number of scans of the plain demo (default 4)")
    parser.add_argument(
        "--full", action="store_true",
        help="the full beamline demo: Tango database, SciCatIngestor device, Sardana "
             "server, a measurement of two ascans run through the Door")
    parser.add_argument(
        "--workdir", default=None, help="directory for the demo beamtime (default: a temporary one)"
    )
    parser.add_argument("-l", "--log", default="warning", help="log level (default warning)")
    options = parser.parse_args(argv)
    setup_logging(options.log)
    if options.workdir is not None:
        os.makedirs(options.workdir, exist_ok=True)
    workdir = options.workdir or tempfile.mkdtemp(prefix="scingestor-demo-")
    try:
        if options.full:
            from .demo_full import run_full_demo

            return run_full_demo(workdir, keep_workdir=options.workdir is not None)
        return run_demo(workdir, options.scans)
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
