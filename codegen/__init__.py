"""Generates the gateway's models, provider registry, settings, docs and manifests from the spec."""
