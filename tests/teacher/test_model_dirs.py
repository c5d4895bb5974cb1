"""Model directories are untrusted input (issue 20): kdaug never runs code a directory brings (custom
code through `auto_map`, pickled weights), never asks about it on stdin, and reads a directory kdaug
writes only once it is published whole. Every refusal comes before any work, as one line, exit 2.
`pipeline.teacher.check_model_dir` is the one check; these tests go through the commands."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from kdaug import commit
from kdaug.augmenters import resources
from kdaug.teacher.model import ModelDirError, Teacher, check_model_dir
from tests.conftest import publish_by_hand
from tests.helpers import kdaug, run_cli

CUSTOM_CODE = (
    "declares custom code (auto_map in config.json): kdaug never runs a model's own code; use a directory "
    "saved from a standard transformers class"
)
UNFINISHED = "kdaug has not finished writing it ("


def refusal(result) -> str:
    """The error a refused command printed; it must be exit 2 with no usage text around it."""
    assert result.exit_code == 2, result.output
    assert "Usage:" not in result.output and "Traceback" not in result.output, result.output
    return result.output.strip().splitlines()[-1]


class WriteSentinel:
    """Unpickling this writes the sentinel: what a malicious pytorch_model.bin does."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('unpickled')",)


def custom_code_dir(teacher: str, path: Path, sentinel: Path) -> Path:
    """The teacher with an `auto_map` naming its own module, which writes `sentinel` when imported; an
    unknown model_type makes transformers ask on stdin (and run it on "y") unless told not to."""
    shutil.copytree(teacher, path)
    (path / "evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('imported')\n")
    config = json.loads((path / "config.json").read_text())
    config.update(
        model_type="kdaug-evil",
        auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"},
    )
    (path / "config.json").write_text(json.dumps(config))
    return path


def pickled_dir(teacher: str, path: Path, sentinel: Path) -> Path:
    """The teacher with its weights as pytorch_model.bin only, a pickle that writes `sentinel` when loaded."""
    shutil.copytree(teacher, path)
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(pickle.dumps(WriteSentinel(sentinel)))
    return path


class Killed(Exception):
    """A writer dying where the test says."""


def published_model(teacher: str, path: Path) -> Path:
    """The teacher published the way `kdaug teacher train` does: staged, then `commit.publish_dir`."""
    with commit.Writer(str(path), "teacher train") as attempt:
        shutil.copytree(teacher, attempt.staging_uri, dirs_exist_ok=True)
        commit.publish_dir(attempt, {"kind": "teacher"})
    return path


def unfinished_dir(teacher: str, path: Path, state: str = "never published", monkeypatch=None) -> Path:
    """The teacher as a kdaug writer leaves it when killed before, or during, a publish, or with the
    `_SUCCESS` of one run beside the manifest of another."""
    if state == "never published":  # killed while staging: _kdaug/attempts/<id>/ only
        with pytest.raises(Killed), commit.Writer(str(path), "teacher train") as attempt:
            shutil.copytree(teacher, attempt.staging_uri, dirs_exist_ok=True)
            raise Killed
        return path
    published_model(teacher, path)
    if state == "publishing":  # killed past the commit point of a second publish: the journal stays

        def killed(*args, **kwargs):
            raise Killed

        with (
            monkeypatch.context() as patch,
            pytest.raises(Killed),
            commit.Writer(str(path), "teacher train") as attempt,
        ):
            patch.setattr(commit.publishing, "apply_journal", killed)
            shutil.copytree(teacher, attempt.staging_uri, dirs_exist_ok=True)
            commit.publish_dir(attempt, {"kind": "teacher"})
        assert (path / commit.JOURNAL_FILE).exists()
    else:  # "mixed runs"
        (path / commit.SUCCESS_FILE).write_text("0123456789ab")
    return path


def published_augment_output(path: Path) -> Path:
    """A finished (empty) `kdaug augment` output: what `label --input` reads, and no model."""
    path.mkdir()
    publish_by_hand(path, {"kind": "augment", "config": {"labels": ["0", "1"]}})
    return path


@pytest.fixture
def train_tsv(tmp_path) -> Path:
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\na fine film\t1\na dull film\t0\na charming story\t1\na pointless plot\t0\n")
    return path


def run_args(train_tsv: Path, output: Path, teacher: Path) -> list:
    return [
        "run",
        "--task",
        "sst2",
        "--input",
        train_tsv,
        "--output",
        output,
        "--teacher",
        teacher,
        "--methods",
        "random",
        "--degrees",
        "0.5",
        "--copies",
        "1",
    ]


def test_custom_code_is_refused_and_never_run_nor_prompted_for(tmp_path, tiny_teacher_dir, train_tsv):
    """A real process with "y" waiting on stdin: a prompt would read it and run the code."""
    sentinel = tmp_path / "ran"
    teacher = custom_code_dir(tiny_teacher_dir, tmp_path / "custom", sentinel)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}
    proc = kdaug(*run_args(train_tsv, tmp_path / "out", teacher), input="y\n", timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"Error: teacher {teacher}: {CUSTOM_CODE}"
    assert "Usage:" not in proc.stderr
    assert not sentinel.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "make, error, message",
    [(custom_code_dir, ValueError, "contains custom code"), (pickled_dir, OSError, "no file named model.safetensors")],
    ids=["custom-code", "pickle"],
)
def test_loading_runs_no_code_even_past_the_check(tmp_path, tiny_teacher_dir, monkeypatch, make, error, message):
    """Defence in depth: were the check skipped, transformers is still told never to run a directory's
    code (trust_remote_code=False, so no prompt) nor to unpickle weights (use_safetensors=True)."""
    from kdaug.teacher import model as teacher_module

    sentinel = tmp_path / "ran"
    model_dir = make(tiny_teacher_dir, tmp_path / "model", sentinel)
    monkeypatch.setattr(teacher_module, "check_model_dir", lambda *args, **kwargs: None)
    monkeypatch.setattr("builtins.input", lambda *args: pytest.fail("transformers prompted on stdin"))
    with pytest.raises(error, match=message):
        Teacher.load(str(model_dir))
    assert not sentinel.exists()


def test_pickled_weights_are_refused_before_any_job(tmp_path, tiny_teacher_dir, train_tsv, monkeypatch):
    import kdaug.beam.augment_job

    sentinel = tmp_path / "ran"
    teacher = pickled_dir(tiny_teacher_dir, tmp_path / "pickled", sentinel)
    monkeypatch.setattr(
        kdaug.beam.augment_job, "run_augment", lambda *args, **kwargs: pytest.fail("a Beam job started")
    )
    line = refusal(run_cli(*run_args(train_tsv, tmp_path / "out", teacher)))
    assert line == (
        f"Error: teacher {teacher}: its weights are pickles (pytorch_model.bin), which can run code when "
        "loaded; kdaug reads model.safetensors only (save_pretrained writes it by default)"
    )
    assert not sentinel.exists() and not (tmp_path / "out").exists()


def _evaluate(tmp_path, model, train_tsv):
    return "model", ["evaluate", model, train_tsv], None


def _distill_student(tmp_path, model, train_tsv):
    return (
        "student",
        ["distill", "--data", tmp_path, "--output", tmp_path / "out", "--student", model],
        tmp_path / "out",
    )


def _distill_teacher(tmp_path, model, train_tsv):
    return (
        "teacher",
        ["distill", "--data", tmp_path, "--output", tmp_path / "out", "--teacher", model],
        tmp_path / "out",
    )


def _label(tmp_path, model, train_tsv):
    source = published_augment_output(tmp_path / "aug")
    return "teacher", ["label", "--input", source, "--output", tmp_path / "out", "--teacher", model], tmp_path / "out"


def _run(tmp_path, model, train_tsv):
    return "teacher", run_args(train_tsv, tmp_path / "out", model), tmp_path / "out"


@pytest.mark.parametrize(
    "command",
    [_evaluate, _distill_student, _distill_teacher, _label, _run],
    ids=["evaluate", "distill --student", "distill --teacher", "label", "run"],
)
def test_every_command_refuses_a_half_published_model(tmp_path, tiny_teacher_dir, train_tsv, command):
    model = unfinished_dir(tiny_teacher_dir, tmp_path / "model")
    what, args, output = command(tmp_path, model, train_tsv)
    line = refusal(run_cli(*args))
    assert line.startswith(f"Error: {what} {model}: {UNFINISHED}"), line
    assert line.endswith("wait, or `kdaug recover` it")
    assert output is None or not output.exists()


@pytest.mark.parametrize("state", ["never published", "publishing", "mixed runs"])
def test_each_unfinished_state_is_refused(tmp_path, tiny_teacher_dir, monkeypatch, state):
    model = unfinished_dir(tiny_teacher_dir, tmp_path / "model", state, monkeypatch)
    line = refusal(run_cli(*_label(tmp_path, model, None)[1]))
    assert line.startswith(f"Error: teacher {model}: {UNFINISHED}"), line


def test_a_dataset_passed_as_teacher_is_refused_naming_its_kind(tmp_path):
    source = published_augment_output(tmp_path / "aug")
    line = refusal(run_cli("label", "--input", source, "--output", tmp_path / "out", "--teacher", source))
    assert line == (
        f"Error: teacher {source}: it is an augmented dataset (_manifest.json kind 'augment'), not a model directory"
    )
    assert not (tmp_path / "out").exists()


def test_plain_and_published_models_are_accepted(tmp_path, tiny_teacher_dir, train_tsv):
    published = published_model(tiny_teacher_dir, tmp_path / "published")
    for model in (resources.default_teacher_dir(), tiny_teacher_dir, published):
        check_model_dir(model)
    result = run_cli("evaluate", published, train_tsv, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 4
    with pytest.raises(ValueError):  # Python callers get a ValueError
        check_model_dir(tmp_path / "nowhere")
    assert issubclass(ModelDirError, ValueError)
