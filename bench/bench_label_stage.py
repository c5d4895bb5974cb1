"""Teacher labelling in Beam (`kdaug label`) vs the plain torch loop over the same sentences.

The stage is timed end to end (pipeline start, teacher load, reading, labelling, writing the
shards), so its figure is a lower bound on the labelling DoFn's own rate. The ceiling is a
hand-written loop: length-sorted batches of 64, the same model and the same torch threads.

    python bench/bench_label_stage.py --input AUG_OUT --teacher /tmp/teachers/sst2 [--workers 2]
"""

from __future__ import annotations

import tempfile
import time

import click
import torch

from bench.bench_teacher import plain_loop
from pipeline import label_job, schema
from pipeline.job import run_pipeline
from pipeline.report import table
from pipeline.teacher import Teacher, default_num_threads


@click.command()
@click.option("--input", "source", required=True, help="A finished `kdaug augment` output (single sentences).")
@click.option("--teacher", "teacher_dir", required=True)
@click.option("--workers", default=1, show_default=True, help="DirectRunner worker processes for the stage.")
@click.option("--max-tokens", default=1024, show_default=True)
def main(source, teacher_dir, workers, max_tokens):
    texts = schema.open_dataset(source).to_table(columns=["text_a"]).column(0).to_pylist()
    args = ["--direct_num_workers", str(workers)] + (["--direct_running_mode", "multi_processing"] if workers > 1 else [])
    with tempfile.TemporaryDirectory() as out:
        config = label_job.LabelConfig(teacher_dir, max_tokens)
        manifest = run_pipeline(out, args, lambda p, token: label_job.build(p, source, out, config, token))
    stage = len(texts) / manifest["wall_seconds"]

    teacher = Teacher.load(teacher_dir, num_threads=default_num_threads())
    started = time.perf_counter()
    plain_loop(teacher, texts, 64, sort=True)
    ceiling = len(texts) / (time.perf_counter() - started)
    click.echo(table(
        ["what", "sentences", "sentences/s", "vs ceiling"],
        [[f"kdaug label, {workers} worker(s), end to end", len(texts), stage, stage / ceiling],
         [f"plain torch loop, sorted batches of 64, {torch.get_num_threads()} threads", len(texts), ceiling, 1.0]],
    ))


if __name__ == "__main__":
    main()
