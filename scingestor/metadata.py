"""Metadata files of one list entry: where they live and how they are generated."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import yaml

from . import generators
from .beamtime import ScanDirContext
from .config import IngestorConfig
from .listproto import Entry, EntryKind
from .runner import GeneratorRunner, temporary_master_copy

logger = logging.getLogger(__name__)


class MetadataError(Exception):
    """A metadata file exists but cannot be used (e.g. invalid JSON)."""


@dataclass
class MeasurementState:
    """``{measurement}``/``{lastmeasurement}`` while a list is replayed (README "Measurements")."""

    active: bool = False
    measurement: str = ""
    last_measurement: str = ""

    def start(self, name: str) -> None:
        self.active, self.measurement, self.last_measurement = True, name, name

    def stop(self) -> None:
        self.active, self.measurement = False, ""


@dataclass(frozen=True)
class MetadataPaths:
    """``{metapath}/<scan><postfix>`` for the three metadata files of an entry."""

    dataset: str
    datablock: str
    attachment: str


def load_json(path: str) -> Any:
    """Read a generated JSON file; raise :class:`MetadataError` with the path on failure."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path}: {exc}") from None


def load_documents(path: str) -> list[dict]:
    """Load a datablock/attachment file: one object, or a JSON list of file paths."""
    content = load_json(path)
    if isinstance(content, dict):
        return [content]
    if isinstance(content, list):
        documents = []
        for item in content:
            document = load_json(str(item))
            if not isinstance(document, dict):
                raise MetadataError(f"{item}: not a JSON object")
            documents.append(document)
        return documents
    raise MetadataError(f"{path}: neither a JSON object nor a list of files")


def is_multi_file(path: str) -> bool:
    """True when the JSON file holds a list (a measurement's datablock/attachment list)."""
    try:
        return isinstance(load_json(path), list)
    except MetadataError:
        return False


def mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def check_group_map(path: str) -> None:
    """Check a ``metadata_group_map_file``: ``target source`` lines, or a YAML/JSON mapping.

    Raises :class:`MetadataError` naming the file (and line) when it does not parse.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"group map file {path}: cannot be read: {exc}") from None
    stripped = text.strip()
    if not stripped:
        return
    if stripped[0] in "{[":
        try:
            data = yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise MetadataError(f"group map file {path}: not valid YAML/JSON: {first}") from None
        if not isinstance(data, dict):
            raise MetadataError(f"group map file {path}: a mapping {{target: source}} is needed")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if words and not words[0].startswith("#") and len(words) != 2:
            raise MetadataError(
                f"group map file {path}:{number}: expected 'target source', got {line.strip()!r}"
            )


class MetadataGenerator:
    """Runs the configured generator templates for list entries of one scan directory."""

    def __init__(self, cfg: IngestorConfig, runner: GeneratorRunner) -> None:
        self._cfg = cfg
        self._runner = runner

    def paths(self, ctx: ScanDirContext, entry: Entry) -> MetadataPaths:
        cfg = self._cfg
        base = os.path.join(ctx.metapath, entry.scanname)
        return MetadataPaths(
            base + cfg.scan_metadata_postfix,
            base + cfg.datablock_metadata_postfix,
            base + cfg.attachment_metadata_postfix,
        )

    def _find(
        self, ctx: ScanDirContext, entry: Entry, extensions: tuple[str, ...]
    ) -> tuple[str, str]:
        """First existing ``<scanpath>/<master>.<ext>``, then ``<scanpath>/<scan>/<scan>.<ext>``."""
        for ext in extensions:
            candidate = os.path.join(ctx.scanpath, f"{entry.masterscanname}.{ext}")
            if os.path.isfile(candidate):
                return candidate, ext
        for ext in extensions:
            candidate = os.path.join(ctx.scanpath, entry.scanname, f"{entry.scanname}.{ext}")
            if os.path.isfile(candidate):
                return candidate, ext
        return "", ""

    def find_master(self, ctx: ScanDirContext, entry: Entry) -> tuple[str, str]:
        return self._find(ctx, entry, self._cfg.master_file_extension_list)

    def master_is_newer(self, ctx: ScanDirContext, entry: Entry, generated: str) -> bool:
        """True when the scan's master file was written after the ``generated`` file.

        Such a file describes an older master file (it was rewritten) and is
        regenerated; a file edited by hand after the master file is kept.
        """
        master, _ = self.find_master(ctx, entry)
        return bool(master) and mtime(master) > mtime(generated)

    def find_plot(self, ctx: ScanDirContext, entry: Entry) -> tuple[str, str]:
        return self._find(ctx, entry, self._cfg.plot_file_extension_list)

    def dbrelpath(self, ctx: ScanDirContext, entry: Entry) -> str:
        parts = []
        if self._cfg.relative_path_in_datablock:
            parts.append(ctx.relpath)
        if "/" in entry.scanname:
            parts.append(os.path.dirname(entry.scanname))
        return os.path.join(*parts) if parts else ""

    def keywords(
        self,
        ctx: ScanDirContext,
        entry: Entry,
        state: MeasurementState,
        *,
        masterfile: str = "",
        ext: str = "",
        plotfile: str = "",
        plotext: str = "",
    ) -> dict[str, str]:
        return generators.keyword_table(
            self._cfg,
            ctx,
            scanname=entry.scanname,
            masterscanname=entry.masterscanname,
            entryname=entry.entryname,
            dbrelpath=self.dbrelpath(ctx, entry),
            masterfile=masterfile,
            ext=ext,
            plotfile=plotfile,
            plotext=plotext,
            measurement=state.measurement,
            lastmeasurement=state.last_measurement,
        )

    @contextlib.contextmanager
    def _source(self, ctx: ScanDirContext, entry: Entry, path: str) -> Iterator[str]:
        """The file handed to a generator: a private copy for multi-scan NeXus lines."""
        if entry.kind is EntryKind.MULTISCAN and path:
            directory = os.path.dirname(path)
            if ctx.metapath != ctx.scanpath:
                directory = (
                    ctx.metapath + directory[len(ctx.scanpath) :]
                    if directory.startswith(ctx.scanpath)
                    else ctx.metapath
                )
            os.makedirs(directory, exist_ok=True)
            with temporary_master_copy(path, directory) as copy:
                yield copy
        else:
            yield path

    def _run(
        self,
        key: str,
        keywords: dict[str, str],
        tokens: tuple[str, ...] = (),
        capture: bool = False,
    ) -> str:
        command = generators.build_command(self._cfg, key, keywords, tokens=tokens)
        return self._runner.run(command, capture=capture)

    def _check_tokens(self, ctx: ScanDirContext, entry: Entry) -> None:
        beamtime_dir = os.path.dirname(ctx.beamtime_file)
        for token in entry.extra_tokens:
            generators.check_token_within(token, ctx.scanpath, beamtime_dir)

    # -- generation ------------------------------------------------------------------
    def generate_dataset(self, ctx: ScanDirContext, entry: Entry, state: MeasurementState) -> None:
        """Run the dataset generator (file or beamtime-only form)."""
        os.makedirs(ctx.metapath, exist_ok=True)
        master, ext = self.find_master(ctx, entry)
        with self._source(ctx, entry, master) as source:
            if source:
                keywords = self.keywords(ctx, entry, state, masterfile=source, ext=ext)
                self._run("file_dataset_metadata_generator", keywords)
            else:
                exts = self._cfg.master_file_extension_list
                first = exts[0] if exts else ""
                fallback = os.path.join(ctx.scanpath, entry.scanname, f"{entry.scanname}.{first}")
                keywords = self.keywords(ctx, entry, state, masterfile=fallback, ext=first)
                self._run("dataset_metadata_generator", keywords)

    def _datablock_tokens(self, ctx: ScanDirContext, entry: Entry) -> tuple[str, ...]:
        self._check_tokens(ctx, entry)
        tokens = entry.datablock_tokens
        if entry.kind is EntryKind.MULTISCAN:
            master, _ = self.find_master(ctx, entry)
            if master:
                tokens = tokens + (os.path.relpath(master, ctx.scanpath),)
        return tokens

    def datablock_command(self, ctx: ScanDirContext, entry: Entry,
                          state: MeasurementState) -> generators.Command:
        """The datablock generator's command for ``entry``."""
        return generators.build_command(
            self._cfg, "datablock_metadata_generator", self.keywords(ctx, entry, state),
            tokens=self._datablock_tokens(ctx, entry))

    def generate_datablock(
        self, ctx: ScanDirContext, entry: Entry, state: MeasurementState,
        command: Optional[generators.Command] = None,
    ) -> None:
        """Run the datablock generator (``command``: its already built command)."""
        os.makedirs(ctx.metapath, exist_ok=True)
        self._runner.run(command or self.datablock_command(ctx, entry, state))

    def stream_command(self, ctx: ScanDirContext, entry: Entry,
                       state: MeasurementState) -> generators.Command:
        """The stream generator's command for ``entry`` (re-ingestion)."""
        return generators.build_command(
            self._cfg, "datablock_metadata_stream_generator", self.keywords(ctx, entry, state),
            tokens=self._datablock_tokens(ctx, entry))

    def runs_in_process(self, command: generators.Command) -> bool:
        """True when ``command`` runs in the in-process nxsfileinfo."""
        return self._runner.runs_in_process(command)

    def stream_datablock(self, command: generators.Command) -> Any:
        """Run the stream generator's ``command``; return its JSON output (re-ingestion)."""
        output = self._runner.run(command, capture=True)
        try:
            return json.loads(output)
        except ValueError as exc:
            raise MetadataError(f"datablock stream generator output is not JSON: {exc}") from None

    def generate_attachment(
        self, ctx: ScanDirContext, entry: Entry, state: MeasurementState
    ) -> bool:
        """Run the attachment generator if a plot file exists; True if it produced a file."""
        plot, plotext = self.find_plot(ctx, entry)
        if not plot:
            return False
        os.makedirs(ctx.metapath, exist_ok=True)
        with self._source(ctx, entry, plot) as source:
            keywords = self.keywords(ctx, entry, state, plotfile=source, plotext=plotext)
            self._run("attachment_metadata_generator", keywords)
        return os.path.isfile(self.paths(ctx, entry).attachment)

    def callback_due(self, state: MeasurementState) -> bool:
        """True when ``metadata_generated_callback`` may run for an entry in ``state``."""
        cfg = self._cfg
        if not (cfg.call_metadata_generated_callback or state.active):
            return False
        return bool((cfg.metadata_generated_callback or "").strip())

    def run_callback(self, ctx: ScanDirContext, entry: Entry, state: MeasurementState) -> bool:
        """Run ``metadata_generated_callback`` when due; True if it ran."""
        cfg = self._cfg
        if not self.callback_due(state):
            return False
        if not state.last_measurement and not state.active:
            logger.debug("%s: no measurement was ever started; callback skipped", entry.scanname)
            return False
        paths = self.paths(ctx, entry)
        if not (os.path.isfile(paths.dataset) and os.path.isfile(paths.datablock)):
            return False
        if cfg.metadata_group_map_file:
            try:
                check_group_map(cfg.metadata_group_map_file)
            except MetadataError as exc:
                logger.error(
                    "%s: not grouped into %r: %s", entry.scanname, state.last_measurement, exc
                )
                return False
        self._run("metadata_generated_callback", self.keywords(ctx, entry, state))
        return True

    def expected_proposal_id(self, ctx: ScanDirContext) -> Optional[str]:
        bt = ctx.beamtime
        values = {
            "proposalid": bt.proposal_id,
            "proposalId": bt.proposal_id,
            "beamtimeid": bt.beamtime_id,
            "beamtimeId": bt.beamtime_id,
        }
        try:
            return self._cfg.scicat_proposal_id_pattern.format(**values)
        except (KeyError, IndexError, ValueError):
            return None
