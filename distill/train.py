"""kdaug's one training loop: students on kdaug shards (`distill`) and teachers on a labelled file
(`fine_tune`, i.e. `kdaug teacher train`, which is the same loop in FT mode over the teacher base).

nanoGPT-style: stream shuffled mini-batches, AdamW (no decay on biases and LayerNorm) with a short
linear warm-up (`warmup_steps`: a tenth of an epoch, at most 100 steps, whatever the step cap) and a
linear decay to 0 at the cap, log the training loss and evaluate on dev every `eval_every` steps,
keep the best dev weights, stop when dev accuracy has not improved for `patience` evaluations. On
CUDA the forward pass may run bf16 autocast (`precision`). The result is a `from_pretrained`
directory (model + tokenizer) with `metrics.json`.

Like a trainer, it reports as it goes, on stderr: one line per evaluation (step, train loss, dev
accuracy, best so far) and a `warning:` line for a run whose numbers should not be trusted as they
stand (`_eval_every_warnings`, `_end_warnings`), also kept in the metrics. A sweep passes `quiet`
and says one line per cell instead.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from kdaug import commit, logs
from kdaug.augmenters.resources import resolve_teacher_dir
from kdaug.distillation import word_students
from kdaug.distillation.evaluate import Example, evaluate_model
from kdaug.distillation.loss import IGNORE, MODES, distill_loss
from kdaug.distillation.shards import Selection, ShardReader, length_grouped
from kdaug.flags import DEVICE_DEFAULT, PRECISION_DEFAULT
from kdaug.teacher.model import LOCAL_ONLY, SAFE_WEIGHTS, check_model_dir, check_precision, resolve_device

DEFAULT_LAYERS = 2  # a student of the teacher base's first 2 layers: 3x fewer layers than all-MiniLM-L6
TRANSFORMER_LR = 1e-4
WORD_STUDENTS = word_students.KINDS


@dataclass(frozen=True)
class DistillConfig:
    """Everything that decides a training run; saved in metrics.json."""

    mode: str = "kd"  # kd: teacher logits (+ α·gold CE); ft: gold labels only
    temperature: float = 1.0  # KD softmax temperature T
    alpha: float = 0.0  # weight of the gold-label CE in KD
    student: str | None = (
        None  # bilstm, cnn, …-tuned, …-wordpiece (distill.word_students), a from_pretrained dir or config .json;
        # None: the teacher base
    )
    layers: int | None = None  # keep the first k layers; None: 2 for the teacher base, all otherwise
    freeze_embeddings: bool = False  # keep the word-piece table fixed (most of a small student's weights)
    lr: float | None = None  # None: 1e-4 for transformers, 1e-3 for the word students (`learning_rate`)
    weight_decay: float = 0.01
    warmup: float = 0.1  # warm-up length as a fraction of ONE epoch of the training rows (`warmup_steps`)
    max_warmup_steps: int | None = 100  # and at most this many steps; None: no bound
    batch_size: int = 32
    max_length: int = 128
    epochs: int = 3
    max_steps: int | None = None  # train exactly this many steps, overriding `epochs`
    eval_every: int = 200  # steps between training-loss logs and dev evaluations
    patience: int = 3  # dev evaluations without improvement before stopping
    seed: int = 0
    buffer_rows: int = 10_000  # shuffle buffer (see distill.shards)
    num_labels: int | None = None  # None: from the data (teacher logit width or labels)
    label_names: tuple[str, ...] | None = None  # saved as the model's id2label (a teacher's, for readers)
    device: str = DEVICE_DEFAULT  # auto: CUDA when torch sees a GPU (kdaug.teacher.model.resolve_device)
    precision: str = PRECISION_DEFAULT  # or bf16 autocast (kdaug.teacher.model.check_precision)
    # torch threads while training; None: torch's default (every core). Part of the result: threads
    # split float sums differently and training amplifies the last bits (a CNN cell's dev accuracy
    # moved 1 point between 1 and 2 threads), so a run is reproduced exactly only with the same count.
    threads: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: use one of {MODES}")
        if self.student in WORD_STUDENTS and (self.layers or self.freeze_embeddings):
            raise ValueError(
                f"--layers and --freeze-embeddings are for transformer students; the {self.student} "
                "student has no layers to cut and its kind decides whether its word vectors are trained"
            )

    @property
    def learning_rate(self) -> float:
        return self.lr or (word_students.DEFAULT_LR if self.student in WORD_STUDENTS else TRANSFORMER_LR)


def encode(tokenizer, texts_a: Sequence[str], texts_b: Sequence[str | None], max_length: int) -> dict:
    """Tokenize a batch of single texts or pairs, padded to the batch's longest row."""
    pairs = None if all(b is None for b in texts_b) else list(texts_b)
    return tokenizer(list(texts_a), pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only, none on biases and LayerNorm (BERT's
    recipe: decaying a LayerNorm's gain towards 0 fights the normalisation it exists for)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    exempt = lambda n: n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n  # noqa: E731
    return [
        {"params": [p for n, p in trainable if not exempt(n)], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if exempt(n)], "weight_decay": 0.0},
    ]


def warmup_steps(config: DistillConfig, rows: int) -> int:
    """Steps of linear warm-up: `config.warmup` of one epoch over `rows` training rows, at most
    `config.max_warmup_steps` (defaults: a tenth of an epoch, at most 100 steps).

    Warm-up keeps the first AdamW updates small while the optimiser's moment estimates rest on few
    gradients and a fresh head pushes large ones through the network; that is a matter of a number
    of updates, not of how long the run might last. It used to be a fraction of the step cap, but
    with early stopping the cap is a safety limit, not the run's length: 10% of a 20,000-step cap is
    2,000 steps of warm-up, and cells that stopped 300 steps after their best dev score kept a
    checkpoint trained below the peak rate, so the grid compared half-warmed students. Here the cap
    changes nothing. At most 100 steps: warm-up ends before the first dev evaluation at the default
    `eval_every` (200), so no evaluated checkpoint is inside it, and it is a tenth of a typical CPU
    cell's run (RESULTS v2's CNN cells stopped after a median 950 steps without warm-up). A tenth of
    an epoch: on a small set (500 rows are 16 steps an epoch at batch size 32) 100 steps would be six
    epochs at a reduced rate. The linear decay still ends at the cap; with early stopping far from
    the cap it only lowers the rate a little (5% by step 1,000 of a 20,000 cap), so it stays.
    """
    epoch = math.ceil(rows / config.batch_size)
    steps = math.ceil(config.warmup * epoch)
    return steps if config.max_warmup_steps is None else min(steps, config.max_warmup_steps)


def build_student(student: str | None, layers: int | None, num_labels: int, label_names: Sequence[str] | None = None):
    """(model, tokenizer) for a student spec: None (teacher base), a `word_students.KINDS` name
    (`bilstm`, `cnn` and their -tuned and -wordpiece variants: fresh word students,
    `distill.word_students`), a model directory or a config json.

    A config json (`{"model_type": "bert", "hidden_size": 128, …}`) gives a randomly initialised
    model and the teacher base's tokenizer: its vocabulary must match the teacher base's. A head of
    another size than `num_labels` (a base fine-tuned for another task) is replaced by a fresh one.
    A model directory is loaded only when `check_model_dir` accepts it, and only as `SAFE_WEIGHTS`.
    """
    if student in WORD_STUDENTS:
        return word_students.build(student, num_labels, label_names)
    names = (
        {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
        if label_names
        else {}
    )
    base = resolve_teacher_dir(None)
    if student and student.endswith(".json"):
        spec = json.loads(Path(student).read_text())
        config = AutoConfig.for_model(spec.pop("model_type"), **spec, num_labels=num_labels, **names)
        if layers:
            config.num_hidden_layers = layers
        return AutoModelForSequenceClassification.from_config(config), AutoTokenizer.from_pretrained(base, **LOCAL_ONLY)
    if student:
        check_model_dir(student, "student")
    path = student or base
    layers = layers or (DEFAULT_LAYERS if student is None else None)
    cut = {"num_hidden_layers": layers} if layers else {}
    verbosity = hf_logging.get_verbosity()
    if cut:  # the dropped layers and the new head are expected: don't list them for every sweep cell
        hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, ignore_mismatched_sizes=True, **SAFE_WEIGHTS, **cut, **names
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer_dir = path if Path(path, "tokenizer_config.json").is_file() else base
    return model, AutoTokenizer.from_pretrained(tokenizer_dir, **LOCAL_ONLY)


def distill(
    data_dir: str | Path,
    selection: Selection,
    config: DistillConfig = DistillConfig(),
    dev: Sequence[Example] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    teacher: str | None = None,
    allow_unfinished: bool = False,
    test: Sequence[Example] | None = None,
    quiet: bool = False,
) -> dict:
    """Train a student on the selected rows; return (and, with out_dir, publish) its metrics.

    Without a dev set there is no early stopping and the last weights are kept. With a `test` set
    the kept student is also scored there (`test_accuracy`): dev selects the checkpoint, so dev
    accuracy flatters it, the test score does not. `teacher`: the
    fingerprint the shards' manifest must record (KD refuses others; see `distill.shards.check_manifest`).
    `quiet`: no per-evaluation or warning lines on stderr (the warnings stay in the metrics).
    `out_dir` is written under the commit protocol (`kdaug.commit`): checked and leased before
    training starts, published whole at the end, never half-written.
    """
    kd = config.mode == "kd"
    reader = ShardReader(
        data_dir,
        selection,
        require_logits=kd,
        require_labels=not kd,
        teacher=teacher if kd else None,
        buffer_rows=config.buffer_rows,
        allow_unfinished=allow_unfinished,
    )
    about = {"data": str(data_dir), "teacher_fingerprint": reader.teacher, "selection": asdict(selection)}
    if out_dir is None:
        return _train(reader, config, dev, progress, about, test=test, quiet=quiet)
    commit.check_target(str(out_dir), [str(data_dir)], kind="student")
    with commit.Writer(str(out_dir), "distill") as attempt:
        metrics = _train(reader, config, dev, progress, about, save_to=attempt.staging_uri, test=test, quiet=quiet)
        commit.publish_dir(
            attempt,
            {
                "kind": commit.Kind.STUDENT.value,
                "data": str(data_dir),
                "source_attempt": reader.run.attempt,
                "config": asdict(config),
                "selection": asdict(selection),
            },
        )
    return metrics


class ExampleReader:
    """Labelled examples in memory (a file read by `kdaug.inputs.sources.load_labelled`) as the loop reads
    shards: each epoch, shuffled mini-batches of similar length (`distill.shards.length_grouped`)."""

    teacher = None
    label_names = None  # fine_tune's config names the classes

    def __init__(self, examples: Sequence[Example], num_labels: int, window: int = 50):
        self.examples, self.labels, self.window = list(examples), num_labels, window
        self.lengths = [len(a.split()) + len((b or "").split()) for a, b, _ in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def num_labels(self) -> int:
        return self.labels

    def check_current(self) -> None:
        """In memory: nothing can be regenerated under the model."""

    def batches(self, batch_size: int, seed: int = 0, epoch: int = 0) -> Iterator[dict]:
        rng = random.Random(seed * 1_000_003 + epoch)
        order = list(range(len(self.examples)))
        rng.shuffle(order)
        batches = length_grouped(order, self.lengths.__getitem__, batch_size, self.window)
        rng.shuffle(batches)
        for idx in batches:
            a, b, y = zip(*(self.examples[i] for i in idx))
            yield {"text_a": list(a), "text_b": list(b), "label": list(y)}


def fine_tune(
    train: Sequence[Example],
    dev: Sequence[Example],
    config: DistillConfig,
    out_dir: str,
    progress: bool = True,
    about: dict | None = None,
) -> dict:
    """Fine-tune `config.student` (a from_pretrained directory, all its layers) on labelled examples
    with the distill loop in FT mode, evaluating on `dev` every `config.eval_every` steps; save the
    best model, its tokenizer and metrics.json to `out_dir` (a staging directory: the caller
    publishes it). `kdaug teacher train` is this over the teacher base."""
    if config.mode != "ft" or not config.label_names:
        raise ValueError("fine_tune trains in FT mode with label names (they become the model's id2label)")
    reader = ExampleReader(train, len(config.label_names))
    return _train(
        reader,
        config,
        dev,
        progress,
        {"train_examples": len(train), "dev_examples": len(dev), **(about or {})},
        save_to=out_dir,
    )


def _train(
    reader,
    config: DistillConfig,
    dev,
    progress: bool,
    about: dict,
    save_to: str | None = None,
    test: Sequence[Example] | None = None,
    quiet: bool = False,
) -> dict:
    """The training loop over `reader` (a `ShardReader` or an `ExampleReader`) with
    `config.threads` torch threads (the caller's count is restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads or before)
    try:
        return _loop(reader, config, dev, progress, about, save_to, test, quiet)
    finally:
        torch.set_num_threads(before)


def echo(line: str) -> None:
    """One line on stderr, clear of any progress bar (tqdm redraws the bar below it); timestamped
    in a log file (`kdaug.logs`)."""
    with tqdm.external_write_mode(file=sys.stderr):
        click.echo(logs.stamp(line), err=True)


def _loop(
    reader,
    config: DistillConfig,
    dev,
    progress: bool,
    about: dict,
    save_to: str | None,
    test: Sequence[Example] | None,
    quiet: bool,
) -> dict:
    """Train; save the model, its tokenizer and metrics.json (`about` merged in) to `save_to` when
    given. `hit_cap`: training ran to its step cap (`max_steps` or `epochs`) without dev accuracy
    levelling off for `patience` evaluations, i.e. it may not have converged. `warmup_steps`: the
    step at which warm-up ends; `best_in_warmup`: every update before the kept checkpoint (the best
    on dev, else the last) ran below the peak rate, i.e. the student kept is a half-warmed one. Each
    history record has the `learning_rate` of the update that made its step. The student is saved
    with the class names (`config.label_names`, else the data manifest's), not LABEL_0, LABEL_1…"""
    kd = config.mode == "kd"
    names = config.label_names or reader.label_names
    num_labels = config.num_labels or reader.num_labels()
    device = resolve_device(config.device)
    precision = check_precision(config.precision)
    torch.manual_seed(config.seed)
    model, tokenizer = build_student(config.student, config.layers, num_labels, names)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    model.to(device).train()
    say = (lambda line: None) if quiet else echo

    total = config.max_steps or config.epochs * math.ceil(len(reader) / config.batch_size)
    early = _eval_every_warnings(config.eval_every, total) if dev else []
    for warning in early:  # said before training, while it can still be stopped
        say(f"warning: {warning}")
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    warm = warmup_steps(config, len(reader))
    schedule = get_linear_schedule_with_warmup(optimizer, warm, total)
    stream = itertools.chain.from_iterable(reader.batches(config.batch_size, config.seed, e) for e in itertools.count())

    history, losses = [], []
    best, best_state, stale = None, None, 0
    start = time.perf_counter()
    bar = logs.progress(total, f"{config.mode} student", "steps", enabled=progress)
    for step, batch in enumerate(itertools.islice(stream, total), start=1):
        inputs = {
            k: v.to(device) for k, v in encode(tokenizer, batch["text_a"], batch["text_b"], config.max_length).items()
        }
        labels = torch.tensor([IGNORE if y is None else y for y in batch["label"]], device=device)
        teacher = torch.tensor(batch["teacher_logits"], device=device) if kd else None
        with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=precision == "bf16"):
            logits = model(**inputs).logits
        loss = distill_loss(
            logits.float(), labels, teacher, mode=config.mode, temperature=config.temperature, alpha=config.alpha
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        rate = schedule.get_last_lr()[0]  # the rate of the update that made this step's weights
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.4f}", **({"dev": f"{best['accuracy']:.4f}"} if best else {}))

        if step % config.eval_every and step != total:
            continue
        record = {"step": step, "train_loss": sum(losses) / len(losses), "learning_rate": rate}
        losses = []
        if dev:
            record.update(evaluate_model(model, tokenizer, dev, max_length=config.max_length, precision=precision))
            if best is None or record["accuracy"] > best["accuracy"]:
                best, stale = record, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        history.append(record)
        say(_eval_line(record, best, total))
        reader.check_current()  # the data was not regenerated under the model
        if stale >= config.patience:
            break
    bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    hit_cap = stale < config.patience
    kept = best["step"] if best else step
    late = _end_warnings(config.patience, dev, best, hit_cap, step, names)
    for warning in late:
        say(f"warning: {warning}")
    scored = evaluate_model(model, tokenizer, test, max_length=config.max_length, precision=precision) if test else {}
    metrics = {
        "dev_accuracy": best and best["accuracy"],
        "dev_f1": best and best.get("f1"),
        "test_accuracy": scored.get("accuracy"),
        "test_f1": scored.get("f1"),
        "best_step": best and best["step"],
        "steps": step,
        "warmup_steps": warm,
        "best_in_warmup": kept <= warm,
        "hit_cap": hit_cap,
        "warnings": early + late,
        "train_seconds": round(time.perf_counter() - start, 1),
        "train_rows": len(reader),
        "num_labels": num_labels,
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "learning_rate": config.learning_rate,  # the rate used: config.lr is None for the student's default
        "label_names": list(names) if names else None,
        **about,
        "config": asdict(config),
        "history": history,
    }
    if save_to is not None:
        Path(save_to).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(save_to)
        tokenizer.save_pretrained(save_to)
        Path(save_to, "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _eval_line(record: dict, best: dict | None, total: int) -> str:
    """What one evaluation says: step, mean train loss since the last one, dev accuracy and the best so far."""
    line = f"step {record['step']}/{total}: train loss {record['train_loss']:.4f}"
    if best is None:
        return line
    return line + f", dev accuracy {record['accuracy']:.1%} (best {best['accuracy']:.1%} at step {best['step']})"


def _eval_every_warnings(eval_every: int, total: int) -> list[str]:
    """A run evaluated on dev only once, at its end: dev selected no checkpoint and could not stop it early."""
    if eval_every <= total:
        return []
    return [
        f"--eval-every {eval_every} exceeds the {total} training steps: one evaluation, at the end, so "
        "no checkpoint was selected and early stopping never ran"
    ]


def _end_warnings(
    patience: int,
    dev: Sequence[Example] | None,
    best: dict | None,
    hit_cap: bool,
    steps: int,
    names: Sequence[str] | None,
) -> list[str]:
    """Why a finished run's numbers may mislead: a model no better than always answering dev's most
    frequent class (within half a point: a collapsed student, often a learning rate too high or too
    few steps); stopped by its step cap while dev accuracy still moved. Without dev, neither is known."""
    if not dev or best is None:
        return []
    warnings = []
    label, count = Counter(y for _, _, y in dev).most_common(1)[0]
    majority = count / len(dev)
    if best["accuracy"] <= majority + 0.005:
        name = names[label] if names and 0 <= label < len(names) else label
        warnings.append(
            f"dev accuracy {best['accuracy']:.1%} is no better than the majority-class rate ({majority:.1%} of dev is "
            f"{name!r}): the student may answer one class whatever the input; try another --lr or more steps"
        )
    if hit_cap:
        warnings.append(
            f"training ran to its step cap ({steps} steps) without dev accuracy levelling off for "
            f"{patience} evaluations: it may not have converged; raise --max-steps or --epochs"
        )
    return warnings
