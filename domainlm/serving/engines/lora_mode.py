"""Serving policy for an accelerator backend: how adapters are served there, and the vLLM engine arguments.

The backend record (kernels/backends) is data: its vLLM plugin, whether that plugin claims LoRA support, its
environment. What serving does with those facts is decided here:

    vllm-lora   one vLLM engine per base, adapters as LoRA requests (multi-LoRA)
    merged      adapters merged into the base weights, one vLLM engine per vertical (plugins without LoRA)
    hf          the in-process transformers + peft engine (no vLLM for this backend)

DOMAINLM_LORA_SERVING forces a mode (checked against what is installed).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from domainlm.kernels.backends import Backend, BackendError
from domainlm.kernels.dtypes import auto_dtype

LORA_MODES = ("vllm-lora", "merged", "hf")
ENV = "DOMAINLM_LORA_SERVING"


class LoraServing(NamedTuple):
    mode: str  # vllm-lora | merged | hf
    reason: str


def lora_serving_mode(backend: Backend) -> LoraServing:
    """How adapters are served on `backend`: vLLM multi-LoRA, merged weights on vLLM, or the in-process hf engine."""
    plugin = backend.vllm_plugin
    forced = os.environ.get(ENV)
    if forced:
        if forced not in LORA_MODES:
            raise BackendError(f"{ENV}={forced!r}: expected one of {', '.join(LORA_MODES)}")
        if forced != "hf" and not backend.vllm_installed():
            raise BackendError(f"{ENV}={forced} needs vLLM on {backend.name} "
                               f"(pip install {plugin.package}); use hf or install it")
        return LoraServing(forced, f"set by {ENV}")
    if not backend.vllm_installed():
        return LoraServing("hf", f"vLLM for {backend.name} ({plugin.package}) is not installed: serving falls back "
                                 "to the in-process transformers+peft engine")
    if plugin.lora_support == "yes":
        return LoraServing("vllm-lora", f"{plugin.package} supports LoRA ({plugin.source})")
    if plugin.lora_support == "experimental":
        return LoraServing("vllm-lora", f"LoRA on {plugin.package} is experimental ({plugin.source}); set "
                                        f"{ENV}=merged to serve merged adapters instead")
    return LoraServing("merged", f"{plugin.package} LoRA support is {plugin.lora_support}: serving falls back "
                                 "to adapters merged into the base weights (one engine per vertical)")


def vllm_engine_args(backend: Backend) -> dict:
    """vLLM EngineArgs for `backend` (no device is touched: the engine's own workers resolve dtype="auto")."""
    args: dict = {"enable_lora": lora_serving_mode(backend).mode == "vllm-lora"}
    if backend.device_type == "cpu":
        args["dtype"] = auto_dtype("cpu")
        args["enforce_eager"] = True  # CPU: graph capture buys nothing and start-up drops ~107 s -> ~27 s
    else:
        args["dtype"] = "auto"
    return args
