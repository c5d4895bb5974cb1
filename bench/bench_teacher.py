"""Teacher labelling throughput: `Teacher.logits` vs plain torch loops over the same sentences.

The ceiling is a hand-written loop with length-sorted batches of 64 (what a careful user would
write, `plain_loop`); the naive loop batches 64 rows in input order, so every batch pads to its
longest row. All three tokenise inside the timed region, use the same model and the same torch
threads, and run interleaved for `--repeats` rounds; the best round counts (contention only ever
adds time). `naive_pipeline` (a `transformers.pipeline` call per sentence) is the baseline that
bench_quantized and bench_label_stage compare with; it lives here, next to the ceiling.

    python -m bench.bench_teacher --teacher /tmp/teachers/sst2 --rows 2000 --threads 1
"""

from __future__ import annotations

import time

import click
import numpy as np
import torch

from kdaug.augmenters.resources import resolve_teacher_dir
from kdaug.inputs.sources import glue_file, load_labelled
from kdaug.teacher.model import Teacher


@torch.inference_mode()
def plain_loop(teacher: Teacher, texts: list[str], batch_size: int, sort: bool) -> np.ndarray:
    enc = teacher.tokenizer(texts, truncation=True, max_length=teacher.max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(enc[i])) if sort else list(range(len(texts)))
    out = np.empty((len(texts), teacher.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = teacher.tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=teacher.max_length, return_tensors="pt"
        )
        out[idx] = teacher.model(**batch).logits.numpy()
    return out


def naive_pipeline(model_dir: str, threads: int):
    """What a user writes without kdaug: the HF pipeline, one call per sentence (`texts -> list`)."""
    from transformers import pipeline

    torch.set_num_threads(threads)
    classify = pipeline("text-classification", model=model_dir, device=-1, top_k=None)
    return lambda texts: [classify(t) for t in texts]


@click.command()
@click.option("--teacher", "teacher_dir", help="from_pretrained dir (default: packaged MiniLM, random head).")
@click.option("--rows", default=2000, show_default=True)
@click.option("--threads", type=int, help="torch threads (default: all CPUs of this process).")
@click.option("--max-tokens", default=1024, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(teacher_dir, rows, threads, max_tokens, repeats):
    texts = [a for a, _, _ in load_labelled(glue_file("sst2", "train"))[:rows]]
    teacher = Teacher.load(resolve_teacher_dir(teacher_dir), max_tokens=max_tokens, num_threads=threads)
    runs = {
        f"Teacher.logits (token budget {max_tokens})": lambda: teacher.logits(texts),
        "plain loop, length-sorted batches of 64 (ceiling)": lambda: plain_loop(teacher, texts, 64, sort=True),
        "plain loop, input-order batches of 64": lambda: plain_loop(teacher, texts, 64, sort=False),
    }
    best = {name: float("inf") for name in runs}
    outputs = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            outputs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    ceiling = rows / best["plain loop, length-sorted batches of 64 (ceiling)"]
    click.echo(f"{rows} SST-2 train sentences, {torch.get_num_threads()} threads, best of {repeats}")
    click.echo(f"{'method':<52} {'sent/s':>8} {'vs ceiling':>10}")
    for name, seconds in best.items():
        click.echo(f"{name:<52} {rows / seconds:>8.1f} {rows / seconds / ceiling:>9.0%}")
    with torch.inference_mode():
        direct = np.stack(
            [teacher.model(**teacher.tokenizer(t, return_tensors="pt")).logits[0].numpy() for t in texts[:200]]
        )
    first = next(iter(outputs.values()))
    click.echo(
        f"max |Teacher.logits - model(**tokenizer(text))| over 200 sentences: {np.abs(first[:200] - direct).max():.2e}"
    )
    click.echo(f"max |Teacher.logits - ceiling loop| over all rows: {np.abs(first - outputs[list(runs)[1]]).max():.2e}")


if __name__ == "__main__":
    main()
