"""The `kdaug` command line: help that teaches, and augment → label / run end to end."""

import json

import numpy as np
import pytest

from kdaug import schema
from kdaug.teacher.model import Teacher, fingerprint
from tests.conftest import make_tiny_teacher
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
    # the same rows; the logits agree to float rounding (the two jobs batch the rows differently)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "teacher_logits"} for r in rows]  # noqa: E731
    assert drop(lab) == drop(run)
    assert np.abs(np.array([r["teacher_logits"] for r in lab]) - [r["teacher_logits"] for r in run]).max() < 1e-6

    teacher = Teacher.load(tiny_teacher_dir)
    direct = teacher.logits([r["text_a"] for r in lab])
    stored = np.array([r["teacher_logits"] for r in lab], dtype=np.float32)
    assert stored.shape == (40, 2)
    assert np.abs(stored - direct).max() < 1e-5

    for name in ("lab", "run"):
        manifest = json.loads((tmp_path / name / schema.MANIFEST_FILE).read_text())
        assert manifest["teacher"]["fingerprint"] == fingerprint(tiny_teacher_dir)


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
    import shutil

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
