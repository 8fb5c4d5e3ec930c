"""Accelerator support shared by training and serving.

backends/  one contract per accelerator (CPU, CUDA, ROCm, Intel XPU and the domestic stacks): detection that never
           initialises a device, device/dtype/autocast/memory helpers, distributed backend, launch and serving
           environment, vLLM platform plugin choice. Entry points: `select_backend()`, `get_backend(name)`.
ops/       fused ops used by the training loop (kept separate: importing `domainlm.kernels` imports neither).
host.py    what this host's CPU (/proc/cpuinfo flags) and C++ toolchain offer, for choices such as compile or kernels.
"""
