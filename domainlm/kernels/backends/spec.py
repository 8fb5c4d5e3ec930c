"""The one accelerator contract: a declarative `Backend` record plus the behaviour every adapter shares.

An adapter is data (adapters.py): device type, vendor modules, the names it may call on `torch.<device_type>`,
collective backend, visible-devices variable, accelerate detector, vLLM platform plugin. The behaviour below reads
only those fields, so every backend is driven the same way and a reader who knows one knows all.

Import discipline: probing never imports a vendor module and never initialises a device. Vendor modules are imported
by `device_module()`, i.e. only on the chosen path, the first time a device is actually used.
"""

from __future__ import annotations

import importlib
import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass

from domainlm.errors import DomainlmError
from domainlm.kernels.backends import plugins, probes
from domainlm.kernels.host import cpu_has_native_bf16


FAMILIES = ("builtin", "namespace", "cuda-alike")
DIST_BACKENDS = ("nccl", "hccl", "cncl", "mccl", "bkcl", "eccl", "xccl", "gloo")
LORA_SUPPORT = ("yes", "experimental", "no", "unknown")


class BackendError(DomainlmError):
    """A backend was asked for that does not exist here, or cannot do what was asked."""


@dataclass(frozen=True)
class VllmPlugin:
    """How vLLM runs on this backend. `entry_point` None means the platform is built into that vLLM build."""

    package: str  # what to pip install (the distribution), e.g. "vllm-ascend"
    module: str  # its top-level import name, found with find_spec, e.g. "vllm_ascend"
    entry_point: str | None  # "name = module:function" in group vllm.platform_plugins
    platform_qualname: str  # the Platform class vLLM activates
    lora_support: str  # yes | experimental | no | unknown — from the vendor's docs or code, see `source`
    source: str  # where the facts above come from

    @property
    def entry_point_name(self) -> str | None:
        return plugins.parse_entry_point(self.entry_point)[0] if self.entry_point else None


@dataclass(frozen=True)
class Backend:
    name: str
    title: str  # vendor and product, for people
    family: str  # builtin | namespace (torch.<type> from a vendor module) | cuda-alike (vendor stack under torch.cuda)
    device_type: str  # torch device type
    vendor_modules: tuple[str, ...]  # imported, in order, on the chosen path only
    device_api: tuple[str, ...]  # the only names this adapter calls on torch.<device_type>
    dist_backend: str  # torch.distributed backend name
    visible_devices_env: str | None  # variable that restricts which devices a process sees
    accelerate_detector: str | None  # "module:function" accelerate uses to detect it, None if accelerate has none
    vllm_plugin: VllmPlugin
    vendor_api: str  # the vendor documentation / source this adapter follows
    markers: tuple[str, ...] = ()  # no-init evidence (probes.py grammar); cuda-alikes are detected only by these
    notes: str = ""

    # ---- detection -------------------------------------------------------------------------------------------
    def probe_report(self) -> tuple[bool, str]:
        """(detected, why). Never imports a vendor module, never initialises a device."""
        if self.family == "namespace":
            if self.vendor_modules:
                missing = [m for m in self.vendor_modules if not probes.module_present(m)]
                if missing:
                    return False, f"{', '.join(missing)} not installed"
                return True, f"{', '.join(self.vendor_modules)} installed (find_spec; not imported)"
            import torch  # a device namespace that ships in stock PyTorch (torch.xpu)

            module = getattr(torch, self.device_type, None)
            if module is None or not module.is_available():
                return False, f"torch.{self.device_type}.is_available() is False"
            return True, f"torch.{self.device_type}.is_available() (no device context created)"
        if self.family == "cuda-alike":
            marker = probes.first_matching_marker(self.markers)
            return (True, f"marker {marker}") if marker else (False, f"no marker of {list(self.markers)}")
        return _builtin_probe(self)

    def probe(self) -> bool:
        return self.probe_report()[0]

    # ---- devices (chosen path: vendor modules are imported here) ------------------------------------------------
    def device_module(self):
        """torch.<device_type> after importing the vendor modules that register it."""
        for module in self.vendor_modules:
            importlib.import_module(module)
        import torch

        module = getattr(torch, self.device_type, None)
        if module is None:
            raise BackendError(f"backend {self.name}: torch.{self.device_type} is missing after importing "
                               f"{list(self.vendor_modules)}; is the vendor PyTorch extension installed?")
        return module

    def _api(self, name: str):
        if name not in self.device_api:
            raise BackendError(f"backend {self.name} does not declare torch.{self.device_type}.{name}")
        return getattr(self.device_module(), name)

    def _generic(self, name: str):
        """PyTorch's device-generic torch.accelerator API, for what a vendor does not document in its own module."""
        self.device_module()  # the vendor module registers the device with torch.accelerator on import
        import torch

        return getattr(torch.accelerator, name)

    def device(self, index: int = 0):
        import torch

        if self.device_type == "cpu":
            return torch.device("cpu")
        self.device_module()  # registers the device type name (PrivateUse1 backends rename it on import)
        return torch.device(self.device_type, index)

    def device_count(self) -> int:
        if self.device_type == "cpu":
            return 1
        return int(self._api("device_count")())

    def supports_bf16(self) -> bool:
        """Native bf16 arithmetic on this device (initialises the device for accelerators)."""
        if self.device_type == "cpu":
            return cpu_has_native_bf16()
        if "is_bf16_supported" in self.device_api:
            return bool(self._api("is_bf16_supported")())
        return _bf16_matmul_runs(self.device())

    def memory(self, index: int = 0) -> dict:
        """Bytes: total, free, and allocated by this process (vendor API, else torch.accelerator)."""
        if self.device_type == "cpu":
            page = os.sysconf("SC_PAGE_SIZE")
            return {"device": "cpu", "total_bytes": page * os.sysconf("SC_PHYS_PAGES"),
                    "free_bytes": page * os.sysconf("SC_AVPHYS_PAGES"), "allocated_bytes": None}
        declared = set(self.device_api)
        info = self._api("mem_get_info") if "mem_get_info" in declared else self._generic("get_memory_info")
        used = self._api("memory_allocated") if "memory_allocated" in declared else self._generic("memory_allocated")
        free, total = (int(x) for x in info(index))
        allocated = int(used(index))
        return {"device": f"{self.device_type}:{index}", "total_bytes": total, "free_bytes": free,
                "allocated_bytes": allocated}

    def synchronize(self) -> None:
        if self.device_type == "cpu":
            return
        if "synchronize" in self.device_api:
            self._api("synchronize")()
        else:
            self._generic("synchronize")()

    def autocast(self, dtype) -> AbstractContextManager:
        import torch

        if self.device_type != "cpu":
            self.device_module()
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    # ---- distributed and launch ------------------------------------------------------------------------------
    def init_distributed(self) -> tuple[int, int]:
        """Join the process group torchrun/accelerate described in the environment; returns (rank, world_size)."""
        import torch.distributed as dist

        if self.device_type != "cpu":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            self._api("set_device")(local_rank)  # also imports the vendor module that registers the collective
        if not dist.is_initialized():
            dist.init_process_group(backend=self.dist_backend, init_method="env://")
        return dist.get_rank(), dist.get_world_size()

    def launch_env(self, nproc: int = 1, devices: str | None = None) -> dict[str, str]:
        """Variables for `torchrun --nproc_per_node N` / `accelerate launch`; the launcher never touches a device.

        The visible-devices variable keeps the caller's value when it is set, else it lists devices 0..N-1.
        """
        if nproc < 1:
            raise BackendError(f"launch_env: nproc must be >= 1, got {nproc}")
        env = {"DOMAINLM_BACKEND": self.name}
        if self.device_type == "cpu":
            env["ACCELERATE_USE_CPU"] = "true"
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run on a GPU host must not grab GPU memory
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))  # cores split between ranks
            return env
        var = self.visible_devices_env
        env[var] = devices or os.environ.get(var) or ",".join(str(i) for i in range(nproc))
        return env

    # ---- serving ---------------------------------------------------------------------------------------------
    def vllm_installed(self) -> bool:
        return probes.module_present("vllm") and probes.module_present(self.vllm_plugin.module)

    def serving_env(self, devices: str | None = None) -> dict[str, str]:
        """Environment for vLLM engine processes on this backend.

        VLLM_PLUGINS names exactly this backend's plugin entry points (its platform plugin first, then the general
        plugins its package installs), so no other vendor's platform plugin activates. A built-in platform leaves
        VLLM_PLUGINS unset unless a foreign platform plugin is installed; then it lists only vLLM's own plugins.
        """
        env = {"DOMAINLM_BACKEND": self.name}
        plugin = self.vllm_plugin
        own = sorted({ep.name for ep in plugins.entry_points_of_module(plugin.module)} - {plugin.entry_point_name})
        if plugin.entry_point:
            env["VLLM_PLUGINS"] = ",".join([plugin.entry_point_name, *own])
        elif any(ep.group == plugins.PLATFORM_GROUP for ep in plugins.installed_entry_points()):
            env["VLLM_PLUGINS"] = ",".join(own)  # vLLM's own plugins (LoRA resolvers); "" loads none
        if self.device_type == "cpu":
            # no VLLM_TARGET_DEVICE=cpu: vLLM would then skip platform plugins, domainlm's CPU platform among them
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif devices is not None:
            env[self.visible_devices_env] = devices
        elif os.environ.get(self.visible_devices_env):
            env[self.visible_devices_env] = os.environ[self.visible_devices_env]
        return env

    # ---- reporting -------------------------------------------------------------------------------------------
    @property
    def verified_on(self) -> tuple[dict, ...]:
        from domainlm.kernels.backends import verified  # lazy: `python -m ...verified` runs that module as __main__

        return verified.records_for(self.name)

    def describe(self, live: bool = False) -> dict:
        """Everything a bug report needs. live=True also asks the device (imports vendor modules, initialises it)."""
        ok, why = self.probe_report()
        plugin = self.vllm_plugin
        report = {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "device_type": self.device_type,
            "vendor_modules": {m: plugins.module_version(m) for m in self.vendor_modules},
            "device_api": list(self.device_api),
            "dist_backend": self.dist_backend,
            "visible_devices_env": self.visible_devices_env,
            "visible_devices": os.environ.get(self.visible_devices_env) if self.visible_devices_env else None,
            "accelerate_detector": self.accelerate_detector,
            "vllm_plugin": {
                "package": plugin.package, "module": plugin.module, "entry_point": plugin.entry_point,
                "platform_qualname": plugin.platform_qualname, "lora_support": plugin.lora_support,
                "installed": plugins.module_installed(plugin.module),
                "installed_entry_points": [f"{ep.group}: {ep.name} = {ep.value}"
                                           for ep in plugins.entry_points_of_module(plugin.module)],
                "source": plugin.source,
            },
            "probe": {"detected": ok, "reason": why},
            "markers": list(self.markers),
            "vendor_api": self.vendor_api,
            "notes": self.notes,
            "verified_on": list(self.verified_on),
        }
        if live:
            report["live"] = self._live_report()
        return report

    def _live_report(self) -> dict:
        live: dict = {}
        for key, query in (("device_count", self.device_count),
                           ("device_name", lambda: self._device_name()),
                           ("bf16", self.supports_bf16),
                           ("memory", self.memory)):
            try:
                live[key] = query()
            except Exception as exc:  # noqa: BLE001 — a bug report must still come out when one query fails
                live[key] = f"error: {type(exc).__name__}: {exc}"
        return live

    def _device_name(self) -> str:
        if self.device_type == "cpu":
            return _cpu_model_name()
        return str(self._api("get_device_name")(0))

    # ---- validation (called once per adapter at registration) --------------------------------------------------
    def validate(self) -> None:
        problems = []
        if not re.fullmatch(r"[a-z][a-z0-9]*", self.name):
            problems.append("name must be lowercase letters/digits")
        if self.family not in FAMILIES:
            problems.append(f"family must be one of {FAMILIES}")
        if self.dist_backend not in DIST_BACKENDS:
            problems.append(f"dist_backend must be one of {DIST_BACKENDS}")
        if self.device_type != "cpu" and not (self.visible_devices_env or "").isupper():
            problems.append("accelerators must name their visible-devices variable")
        if self.family == "cuda-alike" and (self.device_type != "cuda" or not self.markers):
            problems.append("cuda-alikes run under torch.cuda and are detected by markers")
        if self.family == "namespace" and self.device_type in ("cpu", "cuda"):
            problems.append("a namespace backend has its own torch.<type>")
        for marker in self.markers:
            try:
                probes.validate_marker(marker)
            except ValueError as exc:
                problems.append(str(exc))
        if self.accelerate_detector and not re.fullmatch(r"[\w.]+:\w+", self.accelerate_detector):
            problems.append("accelerate_detector must be 'module:function'")
        plugin = self.vllm_plugin
        if plugin.lora_support not in LORA_SUPPORT:
            problems.append(f"vllm_plugin.lora_support must be one of {LORA_SUPPORT}")
        if plugin.entry_point:
            try:
                plugins.parse_entry_point(plugin.entry_point)
            except ValueError as exc:
                problems.append(str(exc))
        if "." not in plugin.platform_qualname:
            problems.append("vllm_plugin.platform_qualname must be a dotted class path")
        if not self.vendor_api.startswith("http"):
            problems.append("vendor_api must link the vendor documentation or source followed")
        if problems:
            raise BackendError(f"backend {self.name!r}: " + "; ".join(problems))


def _builtin_probe(backend: Backend) -> tuple[bool, str]:
    if backend.device_type == "cpu":
        return True, "always available"
    import torch

    hip = probes.torch_version_attr("hip")
    if backend.name == "rocm":
        if not hip:
            return False, "torch is not a ROCm build (torch.version.hip unset)"
        # ROCm's is_available asks the HIP runtime for a device count; it creates no context.
        return (True, f"ROCm {hip} build sees a device") if torch.cuda.is_available() else (False, "no ROCm device")
    if not probes.torch_version_attr("cuda") or hip:
        return False, "torch is not a CUDA build (torch.version.cuda unset)"
    # NVML-based check: counts devices without initialising CUDA (same switch accelerate's is_cuda_available uses).
    saved = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        available = torch.cuda.is_available()
    finally:
        if saved is None:
            os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        else:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = saved
    return (True, f"CUDA {torch.version.cuda} build sees a device (NVML check)") if available else (
        False, "CUDA build but no device visible")


def _cpu_model_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _bf16_matmul_runs(device) -> bool:
    import torch

    try:
        a = torch.ones(4, 4, dtype=torch.bfloat16, device=device)
        return bool(((a @ a).float().cpu() == 4).all())
    except RuntimeError:
        return False
