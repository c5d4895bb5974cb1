"""AugPro's projection: map embedding-space vectors back to real tokens.

A mixed (AugPro-Mix) or perturbed (AugPro-FGSM) embedding is not the embedding of any token, so
the teacher could not label it as text. Projection replaces each vector with the vocabulary token
whose input embedding is nearest in L2, as AugPro does; the result is discrete text again.

The candidates are the whole word-piece vocabulary minus the bracketed special tokens ([PAD],
[CLS], [SEP], [MASK], [UNK] and the 994 [unusedN] slots): those are not text, and [unusedN] rows
were never trained. FAISS finds the candidates with an exact flat L2 index built once per
process — on a GPU (`device="cuda…"`) a torch matmul and top-k over the table held there — and the
final ranking is recomputed in float64 on the CPU with ties broken by token id, so the chosen token
does not depend on how the float32 search was blocked (batch size, threads, CPU or GPU), which
keeps a row's output the same on every worker and device.
"""

from __future__ import annotations

import re

import faiss
import numpy as np

from kdaug.augmenters import resources

_SPECIAL = re.compile(r"\[[^\[\]]+\]")
_RERANK_SLACK = 4  # extra FAISS candidates re-ranked exactly: float32 error never reaches past them
_BLAS_FROM_QUERIES = 16


def is_special(piece: str) -> bool:
    """A bracketed control token ([CLS], [unused7], ...), never produced by projection."""
    return _SPECIAL.fullmatch(piece) is not None


@resources.once
def _projectable_ids(model_dir: str) -> np.ndarray:
    """Token ids of every piece projection may produce (all but the bracketed special tokens)."""
    return np.array([i for i, p in enumerate(resources.teacher_vocab(model_dir)) if not is_special(p)])


@resources.once
def _vocabulary_index(model_dir: str) -> tuple[faiss.Index, np.ndarray]:
    """Exact L2 index over the projectable embeddings, and the token id of each index row."""
    table = resources.teacher_word_embeddings(model_dir)
    token_ids = _projectable_ids(model_dir)
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


def nearest(model_dir: str, vectors: np.ndarray, k: int = 1, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The k nearest projectable tokens of each of m vectors (m, d): token ids (m, k) and their
    L2 distances (m, k), nearest first. One search for the whole batch: FAISS on the CPU, torch on
    a CUDA `device`."""
    table = resources.teacher_word_embeddings(model_dir)
    queries = np.ascontiguousarray(vectors, dtype=np.float32)
    if device == "cpu":
        index, token_ids = _vocabulary_index(model_dir)
        _, rows = index.search(queries, k + _RERANK_SLACK)
    else:
        token_ids, rows = _torch_search(model_dir, queries, k + _RERANK_SLACK, device)
    candidates = token_ids[rows]
    diff = table[candidates].astype(np.float64) - np.asarray(vectors, dtype=np.float64)[:, None, :]
    dist = np.sqrt(np.einsum("mkd,mkd->mk", diff, diff))
    order = np.lexsort((candidates, dist), axis=-1)[:, :k]
    return np.take_along_axis(candidates, order, -1), np.take_along_axis(dist, order, -1)


def project(model_dir: str, vectors: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Token id (m,) of the nearest projectable vocabulary embedding of each vector (m, d)."""
    return nearest(model_dir, vectors, device=device)[0][:, 0]


def _torch_search(model_dir: str, queries: np.ndarray, n: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's flat L2 search as one matmul and a top-k on `device` (squared distances in float32,
    re-ranked exactly by `nearest`): (token id of each table row, (m, n) rows nearest first)."""
    import torch

    table, norms, token_ids = _device_table(model_dir, device)
    with torch.inference_mode():
        q = torch.from_numpy(queries).to(device)
        distances = norms[None, :] - 2 * q @ table.T  # |t|² − 2 q·t: |q|² does not change the order
        rows = distances.topk(min(n, table.shape[0]), largest=False).indices
    return token_ids, rows.cpu().numpy()


@resources.once
def _device_table(model_dir: str, device: str):
    """The projectable rows of the embedding table on `device`, their squared norms and token ids."""
    import torch

    token_ids = _projectable_ids(model_dir)
    table = torch.from_numpy(resources.teacher_word_embeddings(model_dir)[token_ids]).to(device)
    return table, (table * table).sum(1), token_ids
