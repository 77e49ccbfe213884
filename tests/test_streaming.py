"""The SSE and NDJSON framing parsers, fed every vendored transcript at many chunk boundaries."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from gateway.dialects.base import Frame
from gateway.streaming import SSE_DONE, NDJSONParser, SSEParser, sse_comment, sse_event

CONTRACTS = Path(__file__).parent / "contracts"
TRANSCRIPTS = sorted(
    p for p in CONTRACTS.glob("*/*.txt") if p.name.startswith("stream")
)
NDJSON = [p for p in TRANSCRIPTS if p.name.endswith(".ndjson.txt")]
JSON_ARRAY = [p for p in TRANSCRIPTS if "json-array" in p.name]
SSE = [p for p in TRANSCRIPTS if p not in NDJSON and p not in JSON_ARRAY]

Parser = SSEParser | NDJSONParser


def _ids(paths: Iterable[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def run(parser: Parser, chunks: Iterable[bytes]) -> list[Frame]:
    """Feed every chunk, then close."""
    frames: list[Frame] = []
    for chunk in chunks:
        frames += parser.feed(chunk)
    return frames + parser.close()


def random_chunks(raw: bytes, rng: random.Random, most: int) -> list[bytes]:
    """`raw` cut at random places into pieces of 1..most bytes."""
    pieces, at = [], 0
    while at < len(raw):
        size = rng.randint(1, most)
        pieces.append(raw[at:at + size])
        at += size
    return pieces


def reference_sse(raw: bytes) -> list[Frame]:
    """A deliberately naive, whole-body reading of the WHATWG rules, to compare against."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    frames: list[Frame] = []
    for block in text.split("\n\n"):
        data: list[str] = []
        event = None
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value or None
        if data:
            frames.append(Frame("\n".join(data), event))
    return frames


def new_parser(path: Path) -> Parser:
    return SSEParser() if path in SSE else NDJSONParser()


# --- every transcript ---------------------------------------------------------------------------


def test_transcripts_were_found() -> None:
    assert len(SSE) >= 15 and len(NDJSON) == 3 and len(JSON_ARRAY) == 1


@pytest.mark.parametrize("path", SSE, ids=_ids(SSE))
def test_sse_transcript_matches_reference(path: Path) -> None:
    raw = path.read_bytes()
    frames = run(SSEParser(), [raw])
    assert frames == reference_sse(raw)
    for frame in frames:
        payload = frame.data.strip()
        assert payload == "[DONE]" or isinstance(json.loads(payload), dict | list), frame
        # Where providers name events (Anthropic, Cohere), the name repeats the JSON type.
        if frame.event is not None and payload != "[DONE]":
            assert json.loads(payload).get("type") in (frame.event, None)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=_ids(TRANSCRIPTS))
def test_random_chunk_boundaries_change_nothing(path: Path) -> None:
    raw = path.read_bytes()
    whole = run(new_parser(path), [raw])
    assert whole
    rng = random.Random(path.name)
    for most in (1, 2, 3, 7, 64, 500):
        assert run(new_parser(path), random_chunks(raw, rng, most)) == whole


EXHAUSTIVE = [
    CONTRACTS / "gemini" / "stream.txt",  # CRLF: a chunk may end between CR and LF
    CONTRACTS / "openai" / "stream-tool-calls.txt",
    CONTRACTS / "anthropic" / "stream-recorded-padded.txt",
    CONTRACTS / "ollama" / "stream-chat.ndjson.txt",
]


@pytest.mark.parametrize("path", EXHAUSTIVE, ids=_ids(EXHAUSTIVE))
def test_every_single_chunk_boundary(path: Path) -> None:
    raw = path.read_bytes()
    whole = run(new_parser(path), [raw])
    for cut in range(1, len(raw)):
        assert run(new_parser(path), [raw[:cut], raw[cut:]]) == whole, cut
    assert run(new_parser(path), [raw[i:i + 1] for i in range(len(raw))]) == whole


def test_gemini_crlf_and_lf_captures_frame_alike() -> None:
    crlf = run(SSEParser(), [(CONTRACTS / "gemini" / "stream.txt").read_bytes()])
    assert crlf and all("\r" not in f.data and "\n" not in f.data for f in crlf)
    assert all(json.loads(f.data)["candidates"] for f in crlf)
    as_lf = (CONTRACTS / "gemini" / "stream.txt").read_bytes().replace(b"\r\n", b"\n")
    assert run(SSEParser(), [as_lf]) == crlf


@pytest.mark.parametrize("path", NDJSON, ids=_ids(NDJSON))
def test_ndjson_transcripts_give_one_object_per_line(path: Path) -> None:
    raw = path.read_bytes()
    frames = run(NDJSONParser(), [raw])
    lines = [line for line in raw.split(b"\n") if line.strip()]
    assert [json.loads(f.data) for f in frames] == [json.loads(line) for line in lines]
    assert all(f.event is None for f in frames)


# --- SSE rules, one at a time -------------------------------------------------------------------

SSE_CASES = [
    ("lf", [b"data: a\n\n"], [Frame("a")]),
    ("crlf", [b"data: a\r\n\r\n"], [Frame("a")]),
    ("cr only", [b"data: a\r\rdata: b\r\r"], [Frame("a"), Frame("b")]),
    ("crlf split between chunks", [b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"],
     [Frame("a"), Frame("b")]),
    ("crlf split inside a multi-line event", [b"data: a\r", b"\ndata: b\r\n\r\n"],
     [Frame("a\nb")]),
    ("multi-line data joined with LF", [b"data: a\ndata:b\ndata:  c\n\n"], [Frame("a\nb\n c")]),
    ("event name", [b"event: ping\ndata: {}\n\n"], [Frame("{}", "ping")]),
    ("event name reset after dispatch", [b"event: x\ndata: 1\n\ndata: 2\n\n"],
     [Frame("1", "x"), Frame("2")]),
    ("comments ignored", [b": keep-alive\n\n:x\ndata: a\n\n"], [Frame("a")]),
    ("field without colon", [b"data\n\n"], [Frame("")]),
    ("empty data still dispatches", [b"data:\n\n"], [Frame("")]),
    ("no data, no event", [b"event: x\n\n\n\ndata: a\n\n"], [Frame("a")]),
    ("id and retry and unknown ignored", [b"id: 7\nretry: 10\nfoo: bar\ndata: a\n\n"],
     [Frame("a")]),
    ("colon inside value kept", [b'data: {"a": "b:c"}\n\n'], [Frame('{"a": "b:c"}')]),
    ("trailing spaces kept", [b"data: a  \n\n"], [Frame("a  ")]),
    ("byte-order mark dropped", [b"\xef\xbb", b"\xbfdata: a\n\n"], [Frame("a")]),
    ("utf-8 character split", [b"data: \xc3", b"\xa9t\xc3\xa9\n\n"], [Frame("\u00e9t\u00e9")]),
    ("close flushes an unterminated event", [b"data: a\n"], [Frame("a")]),
    ("close flushes an unterminated line", [b"data: a\n\ndata: b"], [Frame("a"), Frame("b")]),
    ("empty chunks", [b"", b"data: a\n", b"", b"\n"], [Frame("a")]),
    # Reads of whole one-line `data: ` events take a short way; these are nearly that.
    ("data: events only", [b"data: a\n\ndata: b\n\ndata: \n\n"],
     [Frame("a"), Frame("b"), Frame("")]),
    ("a later data line without its space", [b"data: a\n\ndata:b\n\n"], [Frame("a"), Frame("b")]),
    ("a later event named", [b"data: a\n\nevent: x\ndata: b\n\n"], [Frame("a"), Frame("b", "x")]),
    ("two data lines", [b"data: a\ndata: b\n\ndata: c\n\n"], [Frame("a\nb"), Frame("c")]),
    ("a comment between", [b"data: a\n\n: hi\n\ndata: b\n\n"], [Frame("a"), Frame("b")]),
    ("extra blank lines", [b"data: a\n\n\n\ndata: b\n\n\n"], [Frame("a"), Frame("b")]),
    ("data: inside a value", [b"data: a data: b\n\n"], [Frame("a data: b")]),
    ("an event name pending", [b"event: x\n", b"data: a\n\ndata: b\n\n"],
     [Frame("a", "x"), Frame("b")]),
    ("a data line pending", [b"data: a\n", b"data: b\n\ndata: c\n\n"],
     [Frame("a\nb"), Frame("c")]),
    ("a last event open", [b"data: a\n\ndata: b\n", b"\n"], [Frame("a"), Frame("b")]),
]


@pytest.mark.parametrize(("chunks", "expected"), [c[1:] for c in SSE_CASES],
                         ids=[c[0] for c in SSE_CASES])
def test_sse_rules(chunks: list[bytes], expected: list[Frame]) -> None:
    assert run(SSEParser(), chunks) == expected


SSE_LINES = ["data: a", "data:b", "data: ", "data:", "data: data: c", "event: e", "event:",
             ": note", "id: 1", "", "", "", "", "data: {\"x\": \"d\\n\"}"]


def test_sse_random_streams_match_reference() -> None:
    """Streams mixing one-line data events with every other kind of line, whole and cut,
    read as the naive reference reads them (the short way for data-only reads included)."""
    rng = random.Random(6)
    for _ in range(3000):
        lines = [rng.choice(SSE_LINES) for _ in range(rng.randint(1, 12))]
        raw = ("\n".join(lines) + "\n\n").encode()
        assert run(SSEParser(), [raw]) == reference_sse(raw), lines
        assert run(SSEParser(), random_chunks(raw, rng, 9)) == reference_sse(raw), lines


def test_sse_feed_returns_frames_as_soon_as_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b\n\nda") == [Frame("a"), Frame("b")]
    assert parser.close() == []  # a partial line that is not a field produces nothing


NDJSON_CASES = [
    ("lines", [b'{"a":1}\n{"b":2}\n'], ['{"a":1}', '{"b":2}']),
    ("crlf and blank lines", [b'{"a":1}\r\n\r\n  \n{"b":2}\r\n'], ['{"a":1}', '{"b":2}']),
    ("last line without newline", [b'{"a":1}\n{"b"', b":2}"], ['{"a":1}', '{"b":2}']),
    ("split everywhere", [b"{", b'"a"', b":1}\n"], ['{"a":1}']),
]


@pytest.mark.parametrize(("chunks", "expected"), [c[1:] for c in NDJSON_CASES],
                         ids=[c[0] for c in NDJSON_CASES])
def test_ndjson_rules(chunks: list[bytes], expected: list[str]) -> None:
    assert run(NDJSONParser(), chunks) == [Frame(d) for d in expected]


# --- writing --------------------------------------------------------------------------------

WRITE_CASES = [
    ('{"a":1}', None),
    (b'{"a":1}', "message_start"),
    ("line one\nline two", None),
    ("crlf\r\nand cr\rtoo", "x"),
    ("", None),
    ("caf\u00e9", "ping"),
]


@pytest.mark.parametrize(("data", "event"), WRITE_CASES)
def test_sse_event_reads_back(data: bytes | str, event: str | None) -> None:
    encoded = sse_event(data, event)
    assert encoded.endswith(b"\n\n")
    text = data.decode() if isinstance(data, bytes) else data
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert run(SSEParser(), [sse_comment("keep-alive"), encoded, sse_comment()]) == [
        Frame(expected, event)
    ]


def test_done_marker() -> None:
    assert run(SSEParser(), [SSE_DONE]) == [Frame("[DONE]")]
