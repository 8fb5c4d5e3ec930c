"""Fused lm-head + cross-entropy over token chunks: the [tokens, vocab] logits never exist in full.

For N loss tokens, hidden size H and vocab V, plain `F.cross_entropy(h @ Wᵀ)` keeps N×V fp32 logits plus their
softmax and gradient alive (SmolLM2: 4096 × 49152 × 4 B ≈ 0.8 GB per copy). Here each chunk of C tokens is
projected, reduced to its loss, and turned straight into dL/dh (and dL/dW when W is trained) while it is hot;
peak extra memory is ~2 × C×V×4 bytes (C=1024: 0.4 GB for a 49k vocab). Because the gradient is formed in the
forward pass, backward is a scale: call it once per forward (the training loop does).
"""

from __future__ import annotations

import torch

IGNORE = -100


def _chunk_loss_and_grad(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, want_grad: bool):
    logits = (h @ weight.t()).float()                       # [C, V] fp32
    valid = targets != IGNORE
    safe = torch.where(valid, targets, torch.zeros_like(targets))
    lse = torch.logsumexp(logits, dim=-1)                   # [C]
    target_logit = logits.gather(1, safe[:, None]).squeeze(1)
    loss = ((lse - target_logit) * valid).sum()
    if not want_grad:
        return loss, None
    probs = logits.sub_(lse[:, None]).exp_()                # softmax, in place over the logits buffer
    probs.scatter_add_(1, safe[:, None], -valid[:, None].to(probs.dtype))
    probs.mul_(valid[:, None])                              # ignored rows contribute no gradient
    return loss, probs


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start:start + chunk]
            loss, probs = _chunk_loss_and_grad(h, weight, targets[start:start + chunk], need_h or need_w)
            total += loss
            if probs is not None:
                p = probs.to(hidden.dtype)
                if need_h:
                    torch.mm(p, weight, out=grad_h[start:start + chunk])
                if need_w:
                    grad_w += (p.t() @ h).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        dh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        dw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return dh, dw, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = 1024) -> torch.Tensor:
    """Σ over tokens of CE(hidden @ weightᵀ, targets) in fp32 (IGNORE targets skipped). hidden [N, H], weight [V, H].

    Returns the SUM, so callers normalise by whatever token count they choose (global across ranks and
    micro-batches for exact gradient accumulation).
    """
    if hidden.dim() != 2 or targets.dim() != 1 or hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"expected hidden [N, H] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}")
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, chunk)
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            total += _chunk_loss_and_grad(hidden[start:start + chunk], weight, targets[start:start + chunk], False)[0]
        return total


def reference_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The plain formulation (full fp32 logits) that the fused op must match."""
    logits = (hidden @ weight.t()).float()
    return torch.nn.functional.cross_entropy(logits, targets.long(), ignore_index=IGNORE, reduction="sum")
