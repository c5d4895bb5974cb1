"""Word → k nearest neighbours tables, computed once per worker so that replacement is a look-up.

Similarity is cosine: exact inner product (FAISS `IndexFlatIP`, no approximation) on L2-normalised
vectors. FAISS's float32 scores depend on its SIMD/BLAS code path and thread split, so two near-tied
candidates could swap between machines, and a swap changes which word a seeded draw picks. Each
row is therefore re-ranked from a few spare candidates in float64 with ties broken by index: the
table is the same on any worker, whatever the thread count.
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
    Queries run in batches so memory stays at a few batch × n score blocks.
    """
    import faiss

    n = len(vectors)
    if not 0 < k < n:
        raise ValueError(f"k must be in 1..{n - 1} for {n} vectors, got {k}")
    unit = vectors.astype(np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit.astype(np.float32))
    fetch = min(n, k + 1 + SPARE)
    ids = np.empty((n, k), dtype=np.int32)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, batch):
        query = unit[start : start + batch]
        _, cand = index.search(query.astype(np.float32), fetch)
        exact = np.matmul(unit[cand], query[:, :, None])[:, :, 0]  # float64 cosine of each candidate
        exact[cand == np.arange(start, start + len(query))[:, None]] = -np.inf  # never the word itself
        order = np.lexsort((cand, -exact))[:, :k]  # by similarity, then by index
        ids[start : start + len(query)] = np.take_along_axis(cand, order, axis=1)
        sims[start : start + len(query)] = np.take_along_axis(exact, order, axis=1)
    return ids, sims
