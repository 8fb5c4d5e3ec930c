"""`domainlm doctor`'s report: which accelerator backend is in use here, the versions that matter, and every
adapter's capabilities side by side (a table, or JSON for bug reports). The command (kernels/cli.py) adds how
serving uses the backend (serving/engines/lora_mode.py), which is serving's decision, not the backend's."""

from __future__ import annotations

import platform

# Distributions whose versions decide whether training and serving work; read from metadata, nothing imported.
STACK = ("torch", "vllm", "transformers", "peft", "accelerate")


def report() -> dict:
    from domainlm.kernels.backends import all_backends, select_backend
    from domainlm.kernels.backends.plugins import module_version

    selected = select_backend()
    versions = {"python": platform.python_version(), **{name: module_version(name) for name in STACK}}
    return {
        "selected": selected.describe(live=True),
        "versions": versions,
        "backends": [backend.describe() for backend in all_backends()],
    }


def matrix_rows(backends: list[dict]) -> list[list[str]]:
    rows = [["backend", "device", "vendor modules", "dist", "visible devices", "accelerate", "vLLM plugin",
             "installed", "LoRA", "detected", "verified on"]]
    for b in backends:
        plugin = b["vllm_plugin"]
        rows.append([
            b["name"],
            b["device_type"],
            ", ".join(b["vendor_modules"]) or "-",
            b["dist_backend"],
            b["visible_devices_env"] or "-",
            (b["accelerate_detector"] or "-").rsplit(":", 1)[-1],
            plugin["package"],
            plugin["installed"] or "-",
            plugin["lora_support"],
            "yes" if b["probe"]["detected"] else "no",
            "; ".join(f"{r['hardware']} {r['date']}" for r in b["verified_on"]) or "-",
        ])
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _gib(n) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def _visible(sel: dict) -> str:
    if not sel["visible_devices_env"]:
        return "-"
    value = sel["visible_devices"]
    return f"{sel['visible_devices_env']}={value}" if value is not None else f"{sel['visible_devices_env']} (unset)"


def format_report(data: dict) -> str:
    sel = data["selected"]
    live = sel["live"]
    memory = live.get("memory")
    memory_text = (f"{_gib(memory.get('free_bytes'))} free of {_gib(memory.get('total_bytes'))}"
                   if isinstance(memory, dict) else str(memory))
    bf16 = {True: "yes", False: "no"}.get(live.get("bf16"), str(live.get("bf16")))
    lines = [
        f"backend: {sel['name']} — {sel['title']} ({sel['probe']['reason']})",
        f"  device: {live.get('device_name')}  count: {live.get('device_count')}  bf16: {bf16}  memory: {memory_text}",
        f"  distributed: {sel['dist_backend']}  visible devices: {_visible(sel)}",
        f"  vLLM: {sel['vllm_plugin']['package']} -> {sel['vllm_plugin']['platform_qualname']}",
        *([f"  LoRA serving: {sel['lora_serving']['mode']} — {sel['lora_serving']['reason']}"]
          if sel.get("lora_serving") else []),
        "versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in data["versions"].items()),
        "",
        "capability matrix (selection order; DOMAINLM_BACKEND overrides):",
        format_table(matrix_rows(data["backends"])),
    ]
    return "\n".join(lines)
