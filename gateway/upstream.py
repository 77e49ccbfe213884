"""Calling providers: the shared HTTP client, URL building, and upstream error mapping.

This module is the single boundary where httpx's exceptions and providers' error answers
become gateway errors (`gateway.errors`). Nothing above it sees httpx exceptions.

It also holds the line against hostile or broken upstreams: an answer is read up to
`max_response_bytes` and no further (streams too, so an endless stream ends), a 2xx answer
must have a content type the gateway can read, and only allow-listed headers given by the
layers above (trace context) are sent along with the provider's own auth and extra headers.
Providers sometimes echo the key they were sent (in an error message, a code, a stream
event), so every body read here has the provider's key replaced before anything parses it.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from gateway.dialects.base import ErrorInfo, ModelInfo
from gateway.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers import Provider
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


class ResponseTooLarge(httpx.HTTPError):
    """Raised while reading an answer that passes the size cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


class CappedStream(httpx.AsyncByteStream):
    """An upstream body stream that raises `ResponseTooLarge` once `limit` bytes went by."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(self._limit)
            yield chunk

    async def aclose(self) -> None:
        """Close the inner stream, which drops a connection whose answer was not read to the end."""
        await self._inner.aclose()


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


def _retry_after(headers: httpx.Headers, info: ErrorInfo) -> float | None:
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


def upstream_failure(provider: Provider, status: int, headers: httpx.Headers,
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


def media_type(headers: httpx.Headers) -> str:
    """The content type without parameters, lower-cased ('' when there is none)."""
    value: str = headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def unreadable_type(provider: Provider, response: httpx.Response,
                    accepted: frozenset[str]) -> UpstreamError | None:
    """An error when a 2xx answer's content type is none the gateway can read (an HTML page)."""
    kind = media_type(response.headers)
    if not kind or kind in accepted or kind.endswith("+json"):
        return None
    return UpstreamError(f"{provider.id} answered {response.status_code} with {kind[:100]}, "
                         "which the gateway cannot read", provider=provider.id,
                         upstream_status=response.status_code, code="invalid_upstream_response")


def transport_failure(provider: Provider, exc: httpx.HTTPError) -> UpstreamError:
    """Map an httpx failure; its text is not used because it may contain the URL."""
    if isinstance(exc, ResponseTooLarge):
        return too_large(provider, exc.limit)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"{provider.id} did not answer in time", provider=provider.id)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(f"{provider.id} could not be reached", provider=provider.id)
    return UpstreamUnavailable(f"the connection to {provider.id} failed: {type(exc).__name__}",
                               provider=provider.id)


@dataclass(slots=True)
class Upstream:
    """Sends requests to providers through the one shared `httpx.AsyncClient`."""

    client: httpx.AsyncClient
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def _request(self, provider: Provider, endpoint: Endpoint, *, model: str | None,
                 body: Any = None, query: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> httpx.Request:
        params = {**endpoint.query, **(query or {}), **provider.auth_query}
        # The provider's own headers come last, so nothing forwarded can replace its auth.
        all_headers = {name: value for name, value in (headers or {}).items()
                       if name.lower() in FORWARDED_HEADERS}
        all_headers.update(provider.headers)
        content = None
        if body is not None:
            try:
                content = orjson.dumps(body)
            except TypeError:  # what JSON parsing accepts but cannot be written back
                raise InvalidRequest("the request has a value that cannot be sent upstream, "
                                     "such as an integer beyond 64 bits", field="body") from None
            all_headers["content-type"] = "application/json"
        return self.client.build_request(
            endpoint.method, endpoint_url(provider, endpoint, model),
            params=params or None, headers=all_headers, content=content)

    async def _send(self, provider: Provider, request: httpx.Request) -> httpx.Response:
        """Send `request` with its body unread and capped; oversized declared lengths fail now."""
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_failure(provider, exc) from None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            await response.aclose()
            raise too_large(provider, self.max_response_bytes)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = CappedStream(response.stream, self.max_response_bytes)
        return response

    async def _read(self, provider: Provider, response: httpx.Response) -> bytes:
        """The whole (decoded) body, capped like the wire bytes; the response is closed."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:  # decompression can outgrow the wire bytes
                    raise too_large(provider, self.max_response_bytes)
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise transport_failure(provider, exc) from None
        finally:
            await response.aclose()
        return b"".join(chunks)

    async def call_json(self, provider: Provider, endpoint: Endpoint, *, model: str | None = None,
                        body: Any = None, query: Mapping[str, str] | None = None,
                        headers: Mapping[str, str] | None = None) -> Any:
        """Send one request and return the parsed JSON answer, or raise an UpstreamError."""
        request = self._request(provider, endpoint, model=model, body=body, query=query,
                                headers=headers)
        response = await self._send(provider, request)
        if response.status_code < 400:
            wrong_type = unreadable_type(provider, response, JSON_TYPES)
            if wrong_type is not None:
                await response.aclose()
                raise wrong_type
        content = await self._read(provider, response)
        if response.status_code >= 400:
            raise upstream_failure(provider, response.status_code, response.headers, content)
        try:
            return orjson.loads(scrub(provider, content))
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{provider.id} answered with a body that is not JSON",
                                provider=provider.id, upstream_status=response.status_code,
                                code="invalid_upstream_response") from None

    async def open_stream(self, provider: Provider, endpoint: Endpoint, *, model: str,
                          body: Any, headers: Mapping[str, str] | None = None
                          ) -> httpx.Response:
        """Start a streamed request; the caller must `aclose()` the returned response.

        Errors before the first byte (connection, non-2xx status, a content type that is no
        stream) raise here, so a caller can still answer with a proper HTTP error status.
        The body is capped at `max_response_bytes`: past it, reading raises, which
        `iter_bytes` reports as upstream_response_too_large.
        """
        request = self._request(provider, endpoint, model=model, body=body, headers=headers)
        # Uncompressed, so the cap counts the bytes the stream parser will actually hold.
        request.headers["accept-encoding"] = "identity"
        response = await self._send(provider, request)
        if response.status_code >= 400:
            try:
                content = await self._read(provider, response)
            except UpstreamError:
                content = b""
            raise upstream_failure(provider, response.status_code, response.headers, content)
        wrong_type = unreadable_type(provider, response, STREAM_TYPES)
        if wrong_type is not None:
            await response.aclose()
            raise wrong_type
        return response

    async def list_models(self, provider: Provider,
                          headers: Mapping[str, str] | None = None) -> list[ModelInfo]:
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
            body = await self.call_json(provider, endpoint, query=query, headers=headers)
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


async def iter_bytes(response: httpx.Response, provider: Provider) -> AsyncIterator[bytes]:
    """The chunks of a streamed answer as they arrive, the key replaced, failures mapped."""
    redactor = KeyRedactor(provider.api_key)
    try:
        async for chunk in response.aiter_bytes():
            clean = redactor.feed(chunk)
            if clean:
                yield clean
        tail = redactor.close()
        if tail:
            yield tail
    except httpx.HTTPError as exc:
        raise transport_failure(provider, exc) from None
    except asyncio.CancelledError:
        raise
