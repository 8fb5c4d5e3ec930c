"""Prefix-shared packing for log-likelihood scoring: one forward pass scores every option of a question.

A segment is one context followed by all of its continuations: [ctx][opt A][opt B][opt C][opt D]. Inside a segment
each option attends to the context and to itself only, and its positions continue from the context, so option k
sees exactly what it would see in its own forward pass — but the context is computed once instead of once per
option (4 options → ~4× fewer context tokens). Segments are packed first-fit-decreasing into rows of `pack_tokens`
with a block-diagonal mask, so there is almost no padding either.

Token cost per question: plain batching = n_opt × (ctx + opt); packed = ctx + Σ opt.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Segment:
    context: tuple[int, ...]
    continuations: list[tuple[int, ...]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # request index of each continuation

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(c) for c in self.continuations)


def build_segments(pairs, pack_tokens: int) -> list[Segment]:
    """Group (context, continuation) pairs by identical context; split a group that would overflow a row."""
    by_context: dict[tuple[int, ...], list[int]] = {}
    for index, pair in enumerate(pairs):
        by_context.setdefault(pair.context, []).append(index)
    segments = []
    for context, indices in by_context.items():
        current = Segment(context)
        for index in indices:
            cont = pairs[index].continuation
            if current.continuations and current.length + len(cont) > pack_tokens:
                segments.append(current)
                current = Segment(context)
            current.continuations.append(cont)
            current.owners.append(index)
        segments.append(current)
    return segments


def pack_rows(segments: list[Segment], pack_tokens: int) -> list[list[Segment]]:
    """First-fit decreasing: longest segments first, each into the first row with room (a long one gets its own)."""
    rows: list[list[Segment]] = []
    room: list[int] = []
    for segment in sorted(segments, key=lambda s: -s.length):
        for r, free in enumerate(room):
            if segment.length <= free:
                rows[r].append(segment)
                room[r] -= segment.length
                break
        else:
            rows.append([segment])
            room.append(pack_tokens - segment.length)
    return rows


@dataclass
class RowLayout:
    """Everything one packed row needs: token ids, positions, the allowed-attention blocks, and what to score."""

    ids: list[int]
    positions: list[int]
    blocks: list[tuple[int, int, int, int, bool]]  # (q0, q1, k0, k1, causal): queries q0:q1 may see keys k0:k1
    sources: list[int]        # row position whose logits predict each scored token
    targets: list[int]        # the scored tokens
    spans: list[tuple[int, int, int]]  # (request index, start, end) into sources/targets


def layout_row(row: list[Segment]) -> RowLayout:
    ids, positions, blocks, sources, targets, spans = [], [], [], [], [], []
    for segment in row:
        start = len(ids)
        n = len(segment.context)
        ids += segment.context
        positions += range(n)
        blocks.append((start, start + n, start, start + n, True))
        offset = start + n
        for cont, owner in zip(segment.continuations, segment.owners, strict=True):
            m = len(cont)
            ids += cont
            positions += range(n, n + m)
            blocks.append((offset, offset + m, start, start + n, False))  # the option sees the whole context
            blocks.append((offset, offset + m, offset, offset + m, True))  # and itself, causally
            first = len(sources)
            if m:  # token i of the option is predicted at the position before it (the context's last for i = 0)
                sources += [start + n - 1] + list(range(offset, offset + m - 1))
            targets += cont
            spans.append((owner, first, first + m))
            offset += m
    return RowLayout(ids, positions, blocks, sources, targets, spans)
