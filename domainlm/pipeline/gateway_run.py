"""Start the real gateway (`domainlm serve`) as a subprocess, wait until it is ready, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

import httpx

from domainlm.errors import DomainlmError
from domainlm.ports import free_port


@contextmanager
def running_gateway(config: str, overrides: list[str], log_path: Path, env: dict | None = None,
                    timeout_s: float = 900) -> Iterator[str]:
    """Yield the gateway's base URL once /ready answers 200; the process group is stopped on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "domainlm.cli", "serve", "--config", config, "--port", str(port), *overrides]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise DomainlmError(f"the gateway exited with code {proc.returncode} before it was ready; "
                                    f"see {log_path}")
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise DomainlmError(f"the gateway was not ready after {timeout_s:.0f} s; see {log_path}")
            time.sleep(2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
