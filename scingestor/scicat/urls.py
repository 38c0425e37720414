"""URLs of a SciCat server: API version, the v3 root beside v4, path segments."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

_V4_TAIL = re.compile(r"/v4/*$", re.IGNORECASE)


def encode_segment(value: str) -> str:
    """Percent-encode one URL path segment (``/`` becomes ``%2F``)."""
    return quote(str(value), safe="")


def strip_query(url: str) -> str:
    """Return ``url`` without query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def api_version(url: str) -> int:
    """4 when ``url`` is a v4 API root (``…/api/v4``), else 3 (README "SciCat API v4")."""
    return 4 if _V4_TAIL.search(strip_query(url)) else 3


def v3_root(url: str) -> str:
    """The v3 API root beside a v4 one (login, proposals, samples live there only)."""
    return _V4_TAIL.sub("/v3", strip_query(url).rstrip("/"))
