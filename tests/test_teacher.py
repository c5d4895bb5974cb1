"""Teacher inference, fingerprint, Beam labelling and fine-tuning, on a tiny random BERT (seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from pipeline.labelling import LabelRows
from pipeline.resources import resolve_teacher_dir
from pipeline.teacher import Teacher, fingerprint, length_batches
from pipeline.teacher_train import TrainConfig, train_teacher

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "bad",
    "the film is strictly routine , and its long , rambling middle section never finds a rhythm worth following .",
    "it 's a charming and often affecting journey .",
    "ok .",
    "unflinchingly bleak and desperate",
]
PAIRS_B = ["a witty film .", "good", "routine", "a journey .", "fine", "bleak"]


def make_tiny_teacher(path: Path, num_labels: int = 3, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 BERT with the packaged word-piece tokenizer, saved as a from_pretrained dir."""
    base = Path(resolve_teacher_dir(None))
    path.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy(base / name, path / name)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=AutoTokenizer.from_pretrained(path).vocab_size,
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, num_labels=num_labels,
        id2label={i: f"label{i}" for i in range(num_labels)}, label2id={f"label{i}": i for i in range(num_labels)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    return path


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
    assert fingerprint(tiny_dir) == fingerprint(tiny_dir) == Teacher.load(tiny_dir).fingerprint
    copy = shutil.copytree(tiny_dir, tmp_path / "copy")
    assert fingerprint(copy) == fingerprint(tiny_dir)  # content, not location
    other = make_tiny_teacher(tmp_path / "other", seed=1)
    assert fingerprint(other) != fingerprint(tiny_dir)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"]["0"] = "renamed"
    (copy / "config.json").write_text(json.dumps(config))
    assert fingerprint(copy) != fingerprint(tiny_dir)


def test_label_rows_in_direct_runner(tiny_dir, teacher):
    rows = [{"id": str(i), "text_a": a, "text_b": None} for i, a in enumerate(SENTENCES)]
    rows += [{"id": f"p{i}", "text_a": a, "text_b": b} for i, (a, b) in enumerate(zip(SENTENCES, PAIRS_B))]
    elements = [("k0", rows[:4]), ("k1", rows[4:])]
    expected = {r["id"]: direct_logits(teacher, r["text_a"], r["text_b"]) for r in rows}

    def check(outputs):
        assert sorted(k for k, _ in outputs) == ["k0", "k1"]
        labelled = [r for _, batch in outputs for r in batch]
        assert len(labelled) == len(rows)
        for r in labelled:
            assert isinstance(r["teacher_logits"], list) and len(r["teacher_logits"]) == 3
            logits = np.asarray(r["teacher_logits"], dtype=np.float32)
            assert np.abs(logits - expected[r["id"]]).max() < 1e-5

    pipeline = beam.Pipeline(options=PipelineOptions(["--runner", "DirectRunner"]))
    out = pipeline | beam.Create(elements) | beam.ParDo(LabelRows(tiny_dir, max_tokens=64))
    assert_that(out, check)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    assert counters["rows_labelled"] == len(rows)
    assert counters["batches"] >= 2 and counters["tokens"] > 0


def test_train_teacher_tiny(tiny_dir, tmp_path):
    train = [(a, None, i % 2) for i, a in enumerate(SENTENCES * 6)][:32]
    dev = [(a, None, i % 2) for i, a in enumerate(SENTENCES)]
    cfg = TrainConfig(output=str(tmp_path / "out"), label_names=("neg", "pos"), base=tiny_dir,
                      epochs=1, batch_size=8, max_length=32, seed=3)
    metrics = train_teacher(train, dev, cfg, progress=False)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and 0 <= saved["accuracy"] <= 1 and "f1" in saved
    assert saved["train_examples"] == 32 and saved["seed"] == 3 and saved["epochs"] == 1
    trained = Teacher.load(str(tmp_path / "out"))
    assert trained.label_names == ["neg", "pos"]
    assert trained.logits(SENTENCES).shape == (len(SENTENCES), 2)
    # Same seed, same model.
    again = train_teacher(train, dev, TrainConfig(**{**cfg.__dict__, "output": str(tmp_path / "again")}), progress=False)
    assert again["accuracy"] == metrics["accuracy"]
    assert fingerprint(tmp_path / "again") == fingerprint(tmp_path / "out")


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
