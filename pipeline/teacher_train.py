"""Fine-tune a teacher classifier from a local base model (default: packaged all-MiniLM-L6-v2).

Examples are plain `(text_a, text_b | None, label)` tuples, read by `pipeline.sources.load_labelled`
(the same readers and presets as the Beam job).

Choices and why:
- Length-grouped batches: rows are shuffled, then sorted by length inside windows of 50 batches
  and the batches shuffled again. Each batch is padded to its own longest row, so on CPU an epoch
  costs about the real token count instead of the longest-row count, with the shuffle kept.
- AdamW with linear warm-up (10%) and decay: the standard BERT fine-tuning recipe.
- The best dev epoch (by accuracy) is what gets saved; `metrics.json` says which it was.
- Determinism: one seed drives the head initialisation, dropout and every shuffle.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.resources import resolve_teacher_dir
from pipeline.teacher import Teacher, default_num_threads

Example = tuple[str, str | None, int]


@dataclass(frozen=True)
class TaskPreset:
    """Default files and length of a task; fields and label names come from `pipeline.sources.TASKS`."""

    train: str
    dev: str
    max_length: int


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: MRPC has no labelled dev split in the GLUE TSV release used here, so its test split is the dev set.
TASKS = {
    "sst2": TaskPreset(str(DATA / "sst2/train.tsv"), str(DATA / "sst2/dev.tsv"), 64),
    "mrpc": TaskPreset(str(DATA / "mrpc/train.tsv"), str(DATA / "mrpc/test.tsv"), 128),
}


@dataclass
class TrainConfig:
    output: str
    label_names: tuple[str, ...]
    base: str | None = None
    epochs: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 64
    max_examples: int | None = None
    seed: int = 0
    threads: int | None = None
    warmup: float = 0.1
    weight_decay: float = 0.01


def grouped_batches(lengths: list[int], batch_size: int, rng: random.Random, window: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length rows (see the module docstring)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def evaluate(teacher: Teacher, examples: list[Example]) -> dict[str, float]:
    """Dev accuracy, and F1 of label 1 when the task is binary."""
    texts_a, texts_b, gold = zip(*examples)
    teacher.model.eval()
    pred = teacher.logits(texts_a, None if texts_b[0] is None else texts_b).argmax(axis=1)
    gold = np.asarray(gold)
    metrics = {"accuracy": float((pred == gold).mean())}
    if teacher.num_labels == 2:
        tp = int(((pred == 1) & (gold == 1)).sum())
        metrics["f1"] = 2 * tp / max(1, int((pred == 1).sum() + (gold == 1).sum()))
    return metrics


def train_teacher(train: list[Example], dev: list[Example], cfg: TrainConfig, progress: bool = True) -> dict:
    """Fine-tune, evaluate on `dev` after every epoch, save the best epoch to `cfg.output`.

    Returns the metrics also written to `cfg.output/metrics.json`.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    base = resolve_teacher_dir(cfg.base)
    torch.set_num_threads(cfg.threads or default_num_threads())
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    if cfg.max_examples is not None and cfg.max_examples < len(train):
        train = rng.sample(train, cfg.max_examples)

    labels = list(cfg.label_names)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        local_files_only=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a base fine-tuned for another label set gets a fresh head
    )
    teacher = Teacher(model, tokenizer, max_length=cfg.max_length)
    texts_a, texts_b, gold = zip(*train)
    features = teacher.encode(texts_a, None if texts_b[0] is None else texts_b)
    lengths = [len(f["input_ids"]) for f in features]

    steps_per_epoch = -(-len(train) // cfg.batch_size)
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    total = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup * total), total)

    history, best, train_seconds = [], None, 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        start = time.perf_counter()
        bar = tqdm(grouped_batches(lengths, cfg.batch_size, rng), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, mininterval=5)
        for idx in bar:
            batch = tokenizer.pad([features[i] for i in idx], return_tensors="pt")
            loss = model(**batch, labels=torch.tensor([gold[i] for i in idx])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        epoch_seconds = time.perf_counter() - start
        train_seconds += epoch_seconds
        scores = evaluate(teacher, dev)
        history.append({"epoch": epoch, "train_seconds": round(epoch_seconds, 1), **scores})
        if progress:
            tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        if best is None or scores["accuracy"] > best["accuracy"]:
            best = history[-1]
            model.save_pretrained(cfg.output)
            tokenizer.save_pretrained(cfg.output)

    metrics = {
        **{k: v for k, v in best.items() if k not in ("epoch", "train_seconds")},
        "best_epoch": best["epoch"],
        "epochs": cfg.epochs,
        "train_seconds": round(train_seconds, 1),
        "train_examples": len(train),
        "dev_examples": len(dev),
        "seed": cfg.seed,
        "threads": torch.get_num_threads(),
        "base": base,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("output", "threads")},
        "history": history,
    }
    Path(cfg.output, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
