"""Root fixtures: the provider simulators and the anyio backend."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.simulators.fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, like the gateway."""
    return "asyncio"
