"""Detection evidence that never initialises a device and never imports a vendor module.

A backend is probed from facts that cost nothing to read: whether a module could be imported (`find_spec`, which
reads the file system and imports nothing), environment variables, tools on PATH, install folders, and attributes of
`torch.version`. Markers are small strings so each adapter can declare its evidence as data:

    module:NAME          importlib.util.find_spec(NAME) finds it
    env:NAME             the variable is set and not empty
    env:NAME~TEXT        the variable contains TEXT
    tool:NAME            shutil.which(NAME) finds an executable
    path:/ABS/PATH       the path exists
    torch.version:ATTR   torch.version.ATTR is set (torch.version.hip, torch.version.maca, ...)

`a&b` requires both; an adapter's tuple of markers matches when any one of them matches.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path


def module_present(name: str) -> bool:
    """True when `import name` would find a module; the module is not imported (only its parent packages are)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        # ValueError: a module already in sys.modules without __spec__; ImportError: a parent package is missing.
        return False


def torch_version_attr(attr: str) -> str | None:
    import torch

    value = getattr(torch.version, attr, None)
    return str(value) if value else None


def condition_holds(condition: str) -> bool:
    kind, _, arg = condition.partition(":")
    if not arg:
        raise ValueError(f"marker {condition!r} has no argument (expected kind:argument)")
    if kind == "module":
        return module_present(arg)
    if kind == "env":
        name, _, needle = arg.partition("~")
        value = os.environ.get(name, "")
        return bool(value) and (needle in value if needle else True)
    if kind == "tool":
        return shutil.which(arg) is not None
    if kind == "path":
        return Path(arg).exists()
    if kind == "torch.version":
        return torch_version_attr(arg) is not None
    raise ValueError(f"unknown marker kind {kind!r} in {condition!r}")


def first_matching_marker(markers: tuple[str, ...]) -> str | None:
    """The first marker whose conditions all hold, else None."""
    for marker in markers:
        if all(condition_holds(c.strip()) for c in marker.split("&")):
            return marker
    return None


def validate_marker(marker: str) -> None:
    for condition in marker.split("&"):
        kind, _, arg = condition.strip().partition(":")
        if kind not in {"module", "env", "tool", "path", "torch.version"} or not arg:
            raise ValueError(f"bad marker condition {condition!r} in {marker!r}")
