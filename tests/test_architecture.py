"""The package structure holds: imports flow one way (bottom to top), no package reaches into another's private
names, and docs/architecture.md shows the import graph as the code has it.

Layers, bottom to top (shared/design/ARCHITECTURE.md): the shared helper modules at the package root, kernels,
config, state, models, artifacts, data, verticals, training, registry, evals, serving, pipeline; every `*/cli.py` (a
subcommand's wiring: parse, call down, print) and `domainlm/cli.py` sit on top. A module may import its own package
and any layer below it, lazily or not: an import inside a function is still a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "domainlm"
LAYERS = ("kernels", "config", "state", "models", "artifacts", "data", "verticals", "training", "registry", "evals",
          "serving", "pipeline", "cli")
SHARED = ("errors", "log", "paths", "hashing", "atomic", "ports", "progress", "children")   # domainlm/<name>.py
DOCS = REPO / "docs" / "architecture.md"


def layer_of(module: str) -> str:
    """'domainlm.serving.engines.hf' → 'serving'; every `*.cli` (and __main__) → 'cli'; root helpers → 'shared'."""
    parts = module.split(".")
    if parts[-1] in ("cli", "__main__"):
        return "cli"
    if len(parts) == 1:
        return "shared"
    return "shared" if parts[1] in SHARED or parts[1].startswith("__") else parts[1]


def rank(layer: str) -> int:
    return -1 if layer == "shared" else LAYERS.index(layer)


def imports() -> list[tuple[str, str, str, int]]:
    """(importer module, imported module, imported name or '', line) for every domainlm import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "domainlm":
                for alias in node.names:
                    target = f"{node.module}.{alias.name}" if node.module == "domainlm" else node.module
                    found.append((module, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                found += [(module, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "domainlm"]
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, target, _, _ in imports():
        src, dst = layer_of(importer), layer_of(target)
        if src != dst and dst != "shared" and not target.endswith("__version__"):
            graph.setdefault(src, set()).add(dst)
    return graph


def test_imports_flow_one_way():
    upward = []
    for importer, target, _, line in imports():
        src, dst = layer_of(importer), layer_of(target)
        if importer == "domainlm" and target == "domainlm.kernels.host":
            continue   # the package's __init__ applies the CPU-flags switch to torch before torch is imported
        if src == "shared" and dst != "shared" and not target.endswith("__version__"):
            upward.append(f"{importer}:{line} imports {target} (shared helpers import no package)")
        elif src != "shared" and dst != "shared" and rank(dst) > rank(src):
            upward.append(f"{importer}:{line} imports {target} ({src} sits below {dst})")
    assert not upward, "imports against the flow:\n  " + "\n  ".join(upward)


def test_no_package_uses_another_packages_private_names():
    private = [f"{importer}:{line} imports {target}.{name}" for importer, target, name, line in imports()
               if name.startswith("_") and not name.startswith("__") and layer_of(importer) != layer_of(target)]
    assert not private, "private names used across packages:\n  " + "\n  ".join(private)


def render_graph() -> str:
    graph = package_graph()
    order = [layer for layer in reversed(LAYERS) if layer in graph or any(layer in v for v in graph.values())]
    return "\n".join(f"{layer:<10} → {', '.join(sorted(graph.get(layer, ()), key=rank, reverse=True)) or '(none)'}"
                     for layer in order)


def test_docs_show_the_import_graph_the_code_has():
    block = re.search(r"<!-- import-graph -->\n```\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block, f"{DOCS} lost its <!-- import-graph --> block"
    assert block.group(1).rstrip("\n") == render_graph(), \
        f"docs/architecture.md's import graph is stale; the code has:\n{render_graph()}"


def test_benchmark_files_are_parsed_in_one_place():
    """Scoring, decontamination and the replay pool read a benchmark through its module in domainlm/data/benchmarks;
    nothing else opens an eval-only dataset's folder (each used to be parsed twice, by evals and by decontamination)."""
    from domainlm.data.usage import EVAL_ONLY

    home = PACKAGE / "data" / "benchmarks"
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if home in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module == "domainlm.data.benchmarks.files"
                    and any(alias.name == "shared_file" for alias in node.names)):
                readers.append(f"{path.relative_to(REPO)}:{node.lineno} opens shared benchmark files itself")
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "dataset_dir"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in EVAL_ONLY):
                readers.append(f"{path.relative_to(REPO)}:{node.lineno} opens {node.args[0].value} itself")
    assert not readers, "benchmarks read outside domainlm/data/benchmarks:\n  " + "\n  ".join(readers)
