"""AugPro's projection: map embedding-space vectors back to real tokens.

A mixed (AugPro-Mix) or perturbed (AugPro-FGSM) embedding is not the embedding of any token, so
the teacher could not label it as text. Projection replaces each vector with the vocabulary token
whose input embedding is nearest in L2, as AugPro does; the result is discrete text again.

The candidates are the whole word-piece vocabulary minus the bracketed special tokens ([PAD],
[CLS], [SEP], [MASK], [UNK] and the 994 [unusedN] slots): those are not text, and [unusedN] rows
were never trained. FAISS finds the candidates with an exact flat L2 index built once per
process; the final ranking is recomputed in float64 with ties broken by token id, so the chosen
token does not depend on how BLAS blocks the float32 search (batch size, threads, CPU), which
keeps a row's output the same on every worker.
"""

from __future__ import annotations

import re

import faiss
import numpy as np

from pipeline import resources

_SPECIAL = re.compile(r"\[[^\[\]]+\]")
_RERANK_SLACK = 4  # extra FAISS candidates re-ranked exactly: float32 error never reaches past them
_BLAS_FROM_QUERIES = 16


def is_special(piece: str) -> bool:
    """A bracketed control token ([CLS], [unused7], ...), never produced by projection."""
    return _SPECIAL.fullmatch(piece) is not None


@resources.once
def _vocabulary_index(model_dir: str) -> tuple[faiss.Index, np.ndarray]:
    """Exact L2 index over the projectable embeddings, and the token id of each index row."""
    table = resources.teacher_word_embeddings(model_dir)
    token_ids = np.array([i for i, p in enumerate(resources.teacher_vocab(model_dir)) if not is_special(p)])
    index = faiss.IndexFlatL2(table.shape[1])
    index.add(table[token_ids])
    # FAISS moves from its SIMD loop to BLAS only past its threshold (measured: at 334 queries for
    # d = 384, i.e. queries × d ≈ 128,000, the default); below it a query costs ~3 ms instead of
    # ~0.3 ms on this table, and a chunk's projection is often a few hundred queries. BLAS wins from
    # about 16 queries (docs/augpro.md). The setting is process-wide; it only moves float32
    # rounding, which every FAISS user in kdaug re-ranks away in float64.
    faiss.cvar.distance_compute_blas_threshold = min(
        faiss.cvar.distance_compute_blas_threshold, _BLAS_FROM_QUERIES * table.shape[1]
    )
    return index, token_ids


def nearest(model_dir: str, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest projectable tokens of each of m vectors (m, d): token ids (m, k) and their
    L2 distances (m, k), nearest first. One FAISS search for the whole batch."""
    index, token_ids = _vocabulary_index(model_dir)
    table = resources.teacher_word_embeddings(model_dir)
    queries = np.ascontiguousarray(vectors, dtype=np.float32)
    _, rows = index.search(queries, k + _RERANK_SLACK)
    candidates = token_ids[rows]
    diff = table[candidates].astype(np.float64) - np.asarray(vectors, dtype=np.float64)[:, None, :]
    dist = np.sqrt(np.einsum("mkd,mkd->mk", diff, diff))
    order = np.lexsort((candidates, dist), axis=-1)[:, :k]
    return np.take_along_axis(candidates, order, -1), np.take_along_axis(dist, order, -1)


def project(model_dir: str, vectors: np.ndarray) -> np.ndarray:
    """Token id (m,) of the nearest projectable vocabulary embedding of each vector (m, d)."""
    return nearest(model_dir, vectors)[0][:, 0]
