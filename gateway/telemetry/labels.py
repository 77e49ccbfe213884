"""Keeping metric label values bounded and free of secrets, whatever callers send."""

from __future__ import annotations

import threading
from collections.abc import Callable

OTHER = "other"
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_MAX_LABEL_LENGTH = 128


def http_method(method: str) -> str:
    """The method as a label: a standard method, or `_OTHER` as semantic conventions ask."""
    return method if method in _KNOWN_METHODS else "_OTHER"


def _unchanged(value: str) -> str:
    return value


class LabelBudget:
    """Admits at most `limit` distinct values per group; later newcomers become "other".

    Groups (providers) are themselves capped, so the total number of label values is
    bounded by `max_groups * limit` no matter what values arrive. An admitted value is
    passed through `clean` once (the redactor), and its label remembered.
    """

    def __init__(self, limit: int, max_groups: int = 64, *,
                 clean: Callable[[str], str] = _unchanged) -> None:
        self._limit = limit
        self._max_groups = max_groups
        self._clean = clean
        # group name -> (its label, {admitted value: its label})
        self._groups: dict[str, tuple[str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def group(self, name: str) -> str:
        """The label of group `name` (itself, cleaned) if tracked or admitted, else "other"."""
        found = self._groups.get(name) or self._admit_group(name)
        return found[0] if found is not None else OTHER

    def value(self, group: str, value: str | None) -> str | None:
        """The label of `value` in `group`: itself (cleaned) if admitted, else "other".

        None stays None.
        """
        if value is None:
            return None
        found = self._groups.get(group) or self._admit_group(group)
        if found is None:  # the group itself was refused
            return OTHER
        seen = found[1]
        label = seen.get(value)
        if label is not None:
            return label
        with self._lock:
            if len(seen) >= self._limit or len(value) > _MAX_LABEL_LENGTH:
                return OTHER
            label = seen[value] = self._clean(value)
            return label

    def _admit_group(self, name: str) -> tuple[str, dict[str, str]] | None:
        with self._lock:
            found = self._groups.get(name)
            if found is not None:
                return found
            if len(self._groups) >= self._max_groups or len(name) > _MAX_LABEL_LENGTH:
                return None
            found = self._groups[name] = (self._clean(name), {})
            return found
