"""Crash safety: real `kdaug augment` processes SIGKILLed while they write their shards.

A killed run must never look complete (no `_SUCCESS`, LATEST not moved) and a re-run must give
exactly the rows of an uninterrupted run: in place over the killed run's leftovers (plain output)
and as a new run beside them (versioned root).
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from pipeline import schema, versioning
from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
WORDS = "the a film movie story actor plot scene good bad great dull charming witty long music camera funny sad".split()


def rows(path) -> list[tuple]:
    table = schema.open_dataset(str(path)).to_table(columns=["id", "method", "degree", "text_a", "label"])
    return sorted(tuple(r.values()) for r in table.to_pylist())


def augment_args(input_file, output, *flags):
    """Big enough that writing the shards takes a second or more (~17,000 rows in 48 files)."""
    return ["augment", "--task", "sst2", "--input", str(input_file), "--output", str(output), "--methods", "random",
            "--degrees", "0.1,0.2,0.3,0.4,0.5", "--copies", "4", "--chunk-size", "100", *flags]


def invoke(args):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def kill_while_writing(runs: dict[str, list[str]], tmp_path) -> None:
    """Start `kdaug ARGS` processes (name → args), SIGKILL each once its `_temporary` holds a shard."""
    procs = {}
    for name, args in runs.items():
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
    output = {name: Path(args[args.index("--output") + 1]) for name, args in runs.items()}
    deadline = time.monotonic() + 300
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is None and any(output[name].glob("**/_temporary/*/*/*/*.parquet")):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        time.sleep(0.005)
    for name, proc in procs.items():
        assert proc.returncode == -signal.SIGKILL, f"{name} was not killed mid-way:\n{(tmp_path / f'{name}.log').read_text()}"


def test_killed_runs_never_look_complete_and_reruns_give_the_same_rows(tmp_path):
    rng = random.Random(0)
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 25))) + f"\t{i % 2}\n" for i in range(800)))

    root, plain = tmp_path / "root", tmp_path / "plain"
    invoke(augment_args(data, root, "--versioned"))  # an uninterrupted run
    first = versioning.latest(str(root))
    expected = rows(root)
    assert len(expected) == 800 * 21 == len({r[0] for r in expected})
    shutil.copytree(root / "runs" / first, plain)  # a finished plain output, to be overwritten

    kill_while_writing({"plain": augment_args(data, plain), "versioned": augment_args(data, root, "--versioned")}, tmp_path)

    assert not (plain / schema.SUCCESS_FILE).exists() and any(plain.glob("_temporary/*/*/*/*.parquet"))
    names, finished = versioning.runs(str(root))
    killed = [n for n in names if n != first]
    assert len(killed) == 1 and finished == {first}
    assert not (root / "runs" / killed[0] / schema.SUCCESS_FILE).exists()
    assert versioning.latest(str(root)) == first and rows(root) == expected

    invoke(augment_args(data, plain))  # in place, over the killed run's leftovers
    assert rows(plain) == expected and not (plain / "_temporary").exists()

    invoke(augment_args(data, root, "--keep", "1"))  # a new run; the finished and the killed one are pruned
    latest = versioning.latest(str(root))
    assert versioning.runs(str(root)) == ([latest], {latest})
    assert rows(root) == expected
