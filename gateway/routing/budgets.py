"""Per-provider budgets: requests and tokens per minute and per day, counted from real usage.

Windows are fixed and aligned to the clock (a minute starts on the minute, a day at 00:00 UTC),
which is how the providers' free tiers count. A request takes its place in the request
windows atomically before the call, so concurrent requests (or replicas) cannot overshoot;
tokens are added when the answer reports them, and a provider whose token window is spent is
skipped until the window turns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.routing.backends import StateBackend
from gateway.routing.config import Budget

WINDOWS = {"rpm": 60.0, "rpd": 86400.0, "tpm": 60.0, "tpd": 86400.0}
REQUEST_KINDS = ("rpm", "rpd")
TOKEN_KINDS = ("tpm", "tpd")


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One window of one provider's budget."""

    limit: int
    used: int
    resets_at: float

    @property
    def left(self) -> int:
        """What may still be spent in this window."""
        return max(0, self.limit - self.used)


class Budgets:
    """Counts and checks every configured provider budget."""

    def __init__(self, backend: StateBackend, clock: Callable[[], float],
                 budgets: Mapping[str, Budget]) -> None:
        self._backend = backend
        self._clock = clock
        self._limits = {pid: b.limits() for pid, b in budgets.items() if b.limits()}

    def limited(self, provider_id: str) -> bool:
        """Whether `provider_id` has any budget."""
        return provider_id in self._limits

    @staticmethod
    def _window(provider_id: str, kind: str, now: float) -> tuple[str, float]:
        length = WINDOWS[kind]
        index = int(now // length)
        return f"budget:{provider_id}:{kind}:{index}", (index + 1) * length

    async def acquire(self, provider_id: str) -> float | None:
        """Take one request from the budget; None if allowed, else seconds until it may be."""
        limits = self._limits.get(provider_id)
        if not limits:
            return None
        now = self._clock()
        spent = [s for s in (await self.states(provider_id, TOKEN_KINDS)).values()
                 if s.left == 0]
        if spent:
            return max(s.resets_at for s in spent) - now
        taken: list[str] = []
        waits: list[float] = []
        for kind in REQUEST_KINDS:
            if kind not in limits:
                continue
            key, resets_at = self._window(provider_id, kind, now)
            taken.append(key)
            if await self._backend.add(key, 1, WINDOWS[kind] * 2) > limits[kind]:
                waits.append(resets_at - now)
        if waits:
            for key in taken:  # give the request back: it is not sent
                await self._backend.add(key, -1, None)
            return max(waits)
        return None

    async def spend_tokens(self, provider_id: str, tokens: int) -> None:
        """Count the tokens an answer reported."""
        limits = self._limits.get(provider_id)
        if not limits or tokens <= 0:
            return
        now = self._clock()
        for kind in TOKEN_KINDS:
            if kind in limits:
                key, _ = self._window(provider_id, kind, now)
                await self._backend.add(key, tokens, WINDOWS[kind] * 2)

    async def states(self, provider_id: str,
                     kinds: tuple[str, ...] = ("rpm", "rpd", "tpm", "tpd")
                     ) -> dict[str, BudgetState]:
        """The provider's configured windows now, by kind."""
        limits = self._limits.get(provider_id, {})
        wanted = [kind for kind in kinds if kind in limits]
        if not wanted:
            return {}
        now = self._clock()
        windows = [self._window(provider_id, kind, now) for kind in wanted]
        used = await self._backend.counts([key for key, _ in windows])
        return {kind: BudgetState(limits[kind], count, resets_at)
                for kind, count, (_, resets_at) in zip(wanted, used, windows, strict=True)}

    async def spent(self, provider_id: str) -> bool:
        """Whether any window of the provider's budget is used up."""
        return any(s.left == 0 for s in (await self.states(provider_id)).values())
