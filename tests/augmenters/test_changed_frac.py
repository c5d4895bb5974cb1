"""`changed_frac` is counted by the edits themselves (`Words.changed`); it must agree with the
re-split measure (split input and output again, Hamming or word edit distance) on real rows."""

import random

import pytest

from kdaug.augmenters import AugmentOptions, create
from kdaug.augmenters.base import split_once, word_change_fraction

TEXTS = [
    "it 's a charming and often affecting journey .",
    "the movie is a dull , lifeless mess that never finds its footing",
    "A gorgeous, witty, seductive film -- the ice cream of cinema.",
    "Unflinchingly bleak and desperate; the acting, costumes, music and cinematography are all excellent.",
    "good",
]
PAIRS = [("He said the deal was good.", "The company said the agreement was fine and fair.")]


@pytest.mark.parametrize("method", ["knn", "synonym", "eda", "random"])
def test_counted_changes_match_the_resplit_measure(method):
    augmenter = create(method, AugmentOptions(glove_vocab=20_000))
    augmenter.setup()
    examples = [{"source_id": f"s{i}", "text_a": t, "text_b": None, "label": 0} for i, t in enumerate(TEXTS)]
    examples += [{"source_id": f"p{i}", "text_a": a, "text_b": b, "label": 0} for i, (a, b) in enumerate(PAIRS)]
    for degree in (0.1, 0.3, 0.5, 1.0):
        for copy in range(8):
            for ex, row in zip(examples, augmenter.augment_chunk(examples, degree, copy)):
                measured = word_change_fraction((ex["text_a"], row["text_a"]), (ex["text_b"], row["text_b"]))
                if method in ("knn", "random"):  # one word for one word: the re-split measure is exact
                    assert row["changed_frac"] == pytest.approx(measured), (method, row)
                else:  # a multi-word synonym counts per slot; the edit distance may align its words
                    # with neighbours and find fewer: never more
                    assert row["changed_frac"] == pytest.approx(measured) or row["changed_frac"] > measured, (
                        method,
                        row,
                    )


@pytest.mark.parametrize("method", ["knn", "synonym", "eda", "random"])
def test_augment_words_never_edits_its_argument(method):
    """The split of a text is shared by all its degrees and copies (`split_once`): an edit made in
    place would leak into the next row."""
    augmenter = create(method, AugmentOptions(glove_vocab=20_000))
    augmenter.setup()
    for text in TEXTS:
        words = split_once(text)[0]
        before = (list(words.tokens), list(words.gaps), words.tail, words.changed)
        for degree in (0.1, 0.5, 1.0):
            for seed in range(5):
                augmenter.augment_words(words, degree, random.Random(seed))
                assert (words.tokens, words.gaps, words.tail, words.changed) == before, (method, text)
