"""Stable ids and per-row random streams.

Every augmented row draws its randomness from a generator seeded by a hash of
(seed, source_id, method, degree, copy), never from worker state, so a row's text and id are the
same whichever worker makes it and however the input is split.
"""

from __future__ import annotations

import hashlib
import random


def _digest(*parts: object) -> bytes:
    key = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


def row_id(seed: int, source_id: str, method: str, degree: float, copy: int) -> str:
    """The id of one output row: stable for the same input, config and seed."""
    return _digest(seed, source_id, method, f"{degree:.2f}", copy).hex()[:20]


def row_rng(seed: int, source_id: str, method: str, degree: float, copy: int) -> random.Random:
    """A random stream owned by one output row."""
    return random.Random(int.from_bytes(_digest("rng", seed, source_id, method, f"{degree:.2f}", copy), "big"))


def fingerprint(*parts: object) -> str:
    """Short content hash for manifests and cache keys."""
    return _digest(*parts).hex()
