"""Generator command templates: keywords, switches, expansion and safe argument vectors.

A template is expanded in two forms. ``Command.text`` is what the original
built with ``str.format`` (what is logged, and what the tests compare).
``Command.argv`` is what is executed: the template is split into words with
POSIX shell rules first, with the placeholders still in place, and only then
are the values put into the words, so a value never becomes shell syntax.
A template that really uses the shell (pipes, ``;``, ``$``...) runs with
``sh -c`` and every value is quoted for the place it stands in.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import socket
import string
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from .beamtime import ScanDirContext
from .config import IngestorConfig
from .listproto import UnsafeNameError, check_scan_name  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

FILE_DATASET = "file_dataset_metadata_generator"
DATASET = "dataset_metadata_generator"
DATABLOCK = "datablock_metadata_generator"
DATABLOCK_STREAM = "datablock_metadata_stream_generator"
ATTACHMENT = "attachment_metadata_generator"
CALLBACK = "metadata_generated_callback"
SCANPATH_POSTFIX = "datablock_metadata_generator_scanpath_postfix"

#: The template keys a :class:`Command` can be built from.
TEMPLATE_KEYS = (FILE_DATASET, DATASET, DATABLOCK, DATABLOCK_STREAM, ATTACHMENT, CALLBACK)
#: Templates followed by one scan-path postfix per token of the list line.
DATABLOCK_KEYS = (DATABLOCK, DATABLOCK_STREAM)


class GeneratorError(Exception):
    """A generator command cannot be built, cannot be run, or failed."""



# ---------------------------------------------------------------------------
# keywords
# ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Format an optional configuration value like ``str.format`` does (``None`` → ``None``)."""
    return str(value)


def id_pattern(cfg: IngestorConfig) -> str:
    """``scicat_proposal_id_pattern`` with its keywords in nxsfileinfo's camel-case form."""
    return cfg.scicat_proposal_id_pattern.replace("{proposalid}", "{proposalId}").replace(
        "{beamtimeid}", "{beamtimeId}"
    )


def datablock_relpath(cfg: IngestorConfig, ctx: ScanDirContext, scanname: str) -> str:
    """``{dbrelpath}``: beamtime-relative scan path (if configured) joined with the name's dir."""
    parts = []
    if cfg.relative_path_in_datablock:
        parts.append(ctx.relpath)
    if "/" in scanname:
        parts.append(os.path.dirname(scanname))
    return os.path.join(*parts) if parts else ""


def keyword_table(
    cfg: IngestorConfig,
    ctx: ScanDirContext,
    *,
    scanname: str,
    masterscanname: Optional[str] = None,
    entryname: str = "",
    dbrelpath: Optional[str] = None,
    masterfile: str = "",
    ext: str = "",
    plotfile: str = "",
    plotext: str = "",
    measurement: str = "",
    lastmeasurement: str = "",
) -> dict[str, str]:
    """Every generator keyword (README "Configuration reference") for one entry of a list.

    ``masterscanname`` defaults to ``scanname``; ``dbrelpath`` is computed with
    :func:`datablock_relpath` unless given.
    """
    beamtime = ctx.beamtime
    if dbrelpath is None:
        dbrelpath = datablock_relpath(cfg, ctx, scanname)
    return {
        "homepath": os.path.expanduser("~"),
        "hostname": socket.gethostname(),
        "beamtimeid": beamtime.beamtime_id,
        "beamline": beamtime.beamline,
        "beamtimefile": ctx.beamtime_file,
        "pidprefix": _text(cfg.dataset_pid_prefix),
        "idpattern": id_pattern(cfg),
        "ownergroup": beamtime.owner_group,
        "accessgroups": ",".join(beamtime.access_groups),
        "scanpath": ctx.scanpath,
        "metapath": ctx.metapath,
        "relpath": ctx.relpath,
        "dbrelpath": dbrelpath,
        "scanname": scanname,
        "masterscanname": scanname if masterscanname is None else masterscanname,
        "entryname": entryname,
        "ext": ext,
        "masterfile": masterfile,
        "plotext": plotext,
        "plotfile": plotfile,
        "scanpostfix": cfg.scan_metadata_postfix,
        "datablockpostfix": cfg.datablock_metadata_postfix,
        "attachmentpostfix": cfg.attachment_metadata_postfix,
        "chmod": _text(cfg.chmod_json_files),
        "hiddenattributes": _text(cfg.hidden_attributes),
        "copymapfile": _text(cfg.metadata_copy_map_file),
        "groupmapfile": _text(cfg.metadata_group_map_file),
        "signals": _text(cfg.attachment_signal_names),
        "axes": _text(cfg.attachment_axes_names),
        "frame": _text(cfg.attachment_image_frame_number),
        "maxonedsize": _text(cfg.max_oned_size),
        "measurement": measurement,
        "lastmeasurement": lastmeasurement,
    }


# ---------------------------------------------------------------------------
# templates and switches
# ---------------------------------------------------------------------------


def _is_set(value: Any) -> bool:
    return value is not None and value != ""


def switch_keys(cfg: IngestorConfig, key: str) -> list[str]:
    """The switch keys appended to the default template ``key``, in the original's order."""
    if key in (FILE_DATASET, DATASET):
        wanted = [
            ("relative_path_generator_switch", not cfg.relative_path_in_datablock),
            ("chmod_generator_switch", _is_set(cfg.chmod_json_files)),
            ("hidden_attributes_generator_switch", _is_set(cfg.hidden_attributes)),
            ("metadata_copy_map_file_generator_switch", _is_set(cfg.metadata_copy_map_file)),
            ("oned_dataset_generator_switch", cfg.oned_in_metadata),
            (
                "max_oned_dataset_generator_switch",
                bool(cfg.oned_in_metadata and cfg.max_oned_size),
            ),
            ("add_empty_units_generator_switch", cfg.add_empty_units),
        ]
    elif key in DATABLOCK_KEYS:
        wanted = [("chmod_generator_switch", _is_set(cfg.chmod_json_files))]
    elif key == ATTACHMENT:
        wanted = [
            ("chmod_generator_switch", _is_set(cfg.chmod_json_files)),
            ("attachment_signals_generator_switch", _is_set(cfg.attachment_signal_names)),
            ("attachment_axes_generator_switch", _is_set(cfg.attachment_axes_names)),
            ("attachment_frame_generator_switch", _is_set(cfg.attachment_image_frame_number)),
            ("override_attachment_signals_generator_switch", cfg.override_attachment_signals),
        ]
    elif key == CALLBACK:
        wanted = [
            ("chmod_generator_switch", _is_set(cfg.chmod_json_files)),
            ("metadata_group_map_file_generator_switch", _is_set(cfg.metadata_group_map_file)),
            ("raw_metadata_callback_switch", cfg.raw_metadata_callback),
        ]
    else:
        raise GeneratorError(f"unknown generator template key {key!r}")
    return [name for name, on in wanted if on]


def template_text(cfg: IngestorConfig, key: str) -> str:
    """The template of ``key``; switches are appended only when ``key`` is not user-given."""
    if key not in TEMPLATE_KEYS:
        raise GeneratorError(f"unknown generator template key {key!r}")
    text = getattr(cfg, key) or ""
    if key in cfg.explicit_keys:
        return text
    return text + "".join(getattr(cfg, name) or "" for name in switch_keys(cfg, key))


def template_segments(
    cfg: IngestorConfig,
    key: str,
    keywords: Mapping[str, str],
    tokens: Optional[Sequence[str]] = None,
) -> list[tuple[str, Mapping[str, str]]]:
    """The (template, keywords) pieces making up the command of ``key``.

    Datablock generators get ``datablock_metadata_generator_scanpath_postfix``
    once per token (default: the scan name), with ``{scanname}`` = the token.
    """
    segments: list[tuple[str, Mapping[str, str]]] = [(template_text(cfg, key), keywords)]
    if key in DATABLOCK_KEYS:
        postfix = cfg.datablock_metadata_generator_scanpath_postfix or ""
        names = [keywords["scanname"]] if tokens is None else list(tokens)
        for token in names:
            segments.append((postfix, {**keywords, "scanname": token}))
    return segments


# ---------------------------------------------------------------------------
# expansion
# ---------------------------------------------------------------------------


class _Value(str):
    """A substituted keyword value (opaque to the shell grammar)."""


_Piece = Union[str, _Value]


_FORMATTER = string.Formatter()


@functools.lru_cache(maxsize=256)
def _parse_template(template: str) -> tuple[tuple[str, Optional[str], Optional[str],
                                                  Optional[str]], ...]:
    """``str.format``'s parse of a template (a handful of templates, parsed once each)."""
    return tuple(_FORMATTER.parse(template))


def _expand(template: str, keywords: Mapping[str, str], key: str) -> Iterator[_Piece]:
    """Split ``template`` into literal text and formatted values, as ``str.format`` would."""
    formatter = _FORMATTER
    try:
        parsed = _parse_template(template)
    except ValueError as exc:
        raise GeneratorError(f"{key}: malformed template {template!r}: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            yield literal
        if name is None:
            continue
        try:
            value, _ = formatter.get_field(name, (), keywords)
            value = formatter.convert_field(value, conversion)
            if spec and "{" in spec:
                spec = spec.format_map(keywords)
            yield _Value(format(value, spec or ""))
        except KeyError as exc:
            raise GeneratorError(
                f"{key}: unknown keyword {{{exc.args[0]}}} in template {template!r}"
            ) from None
        except (IndexError, AttributeError, ValueError, TypeError) as exc:
            raise GeneratorError(
                f"{key}: cannot expand {{{name}}} in template {template!r}: {exc}"
            ) from None


_OPERATORS = frozenset("|&;<>()`$\n")
_DQ_ESCAPABLE = frozenset('$`"\\\n')
_BLANKS = frozenset(" \t")
#: runs of characters with no meaning to the shell, taken in one step per state
_PLAIN_RUN = {
    "": re.compile("[^" + re.escape("".join(_BLANKS | _OPERATORS) + "'\"\\#~") + "]+"),
    '"': re.compile("[^" + re.escape('"\\$`') + "]+"),
    "'": re.compile("[^']+"),
}


class _Splitter:
    """POSIX ``sh`` word splitting of literal template text with opaque values.

    Builds the argument vector (values unchanged, one word stays one argument)
    and, in parallel, a shell script in which every value is quoted for its
    context; ``needs_shell`` tells whether the template uses shell syntax.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.words: list[str] = []
        self.script: list[str] = []
        self.needs_shell = False
        self._word: list[str] = []
        self._started = False
        self._state = ""  # "" unquoted, "'" single quotes, '"' double quotes
        self._pending_backslash = False

    def _end_word(self) -> None:
        if self._started:
            self.words.append("".join(self._word))
        self._word, self._started = [], False

    def _add(self, text: str) -> None:
        self._word.append(text)
        self._started = True

    def value(self, value: str) -> None:
        """Put a substituted value at the current position."""
        if self._pending_backslash:
            # sh would let the backslash escape the value's first character; it
            # must not escape our quoting, so it is dropped in both forms.
            self._pending_backslash = False
            self.script[-1] = self.script[-1][:-1]
        if self._state == "'":
            self.script.append(value.replace("'", "'\\''"))
            self._add(value)
        elif self._state == '"':
            self.script.append("".join("\\" + c if c in '$`"\\' else c for c in value))
            self._add(value)
        elif value:
            self.script.append(shlex.quote(value))
            self._add(value)

    def literal(self, text: str) -> None:
        """Interpret template text with shell quoting rules."""
        self.script.append(text)
        i, size = 0, len(text)
        if self._pending_backslash:
            self._pending_backslash = False
            if self._state == "":
                self._unquoted_escape(text[0])
            else:
                self._double_quoted_escape(text[0])
            i = 1
        while i < size:
            run = _PLAIN_RUN[self._state].match(text, i)
            if run is not None:
                self._add(run.group())
                i = run.end()
                continue
            char = text[i]
            if self._state == "'":
                if char == "'":
                    self._state = ""
                else:
                    self._add(char)
            elif self._state == '"':
                if char == '"':
                    self._state = ""
                elif char == "\\":
                    if i + 1 == size:
                        self._pending_backslash = True
                    else:
                        i += 1
                        self._double_quoted_escape(text[i])
                else:
                    if char in "$`":
                        self.needs_shell = True
                    self._add(char)
            elif char in _BLANKS:
                self._end_word()
            elif char in "'\"":
                self._state = char
                self._started = True
            elif char == "\\":
                if i + 1 == size:
                    self._pending_backslash = True
                else:
                    i += 1
                    self._unquoted_escape(text[i])
            else:
                if char in _OPERATORS or (char in "#~" and not self._started):
                    self.needs_shell = True
                self._add(char)
            i += 1

    def _unquoted_escape(self, char: str) -> None:
        if char != "\n":
            self._add(char)

    def _double_quoted_escape(self, char: str) -> None:
        if char == "\n":
            return
        if char not in _DQ_ESCAPABLE:
            self._add("\\")
        self._add(char)

    def finish(self) -> None:
        """Close the last word; an open quote is a template error."""
        if self._state:
            raise GeneratorError(f"{self.key}: unterminated {self._state} quote in template")
        if self._pending_backslash:
            self._add("\\")
        self._end_word()


@dataclass(frozen=True)
class Command:
    """One expanded generator command.

    ``text`` is the command line as the original built it (logged); ``argv``
    is what is executed: the plain argument vector, or ``("sh", "-c", script)``
    when the template uses shell syntax (``shell`` is then true).
    """

    key: str
    text: str
    argv: tuple[str, ...]
    shell: bool = False

    @property
    def empty(self) -> bool:
        """True when there is nothing to run (empty template)."""
        return not self.argv


def expand_segments(key: str, segments: Iterable[tuple[str, Mapping[str, str]]]) -> Command:
    """Expand template pieces (each with its own keywords) into a :class:`Command`."""
    pieces: list[_Piece] = []
    for template, keywords in segments:
        pieces.extend(_expand(template, keywords, key))
    text = "".join(pieces)
    splitter = _Splitter(key)
    for piece in pieces:
        if isinstance(piece, _Value):
            splitter.value(str(piece))
        else:
            splitter.literal(piece)
    splitter.finish()
    if splitter.needs_shell:
        return Command(key, text, ("sh", "-c", "".join(splitter.script)), shell=True)
    return Command(key, text, tuple(splitter.words))


def build_command(
    cfg: IngestorConfig,
    key: str,
    keywords: Mapping[str, str],
    tokens: Optional[Sequence[str]] = None,
) -> Command:
    """Build the command of template ``key`` (switches and scan-path postfixes included)."""
    return expand_segments(key, template_segments(cfg, key, keywords, tokens))


# ---------------------------------------------------------------------------
# path safety
# ---------------------------------------------------------------------------


def _control_chars(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)



def _inside(path: str, directory: str) -> bool:
    directory = os.path.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def check_token_within(token: str, scanpath: str, beamtime_dir: str) -> None:
    """Reject a datablock token (e.g. ``../lambda1/``) that leaves ``beamtime_dir``.

    The token is resolved like the generator sees it: ``{scanpath}/{token}``.
    Give ``scanpath`` and ``beamtime_dir`` in the same form (both core or not).
    """
    if not token or not token.strip():
        raise UnsafeNameError("empty list-line token")
    if _control_chars(token):
        raise UnsafeNameError(f"token {token!r} contains control characters")
    target = os.path.normpath(scanpath.rstrip("/") + "/" + token)
    if not _inside(target, beamtime_dir):
        raise UnsafeNameError(
            f"token {token!r} leads outside the beamtime directory {beamtime_dir}"
        )
