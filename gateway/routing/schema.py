"""The JSON Schema of the routing file (after the user's file is merged over the built-in one).

The schema checks shapes; `gateway.routing.config` then checks what a schema cannot (that an
alias names a known model, that a budget names a known provider, ...).
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"}
_PROVIDER = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"}
_COUNT = {"type": "integer", "minimum": 1}
_PATH = {"type": "string", "pattern": r"^/[^?#\s]*$"}

_LIMITS: dict[str, Any] = {"rpm": _COUNT, "rpd": _COUNT, "tpm": _COUNT, "tpd": _COUNT}

ROUTING_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "models"],
    "properties": {
        "version": {"const": 1},
        "models": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["providers"],
                "properties": {
                    "first_party": _PROVIDER,
                    "providers": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": _PROVIDER,
                        "additionalProperties": {"type": "string", "minLength": 1},
                    },
                },
            },
        },
        "aliases": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
            },
        },
        "auto": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "overrides": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "budgets": {
            "type": "object",
            "propertyNames": _PROVIDER,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {"preset": {"type": "string"}, **_LIMITS},
            },
        },
        "budget_presets": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": _LIMITS,
            },
        },
        "local_servers": {
            "type": "object",
            "propertyNames": _PROVIDER,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["probe"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "url": {"type": "string", "pattern": r"^http://[^/?#\s]+$"},
                    "probe": _PATH,
                    "generate": _PATH,
                    "dialect": {"type": "string"},
                },
            },
        },
    },
}
