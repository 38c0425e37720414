"""A wrapper for secret strings (passwords, tokens) that never shows its value."""

from __future__ import annotations


class Secret:
    """Hold a secret string; ``str``/``repr``/formatting print ``'***'``.

    Call :meth:`reveal` at the single place where the value is really needed
    (a login body, an ``Authorization`` header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __reduce__(self):  # never pickle a secret by accident
        raise TypeError("Secret values cannot be pickled")
