"""Issue 20: what kdaug finds in storage is data, never instructions. One test per observed case
(the commit side; model directories are in teacher/test_model_dirs.py, inputs in
inputs/test_input_guard.py, the seeded generator of crafted state in test_crafted_state.py).

Every case plants its state in a real published output with a victim tree and a sentinel beside
it (named by absolute and by `../` paths), runs the commands that read or write the output, and
checks: the command refuses with one clear line (or succeeds whole), and nothing outside OUT
changed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from kdaug import commit, schema
from tests.helpers import invoke, kdaug, one_line, sha, start, tree

WORDS = "the a film movie story actor plot scene good bad great dull charming witty long".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "train.tsv"
    path.write_text(
        "sentence\tlabel\n"
        + "".join(
            " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + i % 9)) + f"\t{i % 2}\n" for i in range(60)
        )
    )
    return path


def augment_args(data: Path, out: Path, *flags) -> list:
    return [
        "augment",
        "--task",
        "sst2",
        "--input",
        data,
        "--output",
        out,
        "--methods",
        "random",
        "--degrees",
        "0.3",
        "--copies",
        "2",
        *flags,
    ]


@pytest.fixture(scope="module")
def pristine(data, tmp_path_factory) -> dict[str, Path]:
    """A published plain output and a versioned root with one run, made once and copied per test."""
    root = tmp_path_factory.mktemp("pristine")
    invoke(*augment_args(data, root / "plain"))
    invoke(*augment_args(data, root / "versioned", "--versioned"))
    return {"plain": root / "plain", "versioned": root / "versioned"}


@pytest.fixture
def world(tmp_path, pristine):
    """OUT (a copy of the plain output), a victim tree and a sentinel beside it, and a check that
    neither ever changes."""
    out = tmp_path / "out"
    shutil.copytree(pristine["plain"], out, symlinks=True)
    victim = tmp_path / "victim"
    (victim / "deep").mkdir(parents=True)
    (victim / "deep" / "precious.parquet").write_bytes(b"outside OUT")
    (victim / "_SUCCESS").write_text("not kdaug's")
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("never touched")
    guarded = tree(victim), sha(sentinel)
    yield {"out": out, "victim": victim, "sentinel": sentinel, "tmp": tmp_path}
    assert (tree(victim), sha(sentinel)) == guarded, "something outside OUT changed"


def manifest_of(out: Path) -> dict:
    return json.loads((out / schema.MANIFEST_FILE).read_text())


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


# --- crafted journals and manifests ---------------------------------------------------------------------


def test_a_crafted_journal_is_refused_by_recover_and_the_next_run(world, data):
    out, victim, sentinel = world["out"], world["victim"], world["sentinel"]
    attempt = manifest_of(out)["attempt"]
    staged = f"_kdaug/attempts/{attempt}"
    for journal in (
        {
            "attempt": attempt,
            "moves": [[f"{staged}/x", str(sentinel)]],
            "manifest": f"{staged}/_manifest.json",
            "remove": [],
        },
        {
            "attempt": attempt,
            "moves": [],
            "manifest": f"{staged}/_manifest.json",
            "remove": [str(victim / "deep" / "precious.parquet")],
        },
        {"attempt": attempt, "moves": [], "manifest": str(sentinel), "remove": []},
        {"attempt": attempt, "moves": [], "manifest": f"{staged}/_manifest.json", "remove": ["../victim/_SUCCESS"]},
        {"attempt": "../../victim", "moves": [], "manifest": "x", "remove": []},
    ):
        write_json(out / commit.JOURNAL_FILE, journal)
        for args in (["recover", out], augment_args(data, out)):
            line = one_line(invoke(*args, code=1))
            assert "publish.json is not as kdaug writes it" in line and "nothing through it" in line
        (out / commit.JOURNAL_FILE).unlink()
    invoke(*augment_args(data, out))  # and once the planted file is gone, the next run publishes


def test_a_crafted_manifest_is_refused_and_never_deletes_outside(world, data):
    out, sentinel = world["out"], world["sentinel"]
    original = (out / schema.MANIFEST_FILE).read_bytes()
    for path in (str(sentinel), "../victim/_SUCCESS", "_kdaug/claims/x.json", ""):
        manifest = manifest_of(out)
        manifest["files"].append({"path": path, "bytes": 11})
        write_json(out / schema.MANIFEST_FILE, manifest)
        assert "_manifest.json is not as kdaug writes it" in one_line(invoke(*augment_args(data, out), code=1))
        assert "_manifest.json is not as kdaug writes it" in one_line(invoke("inspect", out, code=1))
        with pytest.raises(commit.DamagedState):
            schema.open_dataset(str(out))
    (out / schema.MANIFEST_FILE).write_bytes(original)
    assert not (out / commit.STATE_DIR).exists()
    invoke(*augment_args(data, out))


def test_readers_never_follow_paths_out_of_the_root_and_check_sizes(world, pristine):
    root = world["tmp"] / "root"
    shutil.copytree(pristine["versioned"], root, symlinks=True)
    shutil.copytree(pristine["plain"], world["tmp"] / "elsewhere", symlinks=True)
    (root / "LATEST").write_text("../../elsewhere\n")
    assert "LATEST is not as kdaug writes it" in one_line(invoke("inspect", root, code=1))
    with pytest.raises(commit.DamagedState, match="not the name of a run"):
        schema.open_dataset(str(root))

    out = world["out"]
    shard = next(out.glob("random/0.30/*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"x")  # same name, other bytes
    line = one_line(invoke("inspect", out, code=2))
    assert f"{shard.relative_to(out)} has" in line and "not the" in line and "after the run was published" in line
    shard.unlink()  # a listed file gone: the message names the run and the likely cause
    line = one_line(invoke("inspect", out, code=2))
    assert "is missing: run" in line and "changed or deleted after the run was published" in line


# --- the state folder ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["_kdaug", "_kdaug/attempts", "_kdaug/tmp", "_kdaug/claims"])
def test_a_symlink_in_the_state_folder_is_refused_before_any_work(world, data, where):
    out, victim = world["out"], world["victim"]
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).symlink_to(victim, target_is_directory=True)
    line = one_line(invoke(*augment_args(data, out), code=2))
    assert f"{where} is a symbolic link" in line and "nothing was written" in line
    assert one_line(invoke("recover", out, code=2))
    (out / where).unlink()
    invoke(*augment_args(data, out))


def test_damaged_claims_and_stray_state_never_lock_the_output(world, data, monkeypatch):
    out = world["out"]
    claims = out / commit.CLAIMS_DIR
    good = json.loads(json.dumps(asdict(commit.Claim.new("a0a0a0a0a0a0", "augment"))))
    good["pid"] = 2**22 + 12345  # no such process: dead
    claims.mkdir(parents=True)
    write_json(
        claims / "b1b1b1b1b1b1.json", good | {"attempt": "b1b1b1b1b1b1", "extra": "field"}
    )  # an extra field: parsed
    (out / commit.TEMP_DIR).mkdir(parents=True)
    (out / commit.TEMP_DIR / "stray").write_text("not kdaug's name")  # ignored, never deleted
    (out / commit.ATTEMPTS_DIR / "not-an-attempt").mkdir(parents=True)
    (out / commit.ATTEMPTS_DIR / "c2c2c2c2c2c2").mkdir()  # an empty dead staging area: removed
    invoke(*augment_args(data, out))
    assert not (claims / "b1b1b1b1b1b1.json").exists() and not (out / commit.ATTEMPTS_DIR / "c2c2c2c2c2c2").exists()
    assert (out / commit.TEMP_DIR / "stray").exists() and (out / commit.ATTEMPTS_DIR / "not-an-attempt").exists()

    for name, body in (
        ("d3d3d3d3d3d3.json", '{"attempt": "d3d3d3d3d3d3", "pid": '),  # truncated
        ("e4e4e4e4e4e4.json", json.dumps(good | {"attempt": "e4e4e4e4e4e4", "pid": "12"})),
    ):  # a string pid
        claims.mkdir(parents=True, exist_ok=True)
        (claims / name).write_text(body)
        line = one_line(invoke(*augment_args(data, out), code=1))
        assert f"an unreadable claim {claims / name}" in line and "delete it if no kdaug run is writing" in line
        old = time.time() - commit.LEASE_SECONDS - 1  # one lease after it was written, it no longer counts
        os.utime(claims / name, (old, old))
        invoke(*augment_args(data, out))
        assert not (claims / name).exists()


def test_an_empty_or_root_output_is_a_usage_error(data):
    assert "empty path" in one_line(invoke(*augment_args(data, ""), code=2))
    assert "empty path" in one_line(invoke("recover", "", code=2))
    assert "filesystem root" in one_line(invoke(*augment_args(data, "/"), code=2))
    assert "not a kdaug output" in one_line(invoke("recover", "/", code=2))


def test_recover_works_only_on_kdaug_outputs(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's folder")
    assert "not a kdaug output" in one_line(invoke("recover", tmp_path / "mine", code=2))
    assert (tmp_path / "mine" / "notes.txt").exists() and not (tmp_path / "mine" / "_kdaug").exists()


def test_outputs_never_nest_nor_replace_another_kind(world, data, tmp_path):
    out = world["out"]
    for inner in (out / "inner", out / "random" / "0.30" / "more"):
        line = one_line(invoke(*augment_args(data, inner), code=2))
        assert f"lies inside the kdaug output {out}" in line and not inner.exists()
    manifest = manifest_of(out)
    write_json(out / schema.MANIFEST_FILE, manifest | {"kind": "student"})
    line = one_line(invoke(*augment_args(data, out), code=2))
    assert "holds a student model and this command writes an augmented dataset" in line
    write_json(out / schema.MANIFEST_FILE, manifest)
    line = one_line(invoke("distill", "--data", out, "--mode", "ft", "--output", out, "--max-steps", "1", code=2))
    assert "overlap" in line or "holds an augmented dataset" in line


# --- writers and readers in time ------------------------------------------------------------------------


def test_a_full_disk_leaves_no_staging_and_says_so(world, data, monkeypatch):
    from kdaug.beam import augment_job as job

    out = world["out"]
    before = manifest_of(out)["attempt"]

    def full(config, pipeline_args, attempt, label=None):
        staged = Path(attempt.staging_uri) / "random" / "x.parquet"
        staged.parent.mkdir(parents=True)
        staged.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(job, "run_augment", full)
    line = one_line(invoke(*augment_args(data, out), code=1))
    assert "the disk is full" in line and "free space" in line
    assert not (out / commit.STATE_DIR).exists() and manifest_of(out)["attempt"] == before


LEASE = 4.0  # seconds: a writer that stops beating for this long has lost the output


def pause_when(proc: subprocess.Popen, ready, log: Path) -> bool:
    """SIGSTOP `proc`'s process group as soon as `ready()`; False when the stop came too late, the writer
    finished or moved past the moment (a publish can open and close its journal between two polls on
    a loaded machine): it is let finish and the caller starts it again. A writer that failed instead
    fails the test."""
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    try:
        os.killpg(proc.pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    if proc.poll() is None and ready():  # stopped, and still at the moment (not just past it)
        return True
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=300) == 0, log.read_text()
    return False


def rerun(data: Path, out: Path, seed: int) -> subprocess.CompletedProcess:
    return kdaug(*augment_args(data, out, "--seed", seed), env={"KDAUG_LEASE_SECONDS": str(LEASE)}, timeout=300)


@pytest.mark.parametrize("moment", ["staging", "publishing"])
def test_a_writer_paused_past_its_lease_never_publishes_over_another(world, data, tmp_path, moment):
    """SIGSTOP a writer while it stages, or the moment its journal appears (its publish check passed),
    for longer than its lease, and start a second writer; then SIGCONT the first. Paused while
    staging, it has lost the output: the second publishes and the first, resumed, stops with "lost
    its lease". Paused while publishing, it holds the output's lock: the second is refused, and the
    first completes its publish. Either way the output is one whole run."""
    out = world["out"]
    first_input = data
    if moment == "staging":  # long enough to be caught while it stages
        first_input = tmp_path / "big.tsv"
        extra = "".join(f"extra row number {i} of the film\t{i % 2}\n" for i in range(3000))
        first_input.write_text(data.read_text() + extra)
    log = tmp_path / "first.log"
    if moment == "staging":
        ready = lambda: any(out.glob("_kdaug/attempts/*/*/*/*.parquet"))  # noqa: E731
    else:
        ready = (out / commit.JOURNAL_FILE).exists
    for _ in range(10):  # until the first writer is caught at the moment, not after it
        first = start(*augment_args(first_input, out, "--seed", "1"), log=log, env={"KDAUG_LEASE_SECONDS": str(LEASE)})
        if pause_when(first, ready, log):
            break
    else:
        pytest.fail(f"the first writer finished 10 times before it could be paused while {moment}")
    try:
        time.sleep(LEASE + 1)
        second = rerun(data, out, 2)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    first.wait(timeout=300)
    run = commit.published(str(out))  # _SUCCESS, manifest and every listed file agree
    if moment == "staging":
        assert second.returncode == 0, second.stderr
        assert first.returncode == 1 and "lost its lease" in log.read_text(), log.read_text()
        assert run.manifest["config"]["options"]["seed"] == 2
    else:
        assert second.returncode == 1 and "holds the output's lock" in second.stderr, second.stderr
        assert first.returncode == 0, log.read_text()
        assert run.manifest["config"]["options"]["seed"] == 1
    assert not (out / commit.JOURNAL_FILE).exists()
    invoke(*augment_args(data, out, "--seed", 3))  # and the output takes the next run
    assert commit.published(str(out)).manifest["config"]["options"]["seed"] == 3


def test_open_dataset_reads_one_run_while_another_publishes(world, data):
    out = world["out"]
    dataset = schema.open_dataset(str(out))
    expected = sorted(dataset.to_table(columns=["id", "text_a"]).to_pylist(), key=lambda r: r["id"])
    invoke(*augment_args(data, out, "--seed", "7"))  # a whole new run replaces every file while "reading"
    assert sorted(dataset.to_table(columns=["id", "text_a"]).to_pylist(), key=lambda r: r["id"]) == expected
    assert schema.open_dataset(str(out)).to_table(columns=["text_a"]) != dataset.to_table(columns=["text_a"])
