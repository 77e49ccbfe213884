"""One chat exchange with one provider, streamed or not, in the internal representation.

Routes translate their own API into `ir.ChatRequest` and call these; routing (fallbacks,
retries) wraps them. Stream decoding is incremental: each upstream chunk is framed, decoded
and handed on as soon as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from gateway import ir
from gateway.errors import UpstreamError
from gateway.providers import Provider
from gateway.streaming import NDJSONParser, SSEParser
from gateway.upstream import Upstream, iter_bytes


def _malformed(provider: Provider, what: str) -> UpstreamError:
    return UpstreamError(f"{provider.id} answered with {what}", provider=provider.id,
                         upstream_status=200, code="invalid_upstream_response")


async def complete(upstream: Upstream, provider: Provider, chat: ir.ChatRequest,
                   headers: dict[str, str] | None = None) -> ir.ChatResponse:
    """Send a non-streamed chat request and translate the answer."""
    chat.stream = False
    body = provider.dialect.build_request(chat)
    data = await upstream.call_json(provider, provider.config.generate, model=chat.model,
                                    body=body, headers=headers)
    try:
        return provider.dialect.parse_response(data, model=chat.model)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise _malformed(provider, f"an answer the gateway cannot read ({exc})") from None


async def open_stream(upstream: Upstream, provider: Provider, chat: ir.ChatRequest,
                      headers: dict[str, str] | None = None) -> AsyncIterator[ir.StreamEvent]:
    """Start a streamed chat request.

    Connection failures and error statuses raise *before* this returns, so the caller can
    still answer with an HTTP error; afterwards failures arrive as `ir.StreamError` events.
    """
    chat.stream = True
    body = provider.dialect.build_request(chat)
    endpoint = provider.config.stream or provider.config.generate
    response = await upstream.open_stream(provider, endpoint, model=chat.model, body=body,
                                          headers=headers)
    return _decode(upstream, provider, response, chat.model)


async def _decode(upstream: Upstream, provider: Provider, response: httpx.Response,
                  model: str) -> AsyncIterator[ir.StreamEvent]:
    parser = SSEParser() if provider.dialect.framing == "sse" else NDJSONParser()
    decoder = provider.dialect.stream_decoder(model=model)
    try:
        async for chunk in iter_bytes(response, provider):
            for frame in parser.feed(chunk):
                for event in decoder.feed(frame):
                    yield event
        for frame in parser.close():
            for event in decoder.feed(frame):
                yield event
        for event in decoder.close():
            yield event
    except UpstreamError as exc:
        yield ir.StreamError(exc.message, type=exc.code)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        yield ir.StreamError(f"{provider.id} sent a stream the gateway cannot read",
                             type="invalid_upstream_response")
    finally:
        await response.aclose()
