"""Accuracy (and F1 of class 1 for binary tasks) of a sequence classifier on labelled examples: the
one place teachers and students are scored.

Examples are (text_a, text_b | None, label) tuples. Scoring reuses the teacher's inference
(`kdaug.teacher.model.Teacher`: length-sorted batches under a token budget, so a batch pads to its own
longest row), so teacher and student numbers come from the same code. Beam-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdaug.inputs.sources import load_labelled
from kdaug.teacher.model import Teacher, resolve_device

Example = tuple[str, str | None, int]

#: The one place distill reads a labelled file: the Beam job's readers and presets (the preset is
#: guessed from a TSV header when not given).
read_labelled = load_labelled


def evaluate_model(
    model, tokenizer, examples: Sequence[Example], max_length: int | None = None, precision: str = "fp32"
) -> dict:
    """Metrics of an in-memory model, on the device it is on; leaves it in the train/eval mode it was in."""
    training = model.training
    device = str(next(model.parameters()).device)
    metrics = scores(
        Teacher(model, tokenizer, max_length=max_length, device=device, precision=precision), list(examples)
    )
    model.train(training)
    return metrics | {"n": len(examples)}


def evaluate(
    model_dir: str | Path,
    examples: Sequence[Example],
    max_length: int | None = None,
    max_tokens: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> dict:
    """Metrics of a saved model directory: a teacher, a transformer student (`from_pretrained`) or a
    word student (`distill.word_students`)."""
    from kdaug.distillation import word_students

    if word_students.is_word_student(model_dir):
        model, tokenizer = word_students.load(model_dir)
        teacher = Teacher(model, tokenizer, max_tokens, max_length, device=resolve_device(device), precision=precision)
    else:
        teacher = Teacher.load(
            str(model_dir), max_tokens=max_tokens, max_length=max_length, device=device, precision=precision
        )
    return scores(teacher, list(examples)) | {"n": len(examples)}


def scores(model: Teacher, examples: list[Example]) -> dict[str, float]:
    """Accuracy, and F1 of label 1 when the task is binary."""
    texts_a, texts_b, labels = zip(*examples)
    pred = model.logits(texts_a, None if texts_b[0] is None else texts_b).argmax(axis=1)
    gold = np.asarray(labels)
    metrics = {"accuracy": float((pred == gold).mean())}
    if model.num_labels == 2:
        tp = int(((pred == 1) & (gold == 1)).sum())
        metrics["f1"] = 2 * tp / max(1, int((pred == 1).sum() + (gold == 1).sum()))
    return metrics
