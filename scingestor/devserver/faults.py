"""Fault injection for the development server."""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set

logger = logging.getLogger(__name__)


@dataclass
class FailRule:
    """Answer matching requests with ``status``/``body`` instead of processing them."""

    count: int
    status: int = 500
    body: str = ""
    method: Optional[str] = None
    path: Optional[str] = None
    numbers: Set[int] = field(default_factory=set)

    def matches(self, number: int, method: str, path: str) -> bool:
        """Return True if the rule applies to this request."""
        if self.numbers:
            return number in self.numbers
        return _matches(self.method, self.path, method, path)


@dataclass
class DropRule:
    """Process matching requests but close the connection without an answer."""

    count: int
    method: Optional[str] = None
    path: Optional[str] = None


@dataclass
class Decision:
    """What the handler must do with one request."""

    fail: Optional[FailRule] = None
    drop: bool = False
    latency: float = 0.0


def _matches(rule_method: Optional[str], rule_path: Optional[str], method: str,
             path: str) -> bool:
    if rule_method and rule_method.upper() != method.upper():
        return False
    if rule_path and not re.search(rule_path, path, re.IGNORECASE):
        return False
    return True


def default_error_body(status: int) -> str:
    """Return a NestJS-style error body for ``status``."""
    if status >= 500:
        return json.dumps({"statusCode": status, "message": "Internal server error"})
    return json.dumps({"statusCode": status, "message": "Injected failure"})


class Faults:
    """Thread-safe set of injected faults, shared by the handler threads.

    ``refuse_hook(seconds)`` and ``restore_hook()`` are installed by the server
    to close and reopen its listening socket.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: List[FailRule] = []
        self._drop: List[DropRule] = []
        self.latency = 0.0
        self.refusing = False
        self.refuse_hook: Optional[Callable[[Optional[float]], None]] = None
        self.restore_hook: Optional[Callable[[], None]] = None

    def fail_next(self, count: int = 1, status: int = 500, body: Any = None,
                  method: Optional[str] = None, path: Optional[str] = None) -> None:
        """Fail the next ``count`` requests (matching ``method`` / ``path`` regex)."""
        with self._lock:
            self._fail.append(FailRule(int(count), int(status), _body_text(body, status),
                                       method, path))

    def fail_requests(self, *numbers: int, status: int = 500, body: Any = None) -> None:
        """Fail the requests with these numbers (1-based, counted since the last reset)."""
        with self._lock:
            self._fail.append(FailRule(len(numbers), int(status), _body_text(body, status),
                                       numbers={int(n) for n in numbers}))

    def drop_next(self, count: int = 1, method: Optional[str] = None,
                  path: Optional[str] = None) -> None:
        """Process the next ``count`` matching requests but send no response."""
        with self._lock:
            self._drop.append(DropRule(int(count), method, path))

    def set_latency(self, seconds: float) -> None:
        """Delay every request by ``seconds``."""
        with self._lock:
            self.latency = max(0.0, float(seconds))

    def refuse_connections(self, seconds: Optional[float] = None) -> None:
        """Close the listening socket; reopen after ``seconds`` (None: on clear())."""
        if self.refuse_hook is None:
            raise RuntimeError("server does not support refusing connections")
        self.refusing = True
        self.refuse_hook(seconds)

    def clear(self) -> None:
        """Remove every fault and reopen the listening socket if it was closed."""
        with self._lock:
            self._fail.clear()
            self._drop.clear()
            self.latency = 0.0
        if self.refusing and self.restore_hook is not None:
            self.restore_hook()
        self.refusing = False

    def decide(self, number: int, method: str, path: str) -> Decision:
        """Consume the rules that apply to one request and return the decision."""
        with self._lock:
            decision = Decision(latency=self.latency)
            for rule in self._fail:
                if rule.count > 0 and rule.matches(number, method, path):
                    rule.count -= 1
                    decision.fail = rule
                    break
            if decision.fail is None:
                for drop in self._drop:
                    if drop.count > 0 and _matches(drop.method, drop.path, method, path):
                        drop.count -= 1
                        decision.drop = True
                        break
            self._fail = [rule for rule in self._fail if rule.count > 0]
            self._drop = [rule for rule in self._drop if rule.count > 0]
            return decision

    def describe(self) -> Dict[str, Any]:
        """Return the pending faults as JSON-ready data."""
        with self._lock:
            return {
                "fail": [{"count": r.count, "status": r.status, "method": r.method,
                          "path": r.path, "numbers": sorted(r.numbers)} for r in self._fail],
                "drop": [{"count": r.count, "method": r.method, "path": r.path}
                         for r in self._drop],
                "latency": self.latency,
                "refusing": self.refusing,
            }


def _body_text(body: Any, status: int) -> str:
    if body is None:
        return default_error_body(status)
    if isinstance(body, str):
        return body
    return json.dumps(body)
