"""`synonym`: EDA's synonym replacement (SR, Wei & Zou 2019) with WordNet 3.0.

`synonyms` is also the word source of EDA's random insertion (`eda`), so both methods agree on
which words are eligible and what they may become.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdaug.augmenters import resources
from kdaug.augmenters.base import register
from kdaug.augmenters.replace import WordReplacer

# EDA's stop-word list, copied from its reference code (NLTK's English list of the time, without
# the contraction fragments). Embedded because NLTK's stopwords corpus is a download, not offline.
STOP_WORDS = frozenset(
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she "
    "her hers herself it its itself they them their theirs themselves what which who whom this that "
    "these those am is are was were be been being have has had having do does did doing a an the and "
    "but if or because as until while of at by for with about against between into through during "
    "before after above below to from up down in out on off over under again further then once here "
    "there when where why how all any both each few more most other some such no nor not only own "
    "same so than too very s t can will just don should now".split()
)

_CACHE: dict[str, tuple[str, ...]] = {}


def synonyms(word: str) -> tuple[str, ...]:
    """Synonym candidates of a lower-cased word, in WordNet order; none for a stop-word.

    Cached per word, since a corpus repeats its words. The order is WordNet's (never a set's), so
    a seeded choice is the same in every process. Concurrent DoFn threads may compute a word
    twice; they store the same value.
    """
    found = _CACHE.get(word)
    if found is None:
        found = _CACHE[word] = () if word in STOP_WORDS else _wordnet_synonyms(word)
    return found


def _wordnet_synonyms(word: str) -> tuple[str, ...]:
    """Lemma names of all the word's synsets as EDA writes them ('_' and '-' become spaces,
    lower case), keeping only purely alphabetic words or phrases and never the word itself."""
    itself = word.replace("-", " ")
    found: dict[str, None] = {}  # an ordered set
    for name in resources.wordnet().lemma_names(word):
        candidate = name.replace("_", " ").replace("-", " ").lower()
        if candidate != itself and all(part.isascii() and part.isalpha() for part in candidate.split(" ")):
            found[candidate] = None
    return tuple(found)


@register
class SynonymReplacement(WordReplacer):
    """Replace round(p·n) of a text's n words, chosen among the non-stop-words WordNet knows, each
    by one of its synonyms drawn uniformly. Multi-word synonyms ("ice cream") are allowed as in
    EDA; they change the word count, which the measured `changed_frac` reflects."""

    name = "synonym"

    def check(self) -> None:
        resources.check_wordnet()

    def setup(self) -> None:
        resources.wordnet()

    def candidates(self, word: str) -> Sequence[str]:
        return synonyms(word)
