"""The LoRA SFT loop on accelerate: the same code runs on one CPU, N CPU ranks (gloo), N GPUs or N NPUs.

    trainer = Trainer(config); trainer.setup(); trainer.fit(); artifact = trainer.save_artifact(); trainer.close()

One optimizer step = grad_accum micro-batches of batch_size rows per process. The loss is Σ CE over every
assistant token of the step (all processes, all micro-batches) ÷ that global token count, so accumulation and
data parallelism give exactly the gradient of one big batch; each process knows the global count up front because
the row order is a pure function of (seed, step).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from domainlm import log, progress
from domainlm.data import dataset
from domainlm.training.replay import ReplayRows
from domainlm.verticals.sft import VerticalRows
from domainlm.data.batching import RowOrder, collate, micro_batch_rows, step_rows
from domainlm.errors import ConfigError
from domainlm.kernels.ops import compiled as compiled_ops
from domainlm.kernels.ops import lora as lora_ops
from domainlm.kernels.ops.cross_entropy import release_workspace
from domainlm.training import checkpoint
from domainlm.artifacts.adapter import write_adapter
from domainlm.training.config import TrainConfig
from domainlm.training.forward import CausalLMLoss, choose_kernels
from domainlm.training.host import tune_cpu_process
from domainlm.training.metrics import MetricsLog
from domainlm.training.model import load_lora_model, load_tokenizer
from domainlm.training.presets import resolve_lora
from domainlm.training.schedule import build_scheduler

logger = log.get("training")


def _dtype(precision: str, backend) -> torch.dtype:
    if precision == "fp32":
        return torch.float32
    supported = backend.supports_bf16()
    if precision == "bf16" and not supported:
        raise ConfigError(f"train.precision: bf16 is not supported natively on backend {backend.name}; use fp32")
    return torch.bfloat16 if supported else torch.float32


class Trainer:
    def __init__(self, config: TrainConfig):
        self.cfg = config
        self.run_dir = config.run_dir()
        self.step = 0
        self.history: dict = {"losses": [], "eval": [], "tokens": 0, "train_seconds": 0.0}

    # ---- setup ---------------------------------------------------------------------------------------------------
    def setup(self) -> Trainer:
        from accelerate import Accelerator

        from domainlm.kernels.backends import select_backend
        from domainlm.models import resolve_base

        cfg = self.cfg
        self.backend = select_backend()
        self.accelerator = Accelerator(cpu=self.backend.device_type == "cpu")
        self.device = self.accelerator.device
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        if not self.main:   # one voice per run: other ranks report only warnings and errors
            logging.getLogger("domainlm").setLevel(logging.WARNING)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if self.device.type == "cpu":
            tune_cpu_process()
        self.dtype = _dtype(cfg.train.precision, self.backend)
        self.base = resolve_base(cfg.base_model, prepare_if_missing=True)
        self.tokenizer = load_tokenizer(self.base.path)
        vertical = VerticalRows(cfg.data.vertical, cfg.data.system_prompt, cfg.seed) if cfg.data.vertical else None
        replay = ReplayRows(self.base, cfg.seed) if any(p.source == "replay" for p in cfg.data.mix) else None
        self.data = dataset.build(cfg.data, self.tokenizer, cfg.seed, vertical, replay)
        self.lora = resolve_lora(cfg.lora, self.base.family)
        peft_model = load_lora_model(self.base.path, self.lora, device=self.device, dtype=self.dtype, seed=cfg.seed,
                                     gradient_checkpointing=cfg.train.gradient_checkpointing)
        requested = cfg.train.kernels
        if not cfg.data.packing and requested == "auto":
            requested = "hf"   # the fused path takes packed rows only
        self.kernels, why = choose_kernels(requested, peft_model, self.lora,
                                           self.accelerator.distributed_type.name)
        if why:
            logger.info("generic kernels", reason=why)
        self.module = CausalLMLoss(peft_model, self.kernels, cfg.train.ce_chunk, cfg.train.gradient_checkpointing)
        self.compiled = compiled_ops.enable(self.kernels == "fused" and (
            cfg.train.compile == "on" or (cfg.train.compile == "auto" and self.device.type == "cpu"
                                          and compiled_ops.cpu_has_amx())))
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        t = cfg.train
        # torch's fused AdamW (one kernel for all tensors: 5.5 vs 20 ms per step for SmolLM2's 420 LoRA tensors on
        # the CPU) leaves version counters alone, so the LoRA op's cached bf16 weight copies are invalidated by hook
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(self.params, lr=t.lr, betas=t.betas, weight_decay=t.weight_decay,
                                           fused=fused or None)
        self.optimizer.register_step_post_hook(lambda *_: lora_ops.parameters_changed())
        self.rows_per_step = t.batch_size * t.grad_accum * self.world
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * len(self.data.train) / self.rows_per_step))
        self.scheduler = build_scheduler(self.optimizer, total=self.total_steps, warmup=t.warmup_steps,
                                         kind=t.schedule, floor=t.min_lr_ratio)
        self.model, self.optimizer = self.accelerator.prepare(self.module, self.optimizer)
        self.order = RowOrder(len(self.data.train), cfg.seed, cfg.data.shuffle)
        self.fingerprint = self._fingerprint()
        if cfg.checkpoint.resume == "auto":
            self._resume()
        self.metrics = MetricsLog(self.run_dir, enabled=self.main, tensorboard=cfg.log.tensorboard,
                                  resume_step=self.step)
        logger.info("training setup", name=cfg.name, kernels=self.kernels, compiled=self.compiled,
                    dtype=str(self.dtype)[6:],
                    device=str(self.device), processes=self.world, steps=self.total_steps, start_step=self.step,
                    rows=len(self.data.train), rows_per_step=self.rows_per_step)
        return self

    def _fingerprint(self) -> str:
        relevant = self.cfg.model_dump(mode="json", exclude={"checkpoint", "log", "eval", "output_dir"})
        relevant["world"] = self.world
        relevant["data_stats"] = {k: self.data.stats[k] for k in ("train_rows", "train_tokens")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()

    def _resume(self) -> None:
        from peft import set_peft_model_state_dict

        if self.main:
            checkpoint.remove_partial(self.run_dir)
        folder = checkpoint.latest(self.run_dir)
        if folder is None:
            return
        saved = checkpoint.load(folder, self.fingerprint)
        set_peft_model_state_dict(self.module.peft, saved["adapter"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_state(saved["rng"][self.rank], self.device)
        self.step = saved["state"]["step"]
        self.history = saved["state"]["history"]
        logger.info("resumed", checkpoint=str(folder), step=self.step)

    # ---- loop ----------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        bar = progress.bar(total=self.total_steps, initial=self.step, desc=f"train {cfg.name}", unit="step") \
            if self.main else _NoBar()
        if self.step == 0 and self.data.eval and "eval_loss_initial" not in self.history:
            self.history["eval_loss_initial"] = self.evaluate()
        while self.step < self.total_steps:
            record = self._train_step()
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
            if cfg.eval.every_steps and self.step % cfg.eval.every_steps == 0 and self.step < self.total_steps \
                    and self.data.eval:
                record["eval_loss"] = self.evaluate()
                self.history["eval"].append([self.step, record["eval_loss"]])
            if self.step % cfg.log.every_steps == 0 or self.step == self.total_steps or "eval_loss" in record:
                self.metrics.write(self.step, record)
            if cfg.checkpoint.every_steps and self.step % cfg.checkpoint.every_steps == 0 \
                    and self.step < self.total_steps:
                self.save_checkpoint()
        bar.close()
        if self.data.eval:
            final = self.evaluate()
            self.history["eval"].append([self.step, final])
            self.metrics.write(self.step, {"eval_loss": final})
        return self.final_metrics()

    def _batch(self, rows: list[int]):
        encoded = [self.data.train[i] for i in rows]
        return collate(encoded, self.cfg.data.packing, self.tokenizer.pad_token_id).to(self.device)

    def _train_step(self) -> dict:
        t = self.cfg.train
        started = time.perf_counter()
        everything = step_rows(self.order, self.step, batch_size=t.batch_size, grad_accum=t.grad_accum,
                               world=self.world)
        global_targets = sum(self.data.train[i].n_targets for i in everything)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        tokens = 0
        for micro in range(t.grad_accum):
            rows = micro_batch_rows(self.order, self.step, micro, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                    world=self.world, rank=self.rank)
            batch = self._batch(rows)
            last = micro == t.grad_accum - 1
            with nullcontext() if last else self.accelerator.no_sync(self.model):
                summed = self.model(batch.input_ids, batch.position_ids, batch.targets, batch.attention_mask,
                                    batch.cu_seqlens)
                self.accelerator.backward(summed * (self.world / global_targets))
            loss_sum += summed.detach()
            tokens += batch.n_tokens
        grad_norm = None
        if t.max_grad_norm:
            grad_norm = float(self.accelerator.clip_grad_norm_(self.params, t.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        totals = torch.stack([loss_sum, torch.tensor(float(tokens), device=self.device)])
        if self.world > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        seconds = time.perf_counter() - started
        loss = float(totals[0]) / global_targets
        step_tokens = int(totals[1])
        self.history["losses"].append(loss)
        self.history["tokens"] += step_tokens
        self.history["train_seconds"] += seconds
        record = {"loss": loss, "lr": lr, "tokens": step_tokens, "target_tokens": global_targets,
                  "tokens_per_s": step_tokens / seconds, "step_seconds": seconds,
                  "epoch": (self.step + 1) * self.rows_per_step / len(self.data.train)}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # KiB on Linux
        return record

    @torch.no_grad()
    def evaluate(self) -> float | None:
        rows = self.data.eval[self.rank::self.world]
        size = self.cfg.eval.batch_size
        self.model.eval()
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        count = 0
        for start in range(0, len(rows), size):
            batch = collate(rows[start:start + size], self.cfg.data.packing,
                            self.tokenizer.pad_token_id).to(self.device)
            total += self.model(batch.input_ids, batch.position_ids, batch.targets, batch.attention_mask,
                                batch.cu_seqlens)
            count += batch.n_targets
        self.model.train()
        sums = torch.stack([total, torch.tensor(float(count), device=self.device)])
        if self.world > 1:
            sums = self.accelerator.reduce(sums, reduction="sum")
        return float(sums[0] / sums[1]) if float(sums[1]) else None

    # ---- state ---------------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        from accelerate.utils import gather_object
        from peft import get_peft_model_state_dict

        rngs = gather_object([checkpoint.rng_state(self.device)]) if self.world > 1 else \
            [checkpoint.rng_state(self.device)]
        if self.main:
            checkpoint.save(self.run_dir, self.step, adapter=get_peft_model_state_dict(self.module.peft),
                            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), rng=rngs,
                            state={"fingerprint": self.fingerprint, "history": self.history},
                            keep_last=self.cfg.checkpoint.keep_last)
        self.accelerator.wait_for_everyone()

    def final_metrics(self) -> dict:
        losses = self.history["losses"]
        tail = losses[-10:]
        metrics = {
            "steps": self.step,
            "train_loss_final": losses[-1] if losses else None,
            "train_loss_last10": sum(tail) / len(tail) if tail else None,
            "train_tokens": self.history["tokens"],
            "train_seconds": round(self.history["train_seconds"], 2),
            "tokens_per_s": self.history["tokens"] / max(self.history["train_seconds"], 1e-9),
            "kernels": self.kernels,
            "dtype": str(self.dtype).replace("torch.", ""),
            "processes": self.world,
            "device": self.device.type,
        }
        if "eval_loss_initial" in self.history:
            metrics["eval_loss_initial"] = self.history["eval_loss_initial"]
        if self.history["eval"]:
            metrics["eval_loss"] = self.history["eval"][-1][1]
            if metrics.get("eval_loss_initial"):
                metrics["eval_nll_reduction"] = 1.0 - metrics["eval_loss"] / metrics["eval_loss_initial"]
        metrics["data"] = self.data.stats
        return metrics

    def resolved_config(self) -> dict:
        config = self.cfg.model_dump(mode="json")
        config["resolved"] = {"lora": self.lora, "kernels": self.kernels, "compiled": self.compiled,
                              "dtype": str(self.dtype)[6:],
                              "processes": self.world, "total_steps": self.total_steps,
                              "rows_per_step": self.rows_per_step, "base_path": str(self.base.path)}
        return config

    def save_artifact(self) -> Path:
        final = self.run_dir / "adapter"
        if self.main:
            base = {"model_id": self.base.model_id, "ref": self.base.ref, "family": self.base.family,
                    "weights_sha256": self.base.weights_sha256,
                    "chat_template_sha256": self.base.chat_template_sha256,
                    "chat_template": self.tokenizer.chat_template}
            write_adapter(final, self.module.peft, name=self.cfg.name, vertical=self.cfg.vertical, base=base,
                          sources=self.data.sources, config=self.resolved_config(), metrics=self.final_metrics(),
                          stats=self.data.stats, lora=self.lora)
            logger.info("artifact written", path=str(final))
        self.accelerator.wait_for_everyone()
        return final

    def close(self) -> None:
        """Release what the run held process-wide (the pipeline trains several verticals in one process)."""
        self.metrics.close()
        self.accelerator.end_training()
        release_workspace()
        compiled_ops.enable(False)
        if self.device.type == "cpu":
            torch.set_flush_denormal(False)


class _NoBar:
    """Progress bar stand-in for processes other than the main one."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def train(config: TrainConfig) -> Path:
    """Train one adapter from a validated config and return its artifact folder (PEFT files + manifest.json)."""
    trainer = Trainer(config).setup()
    try:
        trainer.fit()
        return trainer.save_artifact()
    finally:
        trainer.close()
