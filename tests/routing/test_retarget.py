"""`ChatRequest.retarget`: the per-candidate copy keeps everything but the model and stream."""

from __future__ import annotations

import dataclasses

from gateway import ir


def test_retarget_copies_every_other_field() -> None:
    values = {
        "model": "openai/gpt-4o-mini",
        "messages": [ir.Message(role="user", content=[ir.TextPart("hi")])],
        "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "stop": ["x"],
        "tools": [ir.Tool(name="t", description="d", parameters={"type": "object"})],
        "tool_choice": "required", "response_format": {"type": "json_object"},
        "stream": True, "extra": {"seed": 1}, "extra_dialect": "openai",
    }
    names = {f.name for f in dataclasses.fields(ir.ChatRequest)}
    assert names == set(values), "a new ChatRequest field must be copied by retarget()"
    request = ir.ChatRequest(**values)  # type: ignore[arg-type]
    copy = request.retarget("gpt-4o-mini", stream=False)
    assert copy.model == "gpt-4o-mini" and copy.stream is False
    for name in names - {"model", "stream"}:
        assert getattr(copy, name) == values[name], name
    assert request.model == "openai/gpt-4o-mini" and request.stream is True
