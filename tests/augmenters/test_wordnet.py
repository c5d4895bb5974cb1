"""kdaug's WordNet reader (`pipeline.wordnet`) returns what nltk's reader returns, word by word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nltk.corpus.reader.wordnet import WordNetCorpusReader

from kdaug.augmenters import resources
from kdaug.augmenters.wordnet import nltk_data_dir

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the repository

# Inflections through every suffix rule and exception list, adjective markers ("galore(ip)"),
# hyphens, apostrophes, digits, stop words, case, and words WordNet does not know.
WORDS = (
    "ice movies axes women geese better best running ran flies churches dishes wolves boxes buzzes "
    "studied taking made galore elect well-known o'clock don't rock'n'roll 24-hour 1990s Movie RUNNING "
    "can will do it s the affecting charming journey qwzxv"
).split()


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    import nltk

    root = nltk_data_dir(resources.WORDNET_SOURCE, tmp_path_factory.mktemp("nltk"))
    # nltk >= 3.10 reads corpora only under its data path (or a private temp dir): register ours, as a
    # user would with NLTK_DATA, so the test passes under any TMPDIR (plain `pytest` uses /tmp)
    nltk.data.path.append(str(root))
    WordNetCorpusReader.map_wn = lambda self, version="wordnet": None  # OMW-only sense map: halves the load
    return resources.wordnet(), WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)


def nltk_lemma_names(reader, word: str) -> list[str]:
    return [lemma.name() for synset in reader.synsets(word) for lemma in synset.lemmas()]


def test_lemma_names_equal_nltk_on_edge_words(readers):
    ours, nltk = readers
    for word in WORDS:
        assert ours.lemma_names(word) == nltk_lemma_names(nltk, word), word
    assert "galore" in ours.lemma_names("galore")  # data.adj writes it "galore(ip)"
    assert not any("(" in name for word in WORDS for name in ours.lemma_names(word))
    assert ours.morphy("geese", "n") == ["goose"] and ours.morphy("churches", "n") == ["church"]


@pytest.mark.slow
def test_lemma_names_equal_nltk_on_every_sst2_word(readers):
    ours, nltk = readers
    with open(SHARED / "sst2" / "train.tsv", encoding="utf-8") as f:
        words = sorted({w for line in f for w in re.findall(r"[\w'’-]+", line.lower())})
    assert len(words) > 14_000
    assert [w for w in words if ours.lemma_names(w) != nltk_lemma_names(nltk, w)] == []
