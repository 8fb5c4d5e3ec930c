"""Base model resolution: the embedded default (SmolLM2-135M-Instruct from a PyPI wheel), a local HF dir, a hub id."""

from domainlm.models.resolve import DEFAULT_MODEL, ResolvedModel, resolve_base

__all__ = ["DEFAULT_MODEL", "ResolvedModel", "resolve_base"]
