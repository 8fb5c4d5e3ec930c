"""domainlm: LoRA-fine-tune, evaluate and serve vertical (domain) models from one shared pipeline."""

from domainlm.kernels.host import hide_torch_isa

__version__ = "0.1.0"

# DOMAINLM_CPU_FLAGS_OFF=portable must reach torch's own kernels too, which read their ISA cap at import: the
# package is imported before torch by every entry point (CLI, vLLM entry, tests), and children inherit the env.
hide_torch_isa()
