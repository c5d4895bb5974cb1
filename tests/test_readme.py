"""The README's examples, run as a reader runs them, and the facts its tables state, checked against the code.

A fenced block preceded by `<!-- test: offline -->` is run by the default test run: small data, a few
seconds each. One preceded by `<!-- test: slow -->` needs `../shared/data` or minutes and runs with
`make test-slow`. The blocks of each kind run in README order in one fresh directory that looks like a
checkout (`.venv` and `../shared` are links to the real ones), so `.venv/bin/kdaug` and
`../shared/data/...` mean what they mean in the README and a later block reads what an earlier one
wrote (`out/demo`). bash blocks run under `bash -e -o pipefail`, Python blocks as a script. Blocks
without a mark are documentation only (Dataflow, Airflow, a teacher trained for an hour), but every
Python block must at least compile.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, REPO / "docker" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKS = ("offline", "slow")
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!-- test: ([\w-]+) -->\n\Z")


@dataclass(frozen=True)
class Example:
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    mark: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang}, {self.mark})"


def examples(text: str) -> list[Example]:
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        mark = MARK.search(before)
        found.append(Example(before.count("\n") + 1, match[1], match[2], mark[1] if mark else None))
    return found


EXAMPLES = examples(README.read_text(encoding="utf-8"))


def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory laid out as a checkout for the README's relative paths, and the environment."""
    root = tmp_path / "kdaug"
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    env = dict(
        os.environ,
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_CACHE=str(tmp_path / "hf-datasets"),  # `datasets.load_dataset` caches what it reads
    )
    env.pop("KDAUG_DEBUG", None)
    return root, env


def run_example(example: Example, cwd: Path, env: dict[str, str], timeout: float) -> None:
    if example.lang == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", example.code]
    elif example.lang == "python":
        command = [sys.executable, "-c", example.code]
    else:
        raise AssertionError(f"{example}: only bash and python blocks can be marked")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{example} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def test_marks_sit_on_runnable_blocks():
    text = README.read_text(encoding="utf-8")
    marked = [e for e in EXAMPLES if e.mark]
    marks = re.findall(r"^<!-- test: [\w-]+ -->$", text, re.M)
    assert len(marks) == len(marked), "a mark must sit on the line right above a fence"
    assert {e.mark for e in marked} <= set(MARKS)
    assert {e.lang for e in marked} <= {"bash", "python"}
    assert sum(e.mark == "offline" for e in marked) >= 4


def test_python_blocks_compile():
    for example in EXAMPLES:
        if example.lang == "python":
            ast.parse(example.code, f"README.md:{example.line}")


def test_offline_examples_run(tmp_path):
    cwd, env = workspace(tmp_path)
    for example in (e for e in EXAMPLES if e.mark == "offline"):
        run_example(example, cwd, env, timeout=120)
    # what they say they make
    assert (cwd / "out" / "demo" / "_SUCCESS").is_file()
    assert '"unchanged"' in (cwd / "out" / "night2.json").read_text()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", (cwd / "out" / "nightly.log").read_text())


@pytest.mark.slow
def test_slow_examples_run(tmp_path):
    if not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip("../shared/data is not there")
    cwd, env = workspace(tmp_path)
    for example in (e for e in EXAMPLES if e.mark == "slow"):
        run_example(example, cwd, env, timeout=900)


# The facts the docs state in tables, against the code they describe.


def test_the_method_table_lists_every_method():
    from kdaug.augmenters import REGISTRY

    listed = set(re.findall(r"^\| `([a-z-]+)` \|", README.read_text(encoding="utf-8"), re.M))
    assert set(REGISTRY) <= listed, sorted(set(REGISTRY) - listed)


def test_every_environment_variable_is_documented():
    """Each variable the code reads (`os.environ.get("KDAUG_…")`) has its row in the README's table."""
    reads = re.compile(r"os\.environ(?:\.get|\.setdefault|\.pop)?[\[(]\"([A-Z_]+)\"")
    read = set()
    for folder in ("pipeline", "distill", "docker"):
        for path in (REPO / folder).rglob("*.py"):
            read |= set(reads.findall(path.read_text(encoding="utf-8")))
    rows = README.read_text(encoding="utf-8").split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", rows))
    assert read and read <= documented, sorted(read - documented)


def test_docs_name_the_image_teacher_and_the_current_layout():
    assert "/opt/kdaug/teacher/" in (REPO / "docker" / "Dockerfile").read_text()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert "/opt/kdaug/teachers/" not in text, doc  # the image's teacher is /opt/kdaug/teacher
        assert not re.search(r"method=[A-Z]\b|OUT/method=", text), doc  # schema 2+: OUT/METHOD/DEGREE/
