"""Registration (one validated call) and discovery of verticals.

Built-in verticals are the folders beside this file that hold a `vertical.yaml`. More come from
DOMAINLM_VERTICALS_PATH (os.pathsep-separated): each entry is a vertical folder or a folder of vertical folders.
A fourth vertical is therefore one folder with one YAML, and no code.
"""

from __future__ import annotations

import os
from pathlib import Path

from domainlm.config.loader import load_config, validate
from domainlm.errors import ConfigError
from domainlm.verticals.spec import VerticalSpec
from domainlm.verticals.vertical import Vertical

SPEC_FILE = "vertical.yaml"
BUILTIN = Path(__file__).resolve().parent

_VERTICALS: dict[str, Vertical] = {}
_SCANNED: set[str] = set()


def register_vertical(spec: str | Path | dict | VerticalSpec, folder: str | Path | None = None) -> Vertical:
    """Validate and register a vertical; return it.

    `spec` is a vertical folder, its vertical.yaml, a mapping, or a VerticalSpec (then `folder` says where its
    own data lives). Checks: schema (file:line errors), name format, folder named after the vertical, name not
    taken by another folder. Registering the same folder again returns the existing vertical.
    """
    spec_path: Path | None = None
    if isinstance(spec, (str, Path)):
        spec_path = Path(spec)
        if spec_path.is_dir():
            spec_path = spec_path / SPEC_FILE
        spec = load_config(spec_path, VerticalSpec)
        folder = spec_path.parent
    elif isinstance(spec, dict):
        spec = validate(VerticalSpec, spec, f"vertical {spec.get('name', '?')!r}")
    if not isinstance(spec, VerticalSpec):
        raise ConfigError(f"register_vertical expects a folder, a vertical.yaml, a dict or a VerticalSpec, "
                          f"not {type(spec).__name__}")
    if folder is None:
        raise ConfigError(f"vertical '{spec.name}': give the folder its data paths are relative to")
    folder = Path(folder).resolve()
    where = spec_path or folder
    if folder.name != spec.name:
        raise ConfigError(f"{where}: vertical '{spec.name}' must live in a folder named '{spec.name}', "
                          f"not '{folder.name}'")
    existing = _VERTICALS.get(spec.name)
    if existing is not None:
        if existing.folder == folder:
            return existing
        raise ConfigError(f"{where}: vertical name '{spec.name}' is already registered from {existing.folder}")
    vertical = Vertical(spec, folder, spec_path)
    _VERTICALS[spec.name] = vertical
    return vertical


def _candidates(entry: Path) -> list[Path]:
    if (entry / SPEC_FILE).is_file():
        return [entry]
    return sorted(p for p in entry.iterdir() if (p / SPEC_FILE).is_file()) if entry.is_dir() else []


def discover() -> None:
    """Register built-ins and every DOMAINLM_VERTICALS_PATH entry not scanned yet (cheap to call often)."""
    entries = [str(BUILTIN)] + [e for e in os.environ.get("DOMAINLM_VERTICALS_PATH", "").split(os.pathsep) if e]
    for entry in entries:
        if entry in _SCANNED:
            continue
        path = Path(entry).expanduser()
        if entry != str(BUILTIN) and not path.is_dir():
            raise ConfigError(f"DOMAINLM_VERTICALS_PATH entry not found: {path}")
        for folder in _candidates(path):
            register_vertical(folder)
        _SCANNED.add(entry)


def get_vertical(name: str) -> Vertical:
    discover()
    if name not in _VERTICALS:
        raise ConfigError(f"unknown vertical '{name}': known verticals are {sorted(_VERTICALS)} "
                          "(add one: a folder with vertical.yaml, see docs/verticals.md)")
    return _VERTICALS[name]


def list_verticals() -> list[str]:
    """Names of every registered vertical, sorted (get_vertical(name) for the object)."""
    discover()
    return sorted(_VERTICALS)
