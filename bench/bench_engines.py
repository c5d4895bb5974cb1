"""End-to-end `kdaug augment` on several engines (issue 12): the DirectRunner (in process, and 2
worker processes) against Beam's DaskRunner on a `dask.distributed.LocalCluster` of 1 and 2 worker
processes (one thread each, on 127.0.0.1), on one file of N rows and on the same rows in 4 files.

Inputs are SST-2 train rows, each made unique by a numbered suffix (so 100k rows exceed SST-2's 67k).
Rounds are interleaved (every engine and input once per round); the table shows medians of the whole
command's wall time and the rows written per second of it.

    python -m bench.bench_engines --rows 100000 --rounds 3
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from kdaug.inputs.sources import glue_file
from kdaug.report import table
from kdaug.schema import is_shard

REPO = Path(__file__).resolve().parents[1]


def make_inputs(sst2: str, rows: int, workdir: Path) -> dict[str, list[str]]:
    lines = Path(sst2).read_text().splitlines()[1:]
    body = [
        f"{lines[i % len(lines)].rsplit(chr(9), 1)[0]} #{i}\t{lines[i % len(lines)].rsplit(chr(9), 1)[1]}\n"
        for i in range(rows)
    ]
    one = workdir / "one.tsv"
    one.write_text("sentence\tlabel\n" + "".join(body))
    quarter = -(-rows // 4)
    four = []
    for k in range(4):
        path = workdir / f"part{k}.tsv"
        path.write_text("sentence\tlabel\n" + "".join(body[k * quarter : (k + 1) * quarter]))
        four.append(str(path))
    return {"1 file": [str(one)], "4 files": four}


@click.command()
@click.option("--rows", default=100_000, show_default=True)
@click.option("--methods", default="random,eda", show_default=True)
@click.option("--copies", default=2, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--sst2", default=glue_file("sst2", "train"), show_default=True)
def main(rows, methods, copies, rounds, sst2):
    from distributed import LocalCluster

    clusters = {
        n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
        for n in (1, 2)
    }
    engines = {
        "direct, 1 process": [],
        "direct, 2 processes": ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        **{
            f"dask, {n} worker{'s' * (n > 1)}": ["--runner", "dask", "--dask_client_address", c.scheduler_address]
            for n, c in clusters.items()
        },
    }
    results: dict[tuple, list[float]] = {}
    written: dict[tuple, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as scratch:
        inputs = make_inputs(sst2, rows, Path(scratch))
        for _ in range(rounds):
            for shape, files in inputs.items():
                for engine, args in engines.items():
                    out = Path(scratch) / "out"
                    command = [
                        sys.executable,
                        "-m",
                        "kdaug",
                        "augment",
                        "--task",
                        "sst2",
                        *[a for f in files for a in ("--input", f)],
                        "--output",
                        str(out),
                        "--methods",
                        methods,
                        "--degrees",
                        "0.3",
                        "--copies",
                        str(copies),
                        *args,
                    ]
                    started = time.perf_counter()
                    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    results.setdefault((shape, engine), []).append(time.perf_counter() - started)
                    manifest = json.loads((out / "_manifest.json").read_text())
                    written[(shape, engine)] = sum(f.get("rows", 0) for f in manifest["files"] if is_shard(f["path"]))
                    click.echo(f"{shape:8} {engine:22} {results[(shape, engine)][-1]:7.1f} s", err=True)
    for cluster in clusters.values():
        cluster.close()
    table_rows = []
    for (shape, engine), seconds in results.items():
        wall = statistics.median(seconds)
        table_rows.append([shape, engine, wall, min(seconds), max(seconds), round(written[(shape, engine)] / wall)])
    click.echo(table(["input", "engine", "wall s (median)", "min", "max", "rows written/s"], table_rows))


if __name__ == "__main__":
    main()
