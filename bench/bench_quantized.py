"""Quantised teacher (issue 5): `Teacher.logits` fp32 vs `--quantize int8`, and a naive
`transformers.pipeline("text-classification")` loop, on the same sentences.

The three run interleaved in each of `--repeats` rounds (fp32, int8, pipeline, fp32, ...), so a
load change on a shared machine hits all of them alike; the table shows the median round.
int8 is scored against fp32 on every sentence: argmax agreement and the largest absolute
difference of any class probability (softmax at T=1).

    nice -n 10 python -m bench.bench_quantized --teacher /tmp/teachers/sst2 --rows 2000 --threads 2
"""

from __future__ import annotations

import statistics
import time

import click
import numpy as np
import torch

from bench.bench_teacher import naive_pipeline
from kdaug.inputs.sources import glue_file, load_labelled
from kdaug.teacher.model import Teacher


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


@click.command()
@click.option("--teacher", "teacher_dir", required=True, help="Fine-tuned teacher (from_pretrained dir).")
@click.option("--rows", default=2000, show_default=True, help="First N SST-2 train sentences.")
@click.option("--threads", default=2, show_default=True, help="torch intra-op threads for all three.")
@click.option("--repeats", default=3, show_default=True, help="Interleaved rounds; the median counts.")
def main(teacher_dir, rows, threads, repeats):
    texts = [a for a, _, _ in load_labelled(glue_file("sst2", "train"))[:rows]]
    fp32 = Teacher.load(teacher_dir, num_threads=threads)
    int8 = Teacher.load(teacher_dir, num_threads=threads, quantize="int8")
    runs = {
        "kdaug Teacher.logits fp32": fp32.logits,
        "kdaug Teacher.logits --quantize int8": int8.logits,
        "naive transformers.pipeline loop (fp32)": naive_pipeline(teacher_dir, threads),
    }
    seconds = {name: [] for name in runs}
    outputs = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            outputs[name] = fn(texts)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: rows / statistics.median(s) for name, s in seconds.items()}
    base, naive = rate["kdaug Teacher.logits fp32"], rate["naive transformers.pipeline loop (fp32)"]

    click.echo(f"{rows} SST-2 train sentences, {threads} torch threads, median of {repeats} interleaved rounds")
    click.echo(f"| {'method':<40} | {'sent/s':>7} | {'rounds (sent/s)':<20} | {'vs fp32':>7} | {'vs naive':>8} |")
    click.echo(f"|{'-' * 42}|{'-' * 8}:|{'-' * 22}|{'-' * 8}:|{'-' * 9}:|")
    for name, r in rate.items():
        rounds = ", ".join(f"{rows / s:.0f}" for s in seconds[name])
        click.echo(f"| {name:<40} | {r:>7.1f} | {rounds:<20} | {r / base:>6.2f}× | {r / naive:>7.2f}× |")
    reference, quantised = outputs["kdaug Teacher.logits fp32"], outputs["kdaug Teacher.logits --quantize int8"]
    agree = float((reference.argmax(1) == quantised.argmax(1)).mean())
    diff = np.abs(softmax(reference) - softmax(quantised))
    click.echo(
        f"int8 vs fp32: argmax agreement {agree:.2%} ({int((reference.argmax(1) != quantised.argmax(1)).sum())} "
        f"of {rows} differ), max |Δp| {diff.max():.3f}, mean |Δp| {diff.mean():.4f}, "
        f"logits dtype {quantised.dtype}"
    )
    flipped = reference.argmax(1) != quantised.argmax(1)
    top2 = np.sort(softmax(reference), axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]  # fp32's top-1 minus top-2 probability
    if flipped.any():
        click.echo(
            f"fp32's top-2 probability margin on the differing rows: at most {margin[flipped].max():.3f} "
            f"(median over all rows {np.median(margin):.3f}); agreement where fp32's margin is ≥ 0.2: "
            f"{float((~flipped[margin >= 0.2]).mean()):.2%} of {int((margin >= 0.2).sum())} rows"
        )


if __name__ == "__main__":
    main()
