"""Teacher labelling (issue 5): the Beam stage (`kdaug label`) with 1 and 2 workers vs the plain
torch loop ceiling vs a naive `transformers.pipeline("text-classification")` loop.

All four label the same single sentences with the same model and the same cores (`--threads`,
default 2): `kdaug label` with 1 worker runs in process with `--threads` torch threads; with W
workers it runs DirectRunner multi_processing with `--threads // W` torch threads per worker
process, so the workers share the cores instead of oversubscribing them. The stage is timed end
to end (pipeline start, worker start, teacher load, reading, labelling, writing the shards), so
its figure is a lower bound on the labelling DoFn's own rate. The ceiling is `plain_loop` (batches
of 64 length-sorted rows, tokenised inside the timed region); the naive loop is `naive_pipeline`,
one pipeline call per sentence, over `--naive-rows` of the sentences (an even stride through the
input, so all partitions take part; it is slow, and rates are per sentence, so they compare).
The ceiling and the naive loop load their model before the clock starts.

Every round runs every variant once (interleaved, so a load change on a shared machine hits all
alike) for `--repeats` rounds; the table shows the median round and every round's rate.
Issue 5's goals: the stage at ≥ 0.9× the ceiling and ≥ 3× the naive loop.

Without `--input` the script first makes its own input in process: `kdaug augment --task sst2
--max-rows ROWS --methods random,knn --degrees 0.3 --copies 4` on GLUE SST-2 train (18,000 rows for
the default 2,000) into a temporary directory.

    python -m bench.bench_label_stage --teacher /tmp/teachers/sst2 --rows 2000 --threads 2 --repeats 3
    python -m bench.bench_label_stage --teacher /tmp/teachers/sst2 --input AUG_OUT   # an existing augment output
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import click
import numpy as np
import torch

from bench.bench_teacher import naive_pipeline, plain_loop
from kdaug import commit, schema
from kdaug.augmenters import AugmentOptions
from kdaug.beam import label_job
from kdaug.beam.augment_job import AugmentConfig, run_augment
from kdaug.inputs import sources
from kdaug.inputs.sources import glue_file
from kdaug.report import table
from kdaug.teacher.model import Teacher


def make_input(sst2: str, rows: int, output: str) -> str:
    """`kdaug augment` (in process, DirectRunner) on the first `rows` SST-2 rows: random and knn at
    degree 0.3, 4 copies each."""
    config = AugmentConfig(
        [sst2], output, sources.make_task("sst2"), ["random", "knn"], [0.3], 4, AugmentOptions(seed=0), max_rows=rows
    )
    started = time.perf_counter()
    manifest = commit.write(config.output, "augment", config.inputs, lambda a: run_augment(config, [], a))
    written = sum(info["rows"] for part, info in manifest["partitions"].items() if part != schema.DEAD_LETTER_DIR)
    click.echo(
        f"input: kdaug augment --task sst2 --input {sst2} --max-rows {rows} --methods random,knn "
        f"--degrees 0.3 --copies 4 → {written:,} rows in {time.perf_counter() - started:.1f} s",
        err=True,
    )
    return output


def label_stage(source: str, teacher_dir: str, max_tokens: int, workers: int, threads_per_worker: int):
    """One `kdaug label` run into a temporary directory: (seconds, {row id: logits})."""
    args = ["--direct_num_workers", str(workers)]
    if workers > 1:
        args += ["--direct_running_mode", "multi_processing"]
    # as `kdaug label` chooses: with several worker processes, one teacher they all call
    config = label_job.LabelConfig(teacher_dir, max_tokens, num_threads=threads_per_worker, share=workers > 1)
    with tempfile.TemporaryDirectory(prefix="bench_label_") as out:
        started = time.perf_counter()
        commit.write(out, "label", [source], lambda a: label_job.run_label(source, config, args, a))
        seconds = time.perf_counter() - started
        data = schema.open_dataset(out).to_table(columns=["id", "teacher_logits"]).to_pydict()
    return seconds, dict(zip(data["id"], data["teacher_logits"]))


@click.command()
@click.option(
    "--input",
    "source",
    default=None,
    help="A finished `kdaug augment` output of single sentences. Default: make one (see --rows).",
)
@click.option("--teacher", "teacher_dir", required=True, help="Fine-tuned teacher (from_pretrained dir).")
@click.option(
    "--rows", default=2000, show_default=True, help="Without --input: SST-2 train rows to augment (×9 sentences)."
)
@click.option(
    "--sst2", default=glue_file("sst2", "train"), show_default=True, help="Without --input: the SST-2 train TSV."
)
@click.option(
    "--threads",
    default=2,
    show_default=True,
    help="Cores in use: torch threads of the ceiling, the naive loop and 1 worker; split among W workers.",
)
@click.option("--workers", default="1,2", show_default=True, help="Comma-separated DirectRunner worker counts.")
@click.option("--naive-rows", default=1000, show_default=True, help="Sentences the naive pipeline loop labels.")
@click.option("--max-tokens", default=1024, show_default=True, help="kdaug label's token budget per batch.")
@click.option("--repeats", default=3, show_default=True, help="Interleaved rounds; the median counts.")
def main(source, teacher_dir, rows, sst2, threads, workers, naive_rows, max_tokens, repeats):
    worker_counts = [int(w) for w in workers.split(",") if w.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_label_input_") as scratch:
        described = source or f"kdaug augment of the first {rows:,} SST-2 train rows (random,knn × 0.3 × 4 copies)"
        source = source or make_input(sst2, rows, os.path.join(scratch, "aug"))
        data = schema.open_dataset(source).to_table(columns=["id", "text_a", "text_b"]).to_pydict()
        if any(b is not None for b in data["text_b"]):
            raise click.UsageError(f"{source} holds sentence pairs; this bench compares single-sentence loops")
        ids, texts = data["id"], data["text_a"]
        naive_texts = texts[:: max(1, len(texts) // naive_rows)][:naive_rows]

        teacher = Teacher.load(teacher_dir, num_threads=threads)
        naive = naive_pipeline(teacher_dir, threads)

        def in_process(fn, batch):
            def run():
                torch.set_num_threads(threads)  # an in-process label run sets it too
                started = time.perf_counter()
                out = fn(batch)
                return time.perf_counter() - started, out

            return run

        variants = {}
        for w in worker_counts:
            per_worker = max(1, threads // w)
            name = f"kdaug label, {w} worker{'s' if w > 1 else ''} × {per_worker} thread{'s' if per_worker > 1 else ''}"
            variants[name] = (len(texts), lambda w=w, t=per_worker: label_stage(source, teacher_dir, max_tokens, w, t))
        ceiling_name = f"plain loop, sorted batches of 64, {threads} threads (ceiling)"
        naive_name = f"naive transformers.pipeline loop, {threads} threads"
        variants[ceiling_name] = (len(texts), in_process(lambda b: plain_loop(teacher, b, 64, sort=True), texts))
        variants[naive_name] = (len(naive_texts), in_process(naive, naive_texts))

        load_before = os.getloadavg()
        seconds = {name: [] for name in variants}
        outputs = {}
        for _ in range(repeats):
            for name, (_, fn) in variants.items():
                seconds[name].append((result := fn())[0])
                outputs[name] = result[1]
        load_after = os.getloadavg()

    rate = {name: n / statistics.median(seconds[name]) for name, (n, _) in variants.items()}
    ceiling, naive_rate = rate[ceiling_name], rate[naive_name]
    click.echo(
        f"{len(texts):,} sentences from {described}; {threads} cores in use; median of {repeats} "
        f"interleaved rounds; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    click.echo(
        table(
            ["what", "sentences", "sentences/s", "vs ceiling", "vs naive", "rounds (sentences/s)"],
            [
                [
                    name,
                    n,
                    round(rate[name]),
                    rate[name] / ceiling,
                    rate[name] / naive_rate,
                    ", ".join(f"{n / s:.0f}" for s in seconds[name]),
                ]
                for name, (n, _) in variants.items()
            ],
        )
    )
    for name in list(variants)[: len(worker_counts)]:
        vs_ceiling, vs_naive = rate[name] / ceiling, rate[name] / naive_rate
        click.echo(
            f"{name}: {vs_ceiling:.2f}× the ceiling (goal ≥ 0.9: {'met' if vs_ceiling >= 0.9 else 'missed'}), "
            f"{vs_naive:.1f}× the naive loop (goal ≥ 3: {'met' if vs_naive >= 3 else 'missed'})"
        )
    reference = outputs[ceiling_name]
    for name in list(variants)[: len(worker_counts)]:
        stored = np.array([outputs[name][i] for i in ids], dtype=np.float32)
        click.echo(
            f"max |stored logits − ceiling loop|, {name}: {np.abs(stored - reference).max():.2e} over {len(ids):,} rows"
        )


if __name__ == "__main__":
    main()
