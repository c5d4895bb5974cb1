"""AugPro-Mix (`augpro-mix`) and the nearest-token projection behind it, on the packaged teacher."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kdaug.augmenters import REGISTRY, AugmentOptions, create, projection, resources
from kdaug.augmenters.augpro import splice
from kdaug.augmenters.words import target_count
from tests.helpers import chunk

OPTIONS = AugmentOptions(seed=5)
SENTENCES = [
    "the movie was good and the actors were great but the story felt long and slow",
    "an utterly charming and hilarious film that reminded me of my childhood summers",
    "it 's a mess , with no wit and only labored gags from start to finish",
    "a thoughtful , beautifully acted drama about grief and the families it leaves behind",
    "the director seems to have forgotten that audiences need a reason to care",
    "remains utterly satisfied to remain the same throughout its running time",
    "a gorgeous visual feast with a script that never quite catches up",
    "the performances are strong , the dialogue sharp and the ending unforgettable",
    "hide new secretions from the parental units",
    "this is one of the worst sequels ever made and a waste of everyone 's talent",
    "surprisingly moving , even for viewers who usually avoid sentimental stories",
    "contains no wit , only labored gags",
]
PAIRS = [
    ("A man is playing a guitar on the stage tonight.", "A person is performing music for an audience."),
    ("The cat sat quietly on the warm windowsill.", "An animal is resting near a window in the sun."),
    ("Two children are building a castle of sand at the beach.", "Kids are playing outside by the sea."),
    ("The committee postponed its decision until next spring.", "A decision was delayed by the group."),
]


@pytest.fixture(scope="module")
def model_dir():
    return resources.resolve_teacher_dir(None)


@pytest.fixture(scope="module")
def mixer():
    augmenter = create("augpro-mix", OPTIONS)
    augmenter.setup()
    return augmenter


# --- projection ---------------------------------------------------------------------------------


def test_exact_vocabulary_embedding_projects_to_its_token(model_dir):
    vocab, table = resources.teacher_vocab(model_dir), resources.teacher_word_embeddings(model_dir)
    ids = np.array([vocab.index(w) for w in ("movie", "good", "##ing", "the", ",", "2010")])
    assert projection.project(model_dir, table[ids]).tolist() == ids.tolist()
    near, dist = projection.nearest(model_dir, table[ids], k=3)
    assert near[:, 0].tolist() == ids.tolist() and np.all(dist[:, 0] == 0) and np.all(np.diff(dist, axis=1) >= 0)


def test_the_gpu_search_finds_what_faiss_finds(model_dir):
    """The search `nearest` runs on a CUDA device (torch matmul + top-k), run here on the CPU: the
    same candidates as FAISS for mixed vectors (between two tokens, as AugPro-Mix makes them)."""
    table = resources.teacher_word_embeddings(model_dir)
    rng = np.random.default_rng(0)
    a, b, lam = rng.integers(1000, 30000, 200), rng.integers(1000, 30000, 200), rng.uniform(0.2, 0.8, (200, 1))
    queries = (lam * table[a] + (1 - lam) * table[b]).astype(np.float32)
    index, token_ids = projection._vocabulary_index(model_dir)
    _, rows = index.search(queries, 5)
    torch_ids, torch_rows = projection._torch_search(model_dir, queries, 5, "cpu")
    assert (torch_ids is token_ids) and (torch_rows[:, :3] == rows[:, :3]).mean() > 0.99


def test_special_tokens_are_never_projected_to(model_dir):
    vocab, table = resources.teacher_vocab(model_dir), resources.teacher_word_embeddings(model_dir)
    special = [i for i, w in enumerate(vocab) if projection.is_special(w)]
    assert len(special) == 999  # [PAD] [UNK] [CLS] [SEP] [MASK] and 994 [unusedN]
    out = projection.project(model_dir, table[special])
    assert not any(projection.is_special(vocab[i]) for i in out)


def test_projection_is_the_exact_float64_nearest_neighbour(model_dir):
    vocab, table = resources.teacher_vocab(model_dir), resources.teacher_word_embeddings(model_dir)
    allowed = np.array([i for i, w in enumerate(vocab) if not projection.is_special(w)])
    rng = np.random.default_rng(0)
    a, b = rng.choice(allowed, 40), rng.choice(allowed, 40)
    lam = rng.uniform(0.4, 0.6, (40, 1))
    mixes = lam * table[a].astype(np.float64) + (1 - lam) * table[b]
    candidates = table[allowed].astype(np.float64)
    squared = (candidates**2).sum(1)[None] - 2 * mixes @ candidates.T  # + |mix|², the same for every candidate
    assert projection.project(model_dir, mixes).tolist() == allowed[squared.argmin(axis=1)].tolist()


def test_a_tie_goes_to_the_lower_token_id(model_dir):
    vocab, table = resources.teacher_vocab(model_dir), resources.teacher_word_embeddings(model_dir)
    a, b = vocab.index("good"), vocab.index("bad")
    midpoint = (table[a].astype(np.float64) + table[b]) / 2  # exactly equidistant in float64
    near, dist = projection.nearest(model_dir, midpoint[None], k=2)
    assert sorted(near[0].tolist()) == sorted([a, b]) and dist[0, 0] == dist[0, 1]
    assert near[0, 0] == min(a, b)


# --- augpro-mix -----------------------------------------------------------------------------------


def test_registered():
    assert "augpro-mix" in REGISTRY


@pytest.mark.parametrize("degree", [0.1, 0.3, 0.5])
def test_degree_caps_and_tracks_the_measured_changed_fraction(mixer, degree):
    examples = chunk(SENTENCES)
    rows, mixes = mixer.augment_chunk(examples, degree, 0), mixer.mix_chunk(examples, degree, 0)
    targets = []
    for row, mix in zip(rows, mixes):
        own, new, _ = mix.pieces["text_a"]
        n = int(mixer.is_word[own].sum())
        changed = int((new != own).sum())
        assert changed <= target_count(degree, n)  # never more than the degree asks
        assert row["changed_frac"] == pytest.approx(changed / n)  # the row reports what was measured
        targets.append(target_count(degree, n) / n)
    measured = np.mean([r["changed_frac"] for r in rows])
    assert abs(measured - np.mean(targets)) < 0.03


def test_higher_degree_changes_more(mixer):
    examples = chunk(SENTENCES)
    means = [np.mean([r["changed_frac"] for r in mixer.augment_chunk(examples, p, 0)]) for p in (0.1, 0.3, 0.5)]
    assert means[0] < means[1] < means[2]


def test_partner_is_another_example_of_the_chunk_and_its_tokens_are_used(mixer):
    examples = chunk(SENTENCES)
    ids = [ex["source_id"] for ex in examples]
    rows, mixes = mixer.augment_chunk(examples, 0.3, 0), mixer.mix_chunk(examples, 0.3, 0)
    from_partner = total = 0
    for ex, row, mix in zip(examples, rows, mixes):
        assert row["partner_id"] in ids and row["partner_id"] != ex["source_id"]
        assert row["partner_id"] == ids[mix.partner]
        own, new, _ = mix.pieces["text_a"]
        partner = mixer._encode([examples[mix.partner]["text_a"]])[0][0]
        moved = np.flatnonzero(new != own)
        assert set(moved) <= set(mix.chosen["text_a"])  # only the chosen positions move
        from_partner += int((new[moved] == partner[moved]).sum())
        total += len(moved)
    assert total > 0 and from_partner / total > 0.95  # λ ≤ 0.5: the partner's aligned token wins


def test_lambda_is_recorded_folded_and_follows_mix_alpha():
    examples = chunk(SENTENCES)
    lams = {}
    for alpha in (0.05, 1000.0):
        augmenter = create("augpro-mix", AugmentOptions(seed=5, mix_alpha=alpha))
        augmenter.setup()
        lams[alpha] = np.array([r["mix_lambda"] for r in augmenter.augment_chunk(examples, 0.3, 0)])
        assert np.all((lams[alpha] >= 0) & (lams[alpha] <= 0.5))
    assert np.median(lams[0.05]) < 0.01  # Beta(0.05, 0.05) sits near 0 or 1, folded near 0
    assert np.all(lams[1000.0] > 0.45)  # Beta(1000, 1000) sits at one half


def test_deterministic_and_copies_differ(mixer):
    examples = chunk(SENTENCES)
    again = create("augpro-mix", OPTIONS)
    again.setup()
    assert mixer.augment_chunk(examples, 0.3, 0) == again.augment_chunk(examples, 0.3, 0)
    texts = lambda copy: [r["text_a"] for r in mixer.augment_chunk(examples, 0.3, copy)]  # noqa: E731
    assert texts(0) != texts(1)


def test_same_rows_in_another_process(mixer):
    examples = chunk(SENTENCES)
    code = (
        "import json, sys\n"
        "from kdaug.augmenters import AugmentOptions, create\n"
        "a = create('augpro-mix', AugmentOptions(seed=5)); a.setup()\n"
        "print(json.dumps(a.augment_chunk(json.loads(sys.stdin.read()), 0.3, 0)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(examples), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(mixer.augment_chunk(examples, 0.3, 0)))


def test_pairs_mix_text_a_with_text_a_and_text_b_with_text_b(mixer):
    examples = chunk(PAIRS)
    rows, mixes = mixer.augment_chunk(examples, 0.5, 0), mixer.mix_chunk(examples, 0.5, 0)
    for ex, row, mix in zip(examples, rows, mixes):
        partner = examples[mix.partner]
        assert row["text_b"] is not None and row["text_a"] != ex["text_a"] and row["text_b"] != ex["text_b"]
        for f in ("text_a", "text_b"):
            own, new, _ = mix.pieces[f]
            moved = np.flatnonzero(new != own)
            assert len(moved) and np.array_equal(new[moved], mixer._encode([partner[f]])[0][0][moved])
        n = sum(int(mixer.is_word[mix.pieces[f][0]].sum()) for f in ("text_a", "text_b"))
        changed = sum(int((new != own).sum()) for own, new, _ in mix.pieces.values())
        assert row["changed_frac"] == pytest.approx(changed / n)


def test_single_sentence_rows_keep_text_b_none(mixer):
    assert all(r["text_b"] is None for r in mixer.augment_chunk(chunk(SENTENCES[:3]), 0.3, 0))


def test_a_one_example_chunk_is_its_own_partner_and_unchanged(mixer):
    (row,) = mixer.augment_chunk(chunk(SENTENCES[:1]), 0.5, 0)
    assert row["partner_id"] == "s0" and row["changed_frac"] == 0.0 and row["text_a"] == SENTENCES[0]
    assert mixer.augment_chunk([], 0.5, 0) == []


def test_a_shorter_partner_is_avoided_when_a_longer_one_exists(mixer):
    examples = chunk(["one two three", "alpha beta gamma delta epsilon zeta eta theta", "red green"])
    partners = [[r["partner_id"] for r in mixer.augment_chunk(examples, 0.5, copy)] for copy in range(12)]
    assert {p[0] for p in partners} == {"s1"}  # the only text at least as long as "one two three"
    assert {p[1] for p in partners} == {"s0", "s2"}  # the longest: nobody is longer, any other will do


def test_splice_keeps_the_rest_of_the_text_and_the_case(mixer):
    text = "Hello, Wörld 🙂 secretions!"
    ((own, spans),) = mixer._encode([text])
    pieces = [mixer.vocab[i] for i in own]
    assert pieces == ["hello", ",", "world", "[UNK]", "secret", "##ions", "!"]
    new = own.copy()
    new[0], new[4] = mixer.vocab.index("goodbye"), mixer.vocab.index("hidden")
    assert splice(text, spans, own, new, mixer.vocab) == "Goodbye, Wörld 🙂 hiddenions!"


def test_outputs_mostly_retokenize_to_the_measured_pieces(mixer):
    examples = chunk(SENTENCES)
    rows, mixes = mixer.augment_chunk(examples, 0.3, 0), mixer.mix_chunk(examples, 0.3, 0)
    same = [mixer._encode([r["text_a"]])[0][0].tolist() == m.pieces["text_a"][1].tolist() for r, m in zip(rows, mixes)]
    assert np.mean(same) >= 0.75
