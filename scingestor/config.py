"""The ingestor configuration: loading and checking a YAML mapping, and its command line.

Every YAML key is a field of :class:`IngestorConfig`, named exactly like the key.
The field metadata (type, section, description, allowed keywords) is the single
source of truth for loading, validation and the documentation; the work is split
in three modules, all re-exported here (``from scingestor.config import ...`` is
the import every caller uses):

* :mod:`scingestor.configkeys`: the key table (:class:`IngestorConfig`, keyword sets);
* :mod:`scingestor.configvalues`: conversion and checking of one value;
* :mod:`scingestor.configdoc`: :data:`CONFIG_KEYS` and :func:`render_reference`.

This module loads files and mappings (:func:`load_config`,
:func:`config_from_mapping`) and is ``python -m scingestor.config``
(docs/configuration.md).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from typing import Any, Mapping, Sequence

import yaml

from .configdoc import CONFIG_KEYS, ConfigKey, render_reference
from .configkeys import (
    ATTACHMENT_PATH_KEYWORDS,
    FIELDS_BY_NAME,
    GENERATOR_KEYWORDS,
    HOMEPATH_KEYWORDS,
    KEY_ALIASES,
    LIST_FILE_KEYWORDS,
    PROPOSAL_ID_KEYWORDS,
    SECTIONS,
    UPDATE_STRATEGIES,
    VAR_DIR_KEYWORDS,
    IngestorConfig,
)
from .configvalues import BadValue, convert_value, describe, template_keywords

__all__ = [
    "ATTACHMENT_PATH_KEYWORDS",
    "CONFIG_KEYS",
    "GENERATOR_KEYWORDS",
    "HOMEPATH_KEYWORDS",
    "KEY_ALIASES",
    "LIST_FILE_KEYWORDS",
    "PROPOSAL_ID_KEYWORDS",
    "SECTIONS",
    "UPDATE_STRATEGIES",
    "VAR_DIR_KEYWORDS",
    "ConfigError",
    "ConfigKey",
    "IngestorConfig",
    "config_from_mapping",
    "load_config",
    "main",
    "render_reference",
    "template_keywords",
]

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration problem; the message is one line naming the file and the key."""


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader that warns about duplicate keys (the last one wins)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue
        if duplicate:
            logger.warning(
                "%s: line %d: duplicate key %r; the last value is used",
                loader.name, key_node.start_mark.line + 1, key,
            )
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, label: str) -> Any:
    loader = _Loader(text)
    loader.name = label
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{label}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ConfigError(f"{label}: invalid YAML: {first}") from None
    finally:
        loader.dispose()


def load_config(path: str | None) -> IngestorConfig:
    """Load the configuration file ``path``; ``None`` gives all defaults.

    Raises :class:`ConfigError` for an unreadable file, bad YAML, a top level
    that is not a mapping, wrong types and bad values.
    """
    if path is None:
        return IngestorConfig()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read configuration file: not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{path}: cannot read configuration file: {reason}") from None
    return config_from_mapping(_parse_yaml(text, path), source=path)


def config_from_mapping(data: Mapping[str, Any] | None, source: str = "") -> IngestorConfig:
    """Build an :class:`IngestorConfig` from a parsed YAML mapping.

    ``source`` names the file in error messages. Null values count as absent.
    """
    label = source or "configuration"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{label}: the top level must be a mapping of keys to values, "
            f"got {describe(data)}"
        )
    values: dict[str, Any] = {}
    given: dict[str, str] = {}
    unknown: list[str] = []
    for raw_key, value in data.items():
        key = str(raw_key)
        name = KEY_ALIASES.get(key, key)
        if name not in FIELDS_BY_NAME:
            unknown.append(key)
            continue
        if value is None:
            continue
        try:
            converted = convert_value(FIELDS_BY_NAME[name], value)
        except BadValue as exc:
            raise ConfigError(f"{label}: {key}: {exc}") from None
        if name in values and values[name] != converted:
            raise ConfigError(
                f"{label}: {key}: conflicts with {given[name]}; give only one of them"
            )
        values[name] = converted
        given[name] = key
    initial = values.get("retry_backoff_initial", IngestorConfig.retry_backoff_initial)
    maximum = values.get("retry_backoff_max", IngestorConfig.retry_backoff_max)
    if maximum < initial:
        raise ConfigError(
            f"{label}: retry_backoff_max: must not be less than retry_backoff_initial "
            f"({maximum:g} < {initial:g})"
        )
    if unknown:
        logger.warning("%s: unknown configuration keys ignored: %s", label, _unknown_text(unknown))
    return IngestorConfig(**values, explicit_keys=frozenset(values), source=source)


def _unknown_text(keys: Sequence[str]) -> str:
    names = list(FIELDS_BY_NAME) + list(KEY_ALIASES)
    parts = []
    for key in sorted(keys):
        close = difflib.get_close_matches(key, names, n=1)
        parts.append(f"{key} (did you mean {close[0]}?)" if close else key)
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scingestor.config``: print the reference or check a file."""
    parser = argparse.ArgumentParser(
        prog="python -m scingestor.config",
        description="Show the configuration reference or check a configuration file.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", action="store_true", help="print the markdown reference")
    group.add_argument("--check", metavar="FILE", help="load FILE and report the first problem")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    logging.basicConfig(format="%(levelname)s : %(message)s")
    try:
        load_config(args.check)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"{args.check}: OK\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
