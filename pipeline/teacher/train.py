"""`kdaug teacher train`: the one command of the `teacher` group (`kdaug.cli.StageGroup` imports this
module when the group is used: it imports torch and transformers)."""

from __future__ import annotations

import click

from kdaug.flags import device_option, input_options, precision_option
from kdaug.inputs.sources import TASKS as SOURCE_TASKS
from kdaug.inputs.sources import Task, glue_file, load_labelled, make_task


@click.group()
def teacher():
    """Fine-tune the teacher that labels augmented data with soft labels (`kdaug teacher train`)."""


GLUE_TASKS = sorted(name for name, task in SOURCE_TASKS.items() if task.glue_splits)


@teacher.command()
@click.option(
    "--task",
    type=click.Choice(sorted(SOURCE_TASKS)),
    default=None,
    help="Preset: fields, label names, max length and, for GLUE tasks (" + ", ".join(GLUE_TASKS) + "), default "
    "train/dev files under $KDAUG_GLUE_DIR (default ../shared/data) (sst2: 64 tokens, single sentences; "
    "mrpc: 128 tokens, sentence pairs, dev = test split). Other tasks (e.g. trec) need --train and --dev. "
    "Default: sst2, unless --text-field names the fields of your own files.",
)
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Training file: TSV/CSV/JSONL/Parquet/TREC, read as `kdaug augment` reads its input (the preset's "
    "fields, or --text-field ...). Default: the preset's GLUE train split.",
)
@click.option(
    "--dev",
    "dev_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Evaluated after every epoch; the best epoch by accuracy is saved. Default: the preset's dev split.",
)
@click.option(
    "--base",
    type=click.Path(exists=True, file_okay=False),
    help="from_pretrained directory to start from (any sequence-classification family). "
    "Default: the packaged all-MiniLM-L6-v2.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the fine-tuned model, tokenizer and metrics.json go; pass it to labelling as the teacher.",
)
@click.option(
    "--epochs", default=1, show_default=True, help="Passes over the training set; 1 is enough for SST-2's 67k rows."
)
@click.option(
    "--lr",
    default=5e-5,
    show_default=True,
    help="Peak AdamW learning rate (linear warm-up over the first tenth of an epoch, then linear decay).",
)
@click.option("--batch-size", default=32, show_default=True, help="Rows per optimiser step.")
@click.option("--max-length", type=int, help="Truncate inputs to this many word pieces. Default: the preset's.")
@click.option("--max-examples", type=int, help="Train on a seeded random sample of this many rows (quick runs).")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Drives head initialisation, dropout and shuffling: same seed, same model.",
)
@click.option(
    "--threads",
    type=int,
    help="torch threads. Default: every CPU this process may use; "
    "on a machine shared with other jobs, 1 is often faster (no spin-waiting).",
)
@input_options
@device_option("Where it trains")
@precision_option(recorded="the teacher's metrics.json and _manifest.json")
def train(
    task,
    train_path,
    dev_path,
    base,
    output,
    epochs,
    lr,
    batch_size,
    max_length,
    max_examples,
    seed,
    threads,
    text_field,
    text_b_field,
    label_field,
    labels,
    fmt,
    delimiter,
    quoting,
    device,
    precision,
):
    """Fine-tune a teacher classifier and save it as a from_pretrained directory.

    The same training loop as `kdaug distill --mode ft` (distill.train), over every layer of the base,
    evaluated on dev after every epoch; the best epoch is saved.

    Training and dev files are read as `kdaug augment` reads its inputs (the same field, label and
    format flags); a row that cannot be read refuses the file, naming its lines.

    \b
    Examples (SST-2, 1 epoch, about an hour on 2 cores; your own 3-class TSV):
      kdaug teacher train --task sst2 --output /tmp/teachers/sst2
      kdaug teacher train --train mine.tsv --dev mine-dev.tsv --text-field review \\
          --label-field stars --label-values bad,ok,good --output /tmp/teachers/mine
    """
    import math
    import random

    from kdaug import commit
    from kdaug.augmenters.resources import resolve_teacher_dir
    from kdaug.distillation.train import DistillConfig, fine_tune
    from kdaug.teacher.model import default_num_threads

    preset = task or (None if text_field else "sst2")
    try:
        label_values = tuple(labels.split(",")) if labels else None
        source = make_task(preset, text_field, text_b_field, label_field, label_values, fmt, delimiter, quoting)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    train_path, dev_path = files(preset, train_path, dev_path)
    commit.check_target(output, [train_path, dev_path], kind="teacher")
    train_rows, dev_rows = read_labelled(train_path, source), read_labelled(dev_path, source)
    total = len(train_rows)
    if max_examples is not None and max_examples < total:
        train_rows = random.Random(seed).sample(train_rows, max_examples)
    click.echo(
        f"training on {len(train_rows):,}{'' if total == len(train_rows) else f' of {total:,}'} rows of "
        f"{train_path}, evaluating on {len(dev_rows):,} rows of {dev_path} "
        f"({source.name}: {len(source.labels or ())} classes)",
        err=True,
    )
    steps_per_epoch = math.ceil(len(train_rows) / batch_size)
    label_names = source.label_names or source.labels
    assert label_names is not None  # make_task refuses a task without its label values
    config = DistillConfig(
        mode="ft",
        student=resolve_teacher_dir(base),
        label_names=tuple(label_names),
        lr=lr,
        weight_decay=0.01,
        warmup=0.1,  # of an epoch, unbounded: the default single epoch warms up as it always did
        max_warmup_steps=None,
        batch_size=batch_size,
        max_length=max_length or source.max_length,
        epochs=epochs,
        eval_every=steps_per_epoch,
        patience=epochs,
        seed=seed,
        device=device,
        precision=precision,
        threads=threads or default_num_threads(),
    )
    with commit.Writer(output, "teacher train") as attempt:  # the model appears whole, at the end
        metrics = fine_tune(
            train_rows, dev_rows, config, attempt.staging_uri, about={"train": train_path, "dev": dev_path}
        )
        commit.publish_dir(
            attempt,
            {"kind": commit.Kind.TEACHER.value, "train": train_path, "dev": dev_path, "config": metrics["config"]},
        )
    click.echo(f"\n{'epoch':>5} {'step':>7} {'train loss':>10} {'accuracy':>9} {'f1':>7}")
    for epoch, h in enumerate(metrics["history"], start=1):
        mark = "  <- saved" if h["step"] == metrics["best_step"] else ""
        click.echo(
            f"{epoch:>5} {h['step']:>7} {h['train_loss']:>10.4f} {h['accuracy']:>9.4f} {format(h['f1'], '.4f') if 'f1' in h else '-':>7}{mark}"
        )  # F1: binary tasks only
    click.echo(
        f"{metrics['train_examples']} training rows, {metrics['dev_examples']} dev rows, {metrics['train_seconds']} s on "
        f"{metrics['device']} ({metrics['precision']}, {metrics['threads']} threads), seed {seed} -> {output}"
    )


def read_labelled(path: str, task: Task) -> list[tuple[str, str | None, int]]:
    """The rows of a training or dev file; a file the task cannot read is a usage error naming it."""
    try:
        return load_labelled(path, task)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def files(preset: str | None, train_path: str | None, dev_path: str | None) -> tuple[str, str]:
    """--train and --dev, where not given the preset's GLUE splits; a usage error when there are none."""
    if train_path and dev_path:
        return train_path, dev_path
    if preset is None:
        raise click.UsageError("a task of your own fields has no default files: pass --train and --dev")
    try:
        return train_path or glue_file(preset, "train"), dev_path or glue_file(preset, "dev")
    except ValueError as err:
        raise click.UsageError(f"{err}: pass --train and --dev") from None
