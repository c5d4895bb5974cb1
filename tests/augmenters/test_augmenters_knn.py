"""KNN word replacement (`knn`, `knn-teacher`) and the neighbour tables behind it."""

from __future__ import annotations

import random

import faiss
import numpy as np
import pytest

from kdaug.augmenters import REGISTRY, AugmentOptions, create, resources
from kdaug.augmenters.neighbours import nearest_neighbours, replaceable
from kdaug.augmenters.words import Words, changed_words, only_words, target_count

OPTIONS = AugmentOptions(seed=3, glove_vocab=20_000, knn_k=10)
SENTENCE = "the movie was good and the actors were great but the story felt long and slow"


@pytest.fixture(scope="module")
def knn():
    augmenter = create("knn", OPTIONS)
    augmenter.setup()
    return augmenter


@pytest.fixture(scope="module")
def knn_teacher():
    augmenter = create("knn-teacher", OPTIONS)
    augmenter.setup()
    return augmenter


def example(text_a, text_b=None, source_id="s1"):
    return {"source_id": source_id, "text_a": text_a, "text_b": text_b, "label": 1}


def test_replaceable_keeps_whole_lower_case_words_once():
    vocab = ["[PAD]", "[unused0]", "the", "##ing", "Paris", "café", "2010", "well-known", "film", "the"]
    assert [vocab[i] for i in replaceable(vocab)] == ["the", "film"]


def test_table_matches_brute_force_cosine():
    words, vectors = resources.glove(3_000)
    x = vectors[replaceable(words)]
    ids, sims = nearest_neighbours(x, 10, batch=500)  # several batches
    assert ids.dtype == np.int32 and ids.shape == (len(x), 10)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in random.Random(0).sample(range(len(x)), 50):
        cos = unit @ unit[i]
        cos[i] = -np.inf
        assert i not in ids[i]
        np.testing.assert_allclose(sims[i], np.sort(cos)[::-1][:10], atol=1e-5)  # the 10 best, best first
        np.testing.assert_allclose(cos[ids[i]], sims[i], atol=1e-5)  # and they belong to these ids


def test_ties_are_broken_by_index_and_self_is_excluded():
    vectors = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    ids, _ = nearest_neighbours(vectors, 3)
    assert ids.tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]]


def test_table_does_not_depend_on_thread_count():
    words, vectors = resources.glove(3_000)
    x = vectors[replaceable(words)]
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one = nearest_neighbours(x, 10)
    finally:
        faiss.omp_set_num_threads(threads)
    many = nearest_neighbours(x, 10)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def test_k_must_leave_a_neighbour():
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(np.eye(3, dtype=np.float32), 3)


def test_registered_and_tables_shared_per_process(knn):
    assert {"knn", "knn-teacher"} <= set(REGISTRY)
    other = create("knn", OPTIONS)
    other.setup()
    assert other.neighbours is knn.neighbours


def test_neighbours_are_k_other_words_and_sensible(knn, knn_teacher):
    for augmenter in (knn, knn_teacher):
        for word, neighbours in augmenter.neighbours.items():
            assert len(neighbours) == 10 and word not in neighbours
        assert "movies" in augmenter.candidates("movie")
        assert {"awful", "horrible"} <= set(augmenter.candidates("terrible"))
    assert 15_000 < len(knn.neighbours) < 20_000  # the alphabetic part of 20,000 GloVe words
    assert len(knn_teacher.neighbours) == 21_745


@pytest.mark.parametrize("method", ["knn", "knn-teacher"])
@pytest.mark.parametrize("degree", [0.1, 0.3, 0.5, 1.0])
def test_degree_is_respected(method, degree, knn, knn_teacher):
    augmenter = {"knn": knn, "knn-teacher": knn_teacher}[method]
    words = Words.split(SENTENCE)
    assert all(augmenter.candidates(w) for w in words.tokens)
    for seed in range(5):
        out = augmenter.augment_words(words, degree, random.Random(seed))
        assert changed_words(only_words(words), only_words(out)) == target_count(degree, len(words.word_positions()))


def test_same_seed_same_rows_and_copies_differ(knn):
    chunk = [example(SENTENCE, source_id=f"s{i}") for i in range(4)]
    first = knn.augment_chunk(chunk, 0.3, 0)
    again = create("knn", OPTIONS)
    again.setup()
    assert again.augment_chunk(chunk, 0.3, 0) == first
    second = knn.augment_chunk(chunk, 0.3, 1)
    assert [r["text_a"] for r in first] != [r["text_a"] for r in second]
    assert len({r["text_a"] for r in first}) > 1  # rows draw their own streams


def test_case_is_preserved(knn):
    out = knn.augment_words(Words.split("Good MOVIE , good movie"), 1.0, random.Random(1)).tokens
    assert out[0] != "Good" and out[0][0].isupper() and out[0][1:].islower()
    assert out[1] != "MOVIE" and out[1].isupper()
    assert out[2] == ","
    assert out[3].islower() and out[4].islower() and out[3] != "good" and out[4] != "movie"


def test_words_outside_the_table_are_untouched(knn):
    words = Words.split("the zzqxv movie , well-known Zürich 1999 acting !")
    out = knn.augment_words(words, 1.0, random.Random(0)).tokens
    changed = [i for i, (a, b) in enumerate(zip(words.tokens, out)) if a != b]
    assert changed == [0, 2, 7]


def test_pairs_augment_both_texts(knn):
    row = knn.augment_chunk([example("the movie was good", "the actors were great")], 0.5, 0)[0]
    assert row["text_a"] != "the movie was good" and row["text_b"] != "the actors were great"
    assert row["changed_frac"] == pytest.approx(4 / 8)
