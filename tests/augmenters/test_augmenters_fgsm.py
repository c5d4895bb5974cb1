"""AugPro-FGSM (`augpro-fgsm`) on the tiny random teacher: degree, determinism, pairs, HotFlip candidates."""

from __future__ import annotations

import numpy as np
import pytest

from kdaug.augmenters import AugmentOptions, create, projection, resources
from kdaug.augmenters.augpro_fgsm import K
from kdaug.augmenters.words import target_count
from tests.helpers import chunk

SENTENCES = [
    "the movie was good and the actors were great but the story felt long and slow",
    "an utterly charming and hilarious film that reminded me of my childhood summers",
    "it 's a mess , with no wit and only labored gags from start to finish",
    "contains no wit , only labored gags",
]
PAIRS = [
    ("A man is playing a guitar on the stage tonight.", "A person is performing music for an audience."),
    ("The cat sat quietly on the warm windowsill.", "An animal is resting near a window in the sun."),
]


@pytest.fixture(scope="module")
def fgsm(tiny_teacher_dir):
    augmenter = create("augpro-fgsm", AugmentOptions(seed=5, teacher_dir=tiny_teacher_dir))
    augmenter.setup()
    return augmenter


@pytest.mark.parametrize("degree", [0.1, 0.3])
def test_degree_and_changed_pieces(fgsm, degree):
    examples = chunk(SENTENCES)
    for ex, pieces, row in zip(examples, fgsm.flip_chunk(examples, degree, 0), fgsm.augment_chunk(examples, degree, 0)):
        own, new, _ = pieces["text_a"]
        n = int(fgsm.is_word[own].sum())
        changed = np.flatnonzero(new != own)
        assert len(changed) == target_count(degree, n)  # short texts, every word piece has candidates
        assert all(fgsm.is_word[new[changed]]) and all(
            fgsm.is_continuation[new[changed]] == fgsm.is_continuation[own[changed]]
        )
        assert row["text_a"] != ex["text_a"] and row["changed_frac"] == pytest.approx(len(changed) / n)
        assert row["partner_id"] is None and row["mix_lambda"] is None


def test_deterministic_and_copies_differ(fgsm, tiny_teacher_dir):
    examples = chunk(SENTENCES)
    first = fgsm.augment_chunk(examples, 0.3, 0)
    fgsm.augment_chunk(chunk(PAIRS), 0.3, 0)  # another chunk in between: no cache carried over
    fresh = create("augpro-fgsm", AugmentOptions(seed=5, teacher_dir=tiny_teacher_dir))
    fresh.setup()
    assert first == fgsm.augment_chunk(examples, 0.3, 0) == fresh.augment_chunk(examples, 0.3, 0)
    assert fgsm.augment_chunk(examples, 0.3, 0) != fgsm.augment_chunk(examples, 0.3, 1)


def test_pairs_edit_each_text(fgsm):
    examples = chunk(PAIRS)
    rows = fgsm.augment_chunk(examples, 0.2, 0)
    for ex, row, pieces in zip(examples, rows, fgsm.flip_chunk(examples, 0.2, 0)):
        assert set(pieces) == {"text_a", "text_b"}
        for f in ("text_a", "text_b"):
            own, new, _ = pieces[f]
            assert (new != own).sum() == target_count(0.2, int(fgsm.is_word[own].sum()))
            assert row[f] != ex[f]


def test_replacement_is_among_the_k_nearest(fgsm):
    examples = chunk(SENTENCES + PAIRS)
    table = resources.teacher_word_embeddings(fgsm.model_dir)
    for pieces in fgsm.flip_chunk(examples, 0.5, 0):
        for own, new, _ in pieces.values():
            k = np.flatnonzero(new != own)
            near, _ = projection.nearest(fgsm.model_dir, table[own[k]], K)
            assert all(n in row.tolist() for n, row in zip(new[k], near))
