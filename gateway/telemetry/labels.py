"""Keeping metric label values bounded, whatever callers send."""

from __future__ import annotations

import threading

OTHER = "other"
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_MAX_LABEL_LENGTH = 128


def http_method(method: str) -> str:
    """The method as a label: a standard method, or `_OTHER` as semantic conventions ask."""
    return method if method in _KNOWN_METHODS else "_OTHER"


class LabelBudget:
    """Admits at most `limit` distinct values per group; later newcomers become "other".

    Groups (providers) are themselves capped, so the total number of label values is
    bounded by `max_groups * limit` no matter what values arrive.
    """

    def __init__(self, limit: int, max_groups: int = 64) -> None:
        self._limit = limit
        self._max_groups = max_groups
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def group(self, name: str) -> str:
        """`name` if it is (or may become) a tracked group, else "other"."""
        if name in self._seen:
            return name
        with self._lock:
            if name in self._seen:
                return name
            if len(self._seen) >= self._max_groups or len(name) > _MAX_LABEL_LENGTH:
                return OTHER
            self._seen[name] = set()
            return name

    def value(self, group: str, value: str | None) -> str | None:
        """`value` if admitted for `group`, "other" once the group is full, None stays None."""
        if value is None:
            return None
        seen = self._seen.get(self.group(group))
        if seen is None:  # the group itself was refused
            return OTHER
        if value in seen:
            return value
        with self._lock:
            if len(seen) >= self._limit or len(value) > _MAX_LABEL_LENGTH:
                return OTHER
            seen.add(value)
            return value
