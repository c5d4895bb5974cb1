"""The commit protocol (`pipeline.commit`) with real `kdaug` processes: every case of issue 11, and a
seeded fault test.

Deterministic cases: two writers on one output, two versioned runs at once, symbolic links, --keep
beside a live run, failed re-runs, unfinished outputs and their readers, stale dead letters, outputs
inside inputs, foreign files, a crash inside the publish (after the commit point) and its recovery.

The fault test (`test_random_faults_keep_the_invariants`): for each trial seed, writers of seed-0
and seed-1 runs and readers start with random gaps on one output (plain or versioned, with or
without --keep, through a symlinked path or not), some SIGKILLed at random moments, others paused
(SIGSTOP) at random moments for longer than their lease (a 4-second one here) and then resumed
(SIGCONT) while the others go on; after every step it checks
  I1  `_SUCCESS` ⇒ the published files equal, byte for byte, those of one clean run;
  I2  a reader's rows are exactly one clean run's rows (or it refuses: never a mix);
  I3  after any failure the previous published output is still whole (a writer killed after its
      commit point is rolled forward by `kdaug recover`, and then it is that writer's clean run);
  I4  a sentinel tree outside OUT, linked from inside OUT's staging area, never changes;
  I5  a re-run after the failures equals a clean run.
The default run covers trial seed 0 (a plain output, about 20 seconds); `-m slow` covers seeds 0-29.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kdaug import commit, schema
from tests.helpers import REPO, invoke, kdaug, one_line, sha, start, tree

WORDS = "the a film movie story actor plot scene good bad great dull charming witty long music camera funny sad".split()
READER = """
import hashlib, json, sys
import pyarrow as pa
from kdaug import commit, schema
try:
    run = commit.published(sys.argv[1])
    table = schema.open_published(run).to_table(columns=["id", "text_a", "method", "degree"])
    run.check_current()
except (commit.CommitError, OSError, pa.ArrowException) as err:
    print(json.dumps({"refused": f"{type(err).__name__}: {err}"}))
    sys.exit(0)
rows = sorted(json.dumps(r, sort_keys=True) for r in table.to_pylist())
print(json.dumps({"seed": run.manifest["config"]["options"]["seed"], "sha": hashlib.sha256("\\n".join(rows).encode()).hexdigest()}))
"""


def write_input(path: Path, rows: int = 800) -> Path:
    rng = random.Random(0)
    path.write_text(
        "sentence\tlabel\n"
        + "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 25))) + f"\t{i % 2}\n" for i in range(rows))
    )
    return path


def augment_args(input_file, output, seed=0, *flags):
    """A run that writes for a second or more (~10,400 rows in 32 files)."""
    return [
        "augment",
        "--task",
        "sst2",
        "--input",
        str(input_file),
        "--output",
        str(output),
        "--methods",
        "random",
        "--degrees",
        "0.1,0.3,0.5",
        "--copies",
        "4",
        "--chunk-size",
        "100",
        "--seed",
        str(seed),
        *flags,
    ]


def error_lines(stderr: str) -> list[str]:
    """What a person reads of a failed command: its lines but Beam's import-time warnings."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("WARNING:root:")]


@contextmanager
def paused(proc: subprocess.Popen):
    """Hold a started writer still (SIGSTOP to its process group) while the test acts on its output:
    "it is still running" must not depend on how fast a loaded machine starts the next process."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def published_files(output) -> tuple[dict, dict[str, str]] | None:
    """(manifest, {published path: sha256}) of OUTPUT's published run, or None when it has none."""
    try:
        run = commit.published(str(output))
    except commit.UnfinishedOutput:
        return None
    return run.manifest, {rel: sha(Path(run.dir) / rel) for rel in commit.manifest_files(run.manifest)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The input, and the published files and rows of a clean run of each seed (the references)."""
    root = tmp_path_factory.mktemp("commit")
    data = write_input(root / "train.tsv")
    # both clean runs at once, one per core; "seconds": how long a real run takes, start-up included
    started = time.monotonic()
    procs = {
        seed: start(*augment_args(data, root / f"clean-{seed}", seed), log=root / f"{seed}.log") for seed in (0, 1)
    }
    took = {}
    while len(took) < len(procs):
        for seed, proc in procs.items():
            if seed not in took and proc.poll() is not None:
                assert proc.returncode == 0, (root / f"{seed}.log").read_text()
                took[seed] = time.monotonic() - started
        time.sleep(0.01)
    clean = {}
    for seed in (0, 1):
        out = root / f"clean-{seed}"
        table = schema.open_dataset(str(out)).to_table(columns=["id", "text_a", "method", "degree"])
        rows = sorted(json.dumps(r, sort_keys=True) for r in table.to_pylist())
        clean[seed] = {
            "dir": out,
            "files": published_files(out)[1],
            "sha": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
        }
    assert clean[0]["files"].keys() == clean[1]["files"].keys() and clean[0]["files"] != clean[1]["files"]
    big = write_input(root / "big.tsv", rows=2500)  # a writer that runs for seconds after its claim
    return {"data": data, "clean": clean, "seconds": max(took.values()), "big": big}


def assert_clean_run(output, world) -> dict:
    """I1: OUTPUT's published files are exactly those of the clean run of the seed its manifest names."""
    found = published_files(output)
    assert found is not None, f"{output} has no published run"
    manifest, files = found
    assert files == world["clean"][manifest["config"]["options"]["seed"]]["files"]
    return manifest


# --- the observed cases ---------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_first(world, tmp_path):
    out = tmp_path / "out"
    first = start(*augment_args(world["big"], out, 0), log=tmp_path / "first.log")
    deadline = time.monotonic() + 120
    while not list(out.glob("_kdaug/claims/*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    claim = json.loads(next(out.glob("_kdaug/claims/*.json")).read_text())
    with paused(first):
        second = kdaug(*augment_args(world["data"], out, 1))
    assert first.wait() == 0, (tmp_path / "first.log").read_text()
    assert second.returncode == 1
    assert (
        f"is being written by another kdaug run: attempt {claim['attempt']} (`kdaug augment`, pid {first.pid}"
        in second.stderr
    )
    assert "Traceback" not in second.stderr and len(error_lines(second.stderr)) <= 2
    assert commit.published(str(out)).manifest["attempt"] == claim["attempt"]


def test_writers_started_together_never_both_proceed(world, tmp_path):
    """Identical versioned runs started at the same moment: at most one gets the root (both may be
    refused); no two runs ever share a folder, and LATEST names a whole run."""
    root = tmp_path / "root"
    procs = [start(*augment_args(world["data"], root, 0, "--versioned"), log=tmp_path / f"{i}.log") for i in range(3)]
    codes = [p.wait() for p in procs]
    assert codes.count(0) <= 1 and set(codes) <= {0, 1}, codes
    for i, code in enumerate(codes):
        if code:
            assert "is being written by another kdaug run" in (tmp_path / f"{i}.log").read_text()
    runs = sorted(p.name for p in (root / "runs").glob("*/")) if (root / "runs").exists() else []
    assert len(runs) == codes.count(0)
    if runs:
        assert (root / "LATEST").read_text().strip() == runs[0]
        assert_clean_run(root, world)
    invoke(*augment_args(world["data"], root, 0, "--versioned"))  # and then one after the other: new folders
    invoke(*augment_args(world["data"], root, 0, "--versioned"))
    names = sorted(p.name for p in (root / "runs").glob("*/"))
    assert len(names) == len(set(names)) == len(runs) + 2 and (root / "LATEST").read_text().strip() == names[-1]


def test_symbolic_links_are_never_followed(world, tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim"
    invoke(*augment_args(world["data"], out, 0))
    (victim / "0.30").mkdir(parents=True)
    (victim / "0.30" / "part-00000-of-00010.parquet").write_text("not kdaug's")
    before = tree(victim)

    (out / "eda").symlink_to(victim, target_is_directory=True)  # a partition folder that is a link
    assert "files kdaug did not write (eda)" in invoke(*augment_args(world["data"], out, 1), code=2)
    (out / "eda").unlink()

    published = out / "random" / "0.30" / "part-00000-of-00008.parquet"  # a listed file made a link
    published.unlink()
    published.symlink_to(victim / "0.30" / "part-00000-of-00010.parquet")
    assert "random/0.30/part-00000-of-00008.parquet" in invoke(*augment_args(world["data"], out, 1), code=2)
    with pytest.raises(commit.CommitError, match="is a symbolic link"):  # and the store itself refuses it
        commit.Store(str(out)).delete("random/0.30/part-00000-of-00008.parquet")
    with pytest.raises(commit.CommitError, match="leaves the output"):
        commit.Store(str(out)).delete("random/../../victim/0.30/part-00000-of-00010.parquet")
    published.unlink()
    assert tree(victim) == before


def test_keep_never_deletes_a_live_run_and_latest_never_moves_back(world, tmp_path):
    root = tmp_path / "root"
    invoke(*augment_args(world["data"], root, 0, "--versioned"))
    running = start(*augment_args(world["big"], root, 1, "--versioned", "--keep", "1"), log=tmp_path / "a.log")
    while not list(root.glob("_kdaug/claims/*.json")):
        time.sleep(0.05)
    with paused(running):
        pruner = invoke(*augment_args(world["data"], root, 0, "--versioned", "--keep", "1"), code=1)
    assert "is being written by another kdaug run" in pruner
    assert running.wait() == 0, (tmp_path / "a.log").read_text()
    assert commit.published(str(root)).manifest["config"]["inputs"] == [str(world["big"])]
    assert len(list((root / "runs").glob("*/"))) == 1

    # a writer that lost its lease while paused (another took over) publishes nothing, even if it
    # still tries: LATEST names a newer run
    store = commit.Store(str(root))
    stale = commit.Attempt(str(root), "0123456789ab", versioned=True, run_name="20000101T000000.000000Z-0123456789ab")
    with pytest.raises(commit.CommitError, match="lost its lease"):
        commit.publish(stale, {}, [])
    lease = commit.Lease(store, "test").acquire()
    try:
        stale = commit.Attempt(
            str(root), lease.attempt, versioned=True, run_name="20000101T000000.000000Z-" + lease.attempt
        )
        with pytest.raises(commit.CommitError, match="LATEST never moves back in time"):
            commit.publish(stale, {}, [])
    finally:
        lease.release()
    assert commit.published(str(root)).manifest["config"]["inputs"] == [str(world["big"])]


def broken_teacher(tmp_path, tiny_teacher_dir) -> Path:
    path = tmp_path / "truncated-teacher"
    shutil.copytree(tiny_teacher_dir, path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return path


@pytest.mark.parametrize("processes", ["two", pytest.param("all", marks=pytest.mark.slow)])
def test_a_failed_rerun_leaves_the_previous_output_whole(world, tmp_path, tiny_teacher_dir, processes):
    """Every failed re-run (bad flags, an input without rows, a broken teacher) exits with its code and
    one clear error, and leaves the published output as it was: each run in this process, and as a
    real `kdaug` process (what a person reads on stderr: no traceback, a few lines) for one usage error
    and one failed job by default, for every case with `-m slow`."""
    out, small, lab = tmp_path / "out", tmp_path / "small", tmp_path / "lab"
    shutil.copytree(world["clean"][0]["dir"], out, symlinks=True)  # a published output
    invoke(*augment_args(world["data"], small, 0), "--max-rows", "40")  # and a labelled one
    invoke("label", "--input", small, "--output", lab, "--teacher", tiny_teacher_dir, "--teacher-threads", "1")
    before, labelled = tree(out), tree(lab)
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "dead.tsv").write_text("sentence\tlabel\nx\t7\n\t1\n")
    args = augment_args(world["data"], out, 1)
    cases = [
        ([*args, "--methods", "eda,eda"], 2, "methods are repeated"),
        ([*args, "--input", tmp_path], 2, "is a directory"),
        ([*args[:4], tmp_path / "empty.tsv", *args[5:]], 2, "is empty"),
        ([*args[:4], tmp_path / "dead.tsv", *args[5:]], 1, "no usable rows: 2 rows read, 2 of them dead letters"),
        ([*args, "--max-rows", "0"], 2, "--max-rows must be at least 1"),
        ([*args, "--degrees", "0.001"], 2, "not round to 0.00"),
        ([*args, "--degrees", "0.301,0.302"], 2, "they must differ there"),
        ([*args, "--methods", ","], 2, "no augmentation method given"),
    ]
    for bad, code, says in cases:
        assert says in one_line(invoke(*bad, code=code))
        assert tree(out) == before
    for bad, code, says in cases if processes == "all" else [cases[0], cases[3]]:
        result = kdaug(*bad)
        assert result.returncode == code and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(error_lines(result.stderr)) <= 5, result.stderr
        assert tree(out) == before
    broken = broken_teacher(tmp_path, tiny_teacher_dir)
    assert "model.safetensors" in one_line(
        invoke("label", "--input", small, "--output", lab, "--teacher", broken, code=2)
    )
    if processes == "all":
        result = kdaug("label", "--input", small, "--output", lab, "--teacher", broken)
        assert result.returncode == 2 and "model.safetensors" in result.stderr, result.stderr
    assert tree(lab) == labelled


def test_readers_refuse_an_unfinished_output(world, tmp_path):
    out = tmp_path / "out"
    (out / "random" / "0.30").mkdir(parents=True)  # shards without _SUCCESS or manifest
    clean_file = Path(commit.published(str(world["clean"][0]["dir"])).files[0])
    (out / "random" / "0.30" / "part-00000-of-00001.parquet").write_bytes(clean_file.read_bytes())
    with pytest.raises(commit.UnfinishedOutput, match="has no _SUCCESS"):
        schema.open_dataset(str(out))
    assert schema.open_dataset(str(out), allow_unfinished=True).count_rows() == pq.read_metadata(clean_file).num_rows
    assert "has no _SUCCESS" in invoke("inspect", out, code=2)
    assert "--allow-unfinished" in invoke("inspect", out, "--allow-unfinished")
    result = invoke("distill", "--data", out, "--mode", "ft", "--output", tmp_path / "student", code=2)
    assert "has no _SUCCESS" in result and not (tmp_path / "student").exists()
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    result = invoke(
        "sweep",
        "--data",
        f"size=8:{out}",
        "--dev",
        tmp_path / "dev.tsv",
        "--methods",
        "random",
        "--modes",
        "ft",
        "--output",
        tmp_path / "sweep",
        code=2,
    )
    assert "has no _SUCCESS" in result

    # the output of a live writer says who is writing it
    proc = start(*augment_args(world["big"], tmp_path / "busy", 0), log=tmp_path / "busy.log")
    while not list((tmp_path / "busy").glob("_kdaug/claims/*.json")):
        time.sleep(0.05)
    with paused(proc), pytest.raises(commit.UnfinishedOutput, match=rf"attempt \w+ \(`kdaug augment`, pid {proc.pid}"):
        schema.open_dataset(str(tmp_path / "busy"))
    assert proc.wait() == 0


def test_a_clean_rerun_drops_stale_dead_letters(world, tmp_path):
    dirty = tmp_path / "train.tsv"
    dirty.write_text(world["data"].read_text() + "bad\tline\twith three columns\n")
    out = tmp_path / "out"
    invoke(*augment_args(dirty, out, 0))
    assert (out / schema.DEAD_LETTER_DIR).is_dir()
    dirty.write_text(world["data"].read_text())
    invoke(*augment_args(dirty, out, 0))
    manifest = json.loads((out / schema.MANIFEST_FILE).read_text())
    assert manifest["counts"]["dead_letters"] == 0 and not (out / schema.DEAD_LETTER_DIR).exists()
    assert published_files(out)[1] == world["clean"][0]["files"]


def test_outputs_and_inputs_may_not_overlap(world, tmp_path, tiny_teacher_dir):
    out = tmp_path / "out"
    invoke(*augment_args(world["data"], out, 0))
    for nested in (out / "labelled", tmp_path):
        result = invoke("label", "--input", out, "--output", nested, "--teacher", tiny_teacher_dir, code=2)
        assert "overlap" in result
    assert not (out / "labelled").exists()
    result = invoke(*augment_args(world["data"], world["data"].parent, 0), code=2)  # --output = the input's folder
    assert "overlap" in result


def test_foreign_files_are_refused_and_never_reach_kdaug_readers(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "holds files kdaug did not write (notes.txt)" in invoke(*augment_args(world["data"], out, 0), code=2)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    invoke(*augment_args(world["data"], out, 0))
    (out / "notes.txt").write_text("added after the run")  # kdaug's readers read only what the manifest lists
    (out / "random" / "0.30" / "stray.parquet").write_bytes(b"not parquet")
    assert schema.open_dataset(str(out)).count_rows() == 800 * (1 + 3 * 4)
    assert "random    0.30" in invoke("inspect", out)


def test_a_crash_after_the_commit_point_is_rolled_forward(world, tmp_path, monkeypatch):
    """A writer that dies while moving its files in (after its journal): readers refuse the output,
    saying so, and `kdaug recover` (or the next run) completes the dead writer's publish."""
    out = tmp_path / "out"
    invoke(*augment_args(world["data"], out, 0))
    moves = []

    def die_half_way(store, src, dst, move=commit.Store.move):
        if len(moves) == 20:
            raise RuntimeError("killed")
        moves.append(dst)
        move(store, src, dst)

    monkeypatch.setattr(commit.Store, "move", die_half_way)
    assert "killed" in invoke(*augment_args(world["data"], out, 1), code=1)
    monkeypatch.undo()
    assert (out / "_kdaug" / "publish.json").exists() and not (out / schema.SUCCESS_FILE).exists()
    with pytest.raises(commit.UnfinishedOutput, match="interrupted"):
        schema.open_dataset(str(out))
    result = kdaug("recover", out)
    assert result.returncode == 0 and "finishing the publish of attempt" in result.stderr
    assert assert_clean_run(out, world)["config"]["options"]["seed"] == 1
    assert not (out / "_kdaug").exists()


def test_a_versioned_run_dead_before_latest_moved_is_removed(world, tmp_path, monkeypatch):
    root = tmp_path / "root"
    invoke(*augment_args(world["data"], root, 0, "--versioned"))
    first = (root / "LATEST").read_text().strip()
    write = commit.Store.write

    def die_at_latest(store, rel, data):
        if rel == commit.LATEST_FILE:
            raise RuntimeError("killed")
        write(store, rel, data)

    monkeypatch.setattr(commit.Store, "write", die_at_latest)
    assert "killed" in invoke(*augment_args(world["data"], root, 1, "--versioned"), code=1)
    monkeypatch.undo()
    assert len(list((root / "runs").glob("*/"))) == 2 and (root / "LATEST").read_text().strip() == first
    assert assert_clean_run(root, world)["config"]["options"]["seed"] == 0
    result = kdaug("recover", root)
    assert result.returncode == 0 and "never published" in result.stderr
    assert [p.name for p in (root / "runs").glob("*/")] == [first]


def test_a_detached_job_holds_the_lease_until_its_publish(world, tmp_path, monkeypatch):
    """A Flex Template launch (--template_location) hands the lease to the job: the launching command
    returns without releasing it, workers beat as they write, and the job's publish releases it.
    The DirectRunner runs the job at once, so the whole hand-over is seen here."""
    out = tmp_path / "out"
    beats, heartbeat = [], commit.heartbeat
    monkeypatch.setattr(commit, "heartbeat", lambda attempt: beats.append(attempt.attempt) or heartbeat(attempt))
    claims = []
    release = commit.release
    monkeypatch.setattr(
        commit.publishing,  # where the job's publish finds it
        "release",
        lambda store, attempt: claims.extend(store.files(commit.CLAIMS_DIR)) or release(store, attempt),
    )
    result = invoke(*augment_args(world["data"], out, 0), "--template_location", tmp_path / "job.json")
    assert "job graph written to" in result and "publishes it when it finishes" in result
    assert beats and len(set(beats)) == 1
    assert json.loads((out / schema.MANIFEST_FILE).read_text())["attempt"] == beats[0]
    assert claims == [f"_kdaug/claims/{beats[0]}.json"] and not (out / "_kdaug").exists()
    assert_clean_run(out, world)


# --- the seeded fault test ------------------------------------------------------------------------------


LEASE = 4.0  # seconds: the fault test's writers' lease, so a paused one outlives it within a trial


def run_trial(trial: int, world, tmp_path: Path) -> None:
    rng = random.Random(trial)
    versioned = trial % 2 == 1
    real = tmp_path / f"trial-{trial}"
    real.mkdir()
    out = real
    if rng.random() < 0.5:  # the output named through a symlink: allowed, it is the user's own path
        out = tmp_path / f"trial-{trial}-link"
        out.symlink_to(real, target_is_directory=True)
    sentinel = tmp_path / f"sentinel-{trial}"
    (sentinel / "deep").mkdir(parents=True)
    (sentinel / "deep" / "precious.parquet").write_text("outside OUT")
    dead = real / "_kdaug" / "attempts" / "0000deadbeef"  # a dead attempt's staging area, linking out
    dead.mkdir(parents=True)
    (dead / "random").symlink_to(sentinel, target_is_directory=True)
    (dead / "file.parquet").symlink_to(sentinel / "deep" / "precious.parquet")
    guarded = tree(sentinel)
    flags = ["--versioned", *(["--keep", str(rng.choice([1, 2]))] if rng.random() < 0.5 else [])] if versioned else []
    previous = None  # the published (attempt, files) before a step
    kills = []

    def trigger(phase: str, started: float, runs_before: set[str]):
        """When to SIGKILL a writer: during start-up, while it stages (after its k-th shard), the
        moment it starts publishing (its journal, or its run folder, appears), or never."""
        if phase == "start-up":
            at = rng.uniform(0.05, 1.0) * world["seconds"] / 2
            return lambda: time.monotonic() - started >= at
        if phase == "staging":
            k = rng.randint(1, 25)
            return lambda: len(list(real.glob("_kdaug/attempts/*/*/*/*.parquet"))) >= k
        if phase == "publishing" and versioned:
            return lambda: bool(set(os.listdir(real / "runs") if (real / "runs").is_dir() else ()) - runs_before)
        if phase == "publishing":
            return lambda: (real / commit.JOURNAL_FILE).exists()
        return None

    for step in range(4):
        procs = []  # (process, its trigger or None, the phase, SIGKILL or SIGSTOP)
        for i in range(rng.choice([1, 1, 2])):
            seed = rng.choice([0, 1])
            # the first writer of a trial is always killed or paused; others half the time
            doomed = (step == 0 and i == 0) or rng.random() < 0.5
            phase = rng.choice(["start-up", "staging", "publishing"]) if doomed else "none"
            fault = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGSTOP])
            runs_before = set(os.listdir(real / "runs")) if (real / "runs").is_dir() else set()
            log = tmp_path / f"{trial}-{step}-{i}.log"
            proc = start(
                *augment_args(world["data"], out, seed, *flags), log=log, env={"KDAUG_LEASE_SECONDS": str(LEASE)}
            )
            procs.append((proc, trigger(phase, time.monotonic(), runs_before), phase, fault))
            time.sleep(rng.uniform(0, 1.5))
        readers = []
        for _ in range(rng.choice([0, 1, 2])):
            time.sleep(rng.uniform(0, 2))
            readers.append(
                subprocess.Popen(
                    [sys.executable, "-c", READER, str(out)],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        pending, paused_until = list(procs), {}  # pid -> when to SIGCONT it
        while pending:
            for entry in list(pending):
                proc, fire, phase, fault = entry
                if proc.pid in paused_until:
                    if time.monotonic() >= paused_until[proc.pid]:
                        os.killpg(proc.pid, signal.SIGCONT)
                        del paused_until[proc.pid]
                elif proc.poll() is not None:
                    pending.remove(entry)
                elif fire is not None and fire():
                    os.killpg(proc.pid, fault)
                    kills.append((step, phase, fault.name, "journal" if (real / commit.JOURNAL_FILE).exists() else ""))
                    if fault == signal.SIGKILL:
                        proc.wait()
                        pending.remove(entry)
                    else:  # resumed once its lease has expired; it must then never publish over another writer
                        paused_until[proc.pid] = time.monotonic() + LEASE + 1
                        pending[pending.index(entry)] = (proc, None, phase, fault)
            time.sleep(0.001)
        codes = [p.returncode for p, _, _, _ in procs]
        assert all(c in (0, 1, -signal.SIGKILL) for c in codes), (trial, step, codes)

        for reader in readers:  # I2
            out_text, err = reader.communicate(timeout=300)
            assert reader.returncode == 0, err
            seen = json.loads(out_text)
            if "seed" in seen:
                assert seen["sha"] == world["clean"][seen["seed"]]["sha"], (trial, step, "a reader saw a mix")

        state = published_files(out)
        if state is None and (real / commit.JOURNAL_FILE).exists():  # I3: killed after its commit point
            assert -signal.SIGKILL in codes
            assert kdaug("recover", out).returncode == 0
            state = published_files(out)
        if state is not None:  # I1
            assert_clean_run(out, world)
        if 0 not in codes and previous is not None and state is not None and state[0]["attempt"] != previous[0]:
            # no writer finished, yet the published run changed: only a writer killed after its commit point
            assert -signal.SIGKILL in codes
        if previous is not None and 0 not in codes:
            assert state is not None, (trial, step, "a failure cost the previous output")
        previous = (state[0]["attempt"], state[1]) if state else previous
        assert tree(sentinel) == guarded  # I4

    seed = rng.choice([0, 1])  # I5
    result = kdaug(*augment_args(world["data"], out, seed, *flags))
    assert result.returncode == 0, result.stderr
    assert assert_clean_run(out, world)["config"]["options"]["seed"] == seed
    assert tree(sentinel) == guarded
    assert not (real / "_kdaug").exists() and not list(real.glob("**/*.tmp"))
    print(
        f"trial {trial}: {'versioned ' + ' '.join(flags) if versioned else 'plain'}, faults (step, phase, signal, left a journal): {kills}"
    )


@pytest.mark.parametrize("trial", [0])
def test_random_faults_keep_the_invariants(world, tmp_path, trial):
    run_trial(trial, world, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(1, 30))
def test_random_faults_keep_the_invariants_many(world, tmp_path, trial):
    run_trial(trial, world, tmp_path)
