"""Make the simulator fixtures available to the self-tests.

A root conftest.py may register `tests.simulators.fixtures` as a plugin instead; importing
the fixtures here keeps this folder runnable on its own.
"""

from __future__ import annotations

from tests.simulators.fixtures import (
    anthropic_sim,
    anthropic_sim_server,
    cloudflare_sim,
    cloudflare_sim_server,
    cohere_sim,
    cohere_sim_server,
    google_sim,
    google_sim_server,
    groq_sim,
    groq_sim_server,
    ollama_sim,
    ollama_sim_server,
    openai_sim,
    openai_sim_server,
    simulator_env,
    simulators,
)

__all__ = [
    "anthropic_sim",
    "anthropic_sim_server",
    "cloudflare_sim",
    "cloudflare_sim_server",
    "cohere_sim",
    "cohere_sim_server",
    "google_sim",
    "google_sim_server",
    "groq_sim",
    "groq_sim_server",
    "ollama_sim",
    "ollama_sim_server",
    "openai_sim",
    "openai_sim_server",
    "simulator_env",
    "simulators",
]
