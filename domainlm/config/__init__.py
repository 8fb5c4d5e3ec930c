"""Typed, validated configs: YAML file + `a.b=value` overrides → a pydantic model, with errors naming file:line:key."""

from domainlm.config.loader import Strict, apply_overrides, load_config, load_yaml, parse_overrides, validate

__all__ = ["Strict", "apply_overrides", "load_config", "load_yaml", "parse_overrides", "validate"]
