"""Accuracy (and F1 of class 1 for binary tasks) of a sequence classifier on labelled examples.

Examples are (text_a, text_b | None, label) tuples. Scoring reuses the teacher's inference
(`pipeline.teacher.Teacher`: length-sorted batches under a token budget, so a batch pads to its own
longest row) and its metrics (`pipeline.teacher_train.evaluate`), so teacher and student numbers
come from the same code. Both modules are Beam-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline import teacher_train
from pipeline.sources import load_labelled
from pipeline.teacher import Teacher

Example = teacher_train.Example

#: The one place distill reads a labelled file: the Beam job's readers and presets (the preset is
#: guessed from a TSV header when not given).
read_labelled = load_labelled


def evaluate_model(model, tokenizer, examples: Sequence[Example], max_length: int | None = None) -> dict:
    """Metrics of an in-memory model; leaves it in the train/eval mode it was in."""
    training = model.training
    metrics = teacher_train.evaluate(Teacher(model, tokenizer, max_length=max_length), list(examples))
    model.train(training)
    return metrics | {"n": len(examples)}


def evaluate(model_dir: str | Path, examples: Sequence[Example], max_length: int | None = None, max_tokens: int = 4096) -> dict:
    """Metrics of a saved `from_pretrained` directory (model + tokenizer): a student or a teacher."""
    teacher = Teacher.load(str(model_dir), max_tokens=max_tokens, max_length=max_length)
    return teacher_train.evaluate(teacher, list(examples)) | {"n": len(examples)}
