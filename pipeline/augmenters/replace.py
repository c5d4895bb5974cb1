"""Word replacement, the shared core of `synonym`, `knn`, `knn-teacher` and `random`.

These methods differ only in where a word's replacement candidates come from; choosing the
positions, honouring the degree and keeping the original case is the same for all of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from kdaug.augmenters import resources
from kdaug.augmenters.base import Augmenter, register
from kdaug.augmenters.words import Words, is_alpha_word, match_case, target_count, word_count


class WordReplacer(Augmenter):
    """Replace round(p·n) of a text's n words, chosen among the words that have candidates."""

    MEMO_LIMIT = 200_000  # distinct tokens remembered per augmenter before the memo starts over

    def __init__(self, options):
        super().__init__(options)
        self._by_token: dict[str, Sequence[str]] = {}

    def candidates(self, word: str) -> Sequence[str]:
        """Replacement candidates for a lower-cased word, none when it is not eligible."""
        raise NotImplementedError

    def token_candidates(self, token: str) -> Sequence[str]:
        """`candidates` of a text token as written, none unless it is a plain alphabetic word.

        Memoised per token: every degree and copy of a chunk asks about the same tokens, and the
        checks behind an answer (a regex, lower-casing, a table look-up) cost more than the
        replacement itself."""
        found = self._by_token.get(token)
        if found is None:
            if len(self._by_token) >= self.MEMO_LIMIT:
                self._by_token.clear()
            found = self._by_token[token] = self.candidates(token.lower()) if is_alpha_word(token) else ()
        return found

    def augment_words(self, words: Words, degree: float, rng: random.Random) -> Words:
        positions = words.word_positions()
        want = target_count(degree, len(positions))
        tokens, eligible_token = words.tokens, self.token_candidates
        eligible = [i for i in positions if eligible_token(tokens[i])]
        out = words.copy()
        for i in rng.sample(eligible, min(want, len(eligible))):
            token = tokens[i]
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
