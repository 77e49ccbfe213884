"""The metric instruments the gateway records, with semantic-convention bucket boundaries."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.telemetry.histograms import Histogram

# Boundaries advised by the OpenTelemetry HTTP and GenAI semantic conventions; the SDK's
# default buckets are in milliseconds and would put every request in the first bucket.
_HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_GENAI_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                  40.96, 81.92)
_FIRST_TOKEN_SECONDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                        2.5, 5.0, 7.5, 10.0)
_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
           67108864)


@dataclass(frozen=True)
class Instruments:
    """Every histogram, created once per `Telemetry`."""

    http_server_duration: Histogram
    client_operation_duration: Histogram
    client_token_usage: Histogram
    server_time_to_first_token: Histogram

    @classmethod
    def create(cls) -> Instruments:
        """Create the instruments."""
        return cls(
            http_server_duration=Histogram(
                "http.server.request.duration", unit="s",
                description="Duration of HTTP server requests, to the end of the body.",
                boundaries=_HTTP_SECONDS),
            # gen_ai.server.request.duration has the same values: it is exported from the
            # same series.
            client_operation_duration=Histogram(
                "gen_ai.client.operation.duration", unit="s",
                description="Duration of one call to a model provider.",
                boundaries=_GENAI_SECONDS,
                aliases=[("gen_ai.server.request.duration",
                          "Time to the last byte of a model answer.")]),
            client_token_usage=Histogram(
                "gen_ai.client.token.usage", unit="{token}",
                description="Input and output tokens used per provider call.",
                boundaries=_TOKENS),
            server_time_to_first_token=Histogram(
                "gen_ai.server.time_to_first_token", unit="s",
                description="Time to the first token of a streamed model answer.",
                boundaries=_FIRST_TOKEN_SECONDS),
        )

    def all(self) -> tuple[Histogram, ...]:
        """Every instrument, in a fixed order."""
        return (self.http_server_duration, self.client_operation_duration,
                self.client_token_usage, self.server_time_to_first_token)
