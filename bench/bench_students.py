"""Which CPU student comes near its teacher, and at what cost (issues 14 and 23): KD students trained
on a real labelled output until dev accuracy stops improving, the way the sweeps train them (dev
every 50 steps, patience 6, cap 20,000 steps), one torch thread each. Prints steps, seconds, dev
and test accuracy and the share of the teacher's test accuracy, median over seeds.

    python -m bench.bench_students --data OUT --method knn --degree 0.3 --copies 4 \\
        --dev ../shared/data/sst2/dev.tsv --test ../shared/data/sst2/test.tsv --students cnn,bilstm,transformer

`--candidates` runs issue 23's candidates instead (`CANDIDATES`), two at a time with `--jobs 2` (one
per core), and `--choose FILE` applies results/confirm/PLAN.md's rule, fixed before any of them ran:
among the candidates on 4 copies that stopped early within `BUDGET_SECONDS` of training, the one with
the best dev accuracy (test never chooses); FILE gets its sweep options.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import click

from kdaug.distillation.evaluate import evaluate, read_labelled
from kdaug.distillation.shards import Selection
from kdaug.distillation.train import DistillConfig, distill
from kdaug.report import table

BUDGET_SECONDS = 300  # issue 23: converging in ≤ 5 minutes on one core

# name → (DistillConfig fields, copies, the sweep options that train the same student)
STUDENTS = {
    "cnn": (dict(student="cnn"), 4, "--student cnn"),
    "bilstm": (dict(student="bilstm"), 4, "--student bilstm"),
    "transformer": (dict(student=None, freeze_embeddings=True), 4, "--freeze-embeddings"),  # the 2-layer MiniLM
}
CANDIDATES = {
    "cnn": STUDENTS["cnn"],
    "cnn ×16 copies": (dict(student="cnn"), 16, None),  # more data, not another student: never chosen
    "cnn-tuned": (dict(student="cnn-tuned"), 4, "--student cnn-tuned"),
    "cnn-wordpiece": (dict(student="cnn-wordpiece"), 4, "--student cnn-wordpiece"),
    "bilstm-wordpiece": (dict(student="bilstm-wordpiece"), 4, "--student bilstm-wordpiece"),
    "transformer, 1 layer": (dict(student=None, layers=1, freeze_embeddings=True), 4, "--layers 1 --freeze-embeddings"),
    "transformer, 2 layers": STUDENTS["transformer"],
}


def train_one(job: tuple) -> dict:
    """One (candidate, seed): a converged KD student, as a sweep cell trains it."""
    data, method, degree, mode, name, fields, copies, seed, dev, test = job
    config = DistillConfig(
        mode=mode, seed=seed, batch_size=32, max_steps=20_000, eval_every=50, patience=6, threads=1, **fields
    )
    selection = Selection(methods=(method,), degrees=(degree,), copies=copies)
    result = distill(data, selection, config, dev, progress=False, test=test, quiet=True)
    click.echo(
        f"{name} seed {seed}: {result['steps']} steps, {result['train_seconds']} s, "
        f"dev {result['dev_accuracy']:.4f}, test {result['test_accuracy']:.4f}",
        err=True,
    )
    return result


@click.command()
@click.option("--data", required=True, help="A published `kdaug run` output.")
@click.option("--method", default="knn", show_default=True)
@click.option("--degree", default=0.3, show_default=True)
@click.option("--copies", default=4, show_default=True, help="For --students (each candidate sets its own).")
@click.option("--dev", "dev_path", required=True)
@click.option("--test", "test_path", required=True)
@click.option("--students", default="cnn,bilstm", show_default=True, help=f"From {', '.join(STUDENTS)}.")
@click.option("--candidates", is_flag=True, help="Issue 23's candidates instead of --students.")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--mode", default="kd", show_default=True)
@click.option("--jobs", default=1, show_default=True, help="Students trained at once, one thread each.")
@click.option("--teacher", type=click.Path(exists=True), help="The teacher: its test accuracy is the goal's reference.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write the table here.")
@click.option("--choose", type=click.Path(path_type=Path), help="Write the chosen candidate's sweep options here.")
def main(
    data,
    method,
    degree,
    copies,
    dev_path,
    test_path,
    students,
    candidates,
    seeds,
    mode,
    jobs,
    teacher,
    markdown,
    choose,
):
    dev, test = read_labelled(dev_path, data), read_labelled(test_path, data)
    pool = CANDIDATES if candidates else {n: (STUDENTS[n][0], copies, STUDENTS[n][2]) for n in students.split(",")}
    seed_list = [int(s) for s in seeds.split(",")]
    jobs_list = [
        (data, method, degree, mode, name, fields, n, seed, dev, test)
        for name, (fields, n, _) in pool.items()
        for seed in seed_list
    ]
    if jobs == 1:
        results = list(map(train_one, jobs_list))
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as executor:
            results = list(executor.map(train_one, jobs_list))
    teacher_test = evaluate(teacher, test)["accuracy"] if teacher else None

    rows, medians = [], {}
    for i, name in enumerate(pool):
        runs = results[i * len(seed_list) : (i + 1) * len(seed_list)]
        med = lambda key, runs=runs: statistics.median(r[key] for r in runs)  # noqa: E731
        medians[name] = {k: med(k) for k in ("dev_accuracy", "test_accuracy", "train_seconds")} | {
            "converged": not any(r["hit_cap"] for r in runs)
        }
        share = f"{100 * med('test_accuracy') / teacher_test:.1f}" if teacher_test else ""
        rows.append(
            [
                name,
                runs[0]["train_rows"],
                med("steps"),
                med("best_step"),
                med("train_seconds"),
                f"{100 * med('dev_accuracy'):.1f}",
                f"{100 * med('test_accuracy'):.1f}",
                share,
                sum(r["hit_cap"] for r in runs),
            ]
        )
    headers = [f"{mode} student, 1 thread", "train rows", "steps", "best step", "seconds", "dev %", "test %"]
    text = table(headers + ["% of teacher's test", "hit cap"], rows)
    if teacher_test:
        text += f"\nteacher {teacher}: test {100 * teacher_test:.1f}%"
    click.echo(text)
    if markdown:
        markdown.write_text(text + "\n")
    if choose:
        name = choose_student(medians, {n: c[2] for n, c in pool.items()})
        choose.write_text(pool[name][2] + "\n")
        click.echo(f"chosen (best dev among converged 4-copy candidates within {BUDGET_SECONDS} s): {name}")


def choose_student(medians: dict[str, dict], options: dict[str, str | None]) -> str:
    """PLAN.md's rule: the eligible candidate (a student, not a data amount; early-stopped within the
    budget) with the best median dev accuracy."""
    eligible = [n for n, m in medians.items() if options[n] and m["converged"] and m["train_seconds"] <= BUDGET_SECONDS]
    if not eligible:
        raise click.ClickException(f"no candidate converged within {BUDGET_SECONDS} s")
    return max(eligible, key=lambda n: medians[n]["dev_accuracy"])


if __name__ == "__main__":
    main()
