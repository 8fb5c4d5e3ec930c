"""`domainlm train --nproc N` hides the launcher: it re-runs the same command under torchrun (CPU gloo ranks and
single-node GPU/NPU) or `accelerate launch --config_file` (FSDP / DeepSpeed configs in configs/accelerate/).

Multi-process CPU needs torchrun: `accelerate launch --cpu --num_processes 2` starts a single process (it expects
MPI for several CPU processes). The accelerator backend supplies the environment (visible devices, threads per rank).
"""

from __future__ import annotations

import os
import subprocess
import sys

from domainlm.ports import free_port

WORKER_ENV = "DOMAINLM_TRAIN_WORKER"


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1" or "LOCAL_RANK" in os.environ


def launch_command(worker_args: list[str], nproc: int, accelerate_config: str | None = None) -> list[str]:
    if accelerate_config:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
                "--num_processes", str(nproc), "--main_process_port", str(free_port()),
                "-m", "domainlm.cli", "train", *worker_args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), "-m", "domainlm.cli", "train", *worker_args]


def launch(worker_args: list[str], nproc: int, accelerate_config: str | None = None) -> int:
    """Run `domainlm train worker_args` in nproc processes; returns the launcher's exit code."""
    from domainlm.kernels.backends import select_backend

    env = dict(os.environ)
    env.update(select_backend().launch_env(nproc))
    env[WORKER_ENV] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.call(launch_command(worker_args, nproc, accelerate_config), env=env)
