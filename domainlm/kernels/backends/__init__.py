"""Accelerator backends: one contract (spec.Backend), one table of adapters (adapters.py), one selection rule.

    from domainlm.kernels.backends import select_backend
    backend = select_backend()                      # DOMAINLM_BACKEND, else the first adapter whose probe succeeds
    model.to(backend.device()); backend.autocast(torch.bfloat16); backend.launch_env(nproc=2)
    backend.serving_env()                           # vLLM process env (serving/engines/lora_mode.py decides LoRA)

Selection: explicit DOMAINLM_BACKEND first; then vendor namespaces (npu, mlu, musa, gcu, xpu) before torch.cuda,
because vendor shims make torch.cuda look available; then CUDA-alikes by marker (dcu, corex, maca, kunlun); then
rocm, cuda, cpu. Probing never imports a vendor module and never initialises a device.
"""

from __future__ import annotations

import os

from domainlm.kernels.backends.adapters import ALL, SELECTION_ORDER
from domainlm.kernels.backends.spec import Backend, BackendError, VllmPlugin

__all__ = ["Backend", "BackendError", "VllmPlugin", "all_backends", "get_backend", "select_backend",
           "selection_order"]

ENV = "DOMAINLM_BACKEND"


def _register(adapters: tuple[Backend, ...]) -> dict[str, Backend]:
    """Validate every adapter once: contract fields, unique names, and a place in the selection order."""
    table: dict[str, Backend] = {}
    for adapter in adapters:
        adapter.validate()
        if adapter.name in table:
            raise BackendError(f"backend {adapter.name!r} is declared twice")
        table[adapter.name] = adapter
    if sorted(SELECTION_ORDER) != sorted(table):
        raise BackendError(f"selection order {SELECTION_ORDER} must list every backend {sorted(table)} once")
    return table


_TABLE = _register(ALL)


def all_backends() -> tuple[Backend, ...]:
    """Every adapter, in selection order."""
    return tuple(_TABLE[name] for name in SELECTION_ORDER)


def selection_order() -> tuple[str, ...]:
    return SELECTION_ORDER


def get_backend(name: str) -> Backend:
    try:
        return _TABLE[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; one of: {', '.join(SELECTION_ORDER)}") from None


def select_backend() -> Backend:
    """The backend to use here: DOMAINLM_BACKEND if set (it must be usable), else the first detected one."""
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        backend = get_backend(explicit) if explicit in _TABLE else None
        if backend is None:
            raise BackendError(f"{ENV}={explicit!r} is not a backend; one of: {', '.join(SELECTION_ORDER)}")
        detected, why = backend.probe_report()
        if not detected:
            raise BackendError(f"{ENV}={explicit} but that backend is not usable here: {why}")
        return backend
    for backend in all_backends():
        if backend.probe():
            return backend
    raise BackendError("no backend detected (the cpu backend should always be)")  # unreachable while cpu probes True
