"""Calling providers: the shared HTTP client, URL building, and upstream error mapping.

This module is the single boundary where httpx's exceptions and providers' error answers
become gateway errors (`gateway.errors`). Nothing above it sees httpx exceptions.
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
        info = provider.dialect.parse_error(status, _decode(content))
    except Exception:  # an unparseable error body must still become a clean error
        info = ErrorInfo(message="")
    message = provider.redact(info.message.strip()[:1000]) or f"HTTP {status}"
    error = UpstreamError(
        f"{provider.id} answered {status}: {message}",
        provider=provider.id,
        upstream_status=status,
        code=info.code or "upstream_error",
        retry_after=_retry_after(headers, info),
    )
    if status in PASS_THROUGH_STATUSES:
        error.status = status
    return error


def transport_failure(provider: Provider, exc: httpx.HTTPError) -> UpstreamError:
    """Map an httpx failure; its text is not used because it may contain the URL."""
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

    def _request(self, provider: Provider, endpoint: Endpoint, *, model: str | None,
                 body: Any = None, query: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> httpx.Request:
        params = {**endpoint.query, **(query or {}), **provider.auth_query}
        all_headers = dict(provider.headers)
        if headers:
            all_headers.update(headers)
        content = None
        if body is not None:
            content = orjson.dumps(body)
            all_headers["content-type"] = "application/json"
        return self.client.build_request(
            endpoint.method, endpoint_url(provider, endpoint, model),
            params=params or None, headers=all_headers, content=content)

    async def call_json(self, provider: Provider, endpoint: Endpoint, *, model: str | None = None,
                        body: Any = None, query: Mapping[str, str] | None = None,
                        headers: Mapping[str, str] | None = None) -> Any:
        """Send one request and return the parsed JSON answer, or raise an UpstreamError."""
        request = self._request(provider, endpoint, model=model, body=body, query=query,
                                headers=headers)
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            raise transport_failure(provider, exc) from None
        if response.status_code >= 400:
            raise upstream_failure(provider, response.status_code, response.headers,
                                   response.content)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{provider.id} answered with a body that is not JSON",
                                provider=provider.id, upstream_status=response.status_code,
                                code="invalid_upstream_response") from None

    async def open_stream(self, provider: Provider, endpoint: Endpoint, *, model: str,
                          body: Any, headers: Mapping[str, str] | None = None
                          ) -> httpx.Response:
        """Start a streamed request; the caller must `aclose()` the returned response.

        Errors before the first byte (connection, non-2xx status) raise here, so a caller
        can still answer with a proper HTTP error status.
        """
        request = self._request(provider, endpoint, model=model, body=body, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_failure(provider, exc) from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise upstream_failure(provider, response.status_code, response.headers, content)
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
    """The raw chunks of a streamed answer as they arrive, with failures mapped."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.HTTPError as exc:
        raise transport_failure(provider, exc) from None
    except asyncio.CancelledError:
        raise
