"""The stream checks must catch drops, merges and reordering, or the bench proves nothing."""

from __future__ import annotations

import json

from bench.frames import EXPECTED, EventReader, StreamOutcome
from bench.mock import stream_events


def _read(body: bytes, stream_format: str = "openai", split: int = 7) -> StreamOutcome:
    outcome = StreamOutcome()
    reader = EventReader(outcome, stream_format, started=0.0)
    for start in range(0, len(body), split):  # arbitrary chunking must not matter
        reader.feed(body[start:start + split])
    return outcome


def _generate_event(text: str) -> bytes:
    payload = {"provider": "openai", "response": {"role": "assistant", "content": text}}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_the_mock_stream_is_intact() -> None:
    assert _read(b"".join(stream_events())).intact


def test_crlf_separators_are_accepted() -> None:
    body = b"".join(stream_events()).replace(b"\n", b"\r\n")
    assert _read(body, split=5).intact


def test_a_dropped_event_is_caught() -> None:
    events = stream_events()
    del events[5]
    outcome = _read(b"".join(events))
    assert not outcome.intact
    assert len(outcome.texts) == len(EXPECTED) - 1


def test_two_merged_events_are_caught() -> None:
    events = stream_events()
    merged = [*events[:3], _openai_merged(EXPECTED[2] + EXPECTED[3]), *events[5:]]
    assert not _read(b"".join(merged)).intact


def _openai_merged(text: str) -> bytes:
    payload = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_a_stream_without_done_is_caught() -> None:
    assert not _read(b"".join(stream_events()[:-1])).intact


def test_the_generate_shape_is_read() -> None:
    body = b"".join(_generate_event(text) for text in EXPECTED) + b"data: [DONE]\n\n"
    assert _read(body, "generate").intact
    swapped = list(EXPECTED)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    body = b"".join(_generate_event(text) for text in swapped) + b"data: [DONE]\n\n"
    assert not _read(body, "generate").intact
