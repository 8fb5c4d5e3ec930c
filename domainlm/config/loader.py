"""Load YAML into pydantic models so every mistake is reported as `file:line: key: what is wrong`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from domainlm.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _line_map(node: yaml.Node, prefix: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path (('lora', 'r')) to its 1-based line, from the composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (key_node.value,)
            out[path] = key_node.start_mark.line + 1
            _line_map(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[prefix + (index,)] = item.start_mark.line + 1
            _line_map(item, prefix + (index,), out)
    return out


def load_yaml(path: str | Path) -> tuple[dict, dict[tuple, int]]:
    """Return (mapping, line map). A missing file or bad YAML raises ConfigError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys, not {type(data).__name__}")
    return data, (_line_map(node) if node is not None else {})


def parse_overrides(items: list[str] | None) -> list[tuple[list[str], Any]]:
    """`a.b=value` → (['a', 'b'], value parsed as YAML, so 8 is an int and [q,v] a list)."""
    parsed = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': expected key.path=value, e.g. train.max_steps=20")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(data: dict, overrides: list[str] | None) -> set[tuple]:
    """Apply `key.path=value` overrides to `data` in place; returns the overridden key paths (errors name them)."""
    overridden = set()
    for keys, value in parse_overrides(overrides):
        _set(data, keys, value, f"override '{'.'.join(keys)}'")
        overridden.add(tuple(keys))
    return overridden


def _set(data: dict, keys: list[str], value: Any, origin: str) -> None:
    """Set data[k1][k2]…= value, creating sections; a numeric key indexes a list (bases.0.model=...)."""
    cursor: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(cursor, list):
            if not key.isdigit() or int(key) >= len(cursor):
                raise ConfigError(f"{origin}: '{where}': no list item {key} (the list has {len(cursor)})")
            key = int(key)
        elif not isinstance(cursor, dict):
            raise ConfigError(f"{origin}: '{'.'.join(keys[:depth])}' is a value, not a section")
        if last:
            cursor[key] = value
            return
        nxt = cursor[key] if isinstance(cursor, list) else cursor.get(key)
        if nxt is None:
            nxt = cursor[key] = {}
        cursor = nxt


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"]


def validate(model: type[M], data: dict, source: str, lines: dict[tuple, int] | None = None,
             overridden: set[tuple] = frozenset()) -> M:
    """Validate `data` against `model`; every error names source:line and the dotted key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "(top level)"
            if any(loc[: len(o)] == o for o in overridden):
                where = f"{source} (override)"
            else:
                line = None
                for cut in range(len(loc), 0, -1):  # a missing key reports the line of its parent section
                    line = (lines or {}).get(loc[:cut])
                    if line:
                        break
                where = f"{source}:{line}" if line else source
            messages.append(f"{where}: {key}: {_describe(error)}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages)) from None


def load_config(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
    """YAML file + overrides → validated `model` instance."""
    data, lines = load_yaml(path)
    overridden = apply_overrides(data, overrides)
    return validate(model, data, str(path), lines, overridden)
