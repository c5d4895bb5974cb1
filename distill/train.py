"""Train a student on kdaug shards: `distill(data_dir, selection, config, dev, out_dir)`.

One loop, nanoGPT-style: stream shuffled mini-batches, AdamW with linear warmup and decay, log the
training loss and evaluate on dev every `eval_every` steps, keep the best dev weights, stop when dev
accuracy has not improved for `patience` evaluations. The result is a `from_pretrained` directory
(student + tokenizer) with `metrics.json`.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from distill.evaluate import Example, evaluate_model
from distill.loss import IGNORE, MODES, distill_loss
from distill.shards import Selection, ShardReader
from pipeline import commit
from pipeline.resources import resolve_teacher_dir

DEFAULT_LAYERS = 2  # a student of the teacher base's first 2 layers: 3x fewer layers than all-MiniLM-L6


@dataclass(frozen=True)
class DistillConfig:
    """Everything that decides a training run; saved in metrics.json."""

    mode: str = "kd"  # kd: teacher logits (+ α·gold CE); ft: gold labels only
    temperature: float = 1.0  # KD softmax temperature T
    alpha: float = 0.0  # weight of the gold-label CE in KD
    student: str | None = None  # from_pretrained dir or config .json; None: the teacher base
    layers: int | None = None  # keep the first k layers; None: 2 for the teacher base, all otherwise
    freeze_embeddings: bool = False  # keep the word-piece table fixed (most of a small student's weights)
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps spent warming the learning rate up
    batch_size: int = 32
    max_length: int = 128
    epochs: int = 3
    max_steps: int | None = None  # train exactly this many steps, overriding `epochs`
    eval_every: int = 200  # steps between training-loss logs and dev evaluations
    patience: int = 3  # dev evaluations without improvement before stopping
    seed: int = 0
    buffer_rows: int = 10_000  # shuffle buffer (see distill.shards)
    num_labels: int | None = None  # None: from the data (teacher logit width or labels)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: use one of {MODES}")


def encode(tokenizer, texts_a: Sequence[str], texts_b: Sequence[str | None], max_length: int) -> dict:
    """Tokenize a batch of single texts or pairs, padded to the batch's longest row."""
    pairs = None if all(b is None for b in texts_b) else list(texts_b)
    return tokenizer(list(texts_a), pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def build_student(student: str | None, layers: int | None, num_labels: int):
    """(model, tokenizer) for a student spec: None (teacher base), a model directory or a config json.

    A config json (`{"model_type": "bert", "hidden_size": 128, …}`) gives a randomly initialised
    model and the teacher base's tokenizer: its vocabulary must match the teacher base's.
    """
    base = resolve_teacher_dir(None)
    if student and student.endswith(".json"):
        spec = json.loads(Path(student).read_text())
        config = AutoConfig.for_model(spec.pop("model_type"), **spec, num_labels=num_labels)
        if layers:
            config.num_hidden_layers = layers
        return AutoModelForSequenceClassification.from_config(config), AutoTokenizer.from_pretrained(base)
    path = student or base
    layers = layers or (DEFAULT_LAYERS if student is None else None)
    cut = {"num_hidden_layers": layers} if layers else {}
    verbosity = hf_logging.get_verbosity()
    if cut:  # the dropped layers and the new head are expected: don't list them for every sweep cell
        hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **cut)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer_dir = path if Path(path, "tokenizer_config.json").is_file() else base
    return model, AutoTokenizer.from_pretrained(tokenizer_dir)


def distill(
    data_dir: str | Path,
    selection: Selection,
    config: DistillConfig = DistillConfig(),
    dev: Sequence[Example] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    teacher: str | None = None,
    allow_unfinished: bool = False,
) -> dict:
    """Train a student on the selected rows; return (and, with out_dir, publish) its metrics.

    Without a dev set there is no early stopping and the last weights are kept. `teacher`: the
    fingerprint the shards' manifest must record (KD refuses others; see `distill.shards.check_manifest`).
    `out_dir` is written under the commit protocol (`pipeline.commit`): checked and leased before
    training starts, published whole at the end, never half-written.
    """
    kd = config.mode == "kd"
    reader = ShardReader(data_dir, selection, require_logits=kd, require_labels=not kd,
                         teacher=teacher if kd else None, buffer_rows=config.buffer_rows,
                         allow_unfinished=allow_unfinished)
    if out_dir is None:
        return _train(reader, selection, config, dev, progress, data_dir)
    commit.check_target(str(out_dir), [str(data_dir)])
    with commit.Writer(str(out_dir), "distill") as attempt:
        metrics = _train(reader, selection, config, dev, progress, data_dir, save_to=attempt.staging_uri)
        commit.publish_dir(attempt, {"kind": "student", "data": str(data_dir), "source_attempt": reader.run.attempt,
                                     "config": asdict(config), "selection": asdict(selection)})
    return metrics


def _train(reader: ShardReader, selection: Selection, config: DistillConfig, dev, progress: bool, data_dir,
           save_to: str | None = None) -> dict:
    """The training loop; saves the student, its tokenizer and metrics.json to `save_to` when given."""
    kd = config.mode == "kd"
    num_labels = config.num_labels or reader.num_labels()
    torch.manual_seed(config.seed)
    model, tokenizer = build_student(config.student, config.layers, num_labels)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    model.train()

    total = config.max_steps or config.epochs * math.ceil(len(reader) / config.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total), total)
    stream = itertools.chain.from_iterable(reader.batches(config.batch_size, config.seed, e) for e in itertools.count())

    history, losses = [], []
    best, best_state, stale = None, None, 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"{config.mode} student", disable=not progress)
    for step, batch in enumerate(itertools.islice(stream, total), start=1):
        inputs = encode(tokenizer, batch["text_a"], batch["text_b"], config.max_length)
        labels = torch.tensor([IGNORE if y is None else y for y in batch["label"]])
        teacher = torch.tensor(batch["teacher_logits"]) if kd else None
        logits = model(**inputs).logits
        loss = distill_loss(logits, labels, teacher, mode=config.mode, temperature=config.temperature, alpha=config.alpha)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.4f}", **({"dev": f"{best['accuracy']:.4f}"} if best else {}))

        if step % config.eval_every and step != total:
            continue
        record = {"step": step, "train_loss": sum(losses) / len(losses)}
        losses = []
        if dev:
            record.update(evaluate_model(model, tokenizer, dev, max_length=config.max_length))
            if best is None or record["accuracy"] > best["accuracy"]:
                best, stale = record, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        history.append(record)
        reader.run.check_current()  # the data was not regenerated under the student
        if stale >= config.patience:
            break
    bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    metrics = {
        "dev_accuracy": best and best["accuracy"],
        "dev_f1": best and best.get("f1"),
        "best_step": best and best["step"],
        "steps": step,
        "train_seconds": round(time.perf_counter() - start, 1),
        "train_rows": len(reader),
        "num_labels": num_labels,
        "data": str(data_dir),
        "teacher_fingerprint": reader.teacher,
        "selection": asdict(selection),
        "config": asdict(config),
        "history": history,
    }
    if save_to is not None:
        Path(save_to).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(save_to)
        tokenizer.save_pretrained(save_to)
        Path(save_to, "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
