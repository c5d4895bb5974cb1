"""Scaling and end-to-end throughput (issue 5): `kdaug run` (or `kdaug augment`) wall time and
peak memory at growing corpus sizes.

Each size runs the real CLI as a subprocess, degrees 0.1,0.3,0.5, 4 copies, 2 DirectRunner workers
(multi_processing), into a temporary directory:

    kdaug run --task sst2 --input SST2_TRAIN --max-rows N --methods M --degrees 0.1,0.3,0.5 --copies 4
        --teacher T --output TMP --direct_num_workers 2 --direct_running_mode multi_processing

(`--stage augment`: the same `kdaug augment` command, no teacher.) Wall time is the subprocess's,
from start to exit (interpreter start, imports, pipeline, teacher loads, writing); "pipeline s" is
the part the job itself reports (`_metrics.json`: from the pipeline's start to `_SUCCESS`). Memory is sampled every 0.2 s over the whole process tree (kdaug and its Beam
worker processes, read from /proc): the peak of the summed RSS (pages shared between processes,
e.g. libraries, count once per process, so the sum overstates what the tree needs), and the peak
RSS of any single process (its VmHWM, so peaks between samples count too). Output rows come from
the run's `_manifest.json`. With `--repeats` > 1 every round runs every size (interleaved, so a
load change on a shared machine hits all sizes alike) and the table shows medians.

Issue 5's goal: the cost grows linearly with the rows (judged by a least-squares fit
wall = a + b·rows and the largest relative deviation from it) and peak memory stays flat (bounded
by batch and bundle sizes, not by the corpus).

    python -m bench.bench_scaling --teacher /tmp/teachers/sst2 --sizes 1000,4000,16000 --repeats 1
    python -m bench.bench_scaling --stage augment --sizes 10000 --methods knn,synonym,eda,random --repeats 3
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from kdaug import schema
from kdaug.inputs.sources import glue_file
from kdaug.report import table

SAMPLE_SECONDS = 0.2
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def kdaug_command() -> str:
    """The `kdaug` script of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("kdaug")
    found = str(beside) if beside.exists() else shutil.which("kdaug")
    if found is None:
        raise click.ClickException("no kdaug command: install the project (pip install -e .)")
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc/PID/stat (field 4 is the parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])  # the command name may hold spaces and ')'
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB; (0, 0) once it has exited (zombies have neither)."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(maxsplit=1)[0]
                if key in found:
                    found[key] = int(line.split()[1])
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]


def run_once(command: list[str], output: str, log: str) -> dict:
    """Run `command`, sampling its process tree; wall seconds, output rows and peak memory."""
    tree_peak = process_peak = 0
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            samples = [memory_kb(pid) for pid in process_tree(proc.pid)]
            tree_peak = max(tree_peak, sum(rss for rss, _ in samples))
            process_peak = max(process_peak, *(hwm for _, hwm in samples))
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
    if proc.returncode != 0 or not os.path.exists(os.path.join(output, schema.SUCCESS_FILE)):
        tail = Path(log).read_text(errors="replace").splitlines()[-30:]
        raise click.ClickException(f"exit status {proc.returncode}: {' '.join(command)}\n" + "\n".join(tail))
    with open(os.path.join(output, "_manifest.json")) as f:
        partitions = json.load(f)["partitions"]
    rows = sum(info["rows"] for name, info in partitions.items() if name != schema.DEAD_LETTER_DIR)
    with open(os.path.join(output, "_metrics.json")) as f:
        pipeline = json.load(f)["wall_seconds"]
    return {
        "wall": wall,
        "pipeline": pipeline,
        "rows": rows,
        "tree_gb": tree_peak / 1024**2,
        "process_gb": process_peak / 1024**2,
    }


@click.command()
@click.option(
    "--stage",
    type=click.Choice(["run", "augment"]),
    default="run",
    show_default=True,
    help="`kdaug run` (augment + label, needs --teacher) or `kdaug augment`.",
)
@click.option("--teacher", "teacher_dir", default=None, help="Fine-tuned teacher (`kdaug teacher train` output).")
@click.option(
    "--sizes", default="1000,4000,16000", show_default=True, help="Comma-separated source row counts (--max-rows)."
)
@click.option("--repeats", default=1, show_default=True, help="Rounds over all sizes; the median counts when > 1.")
@click.option("--methods", default="knn", show_default=True, help="Augmentation methods, comma-separated.")
@click.option("--input", "source", default=glue_file("sst2", "train"), show_default=True, help="SST-2 train TSV.")
@click.option("--workers", default=2, show_default=True, help="DirectRunner worker processes (multi_processing).")
def main(stage, teacher_dir, sizes, repeats, methods, source, workers):
    if stage == "run" and not teacher_dir:
        raise click.UsageError("--stage run needs --teacher")
    sizes = sorted(int(s) for s in sizes.split(",") if s.strip())
    teacher = ["--teacher", teacher_dir] if stage == "run" else []
    kdaug = kdaug_command()
    results: dict[int, list[dict]] = {n: [] for n in sizes}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as scratch:
        for round_ in range(repeats):
            for n in sizes:
                output = os.path.join(scratch, f"out-{n}-{round_}")
                command = [
                    kdaug,
                    stage,
                    "--task",
                    "sst2",
                    "--input",
                    source,
                    "--max-rows",
                    str(n),
                    "--methods",
                    methods,
                    "--degrees",
                    "0.1,0.3,0.5",
                    "--copies",
                    "4",
                    *teacher,
                    "--output",
                    output,
                    "--direct_num_workers",
                    str(workers),
                    "--direct_running_mode",
                    "multi_processing",
                ]
                result = run_once(command, output, os.path.join(scratch, f"log-{n}-{round_}.txt"))
                results[n].append(result)
                click.echo(
                    f"round {round_ + 1}, {n:,} source rows: {result['rows']:,} rows in {result['wall']:.1f} s, "
                    f"peak tree RSS {result['tree_gb']:.2f} GB",
                    err=True,
                )
                shutil.rmtree(output)
    load_after = os.getloadavg()

    def median(n, key):
        return statistics.median(r[key] for r in results[n])

    rows = {n: results[n][0]["rows"] for n in sizes}  # deterministic: the same in every round
    wall = {n: median(n, "wall") for n in sizes}
    click.echo(
        f"kdaug {stage} --task sst2 --input {source} --max-rows N --methods {methods} --degrees 0.1,0.3,0.5 "
        f"--copies 4 {' '.join(teacher)} --direct_num_workers {workers} --direct_running_mode multi_processing"
    )
    click.echo(
        f"{'median of ' + str(repeats) + ' interleaved rounds' if repeats > 1 else '1 run per size'}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    click.echo(
        table(
            [
                "source rows",
                "output rows",
                "wall s",
                "rows/s",
                "pipeline s",
                "pipeline rows/s",
                "s per 1k output rows",
                "peak tree RSS GB",
                "peak process RSS GB",
                "rounds (wall s)",
            ],
            [
                [
                    n,
                    rows[n],
                    wall[n],
                    round(rows[n] / wall[n]),
                    median(n, "pipeline"),
                    round(rows[n] / median(n, "pipeline")),
                    1000 * wall[n] / rows[n],
                    median(n, "tree_gb"),
                    median(n, "process_gb"),
                    ", ".join(f"{r['wall']:.1f}" for r in results[n]),
                ]
                for n in sizes
            ],
        )
    )
    if len(sizes) >= 2:
        x = np.array([rows[n] for n in sizes], dtype=float)
        y = np.array([wall[n] for n in sizes])
        b, a = np.polyfit(x, y, 1)
        fit = a + b * x
        deviation = np.abs(y - fit) / fit
        line = f"least squares: wall ≈ {a:.1f} s + {1000 * b:.3f} s per 1k output rows"
        if len(sizes) == 2:
            click.echo(f"{line} (2 sizes fit any line exactly: use 3 or more to judge linearity)")
        else:
            click.echo(
                f"{line}; max deviation from the fit {deviation.max():.1%} "
                f"(at {sizes[int(deviation.argmax())]:,} source rows)"
            )
        tree = [median(n, "tree_gb") for n in sizes]
        click.echo(
            f"peak tree RSS from {sizes[0]:,} to {sizes[-1]:,} source rows: {tree[0]:.2f} → {tree[-1]:.2f} GB "
            f"(× {tree[-1] / tree[0]:.2f} for × {rows[sizes[-1]] / rows[sizes[0]]:.0f} rows)"
        )


if __name__ == "__main__":
    main()
