"""Untrusted inputs that change or hold nothing: an input truncated or rewritten after planning fails
the run before anything is published, naming the file; an input without a data row, or whose
columns lack a field the task reads (or hold a text as another type), is refused before the job
starts (exit 2), with nothing written under --output."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kdaug import commit, schema
from kdaug.beam import augment_job as job
from kdaug.cli import main

ROWS = [f"a {word} film about {n} people\t{n % 2}" for n, word in enumerate(["fine", "dull", "long", "witty"] * 10)]
MULTI = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def augment(path: Path, out: Path, *extra: str):
    args = [
        "augment",
        "--task",
        "sst2",
        "--input",
        path,
        "--output",
        out,
        "--methods",
        "random",
        "--degrees",
        "0.1",
        "--copies",
        "1",
        "--chunk-size",
        "8",
        *extra,
    ]
    return CliRunner().invoke(main, [str(a) for a in args])


def files(root: Path) -> dict[str, str]:
    """Every file under ROOT but kdaug's state (where a failed attempt's staging area may stay), hashed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "_kdaug"
    }


@pytest.fixture
def published(tmp_path):
    """A TSV input of 40 rows and an output published from it (the previous output a failed run must keep)."""
    path, out = tmp_path / "train.tsv", tmp_path / "out"
    path.write_text("sentence\tlabel\n" + "\n".join(ROWS) + "\n")
    result = augment(path, out)
    assert result.exit_code == 0, result.output
    return path, out, files(out)


@pytest.fixture(scope="module")
def dask_address():
    """A one-worker `dask.distributed` cluster (a separate process) to run the job on."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("runner", ["in_memory", "multi_processing", "dask"])
def test_an_input_truncated_after_planning_fails_the_run_naming_it(published, monkeypatch, request, runner):
    """Truncated once planned: the splits' readers (in worker processes but in_memory) find fewer
    rows than planned in a file of another size."""
    path, out, before = published
    runner_args = {"in_memory": [], "multi_processing": MULTI}.get(runner) or [
        "--runner",
        "dask",
        "--dask_client_address",
        request.getfixturevalue("dask_address"),
    ]
    size = path.stat().st_size
    real_plan = job.plan

    def plan_then_truncate(config):
        planned = real_plan(config)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        return planned

    monkeypatch.setattr(job, "plan", plan_then_truncate)
    result = augment(path, out, *runner_args)
    assert result.exit_code == 1, result.output
    assert f"input {path} changed while the job ran (size {size:,} -> {size // 2:,} bytes" in result.output
    assert "nothing was published; run again" in result.output and "Traceback" not in result.output
    assert files(out) == before


def test_a_parquet_input_truncated_after_planning_fails_the_run_naming_it(tmp_path, monkeypatch):
    """Its readers fail to parse what is left of it: the error says why."""
    path, out = tmp_path / "train.parquet", tmp_path / "out"
    parquet(
        path,
        {"sentence": pa.array([r.split("\t")[0] for r in ROWS]), "label": pa.array([n % 2 for n in range(len(ROWS))])},
    )
    size = path.stat().st_size
    real_plan = job.plan
    monkeypatch.setattr(job, "plan", lambda config: (real_plan(config), os.truncate(path, size - 8))[0])
    result = augment(path, out)
    assert result.exit_code == 1, result.output
    assert f"input {path} changed while the job ran (size {size:,} -> {size - 8:,} bytes" in result.output
    assert not (out / schema.SUCCESS_FILE).exists()


def test_an_input_deleted_after_planning_fails_the_run_naming_it(published, monkeypatch):
    path, out, before = published
    real_plan = job.plan
    monkeypatch.setattr(job, "plan", lambda config: (real_plan(config), path.unlink())[0])
    result = augment(path, out)
    assert result.exit_code == 1 and f"input {path} changed while the job ran (deleted)" in result.output, result.output
    assert files(out) == before


def test_an_input_rewritten_after_it_was_read_fails_the_publish(published, monkeypatch):
    """Rewritten with as many bytes once every split was read: the publishing step's own check (its
    modification time) refuses to publish."""
    path, out, before = published
    real_check = job.InputGuard.__call__

    def rewrite_then_check(guard):
        path.write_bytes(path.read_bytes().replace(b"fine", b"good"))
        os.utime(path, ns=(0, guard.stamps[str(path)].mtime_ns + 5 * 10**9))
        real_check(guard)

    monkeypatch.setattr(job.InputGuard, "__call__", rewrite_then_check)
    result = augment(path, out)
    assert result.exit_code == 1, result.output
    assert f"input {path} changed while the job ran (modified " in result.output and "size" not in result.output
    assert files(out) == before


def parquet(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


NO_DATA = {
    "header.tsv": lambda p: p.write_text("sentence\tlabel\n"),
    "header-and-blank-lines.tsv": lambda p: p.write_text("sentence\tlabel\n\n  \n"),
    "header.csv": lambda p: p.write_text("sentence,label"),
    "blank.jsonl": lambda p: p.write_text("\n \n\n"),
    "empty.parquet": lambda p: parquet(p, {"sentence": pa.array([], pa.string()), "label": pa.array([], pa.int64())}),
}


@pytest.mark.parametrize("name", sorted(NO_DATA))
def test_an_input_without_data_rows_is_refused_before_the_job(tmp_path, name):
    path, out = tmp_path / name, tmp_path / "out"
    NO_DATA[name](path)
    result = augment(path, out)
    assert result.exit_code == 2 and f"{path}: no data rows" in result.output, result.output
    assert not out.exists()


WRONG_FIELDS = {
    "no-column.parquet": (
        lambda p: parquet(p, {"text": pa.array(["a film"]), "label": pa.array([1])}),
        "no column 'sentence' (its columns: text (string), label (int64))",
    ),
    "int-column.parquet": (
        lambda p: parquet(p, {"sentence": pa.array([5]), "label": pa.array([1])}),
        "column 'sentence' is int64, not a string (its columns: sentence (int64), label (int64))",
    ),
    "no-field.jsonl": (
        lambda p: p.write_text("\n" + json.dumps({"text": "a film", "label": 1}) + "\n"),
        "line 2, the first row, has no field 'sentence' (its fields: text, label)",
    ),
    "no-label.tsv": (
        lambda p: p.write_text("sentence\tgrade\na film\t1\n"),
        "no column 'label' (its columns: sentence, grade)",
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG_FIELDS))
def test_an_input_without_the_tasks_fields_is_refused_before_the_job(tmp_path, name):
    write, message = WRONG_FIELDS[name]
    path, out = tmp_path / name, tmp_path / "out"
    write(path)
    result = augment(path, out)
    assert result.exit_code == 2 and f"{path}: {message}" in result.output, result.output
    assert not out.exists()


def test_a_later_jsonl_row_without_the_field_is_still_a_dead_letter(tmp_path):
    path, out = tmp_path / "later.jsonl", tmp_path / "out"
    path.write_text(
        "".join(json.dumps({"sentence": f"a film {n}", "label": n % 2}) + "\n" for n in range(5))
        + json.dumps({"text": "no sentence", "label": 1})
        + "\n"
    )
    result = augment(path, out)
    assert result.exit_code == 0, result.output
    dead = pq.read_table(out / schema.DEAD_LETTER_DIR).to_pylist()
    assert [(d["line"], d["reason"]) for d in dead] == [(6, "missing field 'sentence'")]
    assert commit.published(str(out)).manifest["counts"]["originals"] == 5
