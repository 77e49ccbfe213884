"""Structured logging: one redacted JSON object per line on standard output."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from gateway.errors import GatewayError
from gateway.telemetry.redaction import Redactor

ACCESS_LOGGER = "gateway.access"
_access = logging.getLogger(ACCESS_LOGGER)

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON object, every string in it redacted.

    Errors the gateway expects (`GatewayError`) are logged as type and message only;
    anything else also carries its (redacted) traceback.
    """

    def __init__(self, redactor: Redactor,
                 expected: tuple[type[BaseException], ...] = (GatewayError,)) -> None:
        super().__init__()
        self._redactor = redactor
        self._expected = expected

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for `record` (without the newline)."""
        redact = self._redactor.value
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = redact(value)
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = self._describe(record.exc_info[1])
        if record.stack_info:
            line["stack"] = redact(record.stack_info)
        return orjson.dumps(line, default=lambda v: redact(str(v))).decode()

    def _describe(self, exc: BaseException) -> dict[str, str]:
        try:
            message = str(exc)
        except Exception:  # a broken __str__ must not lose the log line
            message = "<unprintable>"
        described = {"type": type(exc).__qualname__, "message": self._redactor.text(message)}
        if not isinstance(exc, self._expected):
            text = "".join(traceback.format_exception(exc))
            described["traceback"] = self._redactor.text(text)
        return described


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        # logging assigns the stream in __init__ and setStream; the live sys.stdout wins.
        pass


def configure_logging(level: str, secrets: Iterable[str]) -> logging.Handler:
    """Send all logging to stdout as redacted JSON lines at `level`; returns the handler.

    Calling it again replaces the handler it installed before.
    """
    handler = _StdoutHandler()
    handler.setFormatter(JsonLineFormatter(Redactor(secrets)))
    handler.set_name("gateway.json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "gateway.json"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    return handler


def log_access(fields: Mapping[str, Any]) -> None:
    """Write the access-log line for one finished request."""
    if _access.isEnabledFor(logging.INFO):
        _access.info("request", extra=dict(fields))
