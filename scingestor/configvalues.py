"""Conversion and checking of configuration values, driven by the field metadata.

:func:`convert_value` turns one YAML value into the typed value of its
:class:`~scingestor.configkeys.IngestorConfig` field (README "Configuration
reference" lists the rules); a problem raises :class:`BadValue`, which the loader
(:mod:`scingestor.config`) reports as a ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import string
import types
from typing import Any, Callable, Mapping

from .configkeys import HOMEPATH_KEYWORDS, UPDATE_STRATEGIES
from .listproto import parse_truth


class BadValue(Exception):
    """A value problem; the loader turns it into a ``ConfigError`` naming file and key."""


def describe(value: Any) -> str:
    """``value`` shortened for an error message (a mapping, a list or its short repr)."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise BadValue(f"expected a string, got {describe(value)}")


def _to_bool(value: Any) -> bool:
    truth = parse_truth(value)
    if truth is None:
        raise BadValue(f"expected true or false, got {describe(value)}")
    return truth


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"expected a number, got {describe(value)}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise BadValue(f"expected a number, got {describe(value)}") from None
    if not math.isfinite(number):
        raise BadValue(f"expected a finite number, got {describe(value)}")
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = _to_float(value)
    except BadValue:
        raise BadValue(f"expected an integer, got {describe(value)}") from None
    if not number.is_integer():
        raise BadValue(f"expected an integer, got {describe(value)}")
    return int(number)


def _to_strlist(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise BadValue(f"expected a list of strings, got {describe(value)}")
    items = []
    for item in value:
        if item is None or item == "":
            continue
        if isinstance(item, (list, tuple, Mapping)):
            raise BadValue(f"expected a list of strings, got an entry that is {describe(item)}")
        items.append(_to_str(item))
    return tuple(items)


def _to_headers(value: Any) -> types.MappingProxyType:
    if not isinstance(value, Mapping):
        raise BadValue(f"expected a mapping of header names to values, got {describe(value)}")
    headers = {}
    for name, item in value.items():
        if item is None or isinstance(item, (list, tuple, Mapping)):
            raise BadValue(f"header {name!r}: expected a string value, got {describe(item)}")
        headers[_to_str(name)] = _to_str(item)
    return types.MappingProxyType(headers)


def _to_strategy(value: Any) -> str:
    if value is False:  # YAML reads an unquoted `no` as false
        return "no"
    if isinstance(value, str) and value.strip().lower() in UPDATE_STRATEGIES:
        return value.strip().lower()
    raise BadValue(f"expected one of {', '.join(UPDATE_STRATEGIES)}, got {describe(value)}")


def _to_chmod(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        raise BadValue(
            "an unquoted number is not a file mode; quote the octal mode, e.g. \"0o662\"")
    text = _to_str(value).strip()
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise BadValue(f"expected an octal file mode such as \"0o662\", got {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise BadValue(f"file mode out of range: {text!r}")
    return text


def _to_optstr(value: Any) -> str | None:
    text = _to_str(value)
    return text if text != "" else None


def _to_vardir(value: Any) -> str:
    return _to_str(value).rstrip("/")


def _to_url(value: Any) -> str:
    text = _to_str(value).strip()
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
        raise BadValue(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _to_opturl(value: Any) -> str:
    """An optional web address: '' (unset) or an http(s) URL without a trailing '/'."""
    text = _to_str(value).strip()
    return _to_url(text).rstrip("/") if text else ""


#: Field kind (the `_key` metadata "kind") → converter of a YAML value.
CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "optstr": _to_optstr,
    "vardir": _to_vardir,
    "url": _to_url,
    "opturl": _to_opturl,
    "bool": _to_bool,
    "int": _to_int,
    "optint": _to_int,
    "float": _to_float,
    "strlist": _to_strlist,
    "headers": _to_headers,
    "strategy": _to_strategy,
    "chmod": _to_chmod,
}


def template_keywords(template: str) -> set[str]:
    """Return the ``{keyword}`` names used in ``template`` (``{{``/``}}`` are literal).

    Raises ``ValueError`` for malformed braces, positional fields and attribute
    or index access.
    """
    names = set()
    for _literal, name, spec, _conv in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError("empty or numbered placeholder '{}'; write literal braces as {{ }}")
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain keyword")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"nested placeholder in {{{name}:{spec}}}")
        names.add(name)
    return names


def check_keywords(text: str, allowed: frozenset[str]) -> None:
    """Raise :class:`BadValue` unless ``text`` is a pattern using only ``allowed`` keywords."""
    try:
        used = template_keywords(text)
    except ValueError as exc:
        raise BadValue(f"invalid pattern {text!r}: {exc}") from None
    unknown = sorted(used - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" (did you mean {{{close[0]}}}?)" if close else ""
        if len(allowed) <= 5:
            hint += "; allowed here: " + ", ".join("{" + k + "}" for k in sorted(allowed))
        else:
            hint += "; see the generator keywords in the configuration reference"
        raise BadValue(f"unknown keyword {{{unknown[0]}}}{hint}")
    try:
        text.format(**{name: "" for name in allowed})
    except (ValueError, KeyError, IndexError) as exc:
        raise BadValue(f"invalid pattern {text!r}: {exc}") from None


def _homepath(text: str) -> str:
    check_keywords(text, HOMEPATH_KEYWORDS)
    return text.format(homepath=os.path.expanduser("~"))


def convert_value(f: dataclasses.Field, value: Any) -> Any:
    """The typed, checked value of field ``f`` from the YAML ``value`` (:class:`BadValue`)."""
    meta = f.metadata
    result = CONVERTERS[meta["kind"]](value)
    if meta["homepath"]:
        if isinstance(result, tuple):
            result = tuple(_homepath(item) for item in result)
        elif result:
            result = _homepath(result)
    elif meta["keywords"] is not None and result:
        check_keywords(result, meta["keywords"])
    if meta["minimum"] is not None and result < meta["minimum"]:
        raise BadValue(f"must be at least {meta['minimum']:g}, got {describe(value)}")
    if meta["positive"] and result <= 0:
        raise BadValue(f"must be greater than 0, got {describe(value)}")
    if f.name == "beamtime_base_dir" and result:
        result = os.path.abspath(result)
    return result

