"""Encoded rows → model batches, and the deterministic row order that makes resume exact.

Packed: a step's rows are concatenated into one sequence of T = Σ len(row) tokens with position ids restarting
at 0 per row and `cu_seqlens` boundaries, so attention never crosses rows (varlen attention) and no compute is
spent on padding. Padded: rows are right-padded to the longest one, with an attention mask (the reference layout).
Row order: epoch e is a permutation seeded by (seed, e); the row at global position p is
perm_{p // N}[p % N], so the rows of any step are known without replaying the ones before it.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch

from domainlm.data.encode import IGNORE, Encoded


@dataclass
class Batch:
    input_ids: torch.Tensor            # [1, T] packed, or [rows, L] padded
    position_ids: torch.Tensor         # same shape; restarts at 0 for every row
    targets: torch.Tensor              # same shape; next-token ids on assistant tokens, IGNORE elsewhere
    attention_mask: torch.Tensor | None  # [rows, L] for padded batches, None when packed
    cu_seqlens: torch.Tensor | None    # int32 [rows + 1] row boundaries of a packed batch
    max_seqlen: int
    n_tokens: int                      # real tokens (padding excluded): the unit of tokens/s
    n_targets: int                     # tokens that carry loss

    def to(self, device) -> Batch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(move(self.input_ids), move(self.position_ids), move(self.targets), move(self.attention_mask),
                     move(self.cu_seqlens), self.max_seqlen, self.n_tokens, self.n_targets)


def pack(rows: list[Encoded]) -> Batch:
    lengths = [len(r) for r in rows]
    ids = np.concatenate([r.input_ids for r in rows]).astype(np.int64)
    targets = np.concatenate([r.targets for r in rows]).astype(np.int64)
    positions = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    cu = np.zeros(len(rows) + 1, dtype=np.int32)
    cu[1:] = np.cumsum(lengths)
    return Batch(torch.from_numpy(ids)[None], torch.from_numpy(positions)[None], torch.from_numpy(targets)[None],
                 None, torch.from_numpy(cu), max(lengths), int(cu[-1]), int((targets != IGNORE).sum()))


def pad(rows: list[Encoded], pad_id: int) -> Batch:
    longest = max(len(r) for r in rows)
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    targets = np.full((len(rows), longest), IGNORE, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row.input_ids
        targets[i, : len(row)] = row.targets
        mask[i, : len(row)] = 1
    positions = np.broadcast_to(np.arange(longest, dtype=np.int64), ids.shape).copy()
    return Batch(torch.from_numpy(ids), torch.from_numpy(positions), torch.from_numpy(targets),
                 torch.from_numpy(mask), None, longest, int(mask.sum()), int((targets != IGNORE).sum()))


def collate(rows: list[Encoded], packing: bool, pad_id: int) -> Batch:
    return pack(rows) if packing else pad(rows, pad_id)


class RowOrder:
    """Deterministic, resumable order of row indices across epochs."""

    def __init__(self, n_rows: int, seed: int, shuffle: bool = True):
        if n_rows <= 0:
            raise ValueError("no rows to order")
        self.n_rows, self.seed, self.shuffle = n_rows, seed, shuffle
        self._epochs: dict[int, np.ndarray] = {}

    def epoch(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.clear()
            self._epochs[epoch] = (np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
                                   if self.shuffle else np.arange(self.n_rows))
        return self._epochs[epoch]

    def take(self, start: int, count: int) -> list[int]:
        """Row indices at global positions start … start + count - 1."""
        return [int(self.epoch(p // self.n_rows)[p % self.n_rows]) for p in range(start, start + count)]


def micro_batch_rows(order: RowOrder, step: int, micro: int, *, batch_size: int, grad_accum: int, world: int,
                     rank: int) -> list[int]:
    """Rows of one process's micro-batch: optimizer step `step`, micro-step `micro` (all 0-based)."""
    per_step = batch_size * grad_accum * world
    start = step * per_step + (micro * world + rank) * batch_size
    return order.take(start, batch_size)


def step_rows(order: RowOrder, step: int, *, batch_size: int, grad_accum: int, world: int) -> list[int]:
    """Every row of one optimizer step across processes (to normalise the loss by the global target count)."""
    per_step = batch_size * grad_accum * world
    return order.take(step * per_step, per_step)
