"""Structured logging: one redacted JSON object per line on standard output."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
import traceback
from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from gateway.errors import GatewayError
from gateway.telemetry.redaction import Redactor

ACCESS_LOGGER = "gateway.access"
MAX_HELD_LINES = 256
"""Access-log lines held at most before they are written."""
_access = logging.getLogger(ACCESS_LOGGER)

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_NUMBERS = (int, float, bool)
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
        return orjson.dumps(line, default=self._redacted_str).decode()

    def access_line(self, fields: Mapping[str, Any],
                    trusted: Collection[str] = frozenset()) -> str:
        """What `format` gives for an access-log record with these `extra` fields, built
        without a LogRecord (the access log is written once per request).

        Fields named in `trusted` and numbers are written without redaction.
        """
        redact = self._redactor.value
        line: dict[str, Any] = {"ts": _timestamp(time.time()), "level": "info",
                                "logger": ACCESS_LOGGER, "msg": "request"}
        for key, value in fields.items():
            if value is None or key in trusted or type(value) in _NUMBERS:
                line[key] = value
            else:
                line[key] = redact(value)
        return orjson.dumps(line, default=self._redacted_str).decode()

    def _redacted_str(self, value: object) -> str:
        """How orjson writes a value it cannot serialise itself."""
        return self._redactor.text(str(value))

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
    """Writes to whatever `sys.stdout` is at the time of each record.

    Access-log lines (`write_soon`) are held and written together once the event loop has
    run the callbacks already due: a write per batch rather than a system call per request
    (the image runs with PYTHONUNBUFFERED, so every write reaches the file). Any other
    record, `flush` and `close` write the held lines first, so the output keeps its order.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self._held: list[str] = []
        self._held_for: TextIO | None = None  # the stdout the held lines were written to
        self._flushing_on: asyncio.AbstractEventLoop | None = None  # where a write is due

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        # logging assigns the stream in __init__ and setStream; the live sys.stdout wins.
        pass

    def write_soon(self, line: str) -> None:
        """Write `line` (a whole line, terminator included) with the next batch."""
        with self._lock():
            stream = self.stream
            if stream is not self._held_for:
                self._write_held()
                self._held_for = stream
            self._held.append(line)
            if len(self._held) < MAX_HELD_LINES and self._schedule():
                return
            self._write_held()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the held lines, then `record` (logging holds the lock here)."""
        self._write_held()
        super().emit(record)

    def flush(self) -> None:
        """Write the held lines and flush the stream."""
        with self._lock():
            self._write_held()
            super().flush()

    def _lock(self) -> AbstractContextManager[Any]:
        return self.lock or nullcontext()

    def _schedule(self) -> bool:
        """Have the loop write the held lines after its ready callbacks; False off a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._flushing_on is not loop:
            self._flushing_on = loop
            loop.call_soon(self.flush)
        return True

    def _write_held(self) -> None:
        self._flushing_on = None
        if not self._held:
            return
        text = "".join(self._held)
        self._held.clear()
        stream = self._held_for or self.stream
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # as logging does: a lost log line never fails a request
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


_MILLISECONDS = [f".{ms:03d}+00:00" for ms in range(1000)]
# The formatted date and time of the latest second seen, as (second, text).
_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _timestamp(created: float) -> str:
    """`created` as ISO 8601 in UTC with milliseconds, the date and time formatted once per
    second (`datetime.isoformat(timespec="milliseconds")` gives the same text)."""
    global _second
    fraction, whole = math.modf(created)  # split and rounded as datetime.fromtimestamp does
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached = _second
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"))
    return cached[1] + _MILLISECONDS[micros // 1000]


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


def log_access(fields: Mapping[str, Any], *, trusted: Collection[str] = frozenset()) -> None:
    """Write the access-log line for one finished request.

    `trusted` names the fields the caller made itself and that cannot hold a secret (its
    own ids, numbers); every other text is redacted.
    """
    if not _access.isEnabledFor(logging.INFO):
        return
    handler = _sole_json_handler()
    if handler is None:
        _access.info("request", extra=dict(fields))
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonLineFormatter)
    handler.write_soon(formatter.access_line(fields, trusted) + handler.terminator)
