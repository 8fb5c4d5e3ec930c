"""Near-duplicate detection with MinHash + LSH (used by `data synth` against seeds and earlier outputs).

Shingles are 3-unit windows (a unit = a Latin word or one CJK character). Signatures have 64 hash functions
h(x) = (a·x + b) mod (2^31 − 1); LSH with 16 bands × 4 rows makes pairs with Jaccard ≳ 0.5 candidates
((1/16)^(1/4) ≈ 0.5), and a candidate is a duplicate when its estimated Jaccard ≥ `threshold`.
"""

from __future__ import annotations

import zlib

import numpy as np

from domainlm.data.text import units

PRIME = (1 << 31) - 1


class MinHashIndex:
    def __init__(self, threshold: float = 0.8, num_perm: int = 64, bands: int = 16, shingle: int = 3, seed: int = 0):
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, PRIME, num_perm, dtype=np.uint64)
        self.b = rng.integers(0, PRIME, num_perm, dtype=np.uint64)
        self.threshold, self.bands, self.rows, self.shingle = threshold, bands, num_perm // bands, shingle
        self.buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self.signatures: list[np.ndarray] = []
        self.keys: list[str] = []

    def signature(self, text: str) -> np.ndarray:
        seq = units(text)
        n = self.shingle
        # crc32, not hash(): str hashes change per process, and dedup results must not
        shingles = {zlib.crc32(" ".join(seq[i:i + n]).encode()) & 0x7FFFFFFF for i in range(max(1, len(seq) - n + 1))}
        x = np.fromiter(shingles, dtype=np.uint64) % np.uint64(PRIME)
        # a·x < 2^31 · 2^31 = 2^62: no uint64 overflow
        return ((np.outer(x, self.a) + self.b) % np.uint64(PRIME)).min(axis=0)

    def _bands(self, sig: np.ndarray) -> list[bytes]:
        return [sig[i * self.rows:(i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def query(self, text: str) -> tuple[str, float] | None:
        """(key, estimated Jaccard) of the closest indexed near-duplicate of text, or None."""
        return self._query(self.signature(text))

    def _query(self, sig: np.ndarray) -> tuple[str, float] | None:
        candidates = {i for band, key in enumerate(self._bands(sig)) for i in self.buckets[band].get(key, ())}
        best = None
        for i in candidates:
            similarity = float(np.mean(self.signatures[i] == sig))
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (self.keys[i], similarity)
        return best

    def add(self, key: str, text: str) -> None:
        self._add(key, self.signature(text))

    def _add(self, key: str, sig: np.ndarray) -> None:
        index = len(self.keys)
        self.keys.append(key)
        self.signatures.append(sig)
        for band, bucket_key in enumerate(self._bands(sig)):
            self.buckets[band].setdefault(bucket_key, []).append(index)

    def add_if_new(self, key: str, text: str) -> tuple[str, float] | None:
        """Index text unless it near-duplicates something indexed; return the duplicate found (or None)."""
        sig = self.signature(text)
        found = self._query(sig)
        if found is None:
            self._add(key, sig)
        return found
