"""Teacher inference, fingerprint and fine-tuning, on a tiny random BERT (seconds); the Beam step is
in beam/test_inference.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from kdaug.cli import main
from kdaug.distillation.train import parameter_groups
from kdaug.teacher.model import Teacher, fingerprint, length_batches
from tests.conftest import make_tiny_teacher

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "bad",
    "the film is strictly routine , and its long , rambling middle section never finds a rhythm worth following .",
    "it 's a charming and often affecting journey .",
    "ok .",
    "unflinchingly bleak and desperate",
]
PAIRS_B = ["a witty film .", "good", "routine", "a journey .", "fine", "bleak"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return str(make_tiny_teacher(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def teacher(tiny_dir) -> Teacher:
    return Teacher.load(tiny_dir, max_tokens=48)


def direct_logits(teacher: Teacher, a: str, b: str | None = None) -> np.ndarray:
    with torch.inference_mode():
        args = (a,) if b is None else (a, b)
        return teacher.model(**teacher.tokenizer(*args, return_tensors="pt")).logits[0].numpy()


def test_logits_shape_dtype_and_order(teacher):
    out = teacher.logits(SENTENCES)
    assert out.shape == (len(SENTENCES), 3) and out.dtype == np.float32
    # Length sorting must not leak into the output: each row equals that sentence labelled alone.
    for i, sentence in enumerate(SENTENCES):
        np.testing.assert_allclose(out[i], teacher.logits([sentence])[0], atol=1e-5)
    assert not np.allclose(out[0], out[1])


def test_agrees_with_direct_model_call(teacher):
    singles = teacher.logits(SENTENCES)
    pairs = teacher.logits(SENTENCES, PAIRS_B)
    for i, (a, b) in enumerate(zip(SENTENCES, PAIRS_B)):
        assert np.abs(singles[i] - direct_logits(teacher, a)).max() < 1e-5
        assert np.abs(pairs[i] - direct_logits(teacher, a, b)).max() < 1e-5


def test_batches_respect_token_budget(teacher):
    lengths = [5, 30, 7, 12, 60, 3, 12]
    batches = length_batches(lengths, max_tokens=40)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for b in batches:  # within budget, except a single row longer than the budget
        assert len(b) * max(lengths[i] for i in b) <= 40 or len(b) == 1
    _, stats = teacher.logits_with_stats(SENTENCES)
    assert stats["batches"] > 1 and stats["tokens"] <= stats["padded_tokens"]


def test_fingerprint_tracks_weights_and_labels(tiny_dir, tmp_path):
    assert fingerprint(tiny_dir) == fingerprint(tiny_dir)
    copy = shutil.copytree(tiny_dir, tmp_path / "copy")
    assert fingerprint(copy) == fingerprint(tiny_dir)  # content, not location
    other = make_tiny_teacher(tmp_path / "other", seed=1)
    assert fingerprint(other) != fingerprint(tiny_dir)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"]["0"] = "renamed"
    (copy / "config.json").write_text(json.dumps(config))
    assert fingerprint(copy) != fingerprint(tiny_dir)


def test_teacher_train_is_the_distill_loop_in_ft_mode(tiny_dir, tmp_path):
    """`kdaug teacher train` over a base with another head size: a fresh 2-label head, the best
    epoch saved with its label names, the same model again from the same seed."""
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{a}\t{i % 2}\n" for i, a in enumerate(SENTENCES * 6)))
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\n" + "".join(f"{a}\t{i % 2}\n" for i, a in enumerate(SENTENCES)))
    args = [
        "teacher",
        "train",
        "--task",
        "sst2",
        "--train",
        str(data),
        "--dev",
        str(dev),
        "--base",
        tiny_dir,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--seed",
        "3",
    ]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "<- saved" in result.output and "on cpu (fp32" in result.output
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0 <= saved["dev_accuracy"] <= 1 and "dev_f1" in saved and len(saved["history"]) == 2
    assert saved["train_examples"] == 36 and saved["config"]["seed"] == 3 and saved["config"]["mode"] == "ft"
    assert saved["steps"] == 2 * 5 and saved["device"] == "cpu"  # 36 rows in batches of 8, two epochs
    trained = Teacher.load(str(tmp_path / "out"))
    assert trained.label_names == ["negative", "positive"]
    assert trained.logits(SENTENCES).shape == (len(SENTENCES), 2)
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    assert fingerprint(tmp_path / "again") == fingerprint(tmp_path / "out")  # same seed, same model


def test_teacher_train_for_a_task_without_glue_files(tiny_dir, tmp_path):
    """TREC: its files must be named (a usage error says so), its labels become the label names."""
    lines = [f"{label}:other {text}\n" for label, text in zip(["HUM", "LOC", "NUM", "DESC"] * 3, SENTENCES * 3)]
    (tmp_path / "train.txt").write_text("".join(lines))
    result = CliRunner().invoke(main, ["teacher", "train", "--task", "trec", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "pass --train and --dev" in result.output
    result = CliRunner().invoke(
        main,
        [
            "teacher",
            "train",
            "--task",
            "trec",
            "--train",
            str(tmp_path / "train.txt"),
            "--dev",
            str(tmp_path / "train.txt"),
            "--base",
            tiny_dir,
            "--batch-size",
            "8",
            "--output",
            str(tmp_path / "trec"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert Teacher.load(str(tmp_path / "trec")).label_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_teacher_train_reads_your_own_file_as_augment_does(tiny_dir, tmp_path):
    """A 3-class TSV of other field names, written by pandas (quoted tabs, quotes and a line break):
    the flags `augment` takes read it, and one line names the files and rows before training."""
    texts = [f'{s} "quoted"\tand\nsplit' if i % 4 == 0 else s for i, s in enumerate(SENTENCES * 2)]
    frame = pd.DataFrame({"id": range(len(texts)), "review": texts, "stars": ["bad", "ok", "good"] * 4})
    frame.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    frame[:6].to_csv(tmp_path / "dev.tsv", sep="\t", index=False)
    flags = ["--text-field", "review", "--label-field", "stars", "--label-values", "bad,ok,good"]
    args = ["teacher", "train", *flags, "--base", tiny_dir, "--batch-size", "8", "--max-length", "16"]
    files = ["--train", tmp_path / "train.tsv", "--dev", tmp_path / "dev.tsv"]
    result = CliRunner().invoke(main, [*args, *map(str, files), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line = f"training on 12 rows of {tmp_path / 'train.tsv'}, evaluating on 6 rows of {tmp_path / 'dev.tsv'}"
    assert f"{line} (custom: 3 classes)" in result.output.splitlines()
    assert Teacher.load(str(tmp_path / "out")).label_names == ["bad", "ok", "good"]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "none")])
    assert result.exit_code == 2 and "your own fields has no default files: pass --train and --dev" in result.output


@pytest.mark.slow
def test_teacher_train_says_which_glue_files_it_reads(tiny_dir, tmp_path):
    from kdaug.inputs.sources import glue_file

    args = ["teacher", "train", "--base", tiny_dir, "--max-examples", "16", "--batch-size", "16", "--max-length", "16"]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    train, dev = glue_file("sst2", "train"), glue_file("sst2", "dev")
    assert f"training on 16 of 67,349 rows of {train}, evaluating on 872 rows of {dev} (sst2: 2 classes)" in (
        result.output
    )


def test_no_weight_decay_on_biases_and_layer_norms(teacher):
    decay, exempt = parameter_groups(teacher.model, 0.01)
    names = {id(p): n for n, p in teacher.model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and exempt["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in exempt["params"]} >= {"bert.embeddings.LayerNorm.weight", "classifier.bias"}
    assert len(decay["params"]) + len(exempt["params"]) == len(list(teacher.model.parameters()))


def test_int8_teacher_labels_like_fp32(tiny_dir, teacher):
    texts = ["a great film", "a dull , lifeless mess", "it 's fine", "truly awful acting and a waste of time"]
    int8 = Teacher.load(tiny_dir, max_tokens=256, quantize="int8")
    quantized = [n for n, m in int8.model.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized and not any("layer.0." in n or n.endswith("layer.1.output.dense") for n in quantized)
    logits, reference = int8.logits(texts), teacher.logits(texts)
    assert logits.shape == reference.shape and logits.dtype == np.float32 and np.isfinite(logits).all()
    assert not np.array_equal(logits, reference)  # really ran another model
    error = np.abs(logits - reference).max()
    assert error < 0.1
    top2 = np.sort(reference, axis=1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > 2 * error  # a random tiny head sits near the boundary
    assert (logits.argmax(1) == reference.argmax(1))[sure].all()
    with pytest.raises(ValueError, match="quantize='int4'"):
        Teacher.load(tiny_dir, quantize="int4")
