"""The labelling step as Beam's RunInference (`pipeline.inference`): keys and rows kept, one chunk
per inference call, logits equal to a direct forward, counters, a failing chunk as dead letters
instead of a crashed job, and the device choice."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from apache_beam.options.pipeline_options import PipelineOptions
from click.testing import CliRunner

from kdaug import commit, schema
from kdaug.beam.inference import LabelChunks, TeacherHandler
from kdaug.cli import main
from kdaug.teacher.model import Teacher, check_precision, resolve_device

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "bad",
    "it 's a charming and often affecting journey .",
    "ok .",
    "the film is strictly routine , and its long , rambling middle section never finds a rhythm .",
]


def rows(prefix: str, texts_b=None) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "text_a": a, "text_b": None if texts_b is None else texts_b[i]}
        for i, a in enumerate(SENTENCES)
    ]


class FailingHandler(TeacherHandler):
    """The real handler, whose teacher fails on any chunk holding the word "boom"."""

    def load_model(self):
        teacher = super().load_model()
        real = teacher.logits_with_stats

        def logits_with_stats(texts_a, texts_b=None):
            if any("boom" in t for t in texts_a):
                raise RuntimeError("CUDA out of memory (simulated)")
            return real(texts_a, texts_b)

        teacher.logits_with_stats = logits_with_stats
        return teacher


def run(handler, elements, tmp_path):
    """The outputs of RunInference(handler) over `elements` (each pickled to a file: the DirectRunner
    runs pickled copies of every function), and the `teacher` counters."""
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner", "DirectRunner"]))
    out = pipeline | beam.Create(elements) | "Label" >> LabelChunks(handler)
    _ = out | beam.Map(lambda e, d=str(tmp_path): (Path(d) / uuid.uuid4().hex).write_bytes(pickle.dumps(e)))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.namespace == "teacher"
    }
    return [pickle.loads(p.read_bytes()) for p in tmp_path.iterdir()], counters


def test_keys_rows_and_logits_survive_run_inference(tiny_teacher_dir, tmp_path):
    teacher = Teacher.load(tiny_teacher_dir, max_tokens=48)
    singles, pairs = rows("s"), rows("p", texts_b=list(reversed(SENTENCES)))
    elements = [(("eda/0.30", "k0"), singles), (("eda/0.30", "k1"), singles[:2] + pairs)]
    found, counters = run(TeacherHandler(tiny_teacher_dir, max_tokens=48), elements, tmp_path)
    assert sorted(key for key, _ in found) == sorted(key for key, _ in elements)
    for (_, labelled), (_, source) in zip(sorted(found), sorted(elements)):
        assert [r["id"] for r in labelled] == [r["id"] for r in source]  # order and every field kept
        for row, original in zip(labelled, source):
            assert {k: v for k, v in row.items() if k != "teacher_logits"} == original
            direct = teacher.model(**teacher.tokenizer(row["text_a"], row["text_b"], return_tensors="pt")).logits[0]
            assert np.abs(np.asarray(row["teacher_logits"], np.float32) - direct.detach().numpy()).max() < 1e-5
    assert counters["rows_labelled"] == 2 * len(SENTENCES) + 2 and "rows_failed" not in counters
    assert counters["num_inferences"] == 2  # one chunk per inference call, never two chunks batched together
    assert counters["batches"] >= 3 and counters["tokens"] <= counters["padded_tokens"]


def test_a_failing_chunk_becomes_dead_letters_and_the_rest_is_labelled(tiny_teacher_dir, tmp_path):
    bad = [dict(r, text_a=r["text_a"] + " boom") for r in rows("b")]
    elements = [(("original/0.00", "k0"), rows("g")), (("original/0.00", "k1"), bad)]
    found, counters = run(FailingHandler(tiny_teacher_dir), elements, tmp_path)
    by_key = dict(found)
    assert all(r["teacher_logits"] for r in by_key[("original/0.00", "k0")])
    failed = by_key[(f"{schema.FAILED_INFERENCE_DIR}/original/0.00", "k1")]
    assert [r["id"] for r in failed] == [r["id"] for r in bad]
    assert all(
        r["reason"] == "RuntimeError: CUDA out of memory (simulated)" and "teacher_logits" not in r for r in failed
    )
    assert counters["rows_failed"] == len(bad) and counters["rows_labelled"] == len(SENTENCES)


def test_failed_inference_is_published_beside_the_rows_and_counted(tiny_teacher_dir, tmp_path, monkeypatch):
    """`kdaug label` end to end with a teacher that fails on one chunk: the job succeeds, the failed
    rows are in _failed_inference/ with their error, and the counts add up."""
    data = tmp_path / "in.tsv"
    data.write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 4)) + "a boom here\t1\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "augment",
            "--task",
            "sst2",
            "--input",
            str(data),
            "--output",
            str(tmp_path / "aug"),
            "--methods",
            "random",
            "--degrees",
            "0.3",
            "--copies",
            "1",
            "--chunk-size",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setattr("kdaug.beam.inference.TeacherHandler", FailingHandler)
    result = CliRunner().invoke(
        main,
        ["label", "--input", str(tmp_path / "aug"), "--output", str(tmp_path / "lab"), "--teacher", tiny_teacher_dir],
    )
    assert result.exit_code == 0, result.output
    assert "the teacher failed on" in result.output
    manifest = commit.published(str(tmp_path / "lab")).manifest
    failed = [f for f in manifest["files"] if f["path"].startswith(schema.FAILED_INFERENCE_DIR + "/")]
    assert failed and manifest["counts"]["failed_inference"] == sum(f["rows"] for f in failed) > 0
    assert manifest["counts"]["rows_read"] == sum(
        f["rows"] for f in manifest["files"] if not f["path"].startswith("_manifest")
    )
    table = pq.read_table(tmp_path / "lab" / failed[0]["path"])
    assert table.schema.equals(schema.FAILED_INFERENCE_SCHEMA) and "boom" in " ".join(
        table.column("text_a").to_pylist()
    )
    assert (
        len(schema.open_dataset(str(tmp_path / "lab")).to_table())
        == manifest["counts"]["rows_read"] - manifest["counts"]["failed_inference"]
    )
    assert manifest["teacher"]["device"] == "cpu" and manifest["teacher"]["precision"] == "fp32"


def test_device_choice(tiny_teacher_dir):
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="use auto"):
        resolve_device("tpu")
    assert check_precision("bf16") == "bf16"  # only when asked: fp32 is the default everywhere
    with pytest.raises(ValueError, match="use one of"):
        check_precision("fp16")
    with pytest.raises(ValueError, match="CPU in fp32 only"):
        Teacher.load(tiny_teacher_dir, quantize="int8", precision="bf16")


def test_bf16_autocast_runs_on_the_cpu_close_to_fp32(tiny_teacher_dir):
    fp32 = Teacher.load(tiny_teacher_dir).logits(SENTENCES)
    bf16 = Teacher.load(tiny_teacher_dir, precision="bf16").logits(SENTENCES)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32) and np.abs(bf16 - fp32).max() < 0.1
