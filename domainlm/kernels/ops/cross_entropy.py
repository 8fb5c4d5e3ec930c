"""Fused lm-head + cross-entropy over token chunks: the [tokens, vocab] logits never exist in full.

For N loss tokens, hidden size H and vocab V, plain `F.cross_entropy(h @ Wᵀ)` keeps N×V fp32 logits plus their
softmax and gradient alive (SmolLM2: 4096 × 49152 × 4 B ≈ 0.8 GB per copy). Here each chunk of C tokens is
projected, reduced to its loss, and turned straight into dL/dh (and dL/dW when W is trained) while it is hot.
Because the gradient is formed in the forward pass, backward is a scale: call backward once per forward.

Eager: every pass over a chunk's [C, V] logits runs in place in two reused buffers (bf16 GEMM output, fp32 work),
kept between calls: on CPU a fresh 100 MB tensor costs page faults (~25k of them) on every allocation, which
measured slower than the log-softmax itself. Workspace = C × V × 6 bytes (C=512, V=49152: 150 MB; 50 MB with the
native kernel below). With compiled elementwise ops (kernels/ops/compiled.py) the loss and dL/dlogits come from
one fused reduction + pointwise pass over the compute-dtype logits instead; with bf16 on AVX512-BF16 CPUs, from
cpu_elementwise_kernel.cpp (two reads and one in-place write of each bf16 row; no fp32 buffer).
"""

from __future__ import annotations

import torch

from domainlm.kernels.ops.compiled import elementwise
from domainlm.kernels.ops.cpu_elementwise import KERNEL
from domainlm.kernels.ops.compiled import enabled as compiled_enabled

IGNORE = -100
_WORKSPACE: dict[tuple, torch.Tensor] = {}


def _buffer(kind: str, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (kind, dtype, device)
    buf = _WORKSPACE.get(key)
    if buf is None or buf.numel() < rows * cols:
        _WORKSPACE.pop(key, None)
        buf = _WORKSPACE[key] = torch.empty(rows * cols, dtype=dtype, device=device)
    return buf[: rows * cols].view(rows, cols)


def release_workspace() -> None:
    """Free the reused logits buffers (e.g. after training, before serving in the same process)."""
    _WORKSPACE.clear()


@elementwise
def _loss_and_dlogits(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor):
    """(Σ CE, softmax − one-hot) from compute-dtype logits: compiled, one reduction pass (max, Σexp) and one
    pointwise pass that writes the gradient in the logits' dtype; no fp32 [C, V] buffer is materialised."""
    lf = logits.float()
    peak = lf.amax(-1, keepdim=True)
    exps = torch.exp(lf - peak)
    total = exps.sum(-1, keepdim=True)
    lse = peak + torch.log(total)
    loss = ((lse.squeeze(1) - lf.gather(1, targets[:, None]).squeeze(1)) * valid).sum()
    columns = torch.arange(logits.shape[1], device=logits.device)[None, :]
    probs = exps / total
    grad = torch.where(columns == targets[:, None], probs - 1.0, probs) * valid[:, None]
    return loss, grad.to(logits.dtype)


def _chunk_loss_and_grad(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, want_grad: bool):
    """(Σ CE over the chunk, dL/dlogits in h's dtype or None)."""
    rows, vocab = h.shape[0], weight.shape[0]
    low = _buffer("low", rows, vocab, h.dtype, h.device)
    torch.mm(h, weight.t(), out=low)                                     # logits in the compute dtype
    native = KERNEL.for_tensors(low)
    if native:   # cpu_elementwise_kernel.cpp: loss and softmax − one-hot in place, two passes over the bf16 rows
        loss = native.cross_entropy_rows(low, targets.long().contiguous(), want_grad)
        return loss.to(h.device), (low if want_grad else None)
    if want_grad and compiled_enabled():
        valid = targets != IGNORE
        safe = torch.where(valid, targets, torch.zeros_like(targets)).long()
        return _loss_and_dlogits(low, safe, valid.to(torch.float32))
    work = low.float() if h.dtype == torch.float32 else _buffer("fp32", rows, vocab, torch.float32, h.device)
    if work.data_ptr() != low.data_ptr():
        work.copy_(low)
    torch._log_softmax(work, -1, False, out=work)                       # log-probs, one fused kernel
    valid = targets != IGNORE
    all_valid = bool(valid.all())
    safe = (targets if all_valid else torch.where(valid, targets, torch.zeros_like(targets))).long()
    picked = work.gather(1, safe[:, None]).squeeze(1)
    loss = -(picked.sum() if all_valid else (picked * valid).sum())
    if not want_grad:
        return loss, None
    work.exp_()                                                          # softmax
    work[torch.arange(rows, device=h.device), safe] -= 1.0              # − one-hot(target)
    if not all_valid:
        work.mul_(valid[:, None])                                        # ignored rows carry no gradient
    if work.data_ptr() != low.data_ptr():
        low.copy_(work)
    return loss, low


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start:start + chunk]
            loss, dlogits = _chunk_loss_and_grad(h, weight, targets[start:start + chunk], True)
            total += loss
            if need_h:
                torch.mm(dlogits, weight, out=grad_h[start:start + chunk])
            if need_w:
                grad_w += (dlogits.t() @ h).float()
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
                         chunk: int = 512) -> torch.Tensor:
    """Σ over tokens of CE(hidden @ weightᵀ, targets) in fp32 (IGNORE targets skipped). hidden [N, H], weight [V, H].

    Returns the SUM, so callers normalise by whatever token count they choose (global across ranks and
    micro-batches for exact gradient accumulation).
    """
    if hidden.dim() != 2 or targets.dim() != 1 or hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"expected hidden [N, H] and targets [N], got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}")
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
    """The plain formulation (full logits, upcast to fp32) that the fused op must match."""
    logits = (hidden @ weight.t()).float()
    return torch.nn.functional.cross_entropy(logits, targets.long(), ignore_index=IGNORE, reduction="sum")
