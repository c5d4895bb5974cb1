"""One teacher per machine (issue 13): `kdaug label` with 2 DirectRunner worker processes, the teacher
shared by both (`--share-teacher yes`, RunInference's large_model: one process holds it, the other
calls it) against one teacher per worker process (`--share-teacher no`). Peak RSS of the process tree
and of its largest process, sampled as in bench_scaling; wall time of the whole command. Rounds are
interleaved.

    python -m bench.bench_label_memory --input AUG_OUT --teacher T --rounds 2
"""

from __future__ import annotations

import statistics
import sys
import tempfile

import click

from bench.bench_scaling import run_once
from kdaug.report import table


@click.command()
@click.option("--input", "source", required=True, help="A finished `kdaug augment` output.")
@click.option("--teacher", "teacher_dir", required=True, help="Teacher directory.")
@click.option("--workers", default=2, show_default=True)
@click.option("--rounds", default=2, show_default=True)
def main(source, teacher_dir, workers, rounds):
    found: dict[str, list[dict]] = {"yes": [], "no": []}
    for _ in range(rounds):
        for share in found:
            with tempfile.TemporaryDirectory(prefix="bench_label_memory_") as out:
                command = [
                    sys.executable,
                    "-m",
                    "kdaug",
                    "label",
                    "--input",
                    source,
                    "--output",
                    out,
                    "--teacher",
                    teacher_dir,
                    "--direct_num_workers",
                    str(workers),
                    "--direct_running_mode",
                    "multi_processing",
                    "--share-teacher",
                    share,
                ]
                found[share].append(run_once(command, out, out + ".log"))
                click.echo(f"--share-teacher {share}: {found[share][-1]}", err=True)
    rows = [
        [
            f"--share-teacher {share}",
            statistics.median(r["wall"] for r in runs),
            statistics.median(r["tree_gb"] for r in runs),
            statistics.median(r["process_gb"] for r in runs),
        ]
        for share, runs in found.items()
    ]
    click.echo(
        table([f"kdaug label, {workers} workers", "wall s", "process tree peak GB", "largest process peak GB"], rows)
    )


if __name__ == "__main__":
    main()
