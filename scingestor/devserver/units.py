"""SI conversion of ``scientificMetadata`` quantities (``valueSI``/``unitSI``).

The server adds ``valueSI`` and ``unitSI`` beside every entry that has a
``value`` and a non-empty ``unit``; see "Server-managed fields" in
``docs/devserver.md``. Units it does not know are copied unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Optional, Tuple

logger = logging.getLogger(__name__)

_ENERGY = "(kg m^2) / s^2"
_POWER = "(kg m^2) / s^3"
_PRESSURE = "kg / (m s^2)"

#: Units taking SI prefixes: symbol -> (factor to the SI unit, SI unit).
_PREFIXABLE: Dict[str, Tuple[float, str]] = {
    "m": (1.0, "m"), "s": (1.0, "s"), "g": (1e-3, "kg"), "K": (1.0, "K"),
    "A": (1.0, "A"), "eV": (1.602176565e-19, _ENERGY), "J": (1.0, _ENERGY),
    "Hz": (1.0, "s^-1"), "Pa": (1.0, _PRESSURE), "bar": (1e5, _PRESSURE),
    "W": (1.0, _POWER), "V": (1.0, "(kg m^2) / (s^3 A)"), "T": (1.0, "kg / (s^2 A)"),
    "rad": (1.0, "rad"),
}
#: Units without prefixes.
_PLAIN: Dict[str, Tuple[float, str]] = {
    "min": (60.0, "s"), "h": (3600.0, "s"), "deg": (3.141592653589793 / 180.0, "rad"),
}
_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "c": 1e-2, "m": 1e-3,
             "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_CELSIUS = ("degC", "celsius")
_POWER_RE = re.compile(r"^([A-Za-z]+)\^(-?\d+)$")


def _lookup(symbol: str) -> Optional[Tuple[float, str]]:
    if symbol in _PLAIN:
        return _PLAIN[symbol]
    if symbol in _PREFIXABLE:
        return _PREFIXABLE[symbol]
    for prefix, factor in _PREFIXES.items():
        if prefix and symbol.startswith(prefix) and symbol[len(prefix):] in _PREFIXABLE:
            base, unit = _PREFIXABLE[symbol[len(prefix):]]
            return factor * base, unit
    return None


def _scale(value: Any, factor: float, offset: float = 0.0) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        result = value * factor + offset
        return int(result) if float(result).is_integer() and abs(result) < 1e15 else result
    if isinstance(value, list):
        return [_scale(item, factor, offset) for item in value]
    return value


def to_si(value: Any, unit: str) -> Tuple[Any, str]:
    """Return ``(valueSI, unitSI)`` for ``value`` in ``unit`` (unchanged if unknown)."""
    text = unit.strip()
    if text in _CELSIUS:
        return _scale(value, 1.0, 273.15), "K"
    found = _lookup(text)
    if found is None:
        match = _POWER_RE.match(text)
        inner = _lookup(match.group(1)) if match else None
        if match is None or inner is None or " " in inner[1] or "^" in inner[1]:
            return value, unit
        power = int(match.group(2))
        found = (inner[0] ** power, f"{inner[1]}^{power}")
    factor, si_unit = found
    if not isinstance(value, (int, float, list)) or isinstance(value, bool):
        return value, unit
    return _scale(value, factor), si_unit


def add_si(metadata: Any) -> Any:
    """Return a copy of ``metadata`` with ``valueSI``/``unitSI`` added where a unit is given."""
    if isinstance(metadata, list):
        return [add_si(item) for item in metadata]
    if not isinstance(metadata, dict):
        return metadata
    result = {key: add_si(value) for key, value in metadata.items()}
    unit = metadata.get("unit")
    if "value" in metadata and isinstance(unit, str) and unit.strip():
        result["valueSI"], result["unitSI"] = to_si(metadata["value"], unit)
    return result
