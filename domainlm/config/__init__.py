"""Typed, validated configs: YAML file + `a.b=value` overrides → a pydantic model, with errors naming file:line:key."""

from domainlm.config.loader import Strict, load_config, load_yaml, parse_overrides

__all__ = ["Strict", "load_config", "load_yaml", "parse_overrides"]
