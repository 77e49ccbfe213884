"""A second gateway process for the Redis tests: `python -m tests.routing.redis_peer`.

It routes three requests with the settings in its environment (REDIS_URL among them) and
prints, as JSON, who served each one and whether it came from the cache.
"""

from __future__ import annotations

import asyncio
import json

from gateway import ir
from gateway.library import Gateway


async def main() -> None:
    results = []
    async with Gateway.from_env() as gateway:
        for text, model in (("peer", "hop-model"),
                            ("shared", "groq/llama-3.3-70b-versatile"),
                            ("budget", "anthropic/claude-sonnet-4-20250514")):
            request = ir.ChatRequest(model="", messages=[ir.Message("user", [ir.TextPart(text)])])
            routed = await gateway.router.complete(request, requested_model=model)
            results.append({"provider": routed.provider_id, "cache_hit": routed.cache_hit})
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
