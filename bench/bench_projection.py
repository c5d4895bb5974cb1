"""AugPro-Mix projection cost (issue 5): tokens projected per second, and the share of a run.

Queries are the real AugPro-Mix vectors: `AugProMix.mix_vectors` (what `mix_chunk` projects) for
the first `--rows` SST-2 train sentences at `--degree`, chunk by chunk as the job cuts them
(`--chunk-size` rows, copy 0), so one batch = one chunk's mixed positions, as in the pipeline.
Three ways to project them, on the same batches:

- kdaug `projection.nearest` (k = 1): FAISS exact flat L2 search for 1 + 4 candidates, then a
  float64 re-rank with ties broken by token id (what the pipeline runs);
- FAISS flat search alone (k = 1, no re-rank), on kdaug's own index;
- plain torch: argmin ||x − e||² = argmax 2x·e − ||e||² as one float32 matmul + argmax over the
  same projectable rows (the bracketed special tokens left out, as kdaug does).

The table and the FAISS index are built before the clock (index build time shown apart) and each
method projects one batch untimed first; then the three run interleaved in each of `--repeats`
rounds, and the median round counts. "same ids" is the fraction of queries where a method picks
kdaug's token.

Share of a run: `kdaug run` in-process (DirectRunner, 1 worker, `pipeline.job.run_augment` with the
CLI's label config) on the first `--run-rows` rows (default min(`--rows`, 500)) with augpro-mix at
`--run-degrees`, 1 copy, and the augment-only run (`run_augment` without labelling, i.e. `kdaug
augment`); `projection.nearest` is wrapped by a timer for these runs. Wall times are nice-level
sensitive: on a busy machine a niced process can wait far longer than it computes. The runs start with kdaug's resource caches cleared, so the
first projection builds the index as in a fresh worker (that build is counted in the projection
time and shown apart). Shares are over the wall time of `run_augment` (pipeline start to manifest).

    nice -n 10 python -m bench.bench_projection --teacher /tmp/teachers/sst2 --rows 2000 --run-rows 500 --repeats 3 --threads 2
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import click
import faiss
import numpy as np
import torch

from kdaug import commit
from kdaug.augmenters import AugmentOptions, create, projection, resources
from kdaug.beam.augment_job import AugmentConfig, run_augment
from kdaug.beam.label_job import LabelConfig
from kdaug.inputs import sources
from kdaug.inputs.sources import glue_file
from kdaug.report import table


def query_batches(model_dir: str, path: str, rows: int, degree: float, chunk_size: int) -> list[np.ndarray]:
    """The vectors AugPro-Mix projects, one (m, d) float64 array per chunk of the job."""
    data = Path(path).read_bytes()
    examples = [
        ex for kind, ex in sources.read_examples(path, data, sources.make_task("sst2"), rows) if kind == "example"
    ]
    mixer = create("augpro-mix", AugmentOptions(teacher_dir=model_dir))
    mixer.setup()
    return [mixer.mix_vectors(examples[s : s + chunk_size], degree, 0)[1] for s in range(0, len(examples), chunk_size)]


def projectors(model_dir: str) -> dict:
    """name -> (batch (m, d) -> token ids (m,)); all over the same projectable rows."""
    index, token_ids = projection._vocabulary_index(model_dir)  # kdaug's index (and its BLAS threshold)
    table_t = torch.from_numpy(resources.teacher_word_embeddings(model_dir)[token_ids]).T.contiguous()  # (d, n)
    norms = (table_t * table_t).sum(0)  # ||e||², (n,)

    def kdaug(q):
        return projection.nearest(model_dir, q)[0][:, 0]

    def faiss_only(q):
        return token_ids[index.search(np.ascontiguousarray(q, dtype=np.float32), 1)[1][:, 0]]

    @torch.inference_mode()
    def torch_matmul(q):
        scores = torch.from_numpy(np.asarray(q, dtype=np.float32)) @ table_t
        return token_ids[scores.mul_(2).sub_(norms).argmax(1).numpy()]

    return {
        "kdaug projection.nearest (FAISS flat L2 + float64 re-rank)": kdaug,
        "FAISS IndexFlatL2 search alone (k=1, no re-rank)": faiss_only,
        "torch float32 matmul + argmax": torch_matmul,
    }


class Timed:
    """A wrapper that sums the seconds, calls and query rows of a function (thread-safe)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls, self.queries = fn, 0.0, 0, 0
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds += elapsed
                self.calls += 1
                self.queries += len(args[1]) if len(args) > 1 and hasattr(args[1], "__len__") else 0


def timed_run(model_dir: str, path: str, rows: int, degrees: list[float], chunk_size: int, label: bool) -> dict:
    """One in-process run (augment, or augment + label) with the projection timed."""
    for loader in (projection._vocabulary_index, resources.teacher_word_embeddings, resources.teacher_vocab):
        loader.cache_clear()  # what a fresh worker process pays
    nearest, build = Timed(projection.nearest), Timed(projection._vocabulary_index)
    # `project` and the augmenters reach both through the module (projection.nearest / a global
    # look-up inside projection), so patching the module attributes covers every call.
    with (
        tempfile.TemporaryDirectory() as out,
        mock.patch.object(projection, "nearest", nearest),
        mock.patch.object(projection, "_vocabulary_index", build),
    ):
        config = AugmentConfig(
            [path],
            out,
            sources.make_task("sst2"),
            ["augpro-mix"],
            degrees,
            copies=1,
            options=AugmentOptions(teacher_dir=model_dir),
            chunk_size=chunk_size,
            max_rows=rows,
        )
        started = time.perf_counter()
        teacher = LabelConfig(model_dir) if label else None
        manifest = commit.write(
            config.output,
            "run" if label else "augment",
            config.inputs,
            lambda a: run_augment(config, ["--direct_num_workers", "1"], a, teacher),
        )
        wall = time.perf_counter() - started
    if nearest.calls == 0:
        raise RuntimeError("the projection timer was never hit: the DoFns did not run in this process")
    written = sum(p["rows"] for p in manifest["partitions"].values())
    return {
        "wall": wall,
        "seconds": nearest.seconds,
        "calls": nearest.calls,
        "queries": nearest.queries,
        "build": build.seconds,
        "rows_written": written,
    }


def machine_line(threads: int) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores ({usable} usable), {model}; torch threads {torch.get_num_threads()} "
        f"(asked {threads}), FAISS OpenMP threads {faiss.omp_get_max_threads()}; load average {load}"
    )


@click.command()
@click.option(
    "--teacher",
    "teacher_dir",
    default=None,
    help="Teacher dir (word-piece table, labelling). Default: packaged MiniLM.",
)
@click.option("--input", "path", default=glue_file("sst2", "train"), show_default=True, help="SST-2 train.tsv")
@click.option("--rows", default=2000, show_default=True, help="First N SST-2 train sentences for the query vectors.")
@click.option("--degree", default=0.3, show_default=True, help="AugPro-Mix degree of the query vectors.")
@click.option(
    "--chunk-size",
    default=AugmentConfig.chunk_size,
    show_default=True,
    help="Rows per chunk = queries of one projection batch.",
)
@click.option("--threads", default=2, show_default=True, help="torch intra-op and FAISS OpenMP threads.")
@click.option("--repeats", default=3, show_default=True, help="Interleaved rounds; the median counts.")
@click.option(
    "--run-rows", type=int, default=None, help="Rows of the end-to-end runs (default: min(--rows, 500); 0: skip them)."
)
@click.option("--run-degrees", default="0.1,0.3,0.5", show_default=True, help="Degrees of the end-to-end runs.")
def main(teacher_dir, path, rows, degree, chunk_size, threads, repeats, run_rows, run_degrees):
    model_dir = resources.resolve_teacher_dir(teacher_dir)
    run_rows = min(rows, 500) if run_rows is None else run_rows
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    batches = query_batches(model_dir, path, rows, degree, chunk_size)
    sizes = [len(b) for b in batches]
    queries = sum(sizes)
    started = time.perf_counter()
    runs = projectors(model_dir)  # builds kdaug's FAISS index (memoised) and the torch table
    setup_seconds = time.perf_counter() - started

    for fn in runs.values():
        fn(batches[0])  # warm-up, untimed: first-call costs (OpenMP team, BLAS buffers)
    seconds = {name: [] for name in runs}
    outputs = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            started = time.perf_counter()
            outputs[name] = np.concatenate([fn(b) for b in batches])
            seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    kdaug_name = next(iter(runs))
    reference = outputs[kdaug_name]

    lines = []
    for name, s in median.items():
        rounds = ", ".join(f"{queries / x:,.0f}" for x in seconds[name])
        lines.append(
            [
                name,
                queries,
                s,
                round(queries / s),
                rounds,
                median[kdaug_name] / s,
                f"{(outputs[name] == reference).mean():.2%}",
                None,
                None,
            ]
        )
    if run_rows:
        degrees = [float(d) for d in run_degrees.split(",")]
        for label in (True, False):
            r = timed_run(model_dir, path, run_rows, degrees, chunk_size, label)
            what = "kdaug run (augment + label)" if label else "kdaug augment (no labelling)"
            lines.append(
                [
                    f"{what}: projection.nearest, {r['calls']} calls (index build {r['build']:.2f} s)",
                    r["queries"],
                    r["seconds"],
                    round(r["queries"] / r["seconds"]),
                    None,
                    None,
                    None,
                    r["wall"],
                    f"{r['seconds'] / r['wall']:.1%}",
                ]
            )
            click.echo(f"{what}: {r['rows_written']:,} rows written in {r['wall']:.1f} s", err=True)
            torch.set_num_threads(threads)  # Teacher.load sets the process-wide count

    click.echo(
        f"{rows} SST-2 train sentences, AugPro-Mix degree {degree}: {queries:,} query vectors in {len(batches)} "
        f"batches of one {chunk_size}-row chunk each ({min(sizes)}–{max(sizes)}, mean {queries / len(batches):.0f} "
        f"queries); median of {repeats} interleaved rounds; index + torch table built in {setup_seconds:.2f} s"
    )
    if run_rows:
        click.echo(
            f"end to end: first {run_rows} rows, augpro-mix at {run_degrees}, 1 copy, DirectRunner 1 worker, in-process"
        )
    click.echo(
        table(
            [
                "what",
                "tokens",
                "seconds",
                "tokens/s",
                "rounds (tokens/s)",
                "vs kdaug",
                "same ids as kdaug",
                "run wall s",
                "share of run",
            ],
            lines,
        )
    )
    click.echo(machine_line(threads))


if __name__ == "__main__":
    main()
