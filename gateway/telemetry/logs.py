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
_REQUEST_PARTS_KEPT = 4096
# The access-log fields the gateway makes itself, which cannot hold a secret: written as
# they are (the request id only when the gateway made it).
_TRUSTED = frozenset({"status", "duration_ms", "trace_id"})
_TRUSTED_WITH_ID = _TRUSTED | {"request_id"}
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
        # Rendered parts of access lines by (method, path, provider, model): see
        # `request_line`.
        self._request_parts: dict[tuple[Any, ...], tuple[str, str]] = {}

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
        without a LogRecord.

        Fields named in `trusted` and numbers are written without redaction.
        """
        line: dict[str, Any] = {"ts": _now(), "level": "info",
                                "logger": ACCESS_LOGGER, "msg": "request"}
        line.update(self._access_fields(fields, trusted))
        return orjson.dumps(line, default=self._redacted_str).decode()

    def request_line(self, method: str | None, path: str, status: int, provider: str | None,
                     model: str | None, duration_ms: float, request_id: str,
                     callers_id: bool, trace_id: str | None) -> str:
        """`access_line` of one request's fields, as `log_access` names them: the same text,
        with what repeats from request to request (method, path, provider and model,
        redacted) rendered once. `request_id` is redacted when it is the caller's; `status`,
        `duration_ms` and `trace_id` are the gateway's own.
        """
        key = (method, path, provider, model)
        try:
            parts = self._request_parts.get(key)
        except TypeError:  # a value that cannot be a key (a route set an odd model)
            return self.access_line(_request_fields(
                method, path, status, provider, model, duration_ms, request_id, trace_id),
                _TRUSTED if callers_id else _TRUSTED_WITH_ID)
        if parts is None:
            parts = self._render_request_parts(key)
        if callers_id:
            request_id = orjson.dumps(self._redactor.text(request_id)).decode()
        else:
            request_id = f'"{request_id}"'
        trace = "null" if trace_id is None else f'"{trace_id}"'
        return (f'{{"ts":"{_now()}",{parts[0]}{status},{parts[1]}'
                f'{orjson.dumps(duration_ms).decode()},"request_id":{request_id},'
                f'"trace_id":{trace}}}')

    def _render_request_parts(self, key: tuple[Any, ...]) -> tuple[str, str]:
        """The JSON text of an access line from its level up to the status, and from the
        provider up to the duration, for `key` (method, path, provider, model); kept."""
        method, path, provider, model = key
        fields = {"level": "info", "logger": ACCESS_LOGGER, "msg": "request",
                  **self._access_fields({"method": method, "path": path}, ())}
        head = orjson.dumps(fields, default=self._redacted_str).decode()[1:-1]
        fields = self._access_fields({"provider": provider, "model": model}, ())
        middle = orjson.dumps(fields, default=self._redacted_str).decode()[1:-1]
        if len(self._request_parts) >= _REQUEST_PARTS_KEPT:
            self._request_parts.clear()
        parts = self._request_parts[key] = (head + ',"status":', middle + ',"duration_ms":')
        return parts

    def _access_fields(self, fields: Mapping[str, Any], trusted: Collection[str]
                       ) -> dict[str, Any]:
        redact = self._redactor.value
        return {key: value if value is None or key in trusted or type(value) in _NUMBERS
                else redact(value) for key, value in fields.items()}

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
    fraction, whole = math.modf(created)  # split and rounded as datetime.fromtimestamp does
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return _date_and_time(second) + _MILLISECONDS[micros // 1000]


def _now() -> str:
    """The time now, as `_timestamp` writes it (to the millisecond, not rounded up)."""
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return _date_and_time(second) + _MILLISECONDS[nanoseconds // 1_000_000]


def _date_and_time(second: int) -> str:
    """The date and time of `second` (since the epoch), formatted once per second."""
    global _second
    cached = _second
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"))
    return cached[1]


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


def log_access(method: str | None, path: str, status: int, provider: str | None, model: str | None,
               duration_ms: float, request_id: str, callers_id: bool,
               trace_id: str | None) -> None:
    """Write the access-log line for one finished request.

    `callers_id` tells whether `request_id` came from the caller (text to redact) or was
    made by the gateway; the method, path, provider and model are redacted too.
    """
    if not _access.isEnabledFor(logging.INFO):
        return
    handler = _sole_json_handler()
    if handler is None:
        fields = _request_fields(method, path, status, provider, model, duration_ms,
                                 request_id, trace_id)
        _access.info("request", extra=fields)
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonLineFormatter)
    handler.write_soon(formatter.request_line(method, path, status, provider, model,
                                              duration_ms, request_id, callers_id, trace_id)
                       + handler.terminator)


def _request_fields(method: str | None, path: str, status: int, provider: str | None,
                    model: str | None, duration_ms: float, request_id: str,
                    trace_id: str | None) -> dict[str, Any]:
    """An access line's fields, in the order they are written."""
    return {"method": method, "path": path, "status": status, "provider": provider,
            "model": model, "duration_ms": duration_ms, "request_id": request_id,
            "trace_id": trace_id}
