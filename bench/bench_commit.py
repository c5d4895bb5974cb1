"""What the commit protocol costs: whole `kdaug augment` commands of this checkout against a baseline
checkout (a revision before the protocol, e.g. `git worktree add /tmp/old fc5da8c`), run in turn
(A B A B ...) into their own outputs, so every run after the first replaces a published output, as a
scheduled regeneration does. Prints the median wall seconds of each and the median of the per-round
ratios.

    python -m bench.bench_commit --baseline /tmp/old --input sst2000.tsv --rounds 7
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import click

from bench.checkouts import kdaug_command
from kdaug.report import table

REPO = Path(__file__).resolve().parents[1]


def timed(src: Path, args: list[str]) -> float:
    command, env = kdaug_command(src)
    started = time.perf_counter()
    subprocess.run(
        [*command, *args],
        cwd=src,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


@click.command()
@click.option(
    "--baseline",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A checkout of the revision to compare with.",
)
@click.option(
    "--input",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An SST-2 TSV (e.g. its first 2,000 rows).",
)
@click.option("--methods", default="knn,synonym,eda,random", show_default=True)
@click.option("--chunk-size", default=256, show_default=True, help="Smaller: more files to publish.")
@click.option("--rounds", default=7, show_default=True, help="Interleaved rounds after one warm-up each.")
def main(baseline, source, methods, chunk_size, rounds):
    args = [
        "augment",
        "--task",
        "sst2",
        "--input",
        str(Path(source).resolve()),
        "--methods",
        methods,
        "--degrees",
        "0.1,0.3,0.5",
        "--copies",
        "4",
        "--chunk-size",
        str(chunk_size),
    ]
    with tempfile.TemporaryDirectory(prefix="bench_commit_") as scratch:
        runs = {
            "this checkout": (REPO, [*args, "--output", f"{scratch}/new"]),
            "baseline": (Path(baseline).resolve(), [*args, "--output", f"{scratch}/old"]),
        }
        for src, cmd in runs.values():  # warm-up: caches, and a published output to replace
            timed(src, cmd)
        seconds = {name: [] for name in runs}
        for _ in range(rounds):
            for name, (src, cmd) in runs.items():
                seconds[name].append(timed(src, cmd))
    ratios = [a / b for a, b in zip(seconds["this checkout"], seconds["baseline"])]
    rows = [[name, statistics.median(s), min(s), max(s)] for name, s in seconds.items()]
    rows.append(["ratio (per round)", statistics.median(ratios), min(ratios), max(ratios)])
    click.echo(table(["command (wall s)", "median", "min", "max"], rows))


if __name__ == "__main__":
    main()
