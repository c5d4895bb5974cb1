"""Word replacement, the shared core of `synonym`, `knn`, `knn-teacher` and `random`.

These methods differ only in where a word's replacement candidates come from; choosing the
positions, honouring the degree and keeping the original case is the same for all of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pipeline import resources
from pipeline.augmenters.base import Augmenter, register
from pipeline.words import Words, is_alpha_word, match_case, target_count, word_count


class WordReplacer(Augmenter):
    """Replace round(p·n) of a text's n words, chosen among the words that have candidates."""

    def candidates(self, word: str) -> Sequence[str]:
        """Replacement candidates for a lower-cased word, none when it is not eligible."""
        raise NotImplementedError

    def augment_words(self, words: Words, degree: float, rng: random.Random) -> Words:
        positions = words.word_positions()
        want = target_count(degree, len(positions))
        eligible = [i for i in positions if is_alpha_word(words.tokens[i]) and self.candidates(words.tokens[i].lower())]
        out = words.copy()
        for i in rng.sample(eligible, min(want, len(eligible))):
            token = words.tokens[i]
            word = token.lower()
            new = self.pick(word, rng)
            out.tokens[i] = match_case(token, new)
            # A replacement never is the word; a phrase may hold it ("cream" → "ice cream": one insertion).
            out.changed += word_count(new) - (word in new.split())
        return out

    def pick(self, word: str, rng: random.Random) -> str:
        """One replacement for an eligible word; candidates never include the word itself."""
        return rng.choice(self.candidates(word))


@register
class RandomReplacement(WordReplacer):
    """The no-semantics control: replace words with words drawn uniformly from the teacher's
    whole-word vocabulary (about 21,700 alphabetic word pieces of all-MiniLM-L6-v2)."""

    name = "random"

    def setup(self) -> None:
        vocab = resources.teacher_vocab(resources.resolve_teacher_dir(self.options.teacher_dir))
        self.vocab = [w for w in vocab if w.isalpha() and w.isascii()]

    def candidates(self, word: str) -> Sequence[str]:
        return self.vocab

    def pick(self, word: str, rng: random.Random) -> str:
        while (new := rng.choice(self.vocab)) == word:  # p ≈ 1/21,700: draw again
            pass
        return new
