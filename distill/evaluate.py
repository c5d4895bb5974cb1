"""Accuracy (and F1 of class 1 for binary tasks) of a sequence classifier on labelled examples.

Examples are (text_a, text_b, label) tuples, text_b None for single-sentence tasks. Inference is
batched over examples sorted by token length, so a batch pads to its own longest row, not the
file's.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

Example = tuple[str, str | None, int]


def read_labelled_tsv(path: str | Path) -> list[Example]:
    """Read a GLUE SST-2 (`sentence, label`) or MRPC (`Quality, #1 ID, #2 ID, #1 String, #2 String`) TSV.

    Minimal on purpose, and the only place that knows file formats: swap it for
    pipeline.sources' general reader once that exists.
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        if header[:2] == ["sentence", "label"]:
            pick = lambda r: (r[0], None, r[1])  # noqa: E731
        elif header[:1] == ["Quality"] and len(header) == 5:
            pick = lambda r: (r[3], r[4], r[0])  # noqa: E731
        else:
            raise ValueError(f"{path}: header {header} is neither GLUE SST-2 (sentence, label) nor MRPC (Quality, …)")
        examples = []
        for line, row in enumerate(rows, start=2):
            try:
                text_a, text_b, label = pick(row)
                examples.append((text_a, text_b, int(label)))
            except (IndexError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: cannot read {row!r} ({e})") from e
    return examples


def encode(tokenizer, texts_a: Sequence[str], texts_b: Sequence[str | None], max_length: int) -> dict:
    """Tokenize a batch of single texts or pairs, padded to the batch's longest row."""
    pairs = None if all(b is None for b in texts_b) else list(texts_b)
    return tokenizer(list(texts_a), pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


@torch.no_grad()
def evaluate_model(model, tokenizer, examples: Sequence[Example], batch_size: int = 64, max_length: int = 128) -> dict:
    """Accuracy, F1 (binary tasks only) and count of `model` on `examples`."""
    was_training = model.training
    model.eval()
    lengths = [len(tokenizer.tokenize(a)) + (len(tokenizer.tokenize(b)) if b else 0) for a, b, _ in examples]
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    preds = [0] * len(examples)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        inputs = encode(tokenizer, [examples[i][0] for i in idx], [examples[i][1] for i in idx], max_length)
        for i, p in zip(idx, model(**inputs).logits.argmax(-1).tolist()):
            preds[i] = p
    model.train(was_training)
    gold = [label for _, _, label in examples]
    metrics = {"accuracy": sum(p == g for p, g in zip(preds, gold)) / len(gold), "n": len(gold)}
    if model.config.num_labels == 2:
        tp = sum(p == g == 1 for p, g in zip(preds, gold))
        metrics["f1"] = 2 * tp / (sum(preds) + sum(gold)) if tp else 0.0
    return metrics


def evaluate(model_dir: str | Path, examples: Sequence[Example], batch_size: int = 64, max_length: int = 128) -> dict:
    """Evaluate a saved `from_pretrained` directory (model + tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return evaluate_model(model, tokenizer, examples, batch_size, max_length)
