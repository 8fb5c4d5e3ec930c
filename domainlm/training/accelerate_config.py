"""Schema for the shipped multi-GPU accelerate configs (configs/accelerate/*.yaml), used with
`domainlm train CONFIG --nproc N --accelerate-config configs/accelerate/<name>.yaml`.

These files are accelerate's own format (what `accelerate config` writes); the schema lists the keys we ship and
their allowed values so a typo fails in CI, and tests also load each file with accelerate's parser. Only the
sharded strategies live here: plain data parallel needs no file (`--nproc N` alone uses torchrun).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domainlm.config import Strict


class FsdpSection(Strict):
    fsdp_version: Literal[2] = 2                                   # FSDP2: per-parameter sharding, mixed dtypes OK
    fsdp_auto_wrap_policy: Literal["TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP"] = "TRANSFORMER_BASED_WRAP"
    fsdp_transformer_layer_cls_to_wrap: str | None = None          # None: the model's _no_split_modules
    fsdp_reshard_after_forward: bool = True                         # FULL_SHARD behaviour
    fsdp_offload_params: bool = False
    fsdp_state_dict_type: Literal["FULL_STATE_DICT", "SHARDED_STATE_DICT"] = "FULL_STATE_DICT"
    fsdp_cpu_ram_efficient_loading: bool = False
    fsdp_activation_checkpointing: bool = False


class DeepSpeedSection(Strict):
    zero_stage: Literal[0, 1, 2, 3] = 2
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_clipping: float = 1.0
    offload_optimizer_device: Literal["none", "cpu", "nvme"] = "none"
    offload_param_device: Literal["none", "cpu", "nvme"] = "none"
    zero3_init_flag: bool = False


class AccelerateConfig(Strict):
    compute_environment: Literal["LOCAL_MACHINE"] = "LOCAL_MACHINE"
    distributed_type: Literal["FSDP", "DEEPSPEED"]
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"          # domainlm sets dtypes itself (train.precision)
    downcast_bf16: Literal["no"] = "no"
    use_cpu: Literal[False] = False
    debug: bool = False
    num_machines: int = Field(1, ge=1)
    num_processes: int = Field(8, ge=1)                             # overridden by --nproc
    machine_rank: int = Field(0, ge=0)
    main_training_function: str = "main"
    rdzv_backend: str = "static"
    same_network: bool = True
    enable_cpu_affinity: bool = False
    fsdp_config: FsdpSection | None = None
    deepspeed_config: DeepSpeedSection | None = None

    @model_validator(mode="after")
    def _section_matches_type(self):
        if self.distributed_type == "FSDP" and self.fsdp_config is None:
            raise ValueError("distributed_type FSDP needs an fsdp_config section")
        if self.distributed_type == "DEEPSPEED" and self.deepspeed_config is None:
            raise ValueError("distributed_type DEEPSPEED needs a deepspeed_config section")
        return self
