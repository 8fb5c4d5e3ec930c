"""The console's view of one running gateway: its registry, engines, metrics and audit log (the GatewayService)."""

from __future__ import annotations

from functools import cached_property

from domainlm.serving.console.live import LiveSampler

AUDIT_COLUMNS = ("id", "ts", "request_id", "endpoint", "model", "vertical", "version", "status", "error", "stream",
                 "latency_ms", "prompt_tokens", "completion_tokens", "prompt", "prompt_sha256")


class ConsoleState:
    def __init__(self, service):
        self.service = service
        self.sampler = LiveSampler(service.metrics.registry, started_at=service.started_at)

    @property
    def registry(self):
        return self.service.registry

    @cached_property
    def backend(self) -> str:
        """The accelerator backend this gateway host selected (cpu, cuda, npu, ...)."""
        from domainlm.kernels.backends import select_backend

        return select_backend().name

    def served(self, vertical: str) -> bool:
        return any(vertical in group.verticals for group in self.service.config.bases)

    def serving(self) -> dict[str, dict]:
        """vertical → {engine, backend, base} for every vertical a base group of this gateway serves."""
        out = {}
        for group in self.service.config.bases:
            base = group.public_base_name()
            engine = self.service.engines.get(base)
            status = engine.status() if engine is not None else {}
            replicas = [r for pool in status.get("pools", {}).values() for r in pool.get("replicas", [])]
            kind = status.get("kind") or f"{group.engine} (not started)"
            if replicas:
                kind += f" · {sum(r['healthy'] for r in replicas)}/{len(replicas)} replicas healthy"
            for vertical in group.verticals:
                out[vertical] = {"engine": kind, "backend": self.backend, "base": base}
        return out

    def audit_rows(self, limit: int, vertical: str | None) -> list[dict]:
        """Newest first. Prompt text only where the vertical's policy let the gateway keep it (else its sha256);
        answers are never sent to the browser. Key ids are shown with the key's name."""
        names = {k.id: k.name for k in self.service.keys.list()}
        where = {"vertical": vertical} if vertical else {}
        rows = []
        for row in self.service.audit.rows(limit, **where):
            out = {c: row.get(c) for c in AUDIT_COLUMNS}
            key_id = (row.get("key_id") or "").removeprefix("key:")
            out["who"] = f"{names[key_id]} ({key_id})" if key_id in names else (row.get("key_id") or "–")
            out["total_tokens"] = (row.get("prompt_tokens") or 0) + (row.get("completion_tokens") or 0) \
                if row.get("prompt_tokens") is not None or row.get("completion_tokens") is not None else None
            rows.append(out)
        return rows
