"""What the recent history costs the daemon (issue 13): CPU per outcome, memory when full.

Used by ``bench/run.py`` (figures "history CPU per scan" and "history memory, full";
bench/README.md says how they are measured). Both are measured in this process on the
real code: an :class:`~scingestor.service.IngestorService` that is built but not
started records outcomes through its own outcome path
(``RecentScans._record_outcome``: the history and the failed set), and after each one
reads what a status update and a reader of ``RecentIngestions``/``FailedScans`` read.
"""

from __future__ import annotations

import dataclasses
import gc
import time
import tracemalloc
from dataclasses import dataclass
from typing import List, Optional, Tuple

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.history import HISTORY_LENGTH, History, IngestionRecord, result_of
from scingestor.listproto import parse_entry
from scingestor.pipeline import EntryOutcome, Result
from scingestor.service import RATE_WINDOW, IngestorService
from scingestor.testing import BeamtimeFactory
from scingestor.testing.setup import config_mapping

#: One outcome in ``FAIL_EVERY`` fails (SciCat refuses it); its re-ingestion succeeds
#: ``FAIL_EVERY // 2`` outcomes later, so both failed-set updates are exercised.
FAIL_EVERY = 10
MESSAGE = ("SciCat refused the dataset (HTTP 400): contactEmail must be an email; "
           "scientificMetadata.title should not be empty")


@dataclass
class HistoryCost:
    outcomes: int
    cpu_us: float  # CPU microseconds per outcome (record + reads)
    record_us: float  # of which: recording the outcome (history + failed set)
    records_kb: float  # a full history: HISTORY_LENGTH records
    buckets_kb: float  # the rate buckets of an hour with a success every second
    failed_max: int  # the largest failed set seen while timing


def _outcomes(factory: BeamtimeFactory, service: IngestorService, count: int,
              ) -> List[EntryOutcome]:
    cfg = service._cfg
    ctx = scandir_context(cfg, load_beamtime(factory.metadata_path), factory.scandir)
    outcomes = []
    for number in range(count):
        name = f"scan_{number:05d}"
        if number % FAIL_EVERY == 0:
            outcomes.append(EntryOutcome(ctx, parse_entry(name), Result.FAILED, MESSAGE,
                                         recorded=True))
        else:
            retried = number % FAIL_EVERY == FAIL_EVERY // 2
            line = f"scan_{number - FAIL_EVERY // 2:05d}:{1e9 + number}" if retried else name
            entry = parse_entry(line)
            outcomes.append(EntryOutcome(ctx, entry, Result.INGESTED, pid=f"99001001/{name}",
                                         action="created", datablocks=1, thumbnails=1))
    return outcomes


def _cpu_per_outcome(service: IngestorService, outcomes: List[EntryOutcome],
                     reads: bool) -> tuple[float, int]:
    history, failed = service._history, service._failed
    largest = 0
    gc.collect()
    started = time.process_time()
    for outcome in outcomes:
        service._record_outcome(outcome)
        if reads:  # what a status update (service._compose) and the device read
            (history.version, failed.version, len(failed), failed.pending(),
             history.rate(window=RATE_WINDOW), history.last_success())
            service.history()
            largest = max(largest, len(service.failed_scans()))
    spent = time.process_time() - started
    return spent / len(outcomes) * 1e6, largest


def _retained_kb(build) -> float:
    """KB still allocated after ``build()`` ran (what the object it returns keeps)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / 1024


def _full_history(factory: BeamtimeFactory, service: IngestorService,
                  with_buckets: bool) -> History:
    """A full history as the service fills it (records made as ``_record_outcome`` does)."""
    now = time.time()
    history = History(clock=lambda: now)
    records = []
    for outcome in _outcomes(factory, service, HISTORY_LENGTH):
        ctx, entry = outcome.ctx, outcome.entry
        records.append(IngestionRecord(
            now, ctx.scandir, ctx.list_path, entry.scanname, entry.line, outcome.pid,
            result_of(not outcome.ok, outcome.action, outcome.datablocks, outcome.thumbnails),
            outcome.datablocks, outcome.thumbnails, outcome.error))
    if with_buckets:  # a success every second for an hour: the most rate buckets kept
        for second in range(3600):
            history.add(dataclasses.replace(records[1], time=now - 3600 + second))
    for record in records:  # the 200 kept records (the fillers above are pushed out)
        history.add(record)
    return history


def measure(factory: BeamtimeFactory, scicat_url: str, outcomes: int) -> HistoryCost:
    """Time ``outcomes`` outcomes through the real outcome path; size a full history."""
    cfg = config_from_mapping(config_mapping(factory, scicat_url,
                                             retry_failed_dataset_ingestion=False))
    service = IngestorService(cfg)  # not started: nothing else runs in it
    batch = _outcomes(factory, service, outcomes)
    _cpu_per_outcome(service, batch[: min(len(batch), 1000)], reads=True)  # warm-up
    service._history.clear()
    service._failed.clear()
    record_us, _ = _cpu_per_outcome(service, batch, reads=False)
    service._history.clear()
    service._failed.clear()
    cpu_us, largest = _cpu_per_outcome(service, batch, reads=True)
    records_kb = _retained_kb(lambda: _full_history(factory, service, False))
    with_buckets_kb = _retained_kb(lambda: _full_history(factory, service, True))
    return HistoryCost(outcomes, cpu_us, record_us, records_kb, with_buckets_kb - records_kb,
                       largest)


def device_json_us(factory: BeamtimeFactory, scicat_url: str, repeat: int) -> Optional[float]:
    """CPU µs of the device's ``RecentIngestions`` text of a full history (made once per
    change of the history); ``None`` without PyTango (``tango_ds`` needs it)."""
    try:
        from tango_ds.recent import recent_json
    except ImportError:
        return None
    cfg = config_from_mapping(config_mapping(factory, scicat_url))
    history = _full_history(factory, IngestorService(cfg), False)

    class Reader:  # what recent_json asks of the service
        def history(self) -> Tuple[IngestionRecord, ...]:
            return history.records()

    reader = Reader()
    started = time.process_time()
    for _ in range(repeat):
        recent_json(reader, "https://scicat.example.org")  # type: ignore[arg-type]
    return (time.process_time() - started) / repeat * 1e6
