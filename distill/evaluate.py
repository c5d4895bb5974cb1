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


def read_labelled(path: str, data: str | None = None) -> list[Example]:
    """The examples of a labelled dev or test file, read by the Beam job's readers: as the GLUE or
    TREC preset its header names, else as the task the labelled output DATA was made from (its
    manifest's fields, label values, delimiter and quoting), so a dev file shaped like the training
    input reads too. A file neither fits is a ValueError naming it."""
    try:
        return load_labelled(path)
    except ValueError:
        task = _task_of(data) if data else None
        if task is None:
            raise
        return load_labelled(path, task)


def _task_of(data: str):
    """The task an output's rows were read with, from its augment config (a `label` run's is its source's)."""
    from kdaug import commit
    from kdaug.inputs.sources import make_task

    manifest = commit.published(data, allow_unfinished=True).manifest
    while manifest and "text_fields" not in (manifest.get("config") or {}):
        manifest = (manifest.get("source") or {}).get("manifest")
    if not manifest:
        return None
    config = manifest["config"]
    text_a, text_b = config["text_fields"]
    labels = tuple(config.get("labels") or ()) or None
    return make_task(
        None, text_a, text_b, config.get("label_field"), labels, None, config.get("delimiter"), config.get("quoting")
    )


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
