"""TrainConfig: the one YAML schema for `domainlm train` (configs/train/*.yaml), validated strictly.

Tokens per optimizer step = train.batch_size (rows per process) × train.grad_accum × processes × row length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainlm.config import Strict

Format = Literal["auto", "messages", "alpaca", "sharegpt"]


class DataFile(Strict):
    path: str                          # JSONL file, one row per line (relative paths: from the working directory)
    format: Format = "auto"            # row layout; auto picks by keys (messages / instruction+output / conversations)
    name: str | None = None            # source name recorded in the manifest (default: the file's stem)
    licence: str | None = None         # licence recorded in the data card (default: unknown)


class MixPart(Strict):
    """One part of a training mixture: a source and its share of the training rows (weights are normalised)."""

    source: Literal["vertical", "safety", "replay", "files"]  # vertical: data.vertical's SFT rows; safety: its
    # safety_sources; replay: the base model's own answers to general and format-bound prompts; files: data.files
    weight: float = Field(gt=0)


class DataConfig(Strict):
    vertical: str | None = None        # train on this vertical's SFT rows (domainlm.verticals), e.g. medical
    files: list[DataFile] = []         # extra (or only) training files
    eval_files: list[DataFile] = []    # held-out eval files; without them eval rows come from the vertical / a split
    eval_fraction: float = Field(0.05, ge=0.0, lt=1.0)  # split of file rows held out when no eval_files are given
    max_train_rows: int | None = Field(None, ge=1)  # cap on training rows (after shuffling), None = all
    max_eval_rows: int = Field(64, ge=0)            # cap on held-out rows scored every eval.every_steps
    eval_split: Literal["eval", "dev"] = "eval"     # the vertical's split for those rows (dev: `domainlm sweep`)
    max_length: int = Field(512, ge=16)             # tokens per example after the chat template
    truncate: bool = False             # cut over-length rows to max_length instead of treating them as bad rows
    on_error: Literal["error", "skip"] = "error"    # bad rows: stop with file:line, or skip and count them
    packing: bool = True               # concatenate a step's rows into one sequence (no cross-row attention)
    shuffle: bool = True               # deterministic shuffle (seed) of training rows every epoch
    system_prompt: str | None = None   # system message added to rows that have none (None: the template's default)
    mix: list[MixPart] = []            # shares of max_train_rows by source; [] → the vertical's rows and files as read

    @model_validator(mode="after")
    def _has_source(self):
        if not self.vertical and not self.files:
            raise ValueError("name a data source: data.vertical (e.g. medical) and/or data.files")
        if self.mix:
            names = [part.source for part in self.mix]
            if len(names) != len(set(names)):
                raise ValueError(f"mix: a source is listed twice: {names}")
            if {"vertical", "safety"} & set(names) and not self.vertical:
                raise ValueError("mix: the vertical and safety parts need data.vertical")
            if "files" in names and not self.files:
                raise ValueError("mix: the files part needs data.files")
            if not self.max_train_rows:
                raise ValueError("mix: set max_train_rows (the mixture's size; each part gets its share of it)")
            if self.files and "files" not in names or self.vertical and "vertical" not in names:
                raise ValueError("mix: every named source needs a part (add {source: vertical|files, weight: …})")
        return self


class LoraConfig(Strict):
    r: int | None = Field(None, ge=1)              # rank (None: the family preset)
    alpha: float | None = Field(None, gt=0)        # scaling numerator (None: preset; scale = alpha / r, or / sqrt(r))
    dropout: float | None = Field(None, ge=0, lt=1)  # dropout on the LoRA input (None: preset)
    target_modules: list[str] | None = None        # module names (None: preset for the base model's family)
    rslora: bool = False                           # rank-stabilised scaling alpha / sqrt(r)
    dora: bool = False                             # weight-decomposed LoRA (slower; uses the generic kernels)
    quantize: Literal["none", "4bit", "8bit"] = "none"  # QLoRA base quantisation (needs bitsandbytes and a GPU)


class OptimConfig(Strict):
    batch_size: int = Field(8, ge=1)               # rows per micro-step per process
    grad_accum: int = Field(1, ge=1)               # micro-steps per optimizer step
    max_steps: int | None = Field(None, ge=1)      # optimizer steps (None: epochs × rows / global batch)
    epochs: float = Field(1.0, gt=0)               # used when max_steps is None
    lr: float = Field(2e-4, gt=0)                  # peak learning rate (AdamW)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # decay after warmup
    warmup_steps: int = Field(0, ge=0)             # linear warmup steps
    min_lr_ratio: float = Field(0.0, ge=0, le=1)   # floor of the decay, as a fraction of lr
    weight_decay: float = Field(0.0, ge=0)         # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.999)      # AdamW betas
    max_grad_norm: float | None = Field(1.0, gt=0)  # clip the global grad norm (None: no clipping)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # base weights + compute dtype; auto = bf16 where supported
    gradient_checkpointing: bool = False           # recompute activations in backward (less memory, ~1.3× compute)
    kernels: Literal["auto", "fused", "hf"] = "auto"  # fused domainlm ops (llama-like families) or the HF modules
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile the fused ops' elementwise parts (auto: on
    # for CPUs with AMX, where it measured +30 % tokens/s; off elsewhere, where it only added compile time)
    ce_chunk: int = Field(512, ge=16)              # tokens per chunk of the fused lm-head + CE (512: ~10% faster
    # GEMMs than 256; workspace C×V×2 B with the native CE kernel, ×6 without)
    threads: int | None = Field(None, ge=1)        # torch CPU threads per process (None: torch default)


    @field_validator("compile", mode="before")
    @classmethod
    def _yaml_booleans(cls, value):   # YAML reads a bare on/off as true/false
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class EvalConfig(Strict):
    every_steps: int = Field(0, ge=0)   # held-out loss every N optimizer steps (0: only at the end)
    batch_size: int = Field(8, ge=1)    # rows per eval micro-batch


class CheckpointConfig(Strict):
    every_steps: int = Field(0, ge=0)   # checkpoint every N optimizer steps (0: none)
    keep_last: int = Field(2, ge=1)     # checkpoints kept; older ones are deleted after a new one is complete
    resume: Literal["auto", "never"] = "auto"  # auto: continue from the newest complete checkpoint in output_dir


class LogConfig(Strict):
    every_steps: int = Field(1, ge=1)   # metrics line (JSONL + TensorBoard) every N optimizer steps
    tensorboard: bool = True            # write TensorBoard event files under output_dir/tensorboard


class TrainConfig(Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9._-]*$")  # artifact name, e.g. medical-lora
    vertical: str = Field(..., pattern=r"^[a-z][a-z0-9_-]*$")  # vertical the adapter serves (registry key)
    base_model: str | None = None       # embedded name, local HF dir or cached hub id (None: smollm2-135m)
    output_dir: str | None = None       # run folder (None: $DOMAINLM_HOME/runs/<name>)
    seed: int = 42                      # data order, LoRA init, dropout
    data: DataConfig
    lora: LoraConfig = LoraConfig()
    train: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()

    def run_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        from domainlm.paths import home

        return home() / "runs" / self.name


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    from domainlm.config import load_config

    return load_config(path, TrainConfig, overrides)
