"""KNN word replacement: a word's candidates are its k nearest neighbours in an embedding space.

`knn` is TinyBERT's word replacement (GloVe neighbours); `knn-teacher` takes the neighbours from
the teacher's own word-piece embeddings, so replacements are words the teacher sees as close. Both
keep plain KNN, as the papers do: a neighbour may be an inflection of the word ("movie" → "movies").
Only lower-case alphabetic vocabulary words take part, so a neighbour is never the word itself in
another case; a text word outside the table keeps its place and does not count as eligible.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np

from pipeline import resources
from pipeline.augmenters.base import register
from pipeline.augmenters.replace import WordReplacer
from pipeline.neighbours import nearest_neighbours, replaceable


class _ByIdentity:
    """Lets an array be part of a `once` cache key. Resources' loaders return one array object per
    process, so identity names the embedding table; the table builder cannot load it itself
    because `once` calls do not nest (they share one non-reentrant lock)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __hash__(self) -> int:
        return id(self.array)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.array is self.array


@resources.once
def _neighbour_words(vocab: tuple[str, ...], vectors: _ByIdentity, k: int) -> dict[str, tuple[str, ...]]:
    """word → its k nearest replaceable words, most similar first; built once per process and
    shared by every augmenter instance and thread (a build takes seconds)."""
    keep = replaceable(vocab)
    ids, _ = nearest_neighbours(vectors.array[keep], k)
    words = [vocab[i] for i in keep]
    return {w: tuple(words[j] for j in row) for w, row in zip(words, ids.tolist())}


class NeighbourReplacer(WordReplacer):
    """Word replacement from precomputed neighbours; subclasses only name the embedding space."""

    @abstractmethod
    def vectors(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The space's vocabulary and its vectors (row i embeds word i), from a memoised loader."""

    def setup(self) -> None:
        vocab, vectors = self.vectors()
        self.neighbours = _neighbour_words(vocab, _ByIdentity(vectors), self.options.knn_k)

    def candidates(self, word: str) -> Sequence[str]:
        return self.neighbours.get(word, ())


@register
class GloveKnn(NeighbourReplacer):
    """TinyBERT-style: neighbours by GloVe 6B 50d cosine among the alphabetic words of the
    `glove_vocab` most frequent GloVe entries (45,607 of the first 50,000)."""

    name = "knn"

    def vectors(self) -> tuple[tuple[str, ...], np.ndarray]:
        return resources.glove(self.options.glove_vocab)


@register
class TeacherKnn(NeighbourReplacer):
    """Neighbours by cosine in the teacher's input word-piece embeddings, among its whole-word
    alphabetic pieces (21,745 for all-MiniLM-L6-v2)."""

    name = "knn-teacher"

    def vectors(self) -> tuple[tuple[str, ...], np.ndarray]:
        model_dir = resources.resolve_teacher_dir(self.options.teacher_dir)
        return resources.teacher_vocab(model_dir), resources.teacher_word_embeddings(model_dir)
