"""One chat exchange with one provider, streamed or not, in the internal representation.

Routes translate their own API into `ir.ChatRequest` and call these; routing (fallbacks,
retries) wraps them. Each call is one observed upstream attempt. Stream decoding is
incremental: each upstream chunk is framed, decoded and handed on as soon as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import ExitStack, aclosing

from gateway import ir
from gateway.dialects.base import StreamDecoder
from gateway.errors import GatewayError, UpstreamError
from gateway.providers import Provider
from gateway.streaming import Frame, NDJSONParser, SSEParser
from gateway.telemetry import Attempt, NoopTelemetry, Telemetry
from gateway.telemetry.attempt import NoopAttempt
from gateway.upstream import Upstream, UpstreamStream

AnyTelemetry = Telemetry | NoopTelemetry
READ_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)


class LastBatch(list[ir.StreamEvent]):
    """The batch that ends a stream (possibly empty): nothing follows it, so whoever writes
    it out may write the stream's end along with it."""

    __slots__ = ()


def _malformed(provider: Provider, what: str) -> UpstreamError:
    return UpstreamError(f"{provider.id} answered with {what}", provider=provider.id,
                         upstream_status=200, code="invalid_upstream_response")


def _record(attempt: Attempt, answer: ir.ChatResponse) -> None:
    usage = answer.usage
    attempt.set_response(answer.model, usage.input_tokens if usage else None,
                         usage.output_tokens if usage else None, [answer.finish_reason])


async def complete(upstream: Upstream, telemetry: AnyTelemetry, provider: Provider,
                   chat: ir.ChatRequest) -> ir.ChatResponse:
    """Send a non-streamed chat request and translate the answer."""
    chat.stream = False
    body = provider.dialect.build_request(chat)
    with telemetry.upstream_attempt(provider.id, chat.model, "chat",
                                    provider.host) as attempt:
        try:
            data = await upstream.call_json(provider, provider.config.generate,
                                            model=chat.model, body=body,
                                            trace=attempt.trace_lines)
            try:
                answer = provider.dialect.parse_response(data, model=chat.model)
            except READ_ERRORS as exc:
                raise _malformed(provider, f"an answer the gateway cannot read ({exc})") from None
        except GatewayError as exc:
            attempt.set_error(exc.code)
            raise
        _record(attempt, answer)
        return answer


async def open_stream(upstream: Upstream, telemetry: AnyTelemetry, provider: Provider,
                      chat: ir.ChatRequest) -> AsyncGenerator[list[ir.StreamEvent], None]:
    """Start a streamed chat request; the answer comes as batches of events, one batch per
    upstream read, so that what arrived together is handed on together — except that the read
    holding the answer's first words is split after them, so they need not wait for the rest
    of that read to be decoded. Only the last batch may be empty; when the upstream ended
    cleanly it is a `LastBatch`.

    Connection failures and error statuses raise *before* this returns, so the caller can
    still answer with an HTTP error; afterwards failures arrive as `ir.StreamError` events,
    each the last event of the last batch.
    """
    chat.stream = True
    body = provider.dialect.build_request(chat)
    endpoint = provider.config.stream or provider.config.generate
    stack = ExitStack()
    attempt = stack.enter_context(telemetry.upstream_attempt(
        provider=provider.id, model=chat.model, operation="chat",
        server_address=provider.host))
    try:
        response = await upstream.open_stream(provider, endpoint, model=chat.model, body=body,
                                              trace=attempt.trace_lines)
    except GatewayError as exc:
        attempt.set_error(exc.code)
        stack.close()
        raise
    except BaseException:
        stack.close()
        raise
    parser = SSEParser() if provider.dialect.framing == "sse" else NDJSONParser()
    decoder = provider.dialect.stream_decoder(model=chat.model)
    notes = None if type(attempt) is NoopAttempt else _Notes(attempt, chat.model)
    return _events(provider, response, parser, decoder, notes, stack)


class _Notes:
    """What telemetry needs of a stream, noted from its batches as they pass: the first
    words, usage, finish reasons, the model that answered and a failure."""

    __slots__ = ("answered_model", "attempt", "finish", "first_token", "model", "usage")

    def __init__(self, attempt: Attempt, model: str) -> None:
        self.attempt = attempt
        self.model = self.answered_model = model
        self.usage: ir.Usage | None = None
        self.finish: list[str] = []
        self.first_token = True

    def see(self, batch: list[ir.StreamEvent]) -> None:
        """Note what `batch` tells."""
        for event in batch:
            kind = type(event)  # the events are final classes (see gateway.ir)
            if kind is ir.TextDelta or kind is ir.ToolCallStart:
                if self.first_token:
                    self.first_token = False
                    self.attempt.first_token()
            elif type(event) is ir.UsageReport:
                self.usage = event.usage
            elif type(event) is ir.Finish:
                self.finish.append(event.reason)
            elif type(event) is ir.MessageStart:
                self.answered_model = event.model or self.model
            elif type(event) is ir.StreamError:
                self.attempt.set_error(event.type)

    def report(self) -> None:
        """The stream ran to its end: record the response."""
        usage = self.usage
        self.attempt.set_response(self.answered_model, usage.input_tokens if usage else None,
                                  usage.output_tokens if usage else None, self.finish)


# What ends the wait for an answer's first words: its first text or tool call, or a failure.
_FIRST_WORDS = frozenset((ir.TextDelta, ir.ToolCallStart, ir.StreamError))


def _through_first_words(chunk: bytes, parser: SSEParser | NDJSONParser, dec: StreamDecoder
                         ) -> tuple[list[ir.StreamEvent], list[Frame], bytes, bool]:
    """Parse and decode `chunk` event by event up to the one that gives the first words.

    Returns the events so far, the frames parsed but not decoded yet, the bytes not parsed
    yet, and whether the first words were among the events. A read can hold a whole answer:
    what follows its first words is neither parsed nor decoded before they go out.
    """
    events: list[ir.StreamEvent] = []
    boundary = parser.boundary
    start, size = 0, len(chunk)
    while start < size:
        cut = chunk.find(boundary, start)
        end = size if cut < 0 else cut + len(boundary)
        frames = parser.feed(chunk[start:end])
        start = end
        for n, frame in enumerate(frames):
            new = dec.feed(frame)
            events += new
            if not _FIRST_WORDS.isdisjoint(map(type, new)):  # no generator to close early
                return events, frames[n + 1:], chunk[start:], True
    return events, [], b"", False


async def _events(provider: Provider, response: UpstreamStream, parser: SSEParser | NDJSONParser,
                  dec: StreamDecoder, notes: _Notes | None = None,
                  stack: ExitStack | None = None) -> AsyncGenerator[list[ir.StreamEvent], None]:
    """Batches of events, one per upstream chunk that completed any; a read failure becomes a
    StreamError, and nothing follows one. The chunk that completes the answer gives a
    `LastBatch`, with what the stream's end adds. `notes` (when telemetry is on) sees every
    batch; the response is closed, and `stack` with it, however the stream ends.

    One generator for the reading and the noting: each layer of async generators costs a few
    thousand instructions a stream (its first-iteration hook, a hop per batch, the
    exceptions that end and close it)."""
    try:
        failed = False  # a StreamError went out: nothing follows it
        try:
            frames = []  # the frames of the answer's last chunk, when known to be the last
            early: list[ir.StreamEvent] = []  # events decoded ahead of the rest of their chunk
            spoken = False  # the answer's first words (or its failure) have been handed on
            async with aclosing(response.chunks()) as chunks:
                async for chunk in chunks:
                    if spoken:
                        frames = parser.feed(chunk)
                    else:
                        early, frames, rest, spoken = _through_first_words(chunk, parser, dec)
                        if spoken:
                            first, early = early, []
                            if notes is not None:
                                notes.see(first)
                            yield first
                            if type(first[-1]) is ir.StreamError:
                                failed = True
                                break
                            frames += parser.feed(rest)
                    if response.at_eof():
                        # Its events go out with the stream's end, below. `chunks` is let
                        # run to its end (it does not wait at EOF): closing it early would
                        # throw an exception into it.
                        await anext(chunks, None)
                        break
                    batch = early + dec.feed_all(frames)
                    frames, early = [], []
                    if batch:
                        if notes is not None:
                            notes.see(batch)
                        yield batch
                        if type(batch[-1]) is ir.StreamError:
                            failed = True
                            break
            if not failed:
                frames += parser.close()
                last = LastBatch(early + dec.feed_all(frames) + dec.close())
                if notes is not None:
                    notes.see(last)
                yield last
        except (UpstreamError, *READ_ERRORS) as exc:
            failure: list[ir.StreamEvent] = [
                ir.StreamError(exc.message, type=exc.code) if isinstance(exc, UpstreamError)
                else ir.StreamError(f"{provider.id} sent a stream the gateway cannot read",
                                    type="invalid_upstream_response")]
            if notes is not None:
                notes.see(failure)
            yield failure
        if notes is not None:
            notes.report()
    finally:
        await response.aclose()
        if stack is not None:
            stack.close()
