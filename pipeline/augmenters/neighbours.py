"""Word → k nearest neighbours tables, computed once per worker so that replacement is a look-up.

Similarity is cosine: exact inner product (FAISS `IndexFlatIP`, no approximation) on L2-normalised
vectors. FAISS's float32 scores may differ in the last bits between its SIMD builds (AVX2, AVX-512)
and BLAS thread splits, and a swap of two near-tied neighbours changes which word a seeded draw
picks. So FAISS only shortlists a few spare candidates per row, which are re-ranked in float64 with
ties broken by index: the table is the same on every worker, whatever its CPU or thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPARE = 4  # extra FAISS candidates per row, so float32 near-ties at rank k cannot change the set


def replaceable(vocab: Sequence[str]) -> np.ndarray:
    """Indices of the entries a text word can be replaced with: lower-case ASCII alphabetic words.

    Drops word pieces (`##ing`), markers (`[unused0]`, `[CLS]`), numbers, punctuation and accented
    words, and keeps only the first of repeated entries, so a word's neighbours are never itself.
    """
    seen: set[str] = set()
    keep = []
    for i, w in enumerate(vocab):
        if w.isascii() and w.isalpha() and w.islower() and w not in seen:
            seen.add(w)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def nearest_neighbours(vectors: np.ndarray, k: int, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar other rows of each row of `vectors` (n × d).

    Returns `ids` (int32, n × k, most similar first) and their cosine similarities (float32).
    The float64 re-ranking runs in batches of rows to bound its memory (batch × (k + 5) × d floats).
    """
    import faiss

    n = len(vectors)
    if not 0 < k < n:
        raise ValueError(f"k must be in 1..{n - 1} for {n} vectors, got {k}")
    unit = vectors.astype(np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit.astype(np.float32))
    _, cand = index.search(unit.astype(np.float32), min(n, k + 1 + SPARE))  # FAISS blocks queries itself
    ids = np.empty((n, k), dtype=np.int32)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, batch):
        rows = slice(start, start + batch)
        near = cand[rows]
        exact = np.matmul(unit[near], unit[rows, :, None])[:, :, 0]  # float64 cosine per candidate
        exact[near == np.arange(n)[rows, None]] = -np.inf  # never the word itself
        order = np.lexsort((near, -exact))[:, :k]  # by similarity, then by index
        ids[rows] = np.take_along_axis(near, order, axis=1)
        sims[rows] = np.take_along_axis(exact, order, axis=1)
    return ids, sims
