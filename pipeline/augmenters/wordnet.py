"""WordNet 3.0 lemma look-ups read straight from the dictionary files, without nltk.

`synonym` and `eda` need one thing from WordNet: for a word, the lemma names of all its synsets,
in WordNet's order. nltk's reader gave that, at a price measured in the issue-5 profile of a
whole `kdaug augment` job: importing nltk (it pulls in scipy) and building its reader cost every
worker process ~4 s, and each new word ~1 ms of seek-and-parse through one shared file handle
(so look-ups also had to be serialised across DoFn threads). Here the four index files, the four
exception lists and the lemma names of the data files are parsed once per process into plain
dicts (~1 s), after which a look-up is a few dict reads.

`lemma_names(word)` returns exactly what ``[l.name() for s in nltk_wordnet.synsets(word) for l in
s.lemmas()]`` returns (tests/augmenters/test_wordnet.py checks it against nltk word by word): the parts of
speech in nltk's order (noun, verb, adjective, adverb), each form nltk's `morphy` finds (the
exception lists, else one round of its suffix rules, the word itself first), and each form's
synsets in index order.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}  # nltk's POS_LIST order
# nltk's WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS (from WordNet's morphy), in its order.
SUBSTITUTIONS = {
    "n": [
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}
_SYNTACTIC_MARKER = re.compile(r"\([^()]*\)$")  # adjective markers: "galore(ip)" is the lemma "galore"


class WordNet:
    """Lemma names by word, from a WordNet 3.0 dict directory (Debian: /usr/share/wordnet)."""

    def __init__(self, root: Path):
        self.offsets: dict[str, dict[str, list[int]]] = {}  # pos → lemma → synset offsets (index order)
        self.exceptions: dict[str, dict[str, list[str]]] = {}  # pos → inflected form → base forms
        self.lemmas: dict[str, dict[int, tuple[str, ...]]] = {}  # pos → synset offset → lemma names
        for pos, name in POS_FILES.items():
            self.offsets[pos] = _read_index(root / f"index.{name}")
            self.exceptions[pos] = _read_exceptions(root / f"{name}.exc")
            self.lemmas[pos] = _read_lemma_names(root / f"data.{name}")

    def morphy(self, form: str, pos: str) -> list[str]:
        """nltk's `_morphy`: the base forms of `form` that WordNet lists for `pos`."""
        index = self.offsets[pos]
        if form in self.exceptions[pos]:
            candidates = self.exceptions[pos][form]
        else:
            candidates = [form[: -len(old)] + new for old, new in SUBSTITUTIONS[pos] if form.endswith(old)]
        return list(dict.fromkeys(f for f in [form, *candidates] if f in index))

    def lemma_names(self, word: str) -> list[str]:
        """Lemma names of every synset of `word` (any part of speech), in nltk's order."""
        word = word.lower()
        return [
            name
            for pos in POS_FILES
            for form in self.morphy(word, pos)
            for offset in self.offsets[pos][form]
            for name in self.lemmas[pos][offset]
        ]


def _read_index(path: Path) -> dict[str, list[int]]:
    """index.POS: `lemma pos n_synsets n_pointers [pointers] n_senses n_tagged offsets...`."""
    found = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):  # the licence header
                continue
            fields = line.split()
            n_synsets, n_pointers = int(fields[2]), int(fields[3])
            first = 6 + n_pointers
            found[fields[0]] = [int(x) for x in fields[first : first + n_synsets]]
    return found


def _read_exceptions(path: Path) -> dict[str, list[str]]:
    """POS.exc: `inflected base [base...]` (e.g. `geese goose`)."""
    with open(path, encoding="utf-8") as f:
        return {fields[0]: fields[1:] for fields in map(str.split, f) if fields}


def _read_lemma_names(path: Path) -> dict[int, tuple[str, ...]]:
    """data.POS: `offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id...] ...`."""
    found = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue
            head = line.split(" ", 4)
            count = int(head[3], 16)
            words = head[4].split(" ", 2 * count)[: 2 * count : 2]
            found[int(head[0])] = tuple(_SYNTACTIC_MARKER.sub("", w) for w in words)
    return found


# --- nltk's view of the same files, for the tests and the benchmark that compare with nltk ------

# nltk's reader wants a `lexnames` file, which Debian's wordnet-base lacks: the 45 lexicographer files.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_LEXNAME_POS = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
_NLTK_FILES = ("data.", "index.", ".exc", "cntlist")


def nltk_data_dir(source: Path, data_dir: Path) -> Path:
    """An nltk data directory holding a copy of the WordNet files in `source` (nltk refuses
    symlinks) plus `lexnames`, made once under `data_dir`; for comparing with nltk-based tools."""
    root = data_dir / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return root
    partial = target.with_name(f"wordnet.partial-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for src in source.iterdir():
        if src.is_file() and any(key in src.name for key in _NLTK_FILES):
            shutil.copyfile(src, partial / src.name)
    lines = [f"{i:02d}\t{name}\t{_LEXNAME_POS[name.split('.')[0]]}" for i, name in enumerate(_LEXNAMES)]
    (partial / "lexnames").write_text("\n".join(lines) + "\n")
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return root
