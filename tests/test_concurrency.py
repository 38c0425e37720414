"""Scans in flight concurrently (``max_scans_in_flight``): the bound, the order, the failures.

README "SciCat access", docs/architecture.md "Threads", ``scingestor/inflight.py``.
Concurrency is observed in the dev server's request log (``received``/``answered``
of every request), never by wall-clock time. The kill -9 test with concurrency is
in ``tests/test_daemon_cli.py``.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Dict, List, Tuple

import pytest

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.credentials import CredentialSource
from scingestor.genpool import worker_count
from scingestor.pipeline import BatchPostponed, EntryOutcome, ListProcessor
from scingestor.runner import GeneratorRunner
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.publish import DatasetPublisher
from scingestor.testing.setup import config_mapping, wait_for

BT = "99001234"

# every test here runs against both SciCat API versions of the dev server
pytestmark = pytest.mark.usefixtures("api_version")


def pid(name: str) -> str:
    return f"{BT}/{name}"


def api_requests(server) -> List[Any]:
    return [r for r in server.requests if "login" not in r.path.lower()]


def most_in_flight(server) -> int:
    """The largest number of scans with a request being handled at one instant."""
    return in_flight(server)[0]


def in_flight(server) -> Tuple[int, int]:
    """The most scans, and the most requests of one scan, being handled at one instant."""
    events: List[Tuple[float, int, str]] = []
    for r in server.requests:
        name = owner(r)
        if r.received and r.answered and name:
            events += [(r.received, 1, name), (r.answered, -1, name)]
    active: Dict[str, int] = collections.Counter()
    most_scans = most_per_scan = 0
    for _, step, name in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start
        active[name] += step
        if not active[name]:
            del active[name]
        most_scans = max(most_scans, len(active))
        most_per_scan = max(most_per_scan, active.get(name, 0))
    return most_scans, most_per_scan


def counts(server, name: str) -> Tuple[int, int, int]:
    return (1 if server.dataset(pid(name)) else 0, len(server.datablocks(pid(name))),
            len(server.attachments(pid(name))))


def recorded(f) -> List[str]:
    return [line.rsplit(" ", 3)[0] for line in f.read_ingested()]


def owner(request: Any) -> str:
    """The scan a request is about (by the pid in its path or body), "" when none."""
    from urllib.parse import unquote
    path = unquote(request.v3_path)
    if path.startswith(f"Datasets/{BT}/"):
        return path.split("/")[2].split(":")[0]
    try:
        body = request.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        links = body.get("relationships") or [{}]
        value = body.get("pid") or body.get("datasetId") or links[0].get("targetId") or ""
        return str(value).rsplit("/", 1)[-1]
    return ""


class Pipe:
    def __init__(self, processor: ListProcessor, ctx: Any, stop: threading.Event,
                 outcomes: List[EntryOutcome]) -> None:
        self.processor, self.ctx, self.stop, self.outcomes = processor, ctx, stop, outcomes

    def process(self, **kwargs: Any) -> Any:
        return self.processor.process(self.ctx, **kwargs)


@pytest.fixture
def make_pipe(beamtime_factory, scicat_server):
    made: List[Tuple[SciCatClient, ListProcessor]] = []

    def make(on_outcome=None, **overrides: Any) -> Pipe:
        overrides.setdefault("max_request_tries_number", 1)
        cfg = config_from_mapping(config_mapping(beamtime_factory, scicat_server.url,
                                                 **overrides))
        stop = threading.Event()
        client = SciCatClient(cfg, CredentialSource(cfg.ingestor_credential_file,
                                                    cfg.ingestor_username), stop_event=stop)
        outcomes: List[EntryOutcome] = []

        def report(outcome: EntryOutcome) -> None:
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        processor = ListProcessor(cfg, DatasetPublisher(cfg, client), GeneratorRunner(cfg),
                                  on_outcome=report, stop_event=stop)
        made.append((client, processor))
        ctx = scandir_context(cfg, load_beamtime(beamtime_factory.metadata_path),
                              beamtime_factory.scandir)
        return Pipe(processor, ctx, stop, outcomes)

    yield make
    for client, processor in made:
        processor.close()
        client.close()


def scans(f, *names: str) -> None:
    for name in names:
        f.write_nexus_scan(name, png=True)


@pytest.mark.parametrize("bound", [1, 3])
def test_never_more_than_the_bound_in_flight_and_a_fixed_pool(
        beamtime_factory, scicat_server, service_factory, bound):
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 10)]
    scans(f, *names)
    scicat_server.faults.set_latency(0.2)
    f.append_list(None, *names)
    before = set(threading.enumerate())  # threads of earlier tests may still run
    service = service_factory(max_scans_in_flight=bound)
    wait_for(lambda: len(f.read_ingested()) == len(names), timeout=60)
    senders = [t for t in set(threading.enumerate()) - before
               if t.name.startswith("scingestor-send")]
    service.wait_idle()
    most, per_scan = in_flight(scicat_server)
    assert most <= bound
    if bound > 1:
        assert most >= 2  # they did overlap (9 scans, 3 requests of 0.2 s each)
        generating = worker_count(0)  # scans being made beside those being sent
        assert 0 < len(senders) <= bound + (generating if generating > 1 else 0)
        assert per_scan == 2  # a scan's datablock and thumbnail were sent at once
    else:
        assert senders == [] and per_scan == 1
    assert recorded(f) == names  # in list order, whatever finished first
    for name in names:
        assert counts(scicat_server, name) == (1, 1, 1)


def test_a_measurement_is_sent_after_its_scans_and_a_tagged_line_after_its_scan(
        beamtime_factory, scicat_server, service_factory):
    f = beamtime_factory
    members = ["m_00001", "m_00002", "m_00003"]
    scans(f, "c_00001", *members, "c_00002")
    lines = ["c_00001", "__command__ start meas", *members, "__command__ stop", "meas",
             "c_00002", "c_00001:1700000000.5"]
    scicat_server.faults.set_latency(0.1)
    f.append_list(None, *lines)
    service = service_factory(max_scans_in_flight=4)
    wait_for(lambda: len(f.read_ingested()) == 7, timeout=60)
    service.wait_idle()
    requests = api_requests(scicat_server)
    (meas_post,) = [r for r in requests if r.method == "POST" and r.v3_path == "Datasets"
                    and owner(r) == "meas"]
    for member in members:
        mine = [r for r in requests if owner(r) == member]
        assert len(mine) == 3 and all(r.answered < meas_post.received for r in mine), member
    # the tagged line of c_00001 goes out after everything of its earlier line
    first = [r for r in requests if owner(r) == "c_00001"]
    tagged = [r for r in first if r.number > first[2].number]
    assert [r.v3_path for r in first[:3]][0] == "Datasets" and tagged
    assert all(r.received > first[2].answered for r in tagged)
    assert recorded(f) == [line for line in lines if not line.startswith("__command__")]


def test_a_postponed_scan_stops_submitting_and_the_finished_ones_are_recorded(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 7)]
    scans(f, *names)
    f.append_list(None, *names)
    pipe = make_pipe(max_scans_in_flight=3)
    scicat_server.faults.set_latency(0.05)
    scicat_server.faults.fail_next(status=503, method="POST", path="datasets$")
    with pytest.raises(BatchPostponed) as caught:
        pipe.process()
    assert caught.value.outage is True
    done = recorded(f)
    assert done == [name for name in names if name in done]  # list order
    assert len(done) < len(names)  # stopped submitting: some never went out
    for name in done:
        assert counts(scicat_server, name) == (1, 1, 1)  # recorded: completely sent
    assert [o.entry.line for o in pipe.outcomes] == done
    pipe.process()
    assert recorded(f) == done + [name for name in names if name not in done]
    for name in names:
        assert counts(scicat_server, name) == (1, 1, 1)


def test_the_stop_event_stops_submitting_and_records_what_was_in_flight(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 9)]
    scans(f, *names)
    f.append_list(None, *names)
    pipes: List[Pipe] = []
    # one generation slot: no scan is being made beside the 3 being sent
    pipe = make_pipe(on_outcome=lambda _: pipes[0].stop.set(), max_scans_in_flight=3,
                     metadata_workers=1)
    pipes.append(pipe)
    scicat_server.faults.set_latency(0.05)
    pipe.process()
    done = recorded(f)
    # stopped after c_00001's outcome: the scans in flight then (at most 3 besides it)
    assert 1 <= len(done) <= 4 and done == names[:len(done)]
    sent = {r.json()["pid"] for r in api_requests(scicat_server)
            if r.method == "POST" and r.v3_path == "Datasets"}
    assert sent == {pid(name) for name in done}  # in flight: finished and recorded
    pipe.stop.clear()
    pipe.processor._on_outcome = None
    pipe.process()
    assert recorded(f) == names


@pytest.mark.parametrize("lost", ["Datasets$", "OrigDatablocks$", "Attachments$"])
def test_lost_answers_under_concurrency_duplicate_nothing(
        beamtime_factory, scicat_server, service_factory, lost):
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 7)]
    scans(f, *names)
    scicat_server.faults.set_latency(0.05)
    scicat_server.faults.drop_next(2, method="POST", path=lost)
    f.append_list(None, *names)
    service = service_factory(max_scans_in_flight=4)

    def complete() -> bool:
        lines = f.read_ingested()
        return len(lines) >= len(names) and all(
            float(word) > 0 for line in lines for word in line.split(" ")[-3:])
    wait_for(lambda: set(recorded(f)) == set(names) and complete(), timeout=60)
    service.wait_idle()
    assert len([r for r in scicat_server.requests if r.dropped]) == 2
    for name in names:
        assert counts(scicat_server, name) == (1, 1, 1), name


def test_reingestion_in_flight_concurrently_within_the_bound(
        beamtime_factory, scicat_server, make_pipe):
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 9)]
    scans(f, *names)
    f.append_list(None, *names)
    pipe = make_pipe(max_scans_in_flight=3)
    scicat_server.faults.set_latency(0.1)
    pipe.process(reingest_all=True)
    assert 2 <= most_in_flight(scicat_server) <= 3
    assert recorded(f) == names
    for name in names:
        assert counts(scicat_server, name) == (1, 1, 1)
    # a postponement in the tool: raised, the ingested list is left as it was
    before = f.read_ingested()
    scicat_server.clear_requests()
    for name in names:  # changed files: everything is sent again
        scans(f, name)
    scicat_server.faults.fail_next(status=503, method="GET", path="datasets/")
    with pytest.raises(BatchPostponed):
        pipe.process(reingest_all=True)
    assert f.read_ingested() == before
    pipe.process(reingest_all=True)
    for name in names:
        assert counts(scicat_server, name) == (1, 1, 1)


def test_concurrent_requests_after_a_refused_token_log_in_once(
        beamtime_factory, scicat_server, make_pipe, api_version):
    refused = 401 if api_version == "v3" else 403  # v4 answers a stale token with 403
    f = beamtime_factory
    names = [f"c_{index:05d}" for index in range(1, 5)]
    scans(f, *names)
    f.append_list(None, *names)
    pipe = make_pipe(max_scans_in_flight=4)
    scicat_server.faults.set_latency(0.05)
    pipe.process()  # logged in once
    assert recorded(f) == names
    more = [f"c_{index:05d}" for index in range(5, 9)]
    scans(f, *more)
    f.append_list(None, *more)
    scicat_server.expire_tokens()  # every request in flight is refused once
    scicat_server.clear_requests()
    pipe.process()
    logins = [r for r in scicat_server.requests if "login" in r.path.lower()]
    assert len([r for r in scicat_server.requests if r.status == refused]) >= 2
    assert len(logins) == 1  # one renewal, however many were refused at once
    assert recorded(f) == names + more
