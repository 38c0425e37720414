"""The list processor on its own: one ``ListProcessor`` over real files, generators and server.

No service, no watcher thread: each test calls :meth:`ListProcessor.process` itself
and checks what the dev server holds, the ingested list and the returned results
(README "Dataset lists", "Measurements", "Re-ingestion at the end of a beamtime",
"SciCat access"; docs/architecture.md, ``pipeline.py``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from scingestor import pipeline
from scingestor.beamtime import ScanDirContext, load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.credentials import CredentialSource
from scingestor.pipeline import BatchPostponed, EntryOutcome, ListProcessor, Result
from scingestor.runner import GeneratorRunner
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.publish import DatasetPublisher
from scingestor.testing.setup import config_mapping

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")

WRITES = ("POST", "PATCH", "PUT", "DELETE")


class Clock:
    """Stands in for the ``time`` module of :mod:`scingestor.pipeline` (back-off deadlines)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    @staticmethod
    def monotonic() -> float:  # durations, not deadlines: untouched
        return time.monotonic()


class Pipe:
    """A processor, its list context, the outcomes it reported and the stop event."""

    def __init__(self, processor: ListProcessor, ctx: ScanDirContext,
                 outcomes: List[EntryOutcome], stop: threading.Event) -> None:
        self.processor = processor
        self.ctx = ctx
        self.outcomes = outcomes
        self.stop = stop

    def process(self, **kwargs: Any) -> pipeline.ListResult:
        self.outcomes.clear()
        return self.processor.process(self.ctx, **kwargs)

    def results(self) -> Dict[str, Tuple[Result, bool]]:
        """``{line: (result, recorded)}`` of the last pass."""
        return {o.entry.line: (o.result, o.recorded) for o in self.outcomes}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The pipeline's clock; move ``clock.offset`` forward instead of sleeping."""
    fake = Clock()
    monkeypatch.setattr(pipeline, "time", fake)
    return fake


@pytest.fixture
def make_pipe(beamtime_factory, scicat_server) -> Iterator[Callable[..., Pipe]]:
    """Build a :class:`Pipe` for the factory's scan directory; keywords override the config."""
    clients: List[SciCatClient] = []
    processors: List[ListProcessor] = []

    def make(*, dry_run: bool = False,
             on_outcome: Optional[Callable[[EntryOutcome], None]] = None,
             **overrides: Any) -> Pipe:
        overrides.setdefault("max_request_tries_number", 1)
        cfg = config_from_mapping(config_mapping(beamtime_factory, scicat_server.url,
                                                 **overrides))
        stop = threading.Event()
        client = SciCatClient(cfg, CredentialSource(cfg.ingestor_credential_file,
                                                    cfg.ingestor_username), stop_event=stop)
        clients.append(client)
        outcomes: List[EntryOutcome] = []

        def report(outcome: EntryOutcome) -> None:
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        processor = ListProcessor(cfg, DatasetPublisher(cfg, client), GeneratorRunner(cfg),
                                  on_outcome=report, stop_event=stop, dry_run=dry_run)
        processors.append(processor)
        ctx = scandir_context(cfg, load_beamtime(beamtime_factory.metadata_path),
                              beamtime_factory.scandir)
        return Pipe(processor, ctx, outcomes, stop)

    yield make
    for processor in processors:
        processor.close()  # its sending threads and metadata workers
    for client in clients:
        client.close()


def records(f) -> List[Tuple[str, List[float]]]:
    """The ingested list as ``(line, [t_ds, t_db, t_at])`` pairs, in file order."""
    out = []
    for text in f.read_ingested():
        words = text.split(" ")
        out.append((" ".join(words[:-3]), [float(word) for word in words[-3:]]))
    return out


def writes(server) -> List[Tuple[str, str]]:
    """Successful writes SciCat received (login excluded), as ``(method, v3 path)``."""
    return [(r.method, r.v3_path) for r in server.requests
            if r.method in WRITES and 200 <= r.status < 300 and "login" not in r.path.lower()]


def pid(name: str) -> str:
    return f"{BT}/{name}"


def scans(f, *names: str, png: bool = True) -> None:
    for name in names:
        f.write_nexus_scan(name, png=png)


# -- plain lines ----------------------------------------------------------------------------

def test_plain_lines_go_in_with_datablocks_thumbnails_and_records(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    pipe = make_pipe()
    result = pipe.process()
    assert (result.processed, result.ingested, result.failed) == (2, 2, 0)
    assert result.retry_at is None and result.measurement is None
    assert pipe.results() == {"scan_00001": (Result.INGESTED, False),
                              "scan_00002": (Result.INGESTED, False)}
    assert {o.pid for o in pipe.outcomes} == {pid("scan_00001"), pid("scan_00002")}
    for name in ("scan_00001", "scan_00002"):
        assert scicat_server.dataset(pid(name)) is not None
        assert len(scicat_server.datablocks(pid(name))) == 1
        assert len(scicat_server.attachments(pid(name))) == 1
    recorded = records(f)
    assert [line for line, _ in recorded] == ["scan_00001", "scan_00002"]
    for line, stamps in recorded:
        base = os.path.join(f.scandir, line)
        assert stamps == [os.stat(base + ".scan.json").st_mtime,
                          os.stat(base + ".origdatablock.json").st_mtime,
                          os.stat(base + ".attachment.json").st_mtime]


def test_an_ingested_line_is_skipped(beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001")
    f.append_list(None, "scan_00001")
    pipe = make_pipe()
    pipe.process()
    before = f.read_ingested()
    scicat_server.clear_requests()
    result = pipe.process()
    assert (result.processed, result.ingested, result.unchanged) == (0, 0, 0)
    assert pipe.outcomes == []
    assert scicat_server.requests == []
    assert f.read_ingested() == before
    # a fresh processor (a restart) reads the same decision from the ingested list
    again = make_pipe()
    assert again.process().processed == 0
    assert scicat_server.requests == []


# -- failures -------------------------------------------------------------------------------

def test_rejected_scan_is_recorded_failed_and_retried_after_its_backoff(
        beamtime_factory, scicat_server, make_pipe, clock):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    scicat_server.faults.fail_next(status=400, body={"message": "owner must be a string"},
                                   method="POST", path="datasets$")
    pipe = make_pipe(retry_backoff_initial=300, retry_backoff_max=600)
    start = time.time()
    result = pipe.process()
    assert (result.ingested, result.failed) == (1, 1)
    assert pipe.results() == {"scan_00001": (Result.FAILED, True),
                              "scan_00002": (Result.INGESTED, False)}
    assert "owner must be a string" in result.errors[0]
    assert start + 300 <= result.retry_at <= time.time() + 300
    assert scicat_server.dataset(pid("scan_00001")) is None
    assert scicat_server.dataset(pid("scan_00002")) is not None
    assert records(f)[0] == ("scan_00001", [-1, 0, 0])

    # before the back-off is over nothing is asked
    scicat_server.clear_requests()
    waiting = pipe.process()
    assert (waiting.processed, waiting.waiting) == (0, 1)
    assert waiting.retry_at == result.retry_at
    assert writes(scicat_server) == []

    clock.offset = 301
    retried = pipe.process()
    assert (retried.processed, retried.ingested, retried.waiting) == (1, 1, 0)
    assert retried.retry_at is None
    assert pipe.results() == {"scan_00001": (Result.INGESTED, False)}
    assert scicat_server.dataset(pid("scan_00001")) is not None
    assert len(scicat_server.datablocks(pid("scan_00001"))) == 1
    line, stamps = records(f)[-1]
    assert line == "scan_00001" and min(stamps) > 0


def test_no_retry_of_a_rejected_scan_when_retries_are_off(
        beamtime_factory, scicat_server, make_pipe, clock):
    f = beamtime_factory
    scans(f, "scan_00001")
    f.append_list(None, "scan_00001")
    scicat_server.faults.fail_next(status=400, method="POST", path="datasets$")
    pipe = make_pipe(retry_failed_dataset_ingestion=False)
    result = pipe.process()
    assert result.failed == 1 and result.retry_at is None
    clock.offset = 3600
    assert pipe.process().processed == 0
    assert scicat_server.dataset(pid("scan_00001")) is None
    assert records(f) == [("scan_00001", [-1, 0, 0])]


def test_generator_failure_is_not_recorded_and_retried(
        beamtime_factory, scicat_server, make_pipe, clock):
    f = beamtime_factory
    scans(f, "scan_00002")
    broken = os.path.join(f.scandir, "scan_00001.nxs")
    with open(broken, "wb") as handle:
        handle.write(b"this is not an HDF5 file")
    f.append_list(None, "scan_00001", "scan_00002")
    pipe = make_pipe(retry_backoff_initial=300, retry_backoff_max=600)
    result = pipe.process()
    assert (result.ingested, result.failed) == (1, 1)
    assert pipe.results() == {"scan_00001": (Result.FAILED, False),
                              "scan_00002": (Result.INGESTED, False)}
    assert result.retry_at is not None
    assert [line for line, _ in records(f)] == ["scan_00002"]
    assert scicat_server.dataset(pid("scan_00001")) is None

    os.unlink(broken)
    f.write_nexus_scan("scan_00001", png=True)
    assert pipe.process().waiting == 1  # still within its back-off
    clock.offset = 301
    retried = pipe.process()
    assert retried.ingested == 1
    assert scicat_server.dataset(pid("scan_00001")) is not None
    assert [line for line, _ in records(f)] == ["scan_00002", "scan_00001"]


# -- SciCat cannot be used --------------------------------------------------------------------

def _postponed(pipe: Pipe) -> BatchPostponed:
    with pytest.raises(BatchPostponed) as info:
        pipe.process()
    return info.value


def test_no_answer_postpones_the_batch_as_an_outage(beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001")
    f.append_list(None, "scan_00001")
    pipe = make_pipe()
    scicat_server.stop()
    assert _postponed(pipe).outage is True
    assert f.read_ingested() == [] and pipe.outcomes == []
    scicat_server.start()
    assert pipe.process().ingested == 1
    assert scicat_server.dataset(pid("scan_00001")) is not None


def test_server_error_postpones_the_batch_as_an_outage(beamtime_factory, scicat_server,
                                                       make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    pipe = make_pipe(max_scans_in_flight=1)  # concurrently: tests/test_concurrency.py
    scicat_server.faults.fail_next(status=503, method="POST", path="datasets$")
    assert _postponed(pipe).outage is True
    assert f.read_ingested() == [] and pipe.outcomes == []
    assert scicat_server.datasets() == []
    assert pipe.process().ingested == 2


def test_refused_login_postpones_the_batch_with_backoff(beamtime_factory, scicat_server,
                                                        make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001")
    f.append_list(None, "scan_00001")
    pipe = make_pipe()
    credentials = os.path.join(f.root, "credentials.txt")
    with open(credentials, encoding="utf-8") as handle:
        password = handle.read()
    with open(credentials, "w", encoding="utf-8") as handle:
        handle.write("wrong password\n")
    assert _postponed(pipe).outage is False
    assert f.read_ingested() == [] and pipe.outcomes == []
    assert scicat_server.datasets() == []
    with open(credentials, "w", encoding="utf-8") as handle:
        handle.write(password)
    assert pipe.process().ingested == 1


# -- re-ingestion -------------------------------------------------------------------------------

def test_reingest_all_rewrites_the_list_and_sends_only_what_changed(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002", "scan_00003")
    f.append_list(None, "scan_00001", "scan_00002", "scan_00003")
    scicat_server.faults.fail_next(status=400, method="POST", path="datasets$")
    pipe = make_pipe(retry_backoff_initial=300, retry_backoff_max=600)
    pipe.process()
    assert records(f)[0] == ("scan_00001", [-1, 0, 0])

    dataset_file = os.path.join(f.scandir, "scan_00002.scan.json")
    document = json.load(open(dataset_file, encoding="utf-8"))
    document["description"] = "edited after the scan"
    with open(dataset_file, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    later = time.time() + 100
    os.utime(dataset_file, (later, later))

    scicat_server.clear_requests()
    result = pipe.process(reingest_all=True)
    assert pipe.results() == {"scan_00001": (Result.INGESTED, False),
                              "scan_00002": (Result.INGESTED, False),
                              "scan_00003": (Result.UNCHANGED, False)}
    assert (result.ingested, result.unchanged, result.failed) == (2, 1, 0)
    sent = writes(scicat_server)
    assert ("PATCH", f"Datasets/{BT}%2Fscan_00002") in sent
    assert not [w for w in sent if "scan_00003" in w[1]]
    assert not [w for w in sent if "scan_00002" in w[1] and w[0] != "PATCH"]
    assert scicat_server.dataset(pid("scan_00002"))["description"] == "edited after the scan"
    assert scicat_server.dataset(pid("scan_00001")) is not None
    assert len(scicat_server.datablocks(pid("scan_00001"))) == 1

    recorded = dict(records(f))
    assert [line for line, _ in records(f)] == ["scan_00001", "scan_00002", "scan_00003"]
    assert recorded["scan_00002"][0] == later
    assert min(recorded["scan_00001"]) > 0

    # a second pass finds nothing to send and keeps the list as it is
    scicat_server.clear_requests()
    before = f.read_ingested()
    again = pipe.process(reingest_all=True)
    assert (again.ingested, again.unchanged) == (0, 3)
    assert writes(scicat_server) == []
    assert f.read_ingested() == before


def test_reingest_line_of_an_unchanged_scan_sends_nothing(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001")
    f.append_list(None, "scan_00001")
    pipe = make_pipe()
    pipe.process()
    scicat_server.clear_requests()
    f.append_list(None, "scan_00001:1718000000.5")
    result = pipe.process()
    assert (result.processed, result.failed, result.unchanged) == (1, 0, 1)
    assert writes(scicat_server) == []
    assert [line for line, _ in records(f)] == ["scan_00001", "scan_00001:1718000000.5"]


# -- measurements -------------------------------------------------------------------------------

def test_measurement_replay_groups_the_scans_after_them(beamtime_factory, scicat_server,
                                                       make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "__command__ start calibA", "scan_00001", "scan_00002",
                  "__command__ stop", "calibA")
    pipe = make_pipe()
    result = pipe.process()
    assert result.measurement is None
    assert [o.entry.line for o in pipe.outcomes] == ["scan_00001", "scan_00002", "calibA"]
    assert all(o.result is Result.INGESTED for o in pipe.outcomes)
    measurement = scicat_server.dataset(pid("calibA"))
    assert sorted(measurement["inputDatasets"]) == [pid("scan_00001"), pid("scan_00002")]
    assert "calibA" in scicat_server.dataset(pid("scan_00001"))["keywords"]
    assert len(scicat_server.datablocks(pid("calibA"))) == 2
    posts = [path for method, path in writes(scicat_server)
             if method == "POST" and path == "Datasets"]
    assert len(posts) == 3
    created = [r.json()["pid"] for r in scicat_server.requests
               if r.method == "POST" and r.v3_path == "Datasets" and r.status < 300]
    assert created[-1].endswith("calibA")
    assert [line for line, _ in records(f)] == ["scan_00001", "scan_00002", "calibA"]


def test_open_measurement_is_reported_and_marks_its_scans(beamtime_factory, scicat_server,
                                                         make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "__command__ start calibA", "scan_00001", "__command__ stop",
                  "__command__ start calibB", "scan_00002")
    pipe = make_pipe()
    assert pipe.process().measurement == "calibB"
    assert "calibB" in scicat_server.dataset(pid("scan_00002"))["keywords"]
    assert "calibB" not in scicat_server.dataset(pid("scan_00001"))["keywords"]
    assert scicat_server.dataset(pid("calibB")) is None
    # the waiting-entries view replays the same list
    waiting, current = pipe.processor.waiting(pipe.ctx)
    assert waiting == [] and current == "calibB"
    f.append_list(None, "__command__ stop")
    assert pipe.process().measurement is None


# -- dry run, invalid lines, stop ------------------------------------------------------------

def test_dry_run_sends_nothing_and_records_nothing(beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "scan_00001", "scan_00002")
    pipe = make_pipe(dry_run=True)
    result = pipe.process()
    assert pipe.results() == {"scan_00001": (Result.DRY_RUN, False),
                              "scan_00002": (Result.DRY_RUN, False)}
    assert result.failed == 0
    assert writes(scicat_server) == []
    assert scicat_server.datasets() == []
    assert not os.path.exists(f.ingested_path())
    # the metadata files were made (to know what would be sent)
    assert os.path.isfile(os.path.join(f.scandir, "scan_00001.scan.json"))
    assert make_pipe().process().ingested == 2


def test_invalid_lines_are_reported_once_and_skipped(beamtime_factory, scicat_server,
                                                     make_pipe, caplog):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002")
    f.append_list(None, "scan_00001", "../outside_00001", "__command__ bogus", "scan_00002")
    pipe = make_pipe()
    with caplog.at_level(logging.WARNING, logger="scingestor.pipeline"):
        first = pipe.process()
        f.append_list(None, "scan_00003")
        scans(f, "scan_00003")
        second = pipe.process()
    assert (first.ingested, first.failed, second.ingested) == (2, 0, 1)
    assert [o.entry.line for o in pipe.outcomes] == ["scan_00003"]
    assert [line for line, _ in records(f)] == ["scan_00001", "scan_00002", "scan_00003"]
    assert [d["pid"] for d in scicat_server.datasets()] == [
        pid("scan_00001"), pid("scan_00002"), pid("scan_00003")]
    # one report per bad line (the reports name the list and the line: README "Measurements")
    reports = [r for r in caplog.records if r.name == "scingestor.pipeline"
               and r.levelno == logging.WARNING]
    assert len(reports) == 2
    assert {f"{f.list_path()}:{n}:" for n in (3, 4)} == {
        r.getMessage()[:len(f.list_path()) + 3] for r in reports}


def test_stop_event_ends_a_pass_between_entries(beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    scans(f, "scan_00001", "scan_00002", "scan_00003")
    f.append_list(None, "scan_00001", "scan_00002", "scan_00003")
    stop_after_one = [True]
    pipes: List[Pipe] = []

    def outcome(_: EntryOutcome) -> None:
        if stop_after_one[0]:
            pipes[0].stop.set()

    # one after another (concurrently: tests/test_concurrency.py)
    pipe = make_pipe(on_outcome=outcome, max_scans_in_flight=1)
    pipes.append(pipe)
    result = pipe.process()
    assert result.processed == 1
    assert [line for line, _ in records(f)] == ["scan_00001"]
    assert [d["pid"] for d in scicat_server.datasets()] == [pid("scan_00001")]
    pipe.stop.clear()
    stop_after_one[0] = False
    assert pipe.process().processed == 2
    assert [line for line, _ in records(f)] == ["scan_00001", "scan_00002", "scan_00003"]
    # a re-ingestion pass stopped after one entry leaves the ingested list alone
    before = f.read_ingested()
    stop_after_one[0] = True
    assert pipe.process(reingest_all=True).processed == 1
    assert f.read_ingested() == before
