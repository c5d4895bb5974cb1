"""Memory against input size (issue 12): a single large TSV — SST-2 train rows repeated, each made
unique by a numbered suffix, to the sizes asked — read by `kdaug augment --max-rows N --methods random
--degrees 0.3 --copies 1`, this checkout against a baseline checkout (e.g. the revision before input
splits: `git worktree add /tmp/old fc5da8c`). Peak RSS of the largest single process and of the
whole process tree (sampled as in bench_scaling). The files are made once under --workdir and kept
(not in the repository).

    python -m bench.bench_memory --sizes-gb 0.25,1 --baseline /tmp/old
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from bench.bench_scaling import run_once
from bench.checkouts import kdaug_command
from kdaug.inputs.sources import glue_file
from kdaug.report import table

REPO = Path(__file__).resolve().parents[1]


def make_input(sst2: str, gigabytes: float, workdir: Path) -> Path:
    path = workdir / f"sst2-{gigabytes:g}gb.tsv"
    if path.exists():
        return path
    rows = Path(sst2).read_text().splitlines()[1:]
    target, written, i = int(gigabytes * 1e9), 0, 0
    partial = path.with_suffix(".partial")
    with open(partial, "w") as f:
        written += f.write("sentence\tlabel\n")
        while written < target:
            sentence, label = rows[i % len(rows)].rsplit("\t", 1)
            written += f.write(f"{sentence} #{i}\t{label}\n")
            i += 1
    partial.rename(path)
    return path


@click.command()
@click.option("--sizes-gb", default="0.25,1", show_default=True, help="Comma-separated input sizes in GB.")
@click.option("--baseline", type=click.Path(exists=True, file_okay=False), help="A checkout to compare with.")
@click.option("--max-rows", default=20_000, show_default=True)
@click.option("--sst2", default=glue_file("sst2", "train"), show_default=True)
@click.option("--workdir", default=str(REPO / ".cache" / "bench_memory"), show_default=True)
@click.option("--args", "extra", default="", help="More kdaug flags, e.g. '--runner dask'.")
def main(sizes_gb, baseline, max_rows, sst2, workdir, extra):
    Path(workdir).mkdir(parents=True, exist_ok=True)
    checkouts = {"this checkout": REPO, **({"baseline": Path(baseline).resolve()} if baseline else {})}
    rows = []
    for gigabytes in [float(s) for s in sizes_gb.split(",")]:
        data = make_input(sst2, gigabytes, Path(workdir))
        for name, src in checkouts.items():
            with tempfile.TemporaryDirectory(prefix="bench_memory_") as out:
                kdaug, env = kdaug_command(src)
                command = [
                    "env",
                    "-C",
                    str(src),
                    *[f"{k}={v}" for k, v in env.items() if k in ("PYTHONPATH", "HF_HUB_OFFLINE")],
                    *kdaug,
                    "augment",
                    "--task",
                    "sst2",
                    "--input",
                    str(data),
                    "--output",
                    out,
                    "--max-rows",
                    str(max_rows),
                    "--methods",
                    "random",
                    "--degrees",
                    "0.3",
                    "--copies",
                    "1",
                    *extra.split(),
                ]
                found = run_once(command, out, os.path.join(out + ".log"))
            rows.append(
                [f"{os.path.getsize(data) / 1e9:.2f}", name, found["wall"], found["process_gb"], found["tree_gb"]]
            )
            click.echo(rows[-1], err=True)
    click.echo(table(["input GB", "kdaug", "wall s", "largest process peak GB", "process tree peak GB"], rows))


if __name__ == "__main__":
    main()
