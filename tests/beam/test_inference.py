"""The labelling step as Beam's RunInference (`pipeline.inference`): keys and rows kept, one group
of chunks per inference call, logits equal to a direct forward, each row's shift from its original,
counters, a failing chunk as dead letters instead of a crashed job, and the device choice."""

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
from kdaug.beam.inference import LabelGroups, TeacherHandler, teacher_shift, with_shift
from kdaug.cli import main
from kdaug.teacher.model import Teacher, check_precision, resolve_device

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "bad",
    "it 's a charming and often affecting journey .",
    "ok .",
    "the film is strictly routine , and its long , rambling middle section never finds a rhythm .",
]


def rows(prefix: str, texts_b=None, source: str | None = None, texts_a=SENTENCES) -> list[dict]:
    """One row per text; `source`: the prefix of the originals' ids they were made from (else their own)."""
    return [
        {
            "id": f"{prefix}{i}",
            "source_id": f"{source or prefix}{i}",
            "text_a": a,
            "text_b": None if texts_b is None else texts_b[i],
        }
        for i, a in enumerate(texts_a)
    ]


def group(key: str, originals: list[dict], *made: tuple[str, list[dict]]) -> list:
    """A group as `AugmentChunks` makes it: the chunk's originals, then each partition's rows."""
    return [(("original/0.00", key), originals), *(((partition, key), r) for partition, r in made)]


def recomputed(original: list[float], logits: list[float]) -> tuple[float, bool]:
    """`teacher_shift` and `teacher_flip` straight from their definition (numpy, float64)."""
    p, q = (np.exp(np.asarray(x, np.float64)) / np.exp(np.asarray(x, np.float64)).sum() for x in (original, logits))
    return float(np.sum(p * np.log(p / q))), int(np.argmax(original)) != int(np.argmax(logits))


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
    out = pipeline | beam.Create(elements) | "Label" >> LabelGroups(handler)
    _ = out | beam.Map(lambda e, d=str(tmp_path): (Path(d) / uuid.uuid4().hex).write_bytes(pickle.dumps(e)))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.namespace == "teacher"
    }
    return [pickle.loads(p.read_bytes()) for p in tmp_path.iterdir()], counters


def test_keys_rows_logits_and_shift_survive_run_inference(tiny_teacher_dir, tmp_path):
    teacher = Teacher.load(tiny_teacher_dir, max_tokens=48)
    singles, pairs = rows("s"), rows("p", texts_b=list(reversed(SENTENCES)))
    made = rows("e", source="s", texts_a=SENTENCES[1:] + SENTENCES[:1])  # each row another text than its original
    elements = [group("k0", singles, ("eda/0.30", made)), group("k1", pairs, ("eda/0.30", pairs[:2]))]
    found, counters = run(TeacherHandler(tiny_teacher_dir, max_tokens=48), elements, tmp_path)
    assert sorted(k for g in found for k, _ in g) == sorted(k for g in elements for k, _ in g)
    chunks = {k: r for g in found for k, r in g}
    logits = {r["id"]: r["teacher_logits"] for g in found for _, labelled in g for r in labelled}
    for key, source in (c for g in elements for c in g):
        labelled = chunks[key]
        assert [r["id"] for r in labelled] == [r["id"] for r in source]  # order and every field kept
        for row, original in zip(labelled, source):
            teacher_fields = {"teacher_logits", "teacher_shift", "teacher_flip"}
            assert {k: v for k, v in row.items() if k not in teacher_fields} == original
            direct = teacher.model(**teacher.tokenizer(row["text_a"], row["text_b"], return_tensors="pt")).logits[0]
            assert np.abs(np.asarray(row["teacher_logits"], np.float32) - direct.detach().numpy()).max() < 1e-5
            shift, flip = recomputed(logits[row["source_id"]], row["teacher_logits"])
            assert row["teacher_shift"] == pytest.approx(shift, rel=1e-5, abs=1e-7) and row["teacher_flip"] == flip
    originals = chunks[("original/0.00", "k0")] + chunks[("original/0.00", "k1")]
    assert all(r["teacher_shift"] == 0 and r["teacher_flip"] is False for r in originals)  # KL(p || p)
    assert min(r["teacher_shift"] for r in chunks[("eda/0.30", "k0")]) > 0  # other texts: the teacher moved
    assert counters["rows_labelled"] == 3 * len(SENTENCES) + 2 and "rows_failed" not in counters
    assert counters["num_inferences"] == 2  # one group per inference call, never two groups batched together
    assert counters["batches"] >= 3 and counters["tokens"] <= counters["padded_tokens"]


def test_shift_against_a_hand_computed_case():
    # p = softmax([0, 0]) = (1/2, 1/2), q = softmax([ln 3, 0]) = (3/4, 1/4):
    # KL(p || q) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); argmax 0 and 0 (numpy's first of a tie)
    kl, flip = teacher_shift(np.array([[0.0, 0.0], [0.0, 2.0]]), np.array([[np.log(3), 0.0], [0.0, 2.0]]))
    assert kl.dtype == np.float32 and kl.tolist() == pytest.approx([0.5 * np.log(4 / 3), 0.0])
    assert flip.tolist() == [False, False]
    assert teacher_shift(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[1].tolist() == [True]


def test_a_row_without_its_original_in_the_group_fails_rather_than_writing_nulls():
    labelled = [{"id": "e0", "source_id": "s0", "teacher_logits": [0.0, 1.0]}]
    with pytest.raises(ValueError, match="eda/0.30/k0: no original of source s0"):
        with_shift([(("original/0.00", "k0"), []), (("eda/0.30", "k0"), labelled)])


def test_a_failing_chunk_becomes_dead_letters_and_the_rest_is_labelled(tiny_teacher_dir, tmp_path):
    bad = [dict(r, text_a=r["text_a"] + " boom") for r in rows("b")]
    elements = [group("k0", rows("g")), group("k1", bad, ("eda/0.30", rows("e", source="b")))]
    found, counters = run(FailingHandler(tiny_teacher_dir), elements, tmp_path)
    by_key = {k: r for g in found for k, r in g}
    assert all(r["teacher_logits"] for r in by_key[("original/0.00", "k0")])
    failed = by_key[(f"{schema.FAILED_INFERENCE_DIR}/original/0.00", "k1")]
    assert [r["id"] for r in failed] == [r["id"] for r in bad]
    assert all(r["reason"] == "RuntimeError: CUDA out of memory (simulated)" for r in failed)
    assert all(r["teacher_logits"] is r["teacher_shift"] is r["teacher_flip"] is None for r in failed)
    # rows labelled whose original the teacher failed on: logits, but no shift to measure
    assert all(
        r["teacher_logits"] and r["teacher_shift"] is r["teacher_flip"] is None for r in by_key[("eda/0.30", "k1")]
    )
    assert counters["rows_failed"] == len(bad) and counters["rows_labelled"] == 2 * len(SENTENCES)


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
    labelled = schema.open_dataset(str(tmp_path / "lab")).to_table().to_pylist()
    assert len(labelled) == manifest["counts"]["rows_read"] - manifest["counts"]["failed_inference"]
    failed_originals = {
        r["source_id"]
        for f in failed
        if f["path"].startswith(f"{schema.FAILED_INFERENCE_DIR}/original/")
        for r in pq.read_table(tmp_path / "lab" / f["path"]).to_pylist()
    }
    assert failed_originals  # the boom row's chunk: rows made from it that were labelled have no shift
    assert all((r["teacher_shift"] is None) == (r["source_id"] in failed_originals) for r in labelled)
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
