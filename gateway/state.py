"""What the running app holds: resolved providers, the upstream client, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.chat import AnyTelemetry
from gateway.dialects.base import ModelInfo
from gateway.errors import GatewayError
from gateway.providers import Provider
from gateway.routing.router import Router
from gateway.upstream import Upstream
from generated.settings import Settings


@dataclass(slots=True)
class GatewayState:
    """Per-app state, created by `create_app` and completed in the lifespan."""

    settings: Settings
    providers: dict[str, Provider]
    telemetry: AnyTelemetry
    upstream: Upstream = field(init=False)
    router: Router = field(init=False)

    @property
    def list_timeout(self) -> float:
        """The time one provider gets to list its models in `GET /llms`."""
        return self.settings.client_list_timeout

    async def list_models(self, provider: Provider) -> list[ModelInfo]:
        """Every model of `provider`, observed as one upstream attempt."""
        with self.telemetry.upstream_attempt(provider=provider.id, model=None,
                                             operation="list_models",
                                             server_address=provider.host) as attempt:
            try:
                return await self.upstream.list_models(provider, trace=attempt.trace_lines)
            except GatewayError as exc:
                attempt.set_error(exc.code)
                raise
