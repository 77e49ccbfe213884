"""Structured logging: one redacted JSON object per line on standard output."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
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
            "ts": _timestamp(record.created),
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

    def access_line(self, fields: Mapping[str, Any]) -> str:
        """What `format` gives for an access-log record with these `extra` fields, built
        without a LogRecord (the access log is written once per request)."""
        redact = self._redactor.value
        line: dict[str, Any] = {"ts": _timestamp(time.time()), "level": "info",
                                "logger": ACCESS_LOGGER, "msg": "request"}
        for key, value in fields.items():
            line[key] = redact(value)
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


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def _sole_json_handler() -> _StdoutHandler | None:
    """The JSON handler when it alone would get an access record, unfiltered; else None.

    Then the line can be written directly, with exactly the same content; any other logging
    set-up (more handlers, filters) gets real LogRecords.
    """
    found: list[logging.Handler] = []
    logger: logging.Logger | None = _access
    while logger is not None:
        if logger.filters:
            return None
        found.extend(logger.handlers)
        if not logger.propagate:
            break
        logger = logger.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (not isinstance(handler, _StdoutHandler) or handler.filters
            or handler.level > logging.INFO or not isinstance(handler.formatter,
                                                             JsonLineFormatter)):
        return None
    return handler


def log_access(fields: Mapping[str, Any]) -> None:
    """Write the access-log line for one finished request."""
    if not _access.isEnabledFor(logging.INFO):
        return
    handler = _sole_json_handler()
    if handler is None:
        _access.info("request", extra=dict(fields))
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonLineFormatter)
    line = formatter.access_line(fields) + handler.terminator
    with handler.lock or nullcontext():
        try:
            stream = handler.stream
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):  # as logging does: a lost log line never fails a request
            pass
