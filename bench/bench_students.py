"""How long a student takes to converge on one core (issue 14): KD students trained on a real
labelled output until dev accuracy stops improving, the way RESULTS.md's sweeps train them
(dev every 50 steps, patience 6, cap 20,000 steps), one torch thread. Prints steps, seconds, dev
and test accuracy, median over seeds.

    python -m bench.bench_students --data OUT --method knn --degree 0.3 --copies 4 \
        --dev ../shared/data/sst2/dev.tsv --test ../shared/data/sst2/test.tsv --students cnn,bilstm,transformer
"""

from __future__ import annotations

import statistics

import click

from kdaug.distillation.evaluate import read_labelled
from kdaug.distillation.shards import Selection
from kdaug.distillation.train import DistillConfig, distill
from kdaug.report import table

STUDENTS = {
    "cnn": dict(student="cnn"),
    "bilstm": dict(student="bilstm"),
    "transformer": dict(student=None, freeze_embeddings=True),
}  # the 2-layer MiniLM default


@click.command()
@click.option("--data", required=True, help="A published `kdaug run` output.")
@click.option("--method", default="knn", show_default=True)
@click.option("--degree", default=0.3, show_default=True)
@click.option("--copies", default=4, show_default=True)
@click.option("--dev", "dev_path", required=True)
@click.option("--test", "test_path", required=True)
@click.option("--students", default="cnn,bilstm", show_default=True, help=f"From {', '.join(STUDENTS)}.")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--mode", default="kd", show_default=True)
def main(data, method, degree, copies, dev_path, test_path, students, seeds, mode):
    dev, test = read_labelled(dev_path), read_labelled(test_path)
    selection = Selection(methods=(method,), degrees=(degree,), copies=copies)
    rows = []
    for name in students.split(","):
        runs = []
        for seed in map(int, seeds.split(",")):
            config = DistillConfig(
                mode=mode,
                seed=seed,
                batch_size=32,
                max_steps=20_000,
                eval_every=50,
                patience=6,
                threads=1,
                **STUDENTS[name],
            )
            runs.append(distill(data, selection, config, dev, progress=False, test=test))
            click.echo(
                f"{name} seed {seed}: {runs[-1]['steps']} steps, {runs[-1]['train_seconds']} s, "
                f"dev {runs[-1]['dev_accuracy']:.4f}, test {runs[-1]['test_accuracy']:.4f}",
                err=True,
            )
        med = lambda key, runs=runs: statistics.median(r[key] for r in runs)
        rows.append(
            [
                name,
                runs[0]["train_rows"],
                med("steps"),
                med("best_step"),
                med("train_seconds"),
                f"{100 * med('dev_accuracy'):.1f}",
                f"{100 * med('test_accuracy'):.1f}",
                sum(r["hit_cap"] for r in runs),
            ]
        )
    click.echo(
        table(
            [f"{mode} student, 1 thread", "train rows", "steps", "best step", "seconds", "dev %", "test %", "hit cap"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
