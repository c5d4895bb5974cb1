"""`eda`: EDA's random insertion, swap and deletion (Wei & Zou 2019); its synonym replacement is
the separate method `synonym`.

EDA's reference code makes separate sentences per operation; here each text gets ONE operation,
drawn uniformly by the row's random stream, so that one row is one augmented example and the
degree means the same for every operation: k = round(p·n) of the text's n words. In a pair the
two texts draw their operations independently.

Only word tokens move, appear or disappear; punctuation and the whitespace of untouched words stay.
"""

from __future__ import annotations

import math
import random

from kdaug.augmenters import resources
from kdaug.augmenters.base import Augmenter, register
from kdaug.augmenters.synonym import synonyms
from kdaug.augmenters.words import Words, is_alpha_word, target_count, word_count


@register
class EasyDataAugmentation(Augmenter):
    """One of insert, swap or delete per text, k = round(p·n) times (see the module docstring)."""

    name = "eda"
    OPERATIONS = ("insert", "swap", "delete")

    def check(self) -> None:
        resources.check_wordnet()

    def setup(self) -> None:
        resources.wordnet()

    def augment_words(self, words: Words, degree: float, rng: random.Random) -> Words:
        n = len(words.word_positions())
        if n == 0:
            return words.copy()
        k = target_count(degree, n)
        operation = rng.choice(self.OPERATIONS)
        if operation == "insert":
            inserted = random_insertion(words, k, rng)
            if inserted is not None:
                return inserted
        if operation == "delete":
            return random_deletion(words, k, rng)
        return random_swap(words, k, rng)


def random_insertion(words: Words, k: int, rng: random.Random) -> Words | None:
    """Insert k times a synonym of a random non-stop word of the text after a random word.

    None when no word of the text has a synonym: the caller swaps instead, since inserting
    nothing would silently ignore the degree.
    """
    sources = [t.lower() for t in words.tokens if is_alpha_word(t) and synonyms(t.lower())]
    if not sources:
        return None
    out = words.copy()
    for _ in range(k):
        new = rng.choice(synonyms(rng.choice(sources)))
        after = rng.choice(out.word_positions())
        out.tokens.insert(after + 1, new)
        out.gaps.insert(after + 1, " ")
        out.changed += word_count(new)
    return out


def random_swap(words: Words, k: int, rng: random.Random) -> Words:
    """Swap two words ceil(k/2) times, so that about k word positions change.

    Only words that differ are swapped: swapping equal words would change nothing. A text whose
    words are all the same comes back unchanged.
    """
    out = words.copy()
    positions = words.word_positions()
    for _ in range(math.ceil(k / 2)):
        i = rng.choice(positions)
        others = [j for j in positions if out.tokens[j].lower() != out.tokens[i].lower()]
        if not others:  # every word equals word i, so every word is the same
            break
        j = rng.choice(others)
        out.tokens[i], out.tokens[j] = out.tokens[j], out.tokens[i]
    out.changed += sum(out.tokens[i].lower() != words.tokens[i].lower() for i in positions)  # a swap may undo one
    return out


def random_deletion(words: Words, k: int, rng: random.Random) -> Words:
    """Delete k words, always keeping at least one (the text has one at least).

    The word after a deleted one keeps the shorter of the two gaps (its own on a tie): "a b c"
    loses "b" as "a c", and a deleted first word or a word after an opening quote leaves no
    stray space ("Hello world" → "world", '"Hi there"' → '"there"').
    """
    out = words.copy()
    positions = words.word_positions()
    for i in sorted(rng.sample(positions, min(k, len(positions) - 1)), reverse=True):
        if i + 1 < len(out.tokens):
            out.gaps[i + 1] = min(out.gaps[i + 1], out.gaps[i], key=len)
        del out.tokens[i], out.gaps[i]
        out.changed += 1
    return out
