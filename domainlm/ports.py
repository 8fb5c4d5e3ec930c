"""Free TCP ports on this machine, for the processes domainlm starts (vLLM replicas, torchrun rendezvous, tests)."""

from __future__ import annotations

import socket


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    """`preferred` if nothing listens there (0: none preferred), else a port the OS reports free."""
    for port in dict.fromkeys((preferred, 0)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise OSError(f"no free port on {host}")
