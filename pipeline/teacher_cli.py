"""`kdaug teacher ...`: commands around the teacher model. Attach with `main.add_command(teacher)`."""

from __future__ import annotations

import click

from pipeline.sources import TASKS as SOURCE_TASKS, load_labelled
from pipeline.teacher_train import TASKS, TrainConfig, train_teacher


@click.group()
def teacher():
    """Fine-tune and inspect the teacher that labels augmented data with soft labels."""


@teacher.command()
@click.option("--task", type=click.Choice(sorted(TASKS)), default="sst2", show_default=True,
              help="Preset: label names, default train/dev files under ../shared/data and max length "
                   "(sst2: 64 tokens, single sentences; mrpc: 128 tokens, sentence pairs, dev = test split).")
@click.option("--train", "train_path", type=click.Path(exists=True, dir_okay=False),
              help="Training TSV (GLUE SST-2 or MRPC layout). Default: the preset's train split.")
@click.option("--dev", "dev_path", type=click.Path(exists=True, dir_okay=False),
              help="Evaluated after every epoch; the best epoch by accuracy is saved. Default: the preset's dev split.")
@click.option("--base", type=click.Path(exists=True, file_okay=False),
              help="from_pretrained directory to start from. Default: the packaged all-MiniLM-L6-v2.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Where the fine-tuned model, tokenizer and metrics.json go; pass it to labelling as the teacher.")
@click.option("--epochs", default=1, show_default=True, help="Passes over the training set; 1 is enough for SST-2's 67k rows.")
@click.option("--lr", default=5e-5, show_default=True, help="Peak AdamW learning rate (10% linear warm-up, then linear decay).")
@click.option("--batch-size", default=32, show_default=True, help="Rows per optimiser step.")
@click.option("--max-length", type=int, help="Truncate inputs to this many word pieces. Default: the preset's.")
@click.option("--max-examples", type=int, help="Train on a seeded random sample of this many rows (quick runs).")
@click.option("--seed", default=0, show_default=True, help="Drives head initialisation, dropout and shuffling: same seed, same model.")
@click.option("--threads", type=int, help="torch threads. Default: every CPU this process may use; "
                                         "on a machine shared with other jobs, 1 is often faster (no spin-waiting).")
def train(task, train_path, dev_path, base, output, epochs, lr, batch_size, max_length, max_examples, seed, threads):
    """Fine-tune a teacher classifier on CPU and save it as a from_pretrained directory.

    \b
    Example (SST-2, 1 epoch, about an hour on 2 cores):
      kdaug teacher train --task sst2 --output /tmp/teachers/sst2
    """
    from dataclasses import asdict, replace

    from pipeline import commit

    preset = TASKS[task]
    cfg = TrainConfig(output=output, label_names=SOURCE_TASKS[task].label_names, base=base, epochs=epochs, lr=lr,
                      batch_size=batch_size, max_length=max_length or preset.max_length,
                      max_examples=max_examples, seed=seed, threads=threads)
    source = SOURCE_TASKS[task]
    train_path, dev_path = train_path or preset.train, dev_path or preset.dev
    commit.check_target(output, [train_path, dev_path])
    train_rows, dev_rows = load_labelled(train_path, source), load_labelled(dev_path, source)
    with commit.Writer(output, "teacher train") as attempt:  # the model appears whole, at the end
        metrics = train_teacher(train_rows, dev_rows, replace(cfg, output=attempt.staging_uri))
        commit.publish_dir(attempt, {"kind": "teacher", "train": train_path, "dev": dev_path,
                                     "config": {k: v for k, v in asdict(cfg).items() if k != "output"}})
    click.echo(f"\n{'epoch':>5} {'train s':>9} {'accuracy':>9} {'f1':>7}")
    for h in metrics["history"]:
        mark = "  <- saved" if h["epoch"] == metrics["best_epoch"] else ""
        click.echo(f"{h['epoch']:>5} {h['train_seconds']:>9.1f} {h['accuracy']:>9.4f} {h.get('f1', float('nan')):>7.4f}{mark}")
    click.echo(f"{metrics['train_examples']} training rows, {metrics['dev_examples']} dev rows, "
               f"{metrics['threads']} threads, seed {seed} -> {output}")
