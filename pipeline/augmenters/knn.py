"""KNN word replacement: a word's candidates are its k nearest neighbours in an embedding space.

`knn` is TinyBERT's word replacement (GloVe neighbours); `knn-teacher` takes the neighbours from
the teacher's own word-piece embeddings, so replacements are words the teacher sees as close. Both
keep plain KNN, as the papers do: a neighbour may be an inflection of the word ("movie" → "movies").
Only lower-case alphabetic vocabulary words take part, so a neighbour is never the word itself in
another case; a text word outside the table keeps its place and does not count as eligible.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence

import numpy as np

from kdaug.augmenters import resources
from kdaug.augmenters.base import register
from kdaug.augmenters.neighbours import SPARE, nearest_neighbours, replaceable
from kdaug.augmenters.replace import WordReplacer


@resources.once
def _neighbour_words(space: type[NeighbourReplacer], source: object, k: int) -> dict[str, tuple[str, ...]]:
    """word → its k nearest replaceable words, most similar first; built once per process and
    shared by every augmenter instance and thread. The FAISS search behind it takes 5–15 s for
    GloVe's 45,607 words (it was 40% of a whole 2,000-row job's CPU time, in every worker), so
    its id table is cached on disk, keyed by the vectors' bytes, k and the search's version."""
    vocab, vectors = space.vectors(source)
    keep = replaceable(vocab)
    kept = np.ascontiguousarray(vectors[keep])
    key = hashlib.sha256(kept.tobytes() + f"|{kept.shape}|k={k}|spare={SPARE}|v1".encode()).hexdigest()[:24]
    ids = resources.disk_cached("neighbours", key, lambda: nearest_neighbours(kept, k)[0])
    words = [vocab[i] for i in keep]
    return {w: tuple(words[j] for j in row) for w, row in zip(words, ids.tolist())}


class NeighbourReplacer(WordReplacer):
    """Word replacement from precomputed neighbours; subclasses only name the embedding space."""

    @abstractmethod
    def source(self) -> object:
        """What names this space's vectors among the options (a vocabulary size, a model dir)."""

    @staticmethod
    @abstractmethod
    def vectors(source) -> tuple[tuple[str, ...], np.ndarray]:
        """The space's vocabulary and its vectors (row i embeds word i), from a memoised loader."""

    def setup(self) -> None:
        self.neighbours = _neighbour_words(type(self), self.source(), self.options.knn_k)

    def candidates(self, word: str) -> Sequence[str]:
        return self.neighbours.get(word, ())


@register
class GloveKnn(NeighbourReplacer):
    """TinyBERT-style: neighbours by GloVe 6B 50d cosine among the alphabetic words of the
    `glove_vocab` most frequent GloVe entries (45,607 of the first 50,000)."""

    name = "knn"

    def source(self) -> int:
        return self.options.glove_vocab

    @staticmethod
    def vectors(source: int) -> tuple[tuple[str, ...], np.ndarray]:
        return resources.glove(source)


@register
class TeacherKnn(NeighbourReplacer):
    """Neighbours by cosine in the teacher's input word-piece embeddings, among its whole-word
    alphabetic pieces (21,745 for all-MiniLM-L6-v2)."""

    name = "knn-teacher"

    def source(self) -> str:
        return resources.resolve_teacher_dir(self.options.teacher_dir)

    @staticmethod
    def vectors(source: str) -> tuple[tuple[str, ...], np.ndarray]:
        return resources.teacher_vocab(source), resources.teacher_word_embeddings(source)
