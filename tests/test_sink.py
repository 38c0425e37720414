"""The discovery sink helpers (scingestor/watch/sink.py) alone."""

from __future__ import annotations

from typing import Any, List, Tuple

from scingestor.beamtime import parse_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.watch.sink import DiscoverySink, GuardedSink, SinkCallbacks


def sample() -> Tuple[Any, Any]:
    bt = parse_beamtime("/bt/beamtime-metadata-1.json", '{"beamtimeId": "1"}')
    return bt, scandir_context(config_from_mapping({}), bt, "/bt/raw")


def test_callbacks_forward_each_event_to_its_callable() -> None:
    calls: List[Tuple[str, Any]] = []
    sink: DiscoverySink = SinkCallbacks(
        lambda bt: calls.append(("added", bt)),
        lambda path: calls.append(("removed", path)),
        lambda ctx: calls.append(("found", ctx)),
        lambda ctx: calls.append(("changed", ctx)),
        lambda ctx: calls.append(("gone", ctx)),
    )
    bt, ctx = sample()
    sink.beamtime_added(bt)
    sink.list_found(ctx)
    sink.list_changed(ctx)
    sink.list_removed(ctx)
    sink.beamtime_removed(bt.path)
    assert calls == [("added", bt), ("found", ctx), ("changed", ctx), ("gone", ctx),
                     ("removed", bt.path)]


def test_guarded_sink_keeps_going_after_a_failure() -> None:
    delivered: List[str] = []

    def fail(_: Any) -> None:
        raise RuntimeError("sink failure")

    guarded = GuardedSink(SinkCallbacks(fail, fail, fail, delivered.append, fail))
    bt, ctx = sample()
    guarded.beamtime_added(bt)
    guarded.beamtime_removed(bt.path)
    guarded.list_found(ctx)
    guarded.list_removed(ctx)
    guarded.list_changed(ctx)
    assert delivered == [ctx]
