"""The official SDK clients, aimed at a running gateway, without retries."""

from __future__ import annotations

import anthropic
import openai

from tests.support.server import RunningServer

SDK_TIMEOUT = 10.0
API_KEY = "any-key"  # the gateway's own auth is off in these tests; the SDKs need some key


def openai_sync(gateway: RunningServer) -> openai.OpenAI:
    """A sync OpenAI client; base URL is the gateway's /v1."""
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0,
                         timeout=SDK_TIMEOUT)


def openai_async(gateway: RunningServer) -> openai.AsyncOpenAI:
    """An async OpenAI client; base URL is the gateway's /v1."""
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0,
                              timeout=SDK_TIMEOUT)


def anthropic_sync(gateway: RunningServer) -> anthropic.Anthropic:
    """A sync Anthropic client; base URL is the gateway itself (the SDK adds /v1)."""
    return anthropic.Anthropic(base_url=gateway.url, api_key=API_KEY, max_retries=0,
                               timeout=SDK_TIMEOUT)


def anthropic_async(gateway: RunningServer) -> anthropic.AsyncAnthropic:
    """An async Anthropic client; base URL is the gateway itself (the SDK adds /v1)."""
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=API_KEY, max_retries=0,
                                    timeout=SDK_TIMEOUT)
