"""Calling providers: the shared HTTP client, URL building, and upstream error mapping.

This module is the single boundary where the HTTP client's (`gateway.client`) exceptions and
providers' error answers become gateway errors (`gateway.errors`). Nothing above it sees
client exceptions or responses.

It also holds the line against hostile or broken upstreams: an answer is read up to
`max_response_bytes` and no further (streams too, so an endless stream ends), a 2xx answer
must have a content type the gateway can read, redirects are never followed, and only
allow-listed headers given by the layers above (trace context) are sent along with the
provider's own auth and extra headers. Providers sometimes echo the key they were sent (in an
error message, a code, a stream event), so every body read here has the provider's key
replaced before anything parses it.

The client is the gateway's own (`gateway.client`): httpx's transport cost several times the
CPU per request of everything else together, and aiohttp's client, used after it, still
about half of it (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import certifi
import orjson

from gateway.client import (
    BodyTooLarge,
    Client,
    ClientFailure,
    ConnectFailure,
    Response,
    Target,
)
from gateway.dialects.base import ErrorInfo, ModelInfo
from gateway.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers import Provider
from gateway.timing import limited
from generated.providers import Endpoint

MAX_LIST_PAGES = 50
# Upstream statuses that are the caller's to fix; anything else is the gateway's problem (502).
PASS_THROUGH_STATUSES = frozenset({400, 404, 413, 422, 429})
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# The only request headers from the layers above that may reach a provider. Everything a
# caller sent (Authorization, Cookie, X-Api-Key, hop-by-hop headers) stays behind.
FORWARDED_HEADERS = frozenset({"traceparent", "tracestate"})
# Media types a 2xx answer may have; an answer without a content type is still parsed.
JSON_TYPES = frozenset({"application/json"})
STREAM_TYPES = frozenset({"text/event-stream", "application/x-ndjson", "application/ndjson",
                          "application/jsonl", "application/json"})


REDACTED = b"[REDACTED]"


class KeyRedactor:
    """Replaces one secret in a byte stream, even where a chunk boundary splits it.

    Only a chunk whose end could be the start of the secret is held back, and only that
    tail; stream frames end in a newline, so in practice nothing waits.
    """

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else b""
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The part of `chunk` (after what was held) that is certainly clean."""
        if not self._secret:
            return chunk
        data = (self._held + chunk).replace(self._secret, REDACTED)
        keep = self._partial_tail(data)
        self._held = data[len(data) - keep:] if keep else b""
        return data[:len(data) - keep]

    def close(self) -> bytes:
        """What is still held at the end of the stream (a partial secret is not a secret)."""
        held, self._held = self._held, b""
        return held

    def _partial_tail(self, data: bytes) -> int:
        """The length of the longest end of `data` that begins the secret."""
        start = max(0, len(data) - len(self._secret) + 1)
        at = data.find(self._secret[:1], start)
        while at != -1:
            if self._secret.startswith(data[at:]):
                return len(data) - at
            at = data.find(self._secret[:1], at + 1)
        return 0


def scrub(provider: Provider, content: bytes) -> bytes:
    """A whole body with the provider's key replaced."""
    key = provider.api_key
    return content.replace(key.encode(), REDACTED) if key else content


# Everything the client raises for a failed exchange. TimeoutError is an OSError: the order
# of the checks in `transport_failure` matters.
CLIENT_FAILURES = (ClientFailure, OSError)
# URLs built for (base URL, path, model): bounded, since model names come from callers.
URL_CACHE_SIZE = 1024


def trust() -> ssl.SSLContext:
    """The certificate authorities providers are checked against: SSL_CERT_FILE and
    SSL_CERT_DIR when set, else certifi's bundle (as httpx, the client before, did)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def open_session(*, max_connections: int, connect_timeout: float,
                 read_timeout: float) -> Client:
    """The one upstream client: pooled keep-alive connections, no cookies, no proxies.

    `connect_timeout` bounds both the wait for a pooled connection and a new connection's
    set-up; `read_timeout` bounds every single read, so a long, healthy stream is never cut.
    Call it with the event loop running that will use it.
    """
    return Client(max_connections=max_connections, connect_timeout=connect_timeout,
                  read_timeout=read_timeout, ssl_context=trust())


def encode_model(model: str, *, greedy: bool) -> str:
    """Percent-encode a model id for a URL path; `greedy` keeps '/' between segments.

    A model id is caller input: it must never change the path's structure, the query or
    the host, so every segment is encoded and dot segments are refused.
    """
    if not model or any(ord(ch) < 0x20 or ch == "\x7f" for ch in model):
        raise InvalidRequest("model must be a non-empty name without control characters",
                             field="model")
    segments = model.split("/") if greedy else [model]
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidRequest("model must not contain empty, '.' or '..' path segments",
                             field="model")
    return "/".join(quote(seg, safe="@:") for seg in segments)


def endpoint_url(provider: Provider, endpoint: Endpoint, model: str | None = None) -> str:
    """The full URL of `endpoint`, with the model placed into its path placeholder."""
    path = endpoint.path
    if "{model+}" in path or "{model}" in path:
        if model is None:
            raise InvalidRequest("this endpoint needs a model", field="model")
        value = provider.dialect.path_model(model)
        path = path.replace("{model+}", encode_model(value, greedy=True))
        path = path.replace("{model}", encode_model(value, greedy=False))
    return provider.base_url + path


def _retry_after(headers: Mapping[str, str], info: ErrorInfo) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or the body's own hint."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return info.retry_after


def _decode(content: bytes) -> Any:
    """JSON if the body is JSON, else the text (for error messages)."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", "replace")


def upstream_failure(provider: Provider, status: int, headers: Mapping[str, str],
                     content: bytes) -> UpstreamError:
    """The gateway error for a provider's non-2xx answer, keeping its status and message."""
    try:
        info = provider.dialect.parse_error(status, _decode(scrub(provider, content)))
    except Exception:  # an unparseable error body must still become a clean error
        info = ErrorInfo(message="")
    message = info.message.strip()[:1000] or f"HTTP {status}"
    # The code also becomes a metric label and a span attribute: bounded.
    code = info.code[:100] if info.code else "upstream_error"
    error = UpstreamError(
        f"{provider.id} answered {status}: {message}",
        provider=provider.id,
        upstream_status=status,
        code=code,
        retry_after=_retry_after(headers, info),
    )
    if status in PASS_THROUGH_STATUSES:
        error.status = status
    return error


def too_large(provider: Provider, limit: int) -> UpstreamError:
    """The error for an answer over MAX_UPSTREAM_RESPONSE_BYTES."""
    return UpstreamError(f"{provider.id} answered with more than {limit} bytes",
                         provider=provider.id, code="upstream_response_too_large")


def media_type(headers: Mapping[str, str]) -> str:
    """The content type without parameters, lower-cased ('' when there is none)."""
    value: str = headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def unreadable_type(provider: Provider, response: Response,
                    accepted: frozenset[str]) -> UpstreamError | None:
    """An error when a 2xx answer's content type is none the gateway can read (an HTML page)."""
    kind = media_type(response.headers)
    if not kind or kind in accepted or kind.endswith("+json"):
        return None
    return UpstreamError(f"{provider.id} answered {response.status} with {kind[:100]}, "
                         "which the gateway cannot read", provider=provider.id,
                         upstream_status=response.status, code="invalid_upstream_response")


def transport_failure(provider: Provider, exc: BaseException) -> UpstreamError:
    """Map a client failure; its text is not used because it may contain the URL."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{provider.id} did not answer in time", provider=provider.id)
    if isinstance(exc, ConnectFailure):  # refused, DNS, TLS
        return UpstreamUnavailable(f"{provider.id} could not be reached", provider=provider.id)
    return UpstreamUnavailable(f"the connection to {provider.id} failed: {type(exc).__name__}",
                               provider=provider.id)


class UpstreamStream:
    """A streamed answer that has started: its status and headers were fine.

    Iterate `chunks()` once, then `aclose()` (always, however the iteration ended).
    """

    __slots__ = ("_first_deadline", "_idle", "_limit", "_provider", "_response")

    def __init__(self, provider: Provider, response: Response, limit: int, *,
                 first_deadline: float | None = None, idle: float | None = None) -> None:
        self._provider = provider
        self._response = response
        self._limit = limit
        # Time to first byte and the gap between chunks are limited apart, and nothing caps
        # the whole: a long, healthy stream is never cut.
        self._first_deadline = first_deadline
        self._idle = idle

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The chunks as they arrive, the key replaced, each within its deadline (loop time);
        past the cap or on a failure, raises the mapped UpstreamError (or UpstreamTimeout)."""
        provider = self._provider
        redactor = KeyRedactor(provider.api_key)
        content = self._response
        deadline = self._first_deadline
        idle = self._idle
        loop = asyncio.get_running_loop()
        seen = 0
        try:
            while True:
                # What is already buffered needs no wait, so no timer either.
                chunk = content.read_nowait()
                if not chunk:
                    if content.at_eof():
                        break
                    chunk = await self._wait(content, deadline, loop)
                    if not chunk:
                        break
                seen += len(chunk)
                if seen > self._limit:
                    # What fits under the cap still goes out: a read can be far larger than
                    # one event, and the events before the cap are the caller's.
                    clean = redactor.feed(chunk[:len(chunk) - (seen - self._limit)])
                    if clean:
                        yield clean
                    raise too_large(provider, self._limit)
                clean = redactor.feed(chunk)
                if content.at_eof():  # the last chunk: see `at_eof`
                    clean += redactor.close()
                if clean:
                    yield clean
                deadline = loop.time() + idle if idle is not None else None
        except BodyTooLarge:
            raise too_large(provider, self._limit) from None
        except CLIENT_FAILURES as exc:
            raise transport_failure(provider, exc) from None
        tail = redactor.close()
        if tail:
            yield tail

    async def _wait(self, content: Response, deadline: float | None,
                    loop: asyncio.AbstractEventLoop) -> bytes:
        """The next chunk (b"" at the end), or UpstreamTimeout once `deadline` (loop time) has
        passed."""
        seconds = None if deadline is None else deadline - loop.time()
        try:
            return await limited(content.readany(), seconds, TimeoutError)
        except TimeoutError:
            first = deadline == self._first_deadline
            what = "its first byte" if first else "the next chunk of its stream"
            raise UpstreamTimeout(f"{self._provider.id} did not send {what} in time",
                                  provider=self._provider.id) from None

    def at_eof(self) -> bool:
        """Whether the upstream's answer is complete: then the chunk `chunks()` gave last was
        its last, and the iteration ends without another wait."""
        return self._response.at_eof()

    async def aclose(self) -> None:
        """Release the connection; one whose answer was not read to the end is closed."""
        self._response.release()


async def _collect(response: Response, limit: int) -> bytes:
    """The whole (decoded) body; BodyTooLarge past `limit` bytes, whatever the answer declared
    (chunked and compressed bodies have no length to check beforehand)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("the answer is larger than allowed")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(slots=True)
class Upstream:
    """Sends requests to providers through the one shared `Client`."""

    session: Client
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    first_byte_timeout: float | None = None
    stream_idle_timeout: float | None = None
    _urls: dict[tuple[str, str, str | None], Target] = field(default_factory=dict, repr=False)

    def _url(self, provider: Provider, endpoint: Endpoint, model: str | None,
             query: Mapping[str, str] | None) -> Target:
        """The request URL, encoded once here and never re-normalised by the client."""
        key = (provider.base_url, endpoint.path, model)
        url = self._urls.get(key) if not query else None
        if url is not None:
            return url
        text = endpoint_url(provider, endpoint, model)
        params = {**endpoint.query, **(query or {}), **provider.auth_query}
        if params:
            text += "?" + urlencode(params)
        try:
            url = Target.of(text)
        except ValueError:
            raise UpstreamError(f"{provider.id} has a URL the gateway cannot call",
                                provider=provider.id, code="invalid_provider_url") from None
        if not query:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[key] = url
        return url

    async def _send(self, provider: Provider, endpoint: Endpoint, *, model: str | None,
                    body: Any, query: Mapping[str, str] | None,
                    headers: Mapping[str, str] | None, trace: str = "") -> Response:
        """Send one request, its answer unread; an oversized declared length fails now.

        `trace` is header lines naming the attempt's span (`Attempt.trace_lines`), sent as
        they are; `headers` are filtered (`FORWARDED_HEADERS`) and checked."""
        url = self._url(provider, endpoint, model, query)
        # The provider's own headers come last, so nothing forwarded can replace its auth.
        all_headers = {name: value for name, value in headers.items()
                       if name.lower() in FORWARDED_HEADERS} if headers else {}
        all_headers.update(provider.headers)
        content = None
        if body is not None:
            try:
                content = orjson.dumps(body)
            except TypeError:  # what JSON parsing accepts but cannot be written back
                raise InvalidRequest("the request has a value that cannot be sent upstream, "
                                     "such as an integer beyond 64 bits", field="body") from None
            all_headers["content-type"] = "application/json"
        # The client asks for uncompressed answers, so the cap counts the bytes the parsers
        # will actually hold.
        try:
            response = await self.session.request(endpoint.method, url, all_headers.items(),
                                                  content, max_body=self.max_response_bytes,
                                                  lines=trace)
        except ValueError:  # a configured key or header with a line break: never sent
            raise UpstreamError(f"a header configured for {provider.id} has a character that "
                                "cannot be sent", provider=provider.id,
                                code="invalid_provider_header") from None
        except CLIENT_FAILURES as exc:
            raise transport_failure(provider, exc) from None
        declared = response.content_length
        if declared is not None and declared > self.max_response_bytes:
            response.close()
            raise too_large(provider, self.max_response_bytes)
        return response

    async def _read(self, provider: Provider, response: Response) -> bytes:
        """The whole (decoded) body, capped; the response is released or closed."""
        limit = self.max_response_bytes
        try:
            content = await _collect(response, limit)
        except BodyTooLarge:
            response.close()
            raise too_large(provider, limit) from None
        except CLIENT_FAILURES as exc:
            response.close()
            raise transport_failure(provider, exc) from None
        except BaseException:
            response.close()
            raise
        response.release()
        return content

    async def call_json(self, provider: Provider, endpoint: Endpoint, *, model: str | None = None,
                        body: Any = None, query: Mapping[str, str] | None = None,
                        headers: Mapping[str, str] | None = None, trace: str = "") -> Any:
        """Send one request and return the parsed JSON answer, or raise an UpstreamError."""
        response = await self._send(provider, endpoint, model=model, body=body, query=query,
                                    headers=headers, trace=trace)
        status = response.status
        if status < 400:
            wrong_type = unreadable_type(provider, response, JSON_TYPES)
            if wrong_type is not None:
                response.close()
                raise wrong_type
        content = await self._read(provider, response)
        if status >= 400:
            raise upstream_failure(provider, status, response.headers, content)
        try:
            return orjson.loads(scrub(provider, content))
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{provider.id} answered with a body that is not JSON",
                                provider=provider.id, upstream_status=status,
                                code="invalid_upstream_response") from None

    async def open_stream(self, provider: Provider, endpoint: Endpoint, *, model: str,
                          body: Any, headers: Mapping[str, str] | None = None,
                          trace: str = "") -> UpstreamStream:
        """Start a streamed request; the caller must `aclose()` the returned stream.

        Errors before the first byte (connection, non-2xx status, a content type that is no
        stream) raise here, so a caller can still answer with a proper HTTP error status.
        The body is capped at `max_response_bytes`: past it, reading raises
        upstream_response_too_large.
        """
        first_deadline = None
        if self.first_byte_timeout is not None:
            first_deadline = asyncio.get_running_loop().time() + self.first_byte_timeout
        try:
            response = await limited(
                self._send(provider, endpoint, model=model, body=body, query=None,
                           headers=headers, trace=trace),
                self.first_byte_timeout, TimeoutError)
        except TimeoutError:
            raise UpstreamTimeout(f"{provider.id} did not start its answer in time",
                                  provider=provider.id) from None
        if response.status >= 400:
            try:
                content = await self._read(provider, response)
            except UpstreamError:
                content = b""
            raise upstream_failure(provider, response.status, response.headers, content)
        wrong_type = unreadable_type(provider, response, STREAM_TYPES)
        if wrong_type is not None:
            response.close()
            raise wrong_type
        return UpstreamStream(provider, response, self.max_response_bytes,
                              first_deadline=first_deadline, idle=self.stream_idle_timeout)

    async def probe_json(self, url: str, limit: float) -> Any:
        """GET `url` (a local model server) within `limit` seconds: its JSON, or None on failure."""
        try:
            content = await limited(self._probe(Target.of(url)), limit, TimeoutError)
        except (*CLIENT_FAILURES, ValueError):
            return None
        if content is None:
            return None
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            return None

    async def _probe(self, target: Target) -> bytes | None:
        """The body of a GET of `target` when it answers 200 within the size cap, else None."""
        limit = self.max_response_bytes
        answer = await self.session.request("GET", target, (), max_body=limit)
        try:
            if answer.status != 200 or (answer.content_length or 0) > limit:
                return None
            return await _collect(answer, limit)
        except BodyTooLarge:
            return None
        finally:
            answer.release()

    async def list_models(self, provider: Provider,
                          headers: Mapping[str, str] | None = None,
                          trace: str = "") -> list[ModelInfo]:
        """Every model of `provider`, following its paging (bounded)."""
        endpoint = provider.config.list
        paging = endpoint.paging
        models: list[ModelInfo] = []
        query: dict[str, str] = {}
        seen_cursors: set[str] = set()
        seen_ids: set[object] = set()
        for page in range(1, MAX_LIST_PAGES + 1):
            if paging is not None and paging.page_param:
                query[paging.page_param] = str(page)
            body = await self.call_json(provider, endpoint, query=query, headers=headers,
                                        trace=trace)
            try:
                batch = provider.dialect.parse_models(body, provider=provider.id)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise UpstreamError(f"{provider.id} answered with an unexpected model list",
                                    provider=provider.id,
                                    code="invalid_upstream_response") from None
            fresh = [m for m in batch if m.get("id") not in seen_ids]
            seen_ids.update(m.get("id") for m in fresh)
            models.extend(fresh)
            if paging is None or not isinstance(body, dict):
                break
            if paging.page_param:
                if not fresh:  # an empty page, or a server that ignores the page parameter
                    break
                continue
            if paging.has_more and not body.get(paging.has_more):
                break
            cursor = body.get(paging.next_cursor or "")
            if not cursor or not paging.cursor_param or str(cursor) in seen_cursors:
                break
            seen_cursors.add(str(cursor))
            query[paging.cursor_param] = str(cursor)
        return models
