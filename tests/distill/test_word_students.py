"""The fast CPU students (`--student bilstm|cnn`): they learn, save and load back exactly, don't
depend on padding, and run through `kdaug distill` / `evaluate` like any student."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from kdaug.distillation import word_students
from kdaug.distillation.cli import main as cli
from kdaug.distillation.train import DistillConfig, ExampleReader, _train
from tests.distill.conftest import BAD, GOOD
from tests.helpers import unstamped

EXAMPLES = [(text, None, 1) for text in GOOD] + [(text, None, 0) for text in BAD]
PROBES = ["a great film", "truly awful , and a waste of time", "well-acted -LRB- mostly -RRB-", "xyzzyq"]


@pytest.mark.parametrize("kind", ("bilstm", "cnn"))  # the other kinds: test_word_student_kinds.py
def test_word_students_train_and_improve_the_loss(kind):
    config = DistillConfig(
        mode="ft",
        student=kind,
        label_names=("negative", "positive"),
        batch_size=8,
        max_steps=60,
        eval_every=15,
        patience=100,
        seed=0,
    )
    metrics = _train(ExampleReader(EXAMPLES * 4, 2), config, EXAMPLES, progress=False, about={})
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < 0.6 * losses[0], losses
    assert metrics["dev_accuracy"] == 1.0


@pytest.mark.parametrize("kind", ("bilstm", "cnn"))  # the other kinds: test_word_student_kinds.py
def test_save_load_round_trip_gives_identical_logits(kind, tmp_path):
    torch.manual_seed(0)
    model, tokenizer = word_students.build(kind, 2, ("negative", "positive"))
    model.eval()
    with torch.no_grad():
        before = model(**tokenizer(PROBES, padding=True, return_tensors="pt")).logits
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / word_students.WEIGHTS_FILE).stat().st_size < 2_000_000  # the GloVe table is not saved
    loaded, loaded_tokenizer = word_students.load(tmp_path)
    with torch.no_grad():
        after = loaded(**loaded_tokenizer(PROBES, padding=True, return_tensors="pt")).logits
    assert torch.equal(before, after)
    assert loaded.config.id2label == {0: "negative", 1: "positive"}


@pytest.mark.parametrize("kind", ("bilstm", "cnn", "bilstm-wordpiece", "cnn-wordpiece"))  # -tuned: as bilstm, cnn
def test_logits_do_not_depend_on_padding(kind):
    torch.manual_seed(1)
    model, tokenizer = word_students.build(kind, 3)
    model.eval()
    with torch.no_grad():
        batched = model(**tokenizer(PROBES, padding=True, return_tensors="pt")).logits
        alone = torch.cat([model(**tokenizer([p], padding=True, return_tensors="pt")).logits for p in PROBES])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_tokenizer_splits_like_the_augmenters_and_reads_hyphens_and_ptb_brackets():
    _, tokenizer = word_students.build("cnn", 2)
    vocab = tokenizer.vocab
    assert tokenizer.ids("A well-acted -LRB- film -RRB- !") == [
        vocab["a"],
        vocab["well"],
        vocab["acted"],
        vocab["("],
        vocab["film"],
        vocab[")"],
        vocab["!"],
    ]
    assert tokenizer.ids("xyzzyq") == [word_students.UNK]
    pair = tokenizer(["good"], ["bad"])["input_ids"][0]
    assert pair == [vocab["good"], word_students.SEP, vocab["bad"]]


@pytest.mark.parametrize(
    "kind, digest, named", [("cnn", "glove_sha256", "GloVe"), ("cnn-wordpiece", "wordpiece_sha256", "word pieces")]
)
def test_load_refuses_another_vector_table(tmp_path, kind, digest, named):
    model, tokenizer = word_students.build(kind, 2)
    model.save_pretrained(tmp_path)
    spec = json.loads((tmp_path / word_students.CONFIG_FILE).read_text())
    (tmp_path / word_students.CONFIG_FILE).write_text(json.dumps(spec | {digest: "0" * 64}))
    with pytest.raises(ValueError, match=named):
        word_students.load(tmp_path)


def test_distill_and_evaluate_cli_with_a_bilstm_student(output, tmp_path):
    (tmp_path / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in GOOD) + "".join(f"{t}\t0\n" for t in BAD)
    )
    student = tmp_path / "student"
    result = CliRunner().invoke(
        cli,
        [
            "distill",
            "--data",
            str(output),
            "--student",
            "bilstm",
            "--dev",
            str(tmp_path / "dev.tsv"),
            "--max-steps",
            "30",
            "--eval-every",
            "10",
            "--batch-size",
            "8",
            "--output",
            str(student),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["config"]["student"] == "bilstm" and (student / word_students.CONFIG_FILE).is_file()
    assert [line.split(":")[0] for line in unstamped(result.stderr) if line.startswith("step ")] == [
        "step 10/30",
        "step 20/30",
        "step 30/30",
    ]  # one line per evaluation
    saved = json.loads((student / word_students.CONFIG_FILE).read_text())  # the data manifest's class names
    assert saved["id2label"] == {"0": "negative", "1": "positive"}
    assert saved["label2id"] == {"negative": 0, "positive": 1}
    assert word_students.load(student)[0].config.id2label == {0: "negative", 1: "positive"}
    assert metrics["config"]["lr"] is None and metrics["learning_rate"] == word_students.DEFAULT_LR
    scored = CliRunner().invoke(cli, ["evaluate", str(student), str(tmp_path / "dev.tsv")])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["accuracy"] == metrics["dev_accuracy"]


def test_transformer_only_options_are_refused_for_word_students(output, tmp_path):
    result = CliRunner().invoke(
        cli, ["distill", "--data", str(output), "--student", "cnn", "--layers", "2", "--output", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "transformer students" in result.output
    result = CliRunner().invoke(
        cli, ["distill", "--data", str(output), "--student", "lstm", "--output", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "neither bilstm nor cnn" in result.output


def test_sweep_with_two_jobs_matches_one_job(output, tmp_path):
    """Cells trained in worker processes learn what they learn in this one: the same results, each
    cell with one torch thread whatever --jobs is (the thread count changes a student's last bits);
    this process gets its own thread count back."""
    (tmp_path / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in GOOD) + "".join(f"{t}\t0\n" for t in BAD)
    )
    args = [
        "sweep",
        "--data",
        f"size=8:{output}",
        "--dev",
        str(tmp_path / "dev.tsv"),
        "--methods",
        "knn",
        "--degrees",
        "0,0.3",
        "--seeds",
        "0,1",
        "--student",
        "cnn",
        "--max-steps",
        "12",
        "--eval-every",
        "4",
        "--batch-size",
        "4",
    ]
    tables, threads = [], torch.get_num_threads()
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs-{jobs}"
        result = CliRunner().invoke(cli, args + ["--jobs", jobs, "--keep-models", "--output", str(out)])
        assert result.exit_code == 0, result.output
        saved = [json.loads(m.read_text()) for m in (out / "models").glob("*/metrics.json")]
        assert len(saved) == 8 and {(m["threads"], m["config"]["threads"]) for m in saved} == {(1, 1)}
        assert torch.get_num_threads() == threads
        text = (out / "results.csv").read_text().splitlines()
        seconds = text[0].split(",").index("train_seconds")
        tables.append([[v for i, v in enumerate(line.split(",")) if i != seconds] for line in text])
    assert tables[0] == tables[1] and len(tables[0]) == 1 + 2 * 2 * 2
