"""Dataset lists read incrementally (scingestor.liststate / scingestor.follow).

README "Dataset lists" and docs/architecture.md "Reading only what was appended":
a pass reads only what was appended; a list truncated, replaced by rename or
rewritten is read again from the start; the last, unterminated line is a line
with its current text. Every state is compared with a full replay of the file
(what the pipeline did before), and the bytes read per pass are counted.
"""

from __future__ import annotations

import os
import random

import pytest

from scingestor.beamtime import load_beamtime, scandir_context
from scingestor.config import config_from_mapping
from scingestor.credentials import CredentialSource
from scingestor.follow import WINDOW, FileFollower
from scingestor.listproto import EntryKind, read_entries
from scingestor.liststate import ListState
from scingestor.metadata import MeasurementState
from scingestor.pipeline import ListProcessor
from scingestor.runner import GeneratorRunner
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.publish import DatasetPublisher
from scingestor.testing.setup import config_mapping


def full_replay(path, ingested, execute=True):
    """What a pass saw before: every entry of the file replayed from the start.

    Returns ([(lineno, line, (active, measurement, last), started-before)], measurement).
    """
    state, started, waiting = MeasurementState(), set(), []
    for entry in read_entries(path):
        if entry.kind is EntryKind.START and execute:
            state.start(entry.measurement)
            started.add(entry.measurement)
        elif entry.kind is EntryKind.STOP and execute:
            state.stop()
        elif not entry.is_command and entry.kind is not EntryKind.INVALID:
            if entry.line not in ingested:
                replay = (state.active, state.measurement, state.last_measurement)
                waiting.append((entry.lineno, entry.line, replay, frozenset(started)))
    return waiting, (state.measurement if state.active else None)


def incremental(state, ingested, generation=0):
    state.update(generation, ingested.__contains__)
    names = {entry.measurement for entry in read_entries(state.path)
             if entry.kind is EntryKind.START} | {"m1", "m2", "other"}
    items = [item for item in state.pending() if item.entry.line not in ingested]
    seen = [(item.entry.lineno, item.entry.line, item.replay,
             frozenset(name for name in names if name in state.started_before(item)))
            for item in items]
    return seen, state.measurement


def new_state(path, reports=None, execute=True):
    return ListState(str(path), execute_commands=execute,
                     report=lambda entry, reason: (reports if reports is not None else [])
                     .append((entry.lineno, reason)))


def write(path, text, mode="a"):
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)


def bump_mtime(path):
    """Make sure a rewrite is seen as one even within the file system's mtime tick."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


# ------------------------------------------------------------------------ behaviour
def test_the_unterminated_last_line_is_a_line_with_its_current_text(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "\nscan_1\nscan_2")
    state, ingested = new_state(path), set()
    assert incremental(state, ingested)[0] == full_replay(path, ingested)[0]
    assert [line for _, line, _, _ in incremental(state, ingested)[0]] == ["scan_1", "scan_2"]
    write(path, "5")  # the writer was still in the middle of the line
    assert [line for _, line, _, _ in incremental(state, ingested)[0]] == ["scan_1", "scan_25"]
    write(path, "\nscan_3")
    got = incremental(state, ingested)
    assert got == full_replay(path, ingested)
    assert [(lineno, line) for lineno, line, _, _ in got[0]] == [
        (2, "scan_1"), (3, "scan_25"), (4, "scan_3")]


def test_records_ending_in_a_newline_work_too(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "scan_1\n__command__ start m1\nscan_2\n")
    state, ingested = new_state(path), {"scan_1"}
    assert incremental(state, ingested) == full_replay(path, ingested)
    assert state.measurement == "m1"


def test_an_open_measurement_in_the_last_line_counts(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "\nscan_1\n__command__ start m1")
    state = new_state(path)
    assert incremental(state, set()) == full_replay(path, set())
    assert state.measurement == "m1"
    write(path, "\n__command__ stop")
    assert incremental(state, set())[1] is None


def test_only_appended_lines_are_read(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "".join(f"\nold_{n:05d}" for n in range(5000)))
    ingested = {f"old_{n:05d}" for n in range(5000)}
    state = new_state(path)
    assert incremental(state, ingested)[0] == []
    before = state.bytes_read
    write(path, "\nnew_1")
    assert [line for _, line, _, _ in incremental(state, ingested)[0]] == ["new_1"]
    # the window before the offset, the old unterminated line and the new bytes
    assert state.bytes_read - before <= WINDOW + len("old_04999\nnew_1")
    before = state.bytes_read
    incremental(state, ingested)  # nothing changed: one fstat, no read
    assert state.bytes_read == before


@pytest.mark.parametrize("lines", [1000, 20000])
def test_bytes_read_per_pass_do_not_grow_with_the_list(tmp_path, lines):
    path = tmp_path / "l.lst"
    write(path, "".join(f"\nold_{n:06d}" for n in range(lines)))
    ingested = {f"old_{n:06d}" for n in range(lines)}
    state = new_state(path)
    incremental(state, ingested)
    deltas = []
    for number in range(20):
        before = state.bytes_read
        write(path, f"\nnew_{number:06d}")
        incremental(state, ingested)
        ingested.add(f"new_{number:06d}")
        deltas.append(state.bytes_read - before)
    assert max(deltas) == WINDOW + 2 * len("\nnew_000000") - 1  # the same for any length
    assert len(state.pending()) <= 1  # the ingested entries are not kept


def test_a_truncated_list_is_read_again(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "\nscan_1\nscan_2\nscan_3")
    state = new_state(path)
    incremental(state, set())
    write(path, "\nscan_9", mode="w")
    assert incremental(state, set()) == full_replay(path, set())
    assert state.follower.restarts == 2


def test_a_list_replaced_by_rename_is_read_again(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "\nscan_1\n__command__ start m1\nscan_2\nscan_3")
    state = new_state(path)
    incremental(state, set())
    other = tmp_path / "l.lst.new"
    write(other, "\nscan_1\nscan_2\nscan_3\nscan_4\nscan_5", mode="w")
    os.replace(other, path)
    assert incremental(state, set()) == full_replay(path, set())
    assert state.measurement is None


def test_lines_rewritten_in_place_are_seen(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "".join(f"\nscan_{n:04d}" for n in range(200)))
    state = new_state(path)
    incremental(state, set())
    # same size (an edited name far before the offset): the modification time tells
    write(path, path.read_text().replace("scan_0007", "scan_7777"), mode="w")
    bump_mtime(path)
    assert incremental(state, set()) == full_replay(path, set())
    # another size, a change shortly before the offset: the window tells
    write(path, path.read_text().replace("scan_0198", "scan_198") + "\nscan_0200", mode="w")
    assert incremental(state, set()) == full_replay(path, set())
    assert state.follower.restarts == 3


def test_a_rewritten_ingested_list_makes_the_list_be_read_again(tmp_path):
    path = tmp_path / "l.lst"
    write(path, "\nscan_1\nscan_2")
    state, ingested = new_state(path), {"scan_1", "scan_2"}
    assert incremental(state, ingested, generation=1)[0] == []
    ingested.discard("scan_1")  # e.g. the re-ingestion tool replaced the ingested list
    assert incremental(state, ingested, generation=2) == full_replay(path, ingested)


def test_bad_lines_are_reported_once_when_read(tmp_path):
    path = tmp_path / "l.lst"
    reports = []  # the pipeline reports a (line number, line) once
    state = new_state(path, reports)
    write(path, "\n/abs/scan\n__command__ stop\n__command__ dance")
    incremental(state, set())
    incremental(state, set())
    assert sorted({lineno for lineno, _ in reports}) == [2, 3, 4]
    assert "without a running measurement" in reports[1][1]
    quiet = []
    incremental(new_state(path, quiet, execute=False), set())
    assert [lineno for lineno, _ in quiet] == [2]  # commands are not looked at


def test_a_missing_list_raises_file_not_found(tmp_path):
    state = new_state(tmp_path / "none.lst")
    with pytest.raises(FileNotFoundError):
        incremental(state, set())


# ------------------------------------------------------------ against a full replay
RECORDS = ["scan_1", "scan_2", "scan_3 pilatus", "scan_1:17.5", "__command__ start m1",
           "__command__ start m2", "__command__ stop", "m1:18.5", "/bad", "multi::/e;s_4"]


@pytest.mark.parametrize("seed", range(40))
def test_random_histories_match_a_full_replay(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "l.lst"
    write(path, "")
    state, ingested, generation = new_state(path), set(), 0
    for _ in range(60):
        action = rng.random()
        text = path.read_text()
        if action < 0.45:
            write(path, "".join("\n" + rng.choice(RECORDS) for _ in range(rng.randint(1, 4))))
        elif action < 0.55:
            write(path, rng.choice(RECORDS)[: rng.randint(1, 6)])  # a writer mid-line
        elif action < 0.6:
            write(path, rng.choice(RECORDS) + "\n")
        elif action < 0.7:
            lines = [line for line in text.split("\n") if line.strip()]
            if lines:
                ingested.add(rng.choice(lines).strip())
        elif action < 0.75:
            write(path, text[: rng.randint(0, len(text))], mode="w")  # truncated
        elif action < 0.8:
            new = tmp_path / "new.lst"
            write(new, text.replace("scan_2", "scan_5"), mode="w")
            os.replace(new, path)  # replaced by rename
        elif action < 0.85 and "scan_1" in text:
            write(path, text.replace("scan_1", "scan_7", 1), mode="w")  # same size, in place
            bump_mtime(path)
        elif action < 0.9:
            generation += 1  # the ingested list was rewritten
            ingested = {key for key in ingested if rng.random() < 0.5}
        else:
            write(path, text.rstrip("\n") + "\n\n")
        assert incremental(state, ingested, generation) == full_replay(path, ingested), text


# --------------------------------------------------------------- the pipeline's pass
def test_a_pass_reads_only_what_was_appended(beamtime_factory, scicat_server):
    """ListProcessor.waiting/process: bytes read per pass independent of the list length."""
    f = beamtime_factory
    names = [f"old_{n:06d}" for n in range(20000)]
    write(f.list_path(), "".join("\n" + name for name in names), mode="w")
    write(f.ingested_path(), "".join(f"{name} 1.5 1.5 0\n" for name in names), mode="w")
    cfg = config_from_mapping(config_mapping(f, scicat_server.url))
    ctx = scandir_context(cfg, load_beamtime(f.metadata_path), f.scandir)
    client = SciCatClient(cfg, CredentialSource(cfg.ingestor_credential_file,
                                                cfg.ingestor_username))
    processor = ListProcessor(cfg, DatasetPublisher(cfg, client), GeneratorRunner(cfg))
    try:
        assert processor.waiting(ctx) == ([], None)
        state, ingested = processor.list_state(ctx), processor.ingested_list(ctx)
        for name in ("new_1", "new_2"):
            f.write_nexus_scan(name)
            before = state.bytes_read + ingested.bytes_read
            f.append_list(None, name)
            assert [entry.line for entry in processor.waiting(ctx)[0]] == [name]
            result = processor.process(ctx)
            assert (result.processed, result.failed) == (1, 0)
            read = state.bytes_read + ingested.bytes_read - before
            assert read <= WINDOW + 2 * len("\nold_000000")
            assert processor.waiting(ctx) == ([], None)
        assert scicat_server.dataset(f"{f.beamtime_id}/new_2") is not None
        assert f.read_ingested()[-2:][0].startswith("new_1 ")
        assert len(f.read_ingested()) == 20002  # appended, nothing rewritten
    finally:
        client.close()


def test_file_follower_counts_and_windows(tmp_path):
    path = tmp_path / "f"
    write(path, "a\nb\nc")
    follower = FileFollower(str(path), window=4)
    chunk = follower.read()
    assert (chunk.restart, chunk.lines, chunk.tail) == (True, b"a\nb\n", b"c")
    write(path, "\nd\n")
    chunk = follower.read()
    assert (chunk.restart, chunk.lines, chunk.tail) == (False, b"c\nd\n", b"")
    assert follower.bytes_read == 5 + 4 + 4  # first read, window, new bytes
