"""What a failed attempt means for the request: retry, fall back, give up; and how long to wait.

    400, 422                     the request itself is wrong: answered at once, nothing else tried
    401, 403                     the provider refused the key: skipped until the key changes
    408, 5xx, 529, dropped conn  transient: retried on the same model after a backoff (at
                                 least its Retry-After, if that is short), then next
    429, 402, 404                next candidate; the model cools down for its Retry-After, or
                                 long for 402, 404 and OpenAI's insufficient_quota, which
                                 waiting a little never fixes; 402 and insufficient_quota are
                                 about the account, so every model of that provider cools down
    timeout, unreadable answer   next candidate, with a cooldown
    413                          next candidate (another may take a larger request), no cooldown
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

QUOTA_CODES = frozenset({"insufficient_quota"})
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504, 529})


class Verdict(enum.Enum):
    """The next step after a failed attempt."""

    RETRY = "retry"  # the same candidate again, after a backoff
    NEXT = "next"  # the next candidate
    KEY_BAD = "key_bad"  # the next candidate; this provider's key is not to be used again
    FATAL = "fatal"  # answer the caller with this error now


class Cooldown(enum.Enum):
    """How long the failing candidate is skipped afterwards."""

    NONE = "none"
    NORMAL = "normal"  # Retry-After, else the growing base cooldown
    LONG = "long"  # the longest cooldown: retrying soon cannot help


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict, the cooldown to apply if the candidate is left, and the wait before a retry."""

    verdict: Verdict
    cooldown: Cooldown = Cooldown.NORMAL
    wait: float | None = None
    whole_provider: bool = False  # the failure is the account's, not the model's


def decide(exc: GatewayError, *, max_wait: float) -> Decision:
    """Classify a failed attempt; `max_wait` is the longest Retry-After worth waiting for."""
    if isinstance(exc, UpstreamTimeout):
        return Decision(Verdict.NEXT)
    if isinstance(exc, UpstreamUnavailable):
        return Decision(Verdict.RETRY)
    if isinstance(exc, InvalidRequest):
        # Raised before any call: this provider's dialect cannot carry the request.
        return Decision(Verdict.NEXT, Cooldown.NONE)
    if not isinstance(exc, UpstreamError):
        return Decision(Verdict.FATAL)
    return _by_status(exc, max_wait)


def _by_status(exc: UpstreamError, max_wait: float) -> Decision:
    status = exc.upstream_status
    if status is None or status < 400:
        return Decision(Verdict.NEXT)  # a stream that broke before its first event, bad JSON
    if status in (401, 403):
        return Decision(Verdict.KEY_BAD, Cooldown.NONE)
    if status == 429:
        if exc.code in QUOTA_CODES:
            return Decision(Verdict.NEXT, Cooldown.LONG, whole_provider=True)
        # Another candidate is quicker than waiting; the cooldown keeps the Retry-After.
        return Decision(Verdict.NEXT)
    if status in TRANSIENT_STATUSES or status >= 500:
        if exc.retry_after is not None and exc.retry_after > max_wait:
            return Decision(Verdict.NEXT)
        return Decision(Verdict.RETRY, wait=exc.retry_after)
    if status == 402:
        return Decision(Verdict.NEXT, Cooldown.LONG, whole_provider=True)
    if status == 404:
        return Decision(Verdict.NEXT, Cooldown.LONG)
    if status == 413:
        return Decision(Verdict.NEXT, Cooldown.NONE)
    return Decision(Verdict.FATAL)


def backoff(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """The wait before retry number `retry` (0 for the first): doubling, capped, jittered.

    Half the delay is fixed and half random, so concurrent clients spread out without any
    of them retrying immediately.
    """
    delay = min(cap, base * 2.0 ** retry)
    return delay / 2 + rng.uniform(0, delay / 2)
