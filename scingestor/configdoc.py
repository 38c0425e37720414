"""The configuration reference, rendered from the key table.

:data:`CONFIG_KEYS` and :func:`render_reference` produce README "Configuration
reference" (``python -m scingestor.config --reference``; a test keeps the README
in step with it).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

from .configkeys import (
    GENERATOR_KEYWORDS,
    HOMEPATH_KEYWORDS,
    KEY_FIELDS,
    SECTIONS,
    IngestorConfig,
)


class ConfigKey(NamedTuple):
    """Documentation of one configuration key."""

    name: str
    type: str
    default: str
    description: str
    section: str
    keywords: str


_TYPE_NAMES = {
    "str": "str",
    "optstr": "str",
    "vardir": "str",
    "url": "str (URL)",
    "opturl": "str (URL)",
    "bool": "bool",
    "int": "int",
    "optint": "int",
    "float": "float",
    "strlist": "list of str",
    "headers": "mapping str→str",
    "strategy": "str (enum)",
    "chmod": "str (octal)",
}


def _show_default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return f"`{json.dumps(value)}`" if isinstance(value, str) else f"`{value}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return f"`{json.dumps(dict(value))}`"


def _describe_keywords(f: dataclasses.Field) -> str:
    allowed = HOMEPATH_KEYWORDS if f.metadata["homepath"] else f.metadata["keywords"]
    if not allowed:
        return "–"
    if allowed is GENERATOR_KEYWORDS:
        return "generator keywords"
    return " ".join(f"`{{{k}}}`" for k in sorted(allowed))


def _config_keys() -> tuple[ConfigKey, ...]:
    defaults = IngestorConfig()
    keys = []
    for f in KEY_FIELDS:
        unit = " (s)" if f.metadata["kind"] == "float" else ""
        doc = f.metadata["doc"] + (" *New in this implementation.*" if f.metadata["new"] else "")
        keys.append(
            ConfigKey(
                name=f.name,
                type=_TYPE_NAMES[f.metadata["kind"]] + unit,
                default=_show_default(getattr(defaults, f.name)),
                description=doc,
                section=f.metadata["section"],
                keywords=_describe_keywords(f),
            )
        )
    return tuple(keys)


#: Every configuration key, in documentation order.
CONFIG_KEYS: tuple[ConfigKey, ...] = _config_keys()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference() -> str:
    """Return the markdown configuration reference (one table per section)."""
    lines = [
        "* The configuration is one YAML mapping; every key is optional and durations "
        "are in seconds.",
        "* A wrong type or value stops the program with one line naming the file and "
        "the key; unknown keys are reported in one warning; a null value counts as absent "
        "and an empty optional string as unset.",
        "* Booleans: YAML booleans or the strings `true/false/yes/no/on/off/1/0` "
        "(any case).",
        "* `{homepath}` is replaced by the home directory in the keys that list it; "
        "the other patterns keep their keywords until use. Only the keywords listed for "
        "a key are allowed (checked at start-up); write literal braces as `{{` and `}}`.",
        "* A generator template given in the file is used as written: the switches are "
        "appended to the built-in templates only.",
        "* `retry_failed_attachement_ingestion` is accepted as an alias of "
        "`retry_failed_attachment_ingestion`.",
        "",
        "Generator keywords: "
        + ", ".join(f"`{{{k}}}`" for k in sorted(GENERATOR_KEYWORDS))
        + ".",
    ]
    for section, title in SECTIONS:
        lines += ["", f"### {title}", "", "| Key | Type | Default | Keywords | Meaning |",
                  "|---|---|---|---|---|"]
        for key in CONFIG_KEYS:
            if key.section == section:
                cells = (f"`{key.name}`", key.type, key.default, key.keywords, key.description)
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
