"""``SendBatch`` on its own: list order, the bound, the barriers, postponement (inflight.py)."""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

import pytest

from scingestor.inflight import SendBatch, SendPool


class Postponed(Exception):
    pass


@pytest.fixture
def pool():
    made = SendPool(3)
    yield made
    made.close()


def gated(events: List[str], name: str, gate: threading.Event, running: List[int],
          most: List[int], lock: threading.Lock):
    def job() -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            events.append(f"start {name}")
        gate.wait(5)
        with lock:
            running[0] -= 1
            events.append(f"end {name}")
        return name
    return job


def test_results_in_list_order_within_the_bound(pool):
    finished: List[Tuple[str, str]] = []
    batch: SendBatch[str] = SendBatch(pool, lambda p, r: finished.append((p, r)), (Postponed,))
    gates = {name: threading.Event() for name in "abcde"}
    events: List[str] = []
    running, most, lock = [0], [0], threading.Lock()
    for name in "abcde":
        if name == "d":  # the fourth waits for a free slot: open the later ones first
            gates["c"].set()
            gates["b"].set()
        batch.ready(name)
        batch.submit(name, gated(events, name, gates[name], running, most, lock), name)
    for gate in gates.values():
        gate.set()
    batch.drain()
    assert [p for p, _ in finished] == list("abcde")  # b, c ended first: recorded after a
    assert most[0] <= 3


def test_same_key_and_barrier_wait_for_the_earlier_ones(pool):
    order: List[str] = []
    batch: SendBatch[str] = SendBatch(pool, lambda p, r: order.append(p), (Postponed,))
    batch.ready("scan")
    batch.submit("scan", lambda: "scan", "scan")
    batch.ready("other")
    batch.submit("other", lambda: "other", "other")
    batch.ready("scan")  # scan:ts: the earlier line of "scan" is finished first
    assert "scan" in order
    batch.ready("meas", barrier=True)  # a measurement: everything before it finished
    assert order == ["scan", "other"]
    batch.drain()


def test_a_postponement_stops_submitting_finishes_the_others_and_is_raised(pool):
    finished: List[str] = []
    batch: SendBatch[str] = SendBatch(pool, lambda p, r: finished.append(p), (Postponed,))
    gate, failed = threading.Event(), threading.Event()

    def fail() -> str:
        failed.set()
        raise Postponed("SciCat down")

    batch.ready("a")
    batch.submit("a", lambda: gate.wait(5) and "a", "a")
    batch.ready("b")
    batch.submit("b", fail, "b")
    assert failed.wait(5)
    time.sleep(0.05)  # the pool thread sets the exception on the future just after
    threading.Timer(0.05, gate.set).start()  # "a" is still in flight, then finishes
    with pytest.raises(Postponed):
        batch.ready("c")  # not submitted
    assert finished == ["a"]  # what completed is finished; "b" is not


def test_bound_one_runs_in_the_callers_thread():
    pool = SendPool(1)
    threads: List[str] = []
    batch: SendBatch[str] = SendBatch(pool, lambda p, r: None, (Postponed,))
    batch.ready("a")
    batch.submit("a", lambda: threads.append(threading.current_thread().name) or "a", "a")
    batch.drain()
    assert threads == [threading.current_thread().name]
    assert pool.executor() is None
