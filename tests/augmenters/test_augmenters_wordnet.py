"""The WordNet methods: `synonym` (EDA's SR) and `eda` (EDA's RI, RS, RD)."""

from __future__ import annotations

import inspect
import json
import os
import random
import subprocess
import sys

import pytest

from kdaug.augmenters import AugmentOptions, create
from kdaug.augmenters.eda import random_deletion, random_insertion, random_swap
from kdaug.augmenters.synonym import STOP_WORDS, synonyms
from kdaug.augmenters.words import Words, changed_words, is_word, only_words, target_count

SST = "it 's a charming and often affecting journey . "
SST_ELIGIBLE = {3: "charming", 5: "often", 6: "affecting", 7: "journey"}  # token index → word
MRPC = 'The company said on Tuesday that its "new" plant, in Ohio, would open in 2005.'
PAIR = {"source_id": "p1", "text_a": MRPC, "text_b": 'Officials said, "the plant opens soon."', "label": 1}


def example(text_a: str, text_b: str | None = None, source_id: str = "s1") -> dict:
    return {"source_id": source_id, "text_a": text_a, "text_b": text_b, "label": 0}


DETERMINISM_EXAMPLES = [example(SST, source_id="a"), PAIR]


def rows_of(augmenter, examples: list[dict]) -> list[list]:  # its source also runs in the other process
    return [[r["text_a"], r["text_b"], r["id"]] for c in range(3) for r in augmenter.augment_chunk(examples, 0.3, c)]


_OTHER_PROCESS = (
    inspect.getsource(rows_of)
    + """
import json, sys
from kdaug.augmenters import AugmentOptions, create
examples = json.loads(sys.argv[1])
print(json.dumps({name: rows_of(create(name, AugmentOptions(seed=3)), examples) for name in ("synonym", "eda")}))
"""
)


@pytest.fixture(scope="module", autouse=True)
def other_process():
    """The determinism rows made by a second interpreter with another string-hash seed (so any
    set-order dependence shows). Started first, so that its start-up overlaps this one's."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    args = [sys.executable, "-c", _OTHER_PROCESS, json.dumps(DETERMINISM_EXAMPLES)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def augmenters():
    made = {name: create(name, AugmentOptions(seed=3)) for name in ("synonym", "eda")}
    for augmenter in made.values():
        augmenter.setup()
    return made


def punctuation(words: Words) -> list[str]:
    return [t for t in words.tokens if not is_word(t)]


# --- synonym candidates -------------------------------------------------------------------------


def test_synonyms_are_clean_wordnet_lemmas_in_a_fixed_order():
    found = synonyms("ice")
    assert "water ice" in found and "frosting" in found  # multi-word lemmas, '_' → ' '
    assert "ice skating rink" in found  # '-' → ' ' as in EDA
    assert "ice" not in found and len(set(found)) == len(found)
    assert all(c.isalpha() or c == " " for w in found for c in w) and all(w == w.lower() for w in found)
    assert found[:3] == ("water ice", "sparkler", "frosting")  # WordNet order, not a set's
    assert synonyms("well-known") == ("long familiar",)  # "well known" is the word itself
    assert synonyms("qwzxv") == ()


def test_stop_words_have_no_candidates_even_where_wordnet_has_synsets():
    assert {"can", "will", "do", "it", "s"} <= STOP_WORDS and len(STOP_WORDS) == 127
    assert synonyms("can") == synonyms("will") == synonyms("do") == ()


# --- synonym ------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree, target, changed", [(0.1, 1, 1), (0.3, 2, 2), (0.5, 4, 4), (0.9, 7, 4)])
def test_synonym_changes_target_count_positions_capped_by_eligible(augmenters, degree, target, changed):
    words = Words.split(SST)
    assert target_count(degree, len(words.word_positions())) == target
    for copy in range(10):
        out = augmenters["synonym"].augment_words(words, degree, random.Random(copy))
        diff = [i for i, (a, b) in enumerate(zip(words.tokens, out.tokens)) if a != b]
        assert len(diff) == changed and set(diff) <= set(SST_ELIGIBLE)
        assert all(out.tokens[i] in synonyms(SST_ELIGIBLE[i]) for i in diff)
        assert out.gaps == words.gaps and out.tail == words.tail  # spacing and punctuation kept


def test_synonym_never_replaces_stop_words_and_keeps_case(augmenters):
    words = Words.split("You can Watch it, and will ENJOY the film.")
    content = {2, 7, 9}  # Watch, ENJOY, film
    for copy in range(20):
        out = augmenters["synonym"].augment_words(words, 1.0, random.Random(copy))
        assert [i for i, (a, b) in enumerate(zip(words.tokens, out.tokens)) if a != b] == sorted(content)
        assert out.tokens[2][0].isupper() and out.tokens[2][1:].islower()
        assert out.tokens[7].isupper() and out.tokens[9].islower()


def test_synonym_measured_fraction_and_row_fields(augmenters):
    rows = augmenters["synonym"].augment_chunk([example(SST, source_id="a"), PAIR], 0.3, 0)
    assert [r["source_id"] for r in rows] == ["a", "p1"] and [r["label"] for r in rows] == [0, 1]
    assert all(r["copy"] == 0 and r["teacher_logits"] is None for r in rows)
    # measured: 2 of 8 words replaced, more when a multi-word synonym lengthens the text
    before, after = only_words(Words.split(SST)), only_words(Words.split(rows[0]["text_a"]))
    assert rows[0]["changed_frac"] == changed_words(before, after) / 8 >= 2 / 8
    # a pair: 5 of text_a's 15 words and 2 of text_b's 6
    assert rows[1]["text_a"] != PAIR["text_a"] and rows[1]["text_b"] != PAIR["text_b"]
    assert rows[1]["changed_frac"] >= 7 / 21


def test_synonym_without_eligible_word_returns_text_unchanged(augmenters):
    for text in ("it is what it is .", "", "...", "2005 !"):
        (row,) = augmenters["synonym"].augment_chunk([example(text)], 0.5, 0)
        assert row["text_a"] == text and row["changed_frac"] == 0.0


def test_synonym_on_one_word(augmenters):
    (row,) = augmenters["synonym"].augment_chunk([example("Charming!")], 0.1, 0)
    assert row["text_a"] != "Charming!" and row["text_a"].endswith("!") and row["text_a"][0].isupper()
    assert row["text_a"][:-1].lower() in synonyms("charming") and row["changed_frac"] == 1.0


# --- eda operations -----------------------------------------------------------------------------


def test_random_insertion_adds_k_synonyms_of_non_stop_words_with_a_space():
    words = Words.split("The movie, sadly, will end.")  # "will" has synsets but is a stop-word
    allowed = set(synonyms("movie")) | set(synonyms("sadly")) | set(synonyms("end"))
    for seed in range(10):
        out = random_insertion(words, 3, random.Random(seed))
        inserted = [i for i, t in enumerate(out.tokens) if t in allowed]
        assert len(out.tokens) == len(words.tokens) + 3 and len(inserted) == 3
        assert all(out.gaps[i] == " " for i in inserted)
        kept = [i for i in range(len(out.tokens)) if i not in inserted]
        assert Words([out.tokens[i] for i in kept], [out.gaps[i] for i in kept], out.tail) == words
    assert random_insertion(Words.split("He will, can it?"), 2, random.Random(0)) is None


def test_random_swap_moves_only_distinct_words():
    words = Words.split(MRPC)
    for seed in range(10):
        out = random_swap(words, 3, random.Random(seed))  # ceil(3/2) = 2 swaps
        changed = sum(a != b for a, b in zip(words.tokens, out.tokens))
        assert 2 <= changed <= 4 and sorted(out.tokens) == sorted(words.tokens)
        assert punctuation(out) == punctuation(words) and out.gaps == words.gaps
    repeated = Words.split("so so so so good")
    for seed in range(10):  # a swap of two equal words would change nothing
        assert random_swap(repeated, 2, random.Random(seed)).tokens.index("good") != 4
    same = Words.split("very very very")
    assert random_swap(same, 2, random.Random(0)) == same


def test_random_deletion_removes_k_words_with_their_gap_and_keeps_one():
    words = Words.split(MRPC)
    for seed in range(10):
        out = random_deletion(words, 4, random.Random(seed))
        assert len(only_words(out)) == len(only_words(words)) - 4 and punctuation(out) == punctuation(words)
        assert "  " not in out.join() and not out.join().startswith(" ")
    abc = {random_deletion(Words.split("a b c"), 1, random.Random(s)).join() for s in range(30)}
    assert abc == {"b c", "a c", "a b"}
    quoted = {random_deletion(Words.split('"Hi there," she said.'), 1, random.Random(s)).join() for s in range(40)}
    assert quoted == {'"there," she said.', '"Hi," she said.', '"Hi there," said.', '"Hi there," she.'}
    assert random_deletion(Words.split("Hello world"), 5, random.Random(0)).join() in {"Hello", "world"}


# --- eda ----------------------------------------------------------------------------------------


def test_eda_uses_all_three_operations_at_the_requested_degree(augmenters):
    n = len(only_words(Words.split(MRPC)))
    k = target_count(0.3, n)
    lengths, fracs = set(), []
    for copy in range(30):
        (row,) = augmenters["eda"].augment_chunk([example(MRPC)], 0.3, copy)
        out = Words.split(row["text_a"])
        lengths.add(len(only_words(out)) - n)
        fracs.append(row["changed_frac"])
        assert punctuation(out) == punctuation(Words.split(MRPC))
    assert {-k, 0} <= lengths and max(lengths) >= k  # delete, swap, insert (multi-word synonyms add more)
    assert min(fracs) > 0  # every operation changes a text of distinct words
    assert 0.6 * k / n <= sum(fracs) / len(fracs) <= 1.6 * k / n


def test_eda_pair_row_fields_and_edge_cases(augmenters):
    (row,) = augmenters["eda"].augment_chunk([PAIR], 0.3, 1)
    assert row["source_id"] == "p1" and row["label"] == 1
    assert row["text_a"] != PAIR["text_a"] and row["text_b"] != PAIR["text_b"] and row["changed_frac"] > 0
    for text in ("", "...", "?!"):
        (row,) = augmenters["eda"].augment_chunk([example(text)], 0.5, 0)
        assert row["text_a"] == text and row["changed_frac"] == 0.0
    # one word: insert adds a synonym after it, swap and delete cannot change it
    eda = augmenters["eda"]
    one_word = {row["text_a"] for c in range(20) for row in eda.augment_chunk([example("Charming.")], 0.5, c)}
    assert "Charming." in one_word and len(one_word) > 1
    assert all(t.startswith("Charming ") and t[9:-1] in synonyms("charming") for t in one_word - {"Charming."})


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_rows_across_processes_and_copies_differ(augmenters, other_process):
    here = {name: rows_of(augmenters[name], DETERMINISM_EXAMPLES) for name in ("synonym", "eda")}
    out, err = other_process.communicate(timeout=120)
    assert other_process.returncode == 0, err
    assert json.loads(out) == here
    for name in ("synonym", "eda"):
        texts = [tuple(r[:2]) for r in here[name]]
        assert len(set(texts[0::2])) == 3 and len(set(texts[1::2])) == 3  # 3 copies, 3 different texts
    other_seed = create("synonym", AugmentOptions(seed=4)).augment_chunk(DETERMINISM_EXAMPLES, 0.3, 0)
    assert [r["text_a"] for r in other_seed] != [r[0] for r in here["synonym"][:2]]
