"""AugPro-Mix: MixUp of two texts' word-piece embeddings, projected back to real tokens.

Each example is mixed with a partner from its own chunk: word-piece positions are aligned by index
(text_a with the partner's text_a, text_b with its text_b), a mixed position becomes
λ·e(own) + (1−λ)·e(partner), and the nearest vocabulary embedding turns it back into a token
(`kdaug.augmenters.projection`), so the teacher labels real text. docs/augpro.md has the measurements
behind the choices below.

- Degree. AugPro mixes every position, but on the teacher's table a two-token mix projects back to
  the dominant token unless λ is within about 0.02 of 0.5: mixing everything gives the original
  or the partner's text, never a degree. Here the degree picks round(p·n) of the text's n word
  pieces; only those are mixed, every other position keeps the example's own token.
- Eligible positions: a word piece (letters or digits; punctuation and [UNK] never change, as in
  `kdaug.augmenters.words`) whose aligned partner piece differs from it (mixing equal embeddings is a
  no-op) and is of the same kind, word start or continuation (##ing). Mixing kinds made 25–36%
  of the texts (p = 0.3–0.5) re-tokenize into other pieces than the ones measured ("communicatepi ly").
- Partner: drawn uniformly among the chunk's other examples at least as long (in pieces, in every
  text), else among all others. A shorter partner leaves the example's tail without aligned
  pieces and capped the degree in a third of the rows at p = 0.5.
- λ ~ Beta(α, α) per row as in MixUp, folded to λ ≤ 0.5: the chosen positions are meant to move,
  and with λ > 0.5 they would project straight back. `mix_lambda` is the own embedding's weight.
- A chunk of one example is its own partner: nothing is eligible, so the row is an unchanged copy
  with `changed_frac` 0 and `partner_id` its own `source_id`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from kdaug.augmenters import projection, resources
from kdaug.augmenters.augpro import encode_pieces, piece_kinds, spliced
from kdaug.augmenters.base import Augmenter, register
from kdaug.augmenters.seeding import row_rng
from kdaug.augmenters.words import Words, target_count
from kdaug.teacher.model import LOCAL_ONLY


@dataclass
class Mix:
    """One example's mix: the partner's index in the chunk, λ (own weight), and per text field
    the mixed positions and (own piece ids, output piece ids, the pieces' character spans)."""

    partner: int
    lam: float
    chosen: dict[str, np.ndarray]
    pieces: dict[str, tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]]


@register
class AugProMix(Augmenter):
    name = "augpro-mix"
    uses_device = True

    def setup(self) -> None:
        from transformers import AutoTokenizer

        self.model_dir = resources.resolve_teacher_dir(self.options.teacher_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, **LOCAL_ONLY)
        self.vocab = resources.teacher_vocab(self.model_dir)
        self.table = resources.teacher_word_embeddings(self.model_dir)
        self.is_word, self.is_continuation = piece_kinds(self.vocab)

    def augment_words(self, words: Words, degree: float, rng: random.Random) -> Words:
        """Not used: a mix needs a partner from the chunk, see `augment_chunk`."""
        raise NotImplementedError("augpro-mix augments whole chunks")

    def augment_chunk(self, examples: list[dict], degree: float, copy: int) -> list[dict]:
        """Rows whose `changed_frac` counts changed word pieces over the word pieces of all texts."""
        rows = []
        for ex, mix in zip(examples, self.mix_chunk(examples, degree, copy)):
            texts, frac = spliced(ex, mix.pieces, self.is_word, self.vocab)  # text_a always, text_b maybe
            rows.append(
                self.make_row(
                    ex,
                    degree,
                    copy,
                    texts["text_a"],
                    texts.get("text_b"),
                    changed_frac=frac,
                    partner_id=examples[mix.partner]["source_id"],
                    mix_lambda=mix.lam,
                )
            )
        return rows

    def mix_chunk(self, examples: list[dict], degree: float, copy: int) -> list[Mix]:
        """The word-piece result of every example of the chunk, with one projection call for all."""
        mixes, vectors = self.mix_vectors(examples, degree, copy)
        if not mixes:
            return []
        projected = iter(projection.project(self.model_dir, vectors, self.options.device).tolist())
        for mix in mixes:
            for f, at in mix.chosen.items():
                mix.pieces[f][1][at] = [next(projected) for _ in at]
        return mixes

    def mix_vectors(self, examples: list[dict], degree: float, copy: int) -> tuple[list[Mix], np.ndarray]:
        """The chunk's mixes before projection (output pieces still the own ones) and the mixed
        embeddings (m, d) of all their chosen positions, example by example and field by field:
        the queries `mix_chunk` projects in one call."""
        if not examples:
            return [], np.empty((0, self.table.shape[1]))
        fields = [f for f in ("text_a", "text_b") if any(ex[f] is not None for ex in examples)]
        enc = {f: self._encode([ex[f] or "" for ex in examples]) for f in fields}  # a missing text: no pieces
        lengths = np.array([[len(enc[f][i][0]) for f in fields] for i in range(len(examples))])
        mixes, vectors = [], []
        for i, ex in enumerate(examples):
            rng = row_rng(self.options.seed, ex["source_id"], self.name, degree, copy)
            j = _partner(i, lengths, rng)
            lam = rng.betavariate(self.options.mix_alpha, self.options.mix_alpha)
            mix = Mix(j, min(lam, 1.0 - lam), {}, {})
            for f in fields:
                (own, spans), other = enc[f][i], enc[f][j][0]
                mix.chosen[f] = at = self._positions(own, other, degree, rng)
                mix.pieces[f] = (own, own.copy(), spans)
                vectors.append(mix.lam * self.table[own[at]].astype(np.float64) + (1 - mix.lam) * self.table[other[at]])
            mixes.append(mix)
        return mixes, np.concatenate(vectors)

    def _encode(self, texts: list[str]) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
        """Word-piece ids (no [CLS]/[SEP]) and their character spans, in one tokenizer call."""
        return encode_pieces(self.tokenizer, texts)

    def _positions(self, own: np.ndarray, other: np.ndarray, degree: float, rng: random.Random) -> np.ndarray:
        """round(p·n) of the n word pieces, drawn among the eligible positions (all when fewer)."""
        m = min(len(own), len(other))
        a, b = own[:m], other[:m]
        eligible = self.is_word[a] & self.is_word[b] & (a != b) & (self.is_continuation[a] == self.is_continuation[b])
        want = target_count(degree, int(self.is_word[own].sum()))
        candidates = np.flatnonzero(eligible).tolist()
        return np.array(sorted(rng.sample(candidates, min(want, len(candidates)))), dtype=np.int64)


def _partner(i: int, lengths: np.ndarray, rng: random.Random) -> int:
    """Uniform among the other examples at least as long as example i in every text (pieces per
    field in `lengths`), else among all others; i itself only when it is alone."""
    others = np.flatnonzero(np.arange(len(lengths)) != i)
    longer = others[(lengths[others] >= lengths[i]).all(axis=1)]
    pool = longer if len(longer) else others
    return int(pool[rng.randrange(len(pool))]) if len(pool) else i
