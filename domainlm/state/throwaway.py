"""Throwaway PostgreSQL and Redis servers in a temp dir on free ports, for tests and benchmarks (never production).

Debian's packages provide the binaries (`make setup` installs them). PostgreSQL refuses to run as root, so as root
the cluster is made and run by the `postgres` system user. Both servers die with the process that started them.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from domainlm.children import die_with_parent
from domainlm.ports import free_port


class NotInstalled(RuntimeError):
    """The server's binary is not on this machine (run `make setup`)."""


def postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise NotInstalled(f"{name} not found: install Debian's postgresql (make setup)")
    return found


def as_postgres_user() -> dict:
    """Popen arguments that run a PostgreSQL binary as the `postgres` user when we are root (it refuses root)."""
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it listened on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout_s:g} s")


class _Throwaway:
    """A server process in its own temp dir: start() in a subclass; stop() sends `stop_signal`, then kills; the
    dir goes with it. Usable as a context manager (a failed start cleans up too)."""

    prefix = "dlm-"
    stop_signal = signal.SIGTERM

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class ThrowawayPostgres(_Throwaway):
    """`with ThrowawayPostgres() as pg: pg.url` — a fresh cluster, trust auth on 127.0.0.1, database `domainlm`."""

    prefix = "dlm-pg-"
    stop_signal = signal.SIGINT   # PostgreSQL's fast shutdown: clients are cut, nothing waits

    @property
    def url(self) -> str:
        return f"postgresql://domainlm@127.0.0.1:{self.port}/domainlm"

    def start(self) -> ThrowawayPostgres:
        data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        as_user = as_postgres_user()
        subprocess.run([postgres_bin("initdb"), "-D", str(data), "-U", "domainlm", "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--locale=C"],
                       check=True, capture_output=True, timeout=120, **as_user)
        self.port = free_port()
        # fsync off: a throwaway cluster trades durability for speed; nothing here outlives the test
        self.proc = subprocess.Popen([postgres_bin("postgres"), "-D", str(data), "-p", str(self.port),
                                      "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                                      "-c", "fsync=off", "-c", "synchronous_commit=off",
                                      "-c", "full_page_writes=off", "-c", "max_connections=200"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "server.log", "wb"),
                                     preexec_fn=die_with_parent, **as_user)
        _wait_port(self.port, self.proc, "postgres")
        deadline = time.monotonic() + 30
        while True:   # listening is not accepting: wait until the server leaves recovery/startup
            done = subprocess.run([postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                   "-U", "domainlm", "domainlm"], capture_output=True, text=True, **as_user)
            if done.returncode == 0 or "already exists" in done.stderr:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {done.stderr.strip()}")
            time.sleep(0.1)

class ThrowawayRedis(_Throwaway):
    """`with ThrowawayRedis() as r: r.url` — an empty, non-persistent redis-server on a free loopback port."""

    prefix = "dlm-redis-"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        binary = shutil.which("redis-server")
        if not binary:
            raise NotInstalled("redis-server not found: install Debian's redis-server (make setup)")
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=open(self.dir / "server.log", "wb"), stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        _wait_port(self.port, self.proc, "redis-server")
        return self
