"""Profile samples go to the innermost frame that belongs to a component."""

from __future__ import annotations

from bench.profile import OTHER, component_of, summarise

ROOT = "Runner.run (asyncio/runners.py:118);run_asgi (uvicorn/protocols/http/httptools_impl.py:1)"


def test_innermost_component_wins() -> None:
    frames = [*ROOT.split(";"), "generate (gateway/routes/llms.py:9)",
              "model_validate (pydantic/main.py:1)", "validate_python (_pydantic_core.so)"]
    assert component_of(frames) == "pydantic validation"


def test_asyncio_helpers_count_for_their_caller() -> None:
    frames = [*ROOT.split(";"), "send (httpcore/_async/http11.py:1)",
              "current_async_library (sniffio/_impl.py:82)", "current_task (asyncio/tasks.py:38)",
              "get_running_loop (_asynciomodule.c:274)", "getpid (libc.so.6)"]
    assert component_of(frames).startswith("httpx")


def test_unknown_frames_are_other() -> None:
    assert component_of(["main (something.c:1)"]) == OTHER


def test_summarise_counts_samples() -> None:
    raw = "\n".join([
        f"{ROOT};generate (gateway/routes/llms.py:9);dumps (orjson/orjson.so) 3",
        f"{ROOT};handle (starlette/routing.py:1) 1",
        "garbage line",
    ])
    found = summarise(raw)
    assert found.samples == 4
    assert dict(found.components) == {"json (orjson, json)": 3,
                                      "starlette routing, requests, responses": 1}
    assert found.hottest[0] == ("generate (gateway/routes/llms.py:9)", 3)
