"""Child processes that must not outlive the process that started them (vLLM servers, offline generation)."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1   # <sys/prctl.h>
try:   # resolved here, in the parent: the child between fork and exec only calls it (no dlopen there)
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _PRCTL = None


def die_with_parent() -> None:
    """`preexec_fn` for subprocess: in the child, before exec, ask Linux to SIGTERM it when the thread that started
    it ends (prctl PR_SET_PDEATHSIG). A gateway killed with -9, or a test process that aborts, would otherwise leave
    its children running, each holding GBs and a port (found after an aborted test run: two orphaned servers, 7 GB).
    Elsewhere (no prctl) nothing changes."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
