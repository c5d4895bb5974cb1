"""The `kdaug` command line: help that teaches, and augment → label / run end to end."""

import json
import shutil

import numpy as np
import pytest

from kdaug import schema
from kdaug.teacher.model import Teacher, fingerprint
from tests.conftest import make_tiny_teacher, publish_by_hand
from tests.helpers import invoke, rows

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "bad",
    "it 's a charming and often affecting journey .",
    "the film is strictly routine and its long middle section never finds a rhythm",
]


@pytest.fixture
def sst2_file(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 2)) + "x\t9\n")
    return str(path)


@pytest.mark.parametrize("command", [[], ["augment"], ["run"], ["label"], ["inspect"]])
def test_help(command):
    out = invoke(*command, "--help")
    assert "Usage:" in out


def test_main_help_explains_degrees():
    assert "degree" in invoke("--help")


def test_bad_flags_are_usage_errors(sst2_file, tmp_path):
    common = ["augment", "--input", sst2_file, "--task", "sst2", "--output", tmp_path / "o"]
    assert "unknown method 'nope'" in invoke(*common, "--methods", "nope", code=2)
    assert "degrees must be in (0, 1]" in invoke(*common, "--methods", "random", "--degrees", "0,2", code=2)


def test_augment_then_label_equals_run(sst2_file, tmp_path, tiny_teacher_dir):
    common = [
        "--input",
        sst2_file,
        "--task",
        "sst2",
        "--methods",
        "random,eda",
        "--degrees",
        "0.3",
        "--copies",
        "2",
        "--seed",
        "5",
    ]
    out = invoke("augment", *common, "--output", tmp_path / "aug")
    assert "rows read 9 = originals 8 + dead letters 1" in out

    out = invoke("label", "--input", tmp_path / "aug", "--output", tmp_path / "lab", "--teacher", tiny_teacher_dir)
    assert "shard rows read 40 = rows labelled and written 40" in out
    invoke("run", *common, "--output", tmp_path / "run", "--teacher", tiny_teacher_dir)

    lab, run, aug = rows(tmp_path / "lab"), rows(tmp_path / "run"), rows(tmp_path / "aug")
    assert [r["text_a"] for r in lab] == [r["text_a"] for r in aug] == [r["text_a"] for r in run]
    assert all(r["teacher_logits"] is r["teacher_shift"] is r["teacher_flip"] is None for r in aug)
    # the same rows; the logits, and so the shifts, agree to float rounding (the two jobs batch the
    # rows differently)
    teacher_fields = ("teacher_logits", "teacher_shift")
    drop = lambda rows: [{k: v for k, v in r.items() if k not in teacher_fields} for r in rows]  # noqa: E731
    assert drop(lab) == drop(run)
    for field in teacher_fields:
        assert np.abs(np.array([r[field] for r in lab]) - [r[field] for r in run]).max() < 1e-6
    for labelled in (lab, run):
        assert_shift_recomputes(labelled)

    teacher = Teacher.load(tiny_teacher_dir)
    direct = teacher.logits([r["text_a"] for r in lab])
    stored = np.array([r["teacher_logits"] for r in lab], dtype=np.float32)
    assert stored.shape == (40, 2)
    assert np.abs(stored - direct).max() < 1e-5

    for name in ("lab", "run"):
        manifest = json.loads((tmp_path / name / schema.MANIFEST_FILE).read_text())
        assert manifest["teacher"]["fingerprint"] == fingerprint(tiny_teacher_dir)


def assert_shift_recomputes(labelled: list[dict]) -> None:
    """`teacher_shift` and `teacher_flip` of every row equal KL(p_original || p) and the argmax
    comparison recomputed with numpy from the stored logits, the original found by `source_id`;
    an original's own are 0 and False."""
    originals = {
        r["source_id"]: np.array(r["teacher_logits"], np.float64) for r in labelled if r["method"] == "original"
    }
    logits = np.array([r["teacher_logits"] for r in labelled], np.float64)
    before = np.array([originals[r["source_id"]] for r in labelled])
    p = np.exp(before) / np.exp(before).sum(axis=1, keepdims=True)
    q = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    kl = (p * np.log(p / q)).sum(axis=1)
    assert np.abs(np.array([r["teacher_shift"] for r in labelled]) - kl).max() < 1e-6
    assert [r["teacher_flip"] for r in labelled] == (before.argmax(axis=1) != logits.argmax(axis=1)).tolist()
    assert all(r["teacher_shift"] == 0 and r["teacher_flip"] is False for r in labelled if r["method"] == "original")
    assert any(r["teacher_shift"] > 0 for r in labelled)


def test_inspect_shows_the_teachers_shift(sst2_file, tmp_path, tiny_teacher_dir):
    """`kdaug inspect` of a labelled output: per method × degree the mean shift and flip rate, and how
    often the teacher's argmax is the gold label (on the originals: its accuracy), as recomputed
    from the rows."""
    flags = ["--input", sst2_file, "--task", "sst2", "--methods", "random", "--degrees", "0.5", "--copies", "2"]
    invoke("run", *flags, "--output", tmp_path / "run", "--teacher", tiny_teacher_dir)
    out = invoke("inspect", tmp_path / "run", "--samples", "1")
    header, _, *lines = out.splitlines()[1:]
    assert header.endswith("teacher shift  flip rate  teacher = label")
    data = rows(tmp_path / "run")
    for method in ("original", "random"):
        members = [r for r in data if r["method"] == method]
        shift = np.mean([r["teacher_shift"] for r in members])
        flips = np.mean([r["teacher_flip"] for r in members])
        agree = np.mean([int(np.argmax(r["teacher_logits"])) == r["label"] for r in members])
        (line,) = [line for line in lines if line.split()[:1] == [method]]
        assert line.split()[-3:] == [f"{shift:.3f}", f"{flips:.3f}", f"{agree:.3f}"], line
    assert "[random 0.50 changed " in out and " shift " in out

    invoke("augment", *flags, "--output", tmp_path / "aug")
    assert "flip rate" not in invoke("inspect", tmp_path / "aug")  # not labelled: no teacher columns


def test_label_of_a_labelled_output_and_of_one_it_cannot_group(sst2_file, tmp_path, tiny_teacher_dir):
    """A labelled output keeps one file per input chunk in every partition, so it can be labelled
    again (here with another teacher); an output whose partitions do not (written by hand) is
    refused before anything runs."""
    other = str(make_tiny_teacher(tmp_path / "other", num_labels=2, seed=1))
    flags = ["--input", sst2_file, "--task", "sst2", "--methods", "random", "--degrees", "0.3", "--chunk-size", "3"]
    invoke("run", *flags, "--output", tmp_path / "run", "--teacher", tiny_teacher_dir)
    invoke("label", "--input", tmp_path / "run", "--output", tmp_path / "again", "--teacher", other)
    invoke("augment", *flags, "--output", tmp_path / "aug")
    invoke("label", "--input", tmp_path / "aug", "--output", tmp_path / "lab", "--teacher", other)
    assert rows(tmp_path / "again") == rows(tmp_path / "lab")
    assert_shift_recomputes(rows(tmp_path / "again"))

    hand = tmp_path / "hand"
    for part in ("original/0.00", "random/0.30"):
        shutil.copytree(tmp_path / "aug" / part, hand / part)
    (hand / "random" / "0.30" / "part-00002-of-00003.parquet").unlink()
    publish_by_hand(
        hand, {"kind": "augment", "schema_version": schema.SCHEMA_VERSION, "config": {"labels": ["0", "1"]}}
    )
    out = invoke("label", "--input", hand, "--output", tmp_path / "o", "--teacher", other, code=1)
    assert "original/0.00 has 3 files and random/0.30 2; label the `kdaug augment` output instead" in out


def test_fingerprint_follows_the_teacher(sst2_file, tmp_path, tiny_teacher_dir):
    other = str(make_tiny_teacher(tmp_path / "other", num_labels=2, seed=1))
    invoke(
        "augment",
        "--input",
        sst2_file,
        "--task",
        "sst2",
        "--methods",
        "random",
        "--degrees",
        "0.3",
        "--output",
        tmp_path / "aug",
    )
    invoke("label", "--input", tmp_path / "aug", "--output", tmp_path / "a", "--teacher", tiny_teacher_dir)
    invoke("label", "--input", tmp_path / "aug", "--output", tmp_path / "b", "--teacher", other)
    fingerprints = [
        json.loads((tmp_path / n / schema.MANIFEST_FILE).read_text())["teacher"]["fingerprint"] for n in "ab"
    ]
    assert fingerprints[0] != fingerprints[1]


def test_label_refuses_unfinished_input(tmp_path, tiny_teacher_dir):
    (tmp_path / "aug").mkdir()
    result = invoke(
        "label", "--input", tmp_path / "aug", "--output", tmp_path / "o", "--teacher", tiny_teacher_dir, code=2
    )
    assert "has no _SUCCESS" in result and not (tmp_path / "o").exists()


def test_inspect(sst2_file, tmp_path):
    invoke(
        "augment",
        "--input",
        sst2_file,
        "--task",
        "sst2",
        "--methods",
        "random",
        "--degrees",
        "0.5",
        "--output",
        tmp_path / "aug",
    )
    out = invoke("inspect", tmp_path / "aug")
    assert "random    0.50" in out and "→" in out


def test_fine_tuned_teacher_without_vocab_txt(tmp_path, tiny_teacher_dir):
    """transformers 5 saves only tokenizer.json after fine-tuning: the vocabulary must still load."""
    from kdaug.augmenters import resources

    saved = tmp_path / "saved"
    shutil.copytree(tiny_teacher_dir, saved)
    (saved / "vocab.txt").unlink()
    assert resources.teacher_vocab(str(saved)) == resources.teacher_vocab(tiny_teacher_dir)


def test_teacher_threads_and_sharing_follow_the_worker_processes(monkeypatch):
    from kdaug.api import label_config
    from kdaug.teacher import model as teacher

    def config(*args, threads=None, share="auto"):
        made = label_config("T", list(args), teacher_threads=threads, share_teacher=share)
        return made.num_threads, made.share

    monkeypatch.setattr(teacher, "default_num_threads", lambda: 8)
    multi = ["--direct_running_mode", "multi_processing", "--direct_num_workers"]
    assert config() == (None, False)  # one process: torch takes every CPU, nothing to share
    assert config(*multi, "2") == (4, True)  # one teacher for both worker processes
    assert config(*multi, "16") == (1, True)
    assert config(*multi, "0") == (1, True)  # 0: a worker per CPU
    assert config(*multi, "2", threads=3, share="no") == (3, False)  # the flags win
    assert config(share="yes") == (None, True)
    assert config("--runner", "dataflow") == (1, True)  # an SDK process per vCPU
    assert config("--runner", "DataflowRunner", "--experiments", "no_use_multiple_sdk_containers") == (None, False)
    assert config("--runner", "dask") == (1, False)


def test_dataflow_job_id_and_console_url_are_shown(capsys):
    """Beam's INFO lines stay hidden but for a Dataflow job's id and console URL, which a person and
    Airflow's Dataflow hook need (Beam logs them when the job is created)."""
    import logging

    from kdaug.cli import DATAFLOW_SUBMIT_LOGGER, configure_logging

    configure_logging()
    log = logging.getLogger(DATAFLOW_SUBMIT_LOGGER)
    log.info("Create job: %s", "<the whole job proto>")
    log.info("Created job with id: [%s]", "2026-12-05_01_02_03-123")
    log.info("To access the Dataflow monitoring console, please navigate to https://console.cloud.google.com/x")
    logging.getLogger("apache_beam.runners.dataflow.dataflow_runner").info("Job state: RUNNING")
    err = capsys.readouterr().err
    assert "Created job with id: [2026-12-05_01_02_03-123]" in err and "console.cloud.google.com" in err
    assert "job proto" not in err and "Job state" not in err
