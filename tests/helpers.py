"""Helpers shared by the test modules: the `kdaug` command in process and in a real process, and
what the tests compare outputs by. (Fixtures, and the tiny teacher, are in tests/conftest.py.)"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from kdaug import schema
from kdaug.cli import main

#: The repository root (tests/ is one level below it).
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args) -> Result:
    """`kdaug ARGS` in this process; an exception the CLI does not turn into an error message is raised."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def invoke(*args, code: int = 0) -> str:
    """`kdaug ARGS` in this process, which must exit with CODE; its output."""
    result = run_cli(*args)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result.output


def one_line(output: str) -> str:
    """The error a person reads: exactly one `Error:` line, no traceback."""
    lines = [line for line in output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def kdaug(*args, env: dict | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python -m kdaug ARGS` in a real process, its stdout and stderr captured as text; ENV: variables
    set on top of this process's."""
    return subprocess.run(
        [sys.executable, "-m", "kdaug", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env and dict(os.environ, **env),
        **kwargs,
    )


def start(*args, log: Path, env: dict | None = None) -> subprocess.Popen:
    """`python -m kdaug ARGS` started in its own process group (to SIGSTOP/SIGKILL it whole), its
    stdout and stderr in LOG; ENV: variables set on top of this process's."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "kdaug", *map(str, args)],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env and dict(os.environ, **env),
        )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(path: Path, skip: str = "_kdaug") -> dict[str, str]:
    """Every file under PATH (links not followed) with its content hash or link target; `skip`: the
    top folder left out (kdaug's state, where a failed attempt's staging area may stay)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        if Path(dirpath) == path:
            dirnames[:] = [d for d in dirnames if d != skip]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath, name)
            found[str(full.relative_to(path))] = os.readlink(full) if full.is_symlink() else sha(full)
    return found


def rows(output) -> list[dict]:
    """Every row of a published output, in id order."""
    return sorted(schema.open_dataset(str(output)).to_table().to_pylist(), key=lambda r: r["id"])


def chunk(texts, prefix: str = "s") -> list[dict]:
    """A chunk of examples as an augmenter gets them: each text a sentence, or a (text_a, text_b) pair."""
    return [
        {"source_id": f"{prefix}{i}", "text_a": a, "text_b": b, "label": i % 2}
        for i, (a, b) in enumerate(t if isinstance(t, tuple) else (t, None) for t in texts)
    ]


def unstamped(text: str) -> list[str]:
    """TEXT's lines without the UTC time kdaug puts before each line when stderr is no terminal."""
    return [re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", "", line) for line in text.splitlines()]
