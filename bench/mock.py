"""The mock upstream: nginx answering OpenAI's chat-completions wire format from memory.

One nginx (one worker, pinned to the load core) listens on two ports: one answers every
POST with a whole `chat.completion`, the other with a streamed answer of 20 content chunks
(after a role chunk, then a finish chunk, a usage chunk and `[DONE]`, as OpenAI sends them).
Two ports because nginx cannot branch on the request body without reading it, which would
make it slower; every target is started against one of them. `/v1/traces` and `/v1/metrics`
accept OTLP exports, so telemetry-on runs export to a real receiver.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import LOAD_CORE, Proc, base_env, free_port, start, wait_ready

STREAM_CHUNKS = 20
MODEL = "bench-model"
CREATED = 1769092764


def token(index: int) -> str:
    """The text of content chunk `index`: unique and easy to spot, so drops and merges show."""
    return f"[t{index:02d}] "


def completion() -> dict[str, Any]:
    """A whole chat completion shaped like OpenAI's (same fields, realistic size)."""
    return {
        "id": "chatcmpl-bench0000000000000000000001", "object": "chat.completion",
        "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "Hello! This answer comes from the benchmark mock.",
            "refusal": None, "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench",
    }


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-bench0000000000000000000002", "object": "chat.completion.chunk",
            "created": CREATED, "model": MODEL, "service_tier": "default",
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]}


def stream_events(chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """Each SSE event of the streamed answer, `data: [DONE]` last."""
    payloads: list[dict[str, Any]] = [_chunk({"role": "assistant", "content": ""})]
    payloads += [_chunk({"content": token(i)}) for i in range(chunks)]
    payloads.append(_chunk({}, finish="stop"))
    usage = _chunk({})
    usage["choices"] = []
    usage["usage"] = {"prompt_tokens": 12, "completion_tokens": chunks,
                      "total_tokens": 12 + chunks}
    payloads.append(usage)
    events = [b"data: " + json.dumps(p, separators=(",", ":")).encode() + b"\n\n"
              for p in payloads]
    return [*events, b"data: [DONE]\n\n"]


def _nginx_literal(body: bytes) -> str:
    text = body.decode()
    if any(ch in text for ch in "'\\$"):
        raise ValueError("mock bodies must not need escaping in nginx.conf")
    return f"'{text}'"


def nginx_conf(root: Path, json_port: int, sse_port: int) -> str:
    """nginx.conf for the two mock ports; logs and temp files stay under `root`."""
    whole = _nginx_literal(json.dumps(completion(), separators=(",", ":")).encode())
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "stream.txt").write_bytes(b"".join(stream_events()))
    temp = " ".join(f"{kind}_temp_path {root}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    {temp}
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{json_port} backlog=4096;
        # Export requests as large as the SDK sends (64 MiB; nginx's own limit is 1 MiB, about
        # 3,000 spans: larger batches, as OTEL_BSP_MAX_EXPORT_BATCH_SIZE may ask, got 413).
        location = /v1/traces {{ client_max_body_size 64m; return 200 ''; }}
        location = /v1/metrics {{ client_max_body_size 64m; return 200 ''; }}
        location / {{ default_type application/json; return 200 {whole}; }}
    }}
    server {{
        listen 127.0.0.1:{sse_port} backlog=4096;
        # The SSE body is longer than an nginx string may be, so it is a static file; the
        # static module refuses POST with 405, which error_page turns into the file itself.
        types {{ }}
        default_type text/event-stream;
        open_file_cache max=16;
        etag off;
        root {root}/www;
        location / {{ try_files /stream.txt =404; error_page 405 =200 /stream.txt; }}
    }}
}}
"""


@dataclass
class Mock:
    """The running nginx mock: its base URLs and its process."""

    json_url: str
    sse_url: str
    proc: Proc


def start_mock(work: Path, log_dir: Path) -> Mock:
    """Write the config under `work` and start nginx pinned to the load core."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = work / "nginx"
    root.mkdir(parents=True, exist_ok=True)
    json_port, sse_port = free_port(), free_port()
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, json_port, sse_port))
    proc = start("mock-nginx", [nginx, "-p", str(root), "-c", str(conf), "-e",
                                str(root / "error.log")],
                 core=LOAD_CORE, env=base_env(), log_dir=log_dir)
    mock = Mock(json_url=f"http://127.0.0.1:{json_port}", sse_url=f"http://127.0.0.1:{sse_port}",
                proc=proc)
    wait_ready(proc, mock.json_url + "/v1/chat/completions", body=b"{}", headers={},
               timeout=15)
    return mock
