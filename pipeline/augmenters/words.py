"""Word-level view of a text that every token-level augmenter edits.

A text is split into tokens (words and single punctuation marks) with the whitespace before each
one kept, so that an edited text keeps the original spacing and punctuation wherever nothing was
changed: "He said, \"fine.\"" stays exactly that when no word is replaced.

The augmentation degree counts *word* positions (tokens with a letter or digit), the unit both
papers use; punctuation is never replaced and does not count.

An edit counts what it changes as it makes it (`Words.changed`): the rows' measured `changed_frac`
comes from the edit itself, so nothing is split again and no edit distance is computed
(`changed_words`, the re-split measure, stays to check those counts in tests and benchmarks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# (gap, token): every non-space character belongs to a token, so gaps are whitespace only.
_GAP_TOKEN = re.compile(r"(\s*)([\w'’-]+|[^\w\s])")
_ALNUM = re.compile(r"[^\W_]")  # \w without the underscore: what str.isalnum accepts
_ALPHA_WORD = re.compile(r"^[A-Za-z]+(?:[-'][A-Za-z]+)*$")


@dataclass
class Words:
    """Tokens of one text, the whitespace before each, the text's trailing whitespace, and how
    many word positions the edits made to this copy changed. `positions` caches `word_positions`
    on a split that is shared and never edited (`kdaug.augmenters.base.split_once`); copies
    leave it unset, since their edits may move words."""

    tokens: list[str]
    gaps: list[str]
    tail: str = ""
    changed: int = 0
    positions: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def split(cls, text: str) -> Words:
        pairs = _GAP_TOKEN.findall(text)
        stripped = text.rstrip()
        return cls([t for _, t in pairs], [g for g, _ in pairs], text[len(stripped) :])

    def join(self) -> str:
        return "".join([g + t for g, t in zip(self.gaps, self.tokens)]) + self.tail

    def copy(self) -> Words:
        return Words(list(self.tokens), list(self.gaps), self.tail, self.changed)

    def word_positions(self) -> tuple[int, ...] | list[int]:
        """Indices of tokens that count as words (contain a letter or digit)."""
        if self.positions is not None:
            return self.positions
        search = _ALNUM.search
        return [i for i, t in enumerate(self.tokens) if search(t)]


def is_word(token: str) -> bool:
    return _ALNUM.search(token) is not None


def word_count(phrase: str) -> int:
    """Words in a replacement or an insertion (a synonym may be a phrase: "ice cream")."""
    return len(phrase.split())


def is_alpha_word(token: str) -> bool:
    """A plain alphabetic word (hyphens and apostrophes inside allowed): the replaceable kind."""
    return _ALPHA_WORD.match(token) is not None


def match_case(template: str, word: str) -> str:
    """Give `word` the capitalisation pattern of `template` (lower, Title or UPPER)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def target_count(degree: float, n_words: int) -> int:
    """How many word positions a degree asks to change: round(p·n), at least one."""
    if n_words == 0:
        return 0
    return max(1, int(degree * n_words + 0.5))


def changed_words(before: list[str], after: list[str]) -> int:
    """Word positions changed between two word sequences (case-insensitive).

    Same length: positions that differ (Hamming). Otherwise the word-level edit distance, so an
    insertion or a deletion counts as one change each.
    """
    a = [w.lower() for w in before]
    b = [w.lower() for w in after]
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b))
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def only_words(words: Words) -> list[str]:
    return [t for t in words.tokens if is_word(t)]
