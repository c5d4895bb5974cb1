"""The augmenter interface, its options and the registry.

An augmenter turns a chunk of original examples into augmented rows for one (degree, copy).
The degree p is the fraction of a text's word positions to change: round(p·n) positions, at least
one, drawn among the positions the method can change ("eligible"); when a text has fewer eligible
positions, all of them change. Each row records `changed_frac`, measured, never the intended value:
the word positions the edits actually changed (`Words.changed`, counted by each edit as it is
made: a replaced word 1, an inserted or deleted word 1, a multi-word synonym its extra words, a
swap the positions that end up different) over the input's words.

Most methods edit one text at a time and only implement `augment_words`; methods that need the
whole chunk (AugPro's partner, batched projections) override `augment_chunk`.
"""

from __future__ import annotations

import functools
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import ClassVar

from kdaug.augmenters.seeding import row_id, row_rng
from kdaug.augmenters.words import Words, changed_words, only_words
from kdaug.schema import ORIGINAL

#: Defaults of a job's shape (`kdaug.beam.augment_job.AugmentConfig`, and the CLI's flags): augmented
#: copies per example, method and degree; examples per chunk (Beam's unit of work, and of output files).
COPIES = 4
CHUNK_SIZE = 256


@dataclass(frozen=True)
class AugmentOptions:
    """Method parameters. Part of the run's config: they go into the manifest."""

    seed: int = 0
    teacher_dir: str | None = None  # None: the packaged all-MiniLM-L6-v2
    knn_k: int = 10  # neighbours to draw a replacement from (TinyBERT uses K=15 on GloVe)
    glove_vocab: int = 50_000  # most frequent GloVe words that take part in KNN
    mix_alpha: float = 0.4  # AugPro-Mix: λ ~ Beta(α, α)
    device: str = "cpu"  # AugPro's projection search and FGSM's gradients: cpu, cuda or cuda:N

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Augmenter(ABC):
    """One augmentation method. Construction is cheap; `setup` loads the heavy resources."""

    name: ClassVar[str]
    #: Whether the method computes on `AugmentOptions.device` (AugPro's projection and gradients).
    uses_device: ClassVar[bool] = False

    def __init__(self, options: AugmentOptions):
        self.options = options

    def setup(self) -> None:
        """Load resources (vectors, FAISS tables, WordNet). Called once per worker before use.

        A hook, deliberately not abstract: a method without resources need not override it, and
        the default loads nothing."""
        return None

    def check(self) -> None:
        """Refuse what `setup` would miss, by looking for files only (nothing is loaded). Called where
        the job is planned when the workers run on this machine (the DirectRunner), so a missing
        resource is one line before anything is touched rather than every worker's traceback."""
        return None

    @abstractmethod
    def augment_words(self, words: Words, degree: float, rng: random.Random) -> Words:
        """Return an edited copy of `words` with about `degree` of its word positions changed,
        its `changed` raised by the word positions the edits changed. `words` itself must stay
        as it is: it is shared by every degree and copy of the text (`split_once`)."""

    def augment_chunk(self, examples: list[dict], degree: float, copy: int) -> list[dict]:
        """Augmented rows for every example of a chunk (same order), for one degree and copy."""
        rows = []
        for ex in examples:
            rng = row_rng(self.options.seed, ex["source_id"], self.name, degree, copy)
            changed, total = 0, 0
            texts: dict[str, str] = {}  # the present fields: text_a always (sources.to_example), text_b maybe
            for f in ("text_a", "text_b"):
                if ex[f] is None:
                    continue
                words, n_words = split_once(ex[f])
                new = self.augment_words(words, degree, rng)
                changed, total = changed + new.changed, total + n_words
                texts[f] = new.join()
            frac = min(1.0, changed / total) if total else 0.0
            rows.append(self.make_row(ex, degree, copy, texts["text_a"], texts.get("text_b"), changed_frac=frac))
        return rows

    def make_row(self, ex: dict, degree: float, copy: int, text_a: str, text_b: str | None, **extra) -> dict:
        """An output row with its stable id and the measured `changed_frac` (in `extra`)."""
        return augmented_row(self.options.seed, self.name, ex, degree, copy, text_a, text_b, **extra)


def augmented_row(
    seed: int,
    method: str,
    ex: dict,
    degree: float,
    copy: int,
    text_a: str,
    text_b: str | None,
    *,
    changed_frac: float,
    partner_id: str | None = None,
    mix_lambda: float | None = None,
) -> dict:
    """An output row. `changed_frac` is the method's measurement: changed words over words, or
    for methods that edit other units (word pieces) their own count."""
    return {
        "id": row_id(seed, ex["source_id"], method, degree, copy),
        "source_id": ex["source_id"],
        "text_a": text_a,
        "text_b": text_b,
        "label": ex["label"],
        "copy": copy,
        "changed_frac": changed_frac,
        "partner_id": partner_id,
        "mix_lambda": mix_lambda,
        "teacher_logits": None,
    }


@functools.lru_cache(maxsize=4096)
def split_once(text: str) -> tuple[Words, int]:
    """A text's words and word count, split once for all the methods, degrees and copies of its
    chunk (a chunk's texts are met methods × degrees × copies times in a row). The `Words` is
    shared, which is why `augment_words` edits a copy, never its argument."""
    words = Words.split(text)
    words.positions = tuple(words.word_positions())
    return words, len(words.positions)


def word_change_fraction(*pairs: tuple[str | None, str | None]) -> float:
    """Changed word positions over all (before, after) texts / words before, capped at 1, by
    splitting both texts again and comparing them: how tests check the edits' own counts, and how
    the benchmark measures tools that do not count their edits."""
    changed, total = 0, 0
    for before, after in pairs:
        if before is None:
            continue
        assert after is not None  # a text present before an edit is present after it
        old = only_words(Words.split(before))
        changed += changed_words(old, only_words(Words.split(after)))
        total += len(old)
    return min(1.0, changed / total) if total else 0.0


def original_row(seed: int, ex: dict) -> dict:
    """The unchanged example as a shard row (method `original`, degree 0, copy 0)."""
    return augmented_row(seed, ORIGINAL, ex, 0.0, 0, ex["text_a"], ex["text_b"], changed_frac=0.0)


REGISTRY: dict[str, type[Augmenter]] = {}


def register(cls: type[Augmenter]) -> type[Augmenter]:
    if cls.name in REGISTRY or cls.name == ORIGINAL:
        raise ValueError(f"augmenter name {cls.name!r} is taken")
    REGISTRY[cls.name] = cls
    return cls


def create(name: str, options: AugmentOptions) -> Augmenter:
    try:
        return REGISTRY[name](options)
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(sorted(REGISTRY))}") from None
