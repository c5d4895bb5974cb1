"""The distill stage: loss, shard reader, training, evaluation, sweep. Tiny models only, CPU, fast."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForSequenceClassification

from kdaug import commit
from kdaug.augmenters.resources import resolve_teacher_dir
from kdaug.distillation import sweep as sweep_module
from kdaug.distillation.cli import main as cli
from kdaug.distillation.evaluate import evaluate, read_labelled
from kdaug.distillation.loss import IGNORE, distill_loss
from kdaug.distillation.shards import Selection, ShardError, ShardReader, check_manifest
from kdaug.distillation.train import DistillConfig, distill, warmup_steps
from kdaug.schema import MANIFEST_FILE
from tests.distill.conftest import BAD, GOOD, LABELS, TEACHER, sentiment_rows, write_manifest, write_partition
from tests.helpers import unstamped


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A config json for a random 2-layer BERT of hidden size 32 on the teacher base's vocabulary.

    Wider initial weights and no dropout: with BERT's 0.02 init, a model this small sits on a
    plateau for ~20 steps (every input looks alike), which would make the smoke test flaky.
    """
    path = tmp_path_factory.mktemp("tiny") / "tiny-bert.json"
    path.write_text(
        json.dumps(
            {
                "model_type": "bert",
                "vocab_size": 30522,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 64,
                "initializer_range": 0.3,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            }
        )
    )
    return path


# --- loss ---------------------------------------------------------------------------------------


def test_kd_loss_matches_hand_computed_value():
    # Row 1: s = [0, 1], t = [1, 0], gold 1. Row 2: s = t = [0, 0], no gold label. T = 2, α = 0.5.
    # Row 1 at T = 2: p_t = softmax([0.5, 0]) = [0.622459, 0.377541], p_s = [0.377541, 0.622459]
    #   KL(p_t || p_s) = (0.622459 - 0.377541) · ln(0.622459 / 0.377541) = 0.244918 · 0.5 = 0.122459
    # Row 2: KL = 0.  batchmean: (0.122459 + 0) / 2 = 0.0612295; · T² = 0.244918
    # CE on the labelled row only: -ln softmax([0, 1])[1] = ln(1 + e⁻¹) = 0.313262; · α = 0.156631
    # total = 0.244918 + 0.156631 = 0.401549
    student = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([1, IGNORE])
    loss = distill_loss(student, labels, teacher, mode="kd", temperature=2.0, alpha=0.5)
    assert loss.item() == pytest.approx(0.401549, abs=1e-5)
    assert distill_loss(student, labels, teacher, mode="kd", temperature=2.0).item() == pytest.approx(
        0.244918, abs=1e-5
    )


def test_ft_ignores_logits_and_unknown_mode_fails():
    student = torch.randn(4, 3)
    labels = torch.tensor([0, 2, IGNORE, 1])
    a = distill_loss(student, labels, torch.randn(4, 3), mode="ft")
    b = distill_loss(student, labels, torch.randn(4, 3) * 100, mode="ft")
    assert a.item() == b.item() == distill_loss(student, labels, None, mode="ft").item()
    assert a.item() == pytest.approx(torch.nn.functional.cross_entropy(student[[0, 1, 3]], labels[[0, 1, 3]]).item())
    with pytest.raises(ValueError, match="unknown mode 'mse'"):
        distill_loss(student, labels, student, mode="mse")
    with pytest.raises(ValueError, match="needs teacher_logits"):
        distill_loss(student, labels, None, mode="kd")


# --- reader ---------------------------------------------------------------------------------------


def all_rows(reader: ShardReader, **kwargs) -> list[tuple]:
    return [
        row
        for b in reader.batches(batch_size=3, **kwargs)
        for row in zip(b["text_a"], b["label"], b["teacher_logits"].tolist())
    ]


def test_reader_filters_partitions_and_copies(output):
    reader = ShardReader(output, Selection(methods=["knn"], degrees=[0.3], copies=2), buffer_rows=5, read_rows=2)
    assert [Path(f.path).parent.parent.name + "/" + Path(f.path).parent.name for f in reader.fragments] == [
        "knn/0.30",
        "original/0.00",
    ]  # augpro-mix and knn/0.10 never opened
    assert len(reader) == 8 + 4 * 2
    rows = all_rows(reader)
    assert len(rows) == 16
    batches = list(reader.batches(batch_size=3))
    assert [len(b["text_a"]) for b in batches[:-1]] == [3] * (len(batches) - 1)  # full mini-batches, tail last
    assert len(ShardReader(output, Selection(methods=(), originals=True))) == 8  # originals only
    assert len(ShardReader(output, Selection(degrees=[0.1], originals=False))) == 24  # both files of knn/0.1
    with pytest.raises(ValueError, match="no rows selected.*knn/0.30"):
        ShardReader(output, Selection(methods=["eda"], originals=False))


def test_reader_streams_record_batches_with_deterministic_shuffle(output):
    reader = ShardReader(output, Selection(), buffer_rows=4, read_rows=2)
    tables = list(reader._interleave(np.random.default_rng(0)))
    assert max(t.num_rows for t in tables) <= 2 and sum(t.num_rows for t in tables) == len(reader) == 8 + 4 * 3 * 4
    first = all_rows(reader, seed=1, epoch=0)
    assert first == all_rows(reader, seed=1, epoch=0)  # same seed and epoch: same order
    assert first != all_rows(reader, seed=1, epoch=1)  # a new epoch reshuffles
    assert sorted(map(str, first)) == sorted(map(str, all_rows(reader, seed=2, epoch=0)))  # same rows


def test_reader_refuses_bad_logits_naming_file_and_row(tmp_path):
    rows = sentiment_rows(6)
    rows[3]["teacher_logits"] = [float("nan"), 1.0]
    bad = write_partition(tmp_path, "knn", 0.3, rows)
    write_partition(tmp_path, "eda", 0.3, sentiment_rows(4) + [{"text_a": "x", "label": 1}])  # null logits, row 4
    write_manifest(tmp_path)
    with pytest.raises(ValueError, match=f"{bad}, row 3: teacher_logits"):
        list(ShardReader(tmp_path, Selection(methods=["knn"])).batches(4))
    with pytest.raises(ValueError, match="eda/0.30/part-00000-of-00001.parquet, row 4"):
        list(ShardReader(tmp_path, Selection(methods=["eda"])).batches(4))
    ft = ShardReader(tmp_path, Selection(), require_logits=False, require_labels=True)
    assert sum(len(b["label"]) for b in ft.batches(4)) == 11  # fine-tuning never looks at the logits


def test_reader_refuses_other_schema_version(output):
    write_manifest(output, schema_version=99)
    with pytest.raises(ValueError, match="schema_version 99"):
        ShardReader(output)


def test_reader_refuses_shards_of_another_teacher(output):
    assert ShardReader(output, teacher=TEACHER).teacher == TEACHER
    other = "f" * 32
    with pytest.raises(ShardError, match=rf"{output / MANIFEST_FILE}: teacher fingerprint {TEACHER}, expected {other}"):
        ShardReader(output, teacher=other)
    assert (
        len(ShardReader(output, require_logits=False, require_labels=True, teacher=None)) == 56
    )  # ft: no teacher check


def test_kd_refuses_an_output_without_teacher(output):
    write_manifest(output, teacher=None)
    with pytest.raises(ShardError, match=rf"{output / MANIFEST_FILE}: records no teacher, .* \(--mode ft\)"):
        ShardReader(output)
    assert ShardReader(output, require_logits=False).teacher is None


def test_roots_of_different_teachers_are_refused(output, tmp_path):
    other = tmp_path / "other"
    write_partition(other, "knn", 0.3, sentiment_rows(4))
    write_manifest(other, teacher="e" * 32)
    with pytest.raises(
        ShardError,
        match=rf"mix teachers: {other / MANIFEST_FILE} records teacher fingerprint e{{32}}, "
        rf"{output / MANIFEST_FILE} records {TEACHER}",
    ):
        check_manifest([commit.published(str(other)), commit.published(str(output))])
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    args = [
        "sweep",
        "--data",
        f"size=8:{output}",
        "--data",
        f"size=4:{other}",
        "--dev",
        str(tmp_path / "dev.tsv"),
        "--output",
        str(tmp_path / "sw"),
        "--methods",
        "knn",
        "--degrees",
        "0.3",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Error: the selected shards mix teachers" in result.output
    assert not (tmp_path / "sw" / "results.csv").exists()  # refused before the first cell


def test_distill_cli_checks_the_expected_teacher(output, tiny_teacher_dir, tmp_path):
    from kdaug.teacher.model import fingerprint

    args = ["distill", "--data", str(output), "--output", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, args + ["--teacher-fingerprint", "ab" * 16])
    assert result.exit_code == 1
    assert f"Error: {output / MANIFEST_FILE}: teacher fingerprint {TEACHER}, expected {'ab' * 16}" in result.output
    result = CliRunner().invoke(cli, args + ["--teacher", tiny_teacher_dir])
    assert result.exit_code == 1 and f"expected {fingerprint(tiny_teacher_dir)}" in result.output
    both = CliRunner().invoke(cli, args + ["--teacher", tiny_teacher_dir, "--teacher-fingerprint", TEACHER])
    assert both.exit_code == 2 and "not both" in both.output


# --- training, evaluation, sweep ------------------------------------------------------------------


def test_smoke_training_improves_loss_and_saves_student(output, tiny_config, tmp_path, capsys):
    dev = [(t, None, 1) for t in GOOD] + [(t, None, 0) for t in BAD]
    config = DistillConfig(
        student=str(tiny_config),
        lr=3e-3,
        warmup=0.0,
        batch_size=8,
        max_length=16,
        max_steps=20,
        eval_every=5,
        patience=10,
        seed=0,
    )
    metrics = distill(
        output, Selection(methods=["knn"], degrees=[0.3]), config, dev=dev, out_dir=tmp_path / "student", progress=False
    )
    losses = [h["train_loss"] for h in metrics["history"]]
    assert metrics["steps"] == 20 and len(losses) == 4
    assert losses[-1] < 0.5 * losses[0], losses
    assert metrics["dev_accuracy"] >= 0.75 and metrics["train_rows"] == 8 + 12
    saved = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert saved["config"]["student"] == str(tiny_config) and saved["selection"]["methods"] == ["knn"]
    # one line per evaluation on stderr, like a trainer's log
    evals = [line for line in unstamped(capsys.readouterr().err) if line.startswith("step ")]
    assert [line.split(":")[0] for line in evals] == ["step 5/20", "step 10/20", "step 15/20", "step 20/20"]
    assert all(
        re.fullmatch(r"step \d+/20: train loss \d\.\d{4}, dev accuracy [\d.]+% \(best [\d.]+% at step \d+\)", e)
        for e in evals
    )
    # the class names of the data's manifest, not LABEL_0 / LABEL_1
    model_config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert model_config["id2label"] == {"0": "negative", "1": "positive"}
    assert model_config["label2id"] == {"negative": 0, "positive": 1} and saved["label_names"] == list(LABELS)

    tsv = tmp_path / "dev.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, _, y in dev))
    assert read_labelled(tsv) == dev
    scores = evaluate(tmp_path / "student", read_labelled(tsv))
    assert scores["accuracy"] == metrics["dev_accuracy"] and scores["n"] == 8  # the best weights were saved
    assert scores["f1"] == metrics["dev_f1"]
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "student"), str(tsv)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == scores


def test_freeze_embeddings_keeps_the_word_piece_table(output, tiny_config, tmp_path):
    config = DistillConfig(
        student=str(tiny_config),
        lr=3e-3,
        warmup=0.0,
        batch_size=8,
        max_length=16,
        max_steps=5,
        freeze_embeddings=True,
        seed=0,
    )
    distill(output, Selection(methods=["knn"], degrees=[0.3]), config, out_dir=tmp_path / "frozen", progress=False)
    distill(
        output,
        Selection(methods=["knn"], degrees=[0.3]),
        replace(config, freeze_embeddings=False),
        out_dir=tmp_path / "trained",
        progress=False,
    )
    from kdaug.distillation.train import build_student

    torch.manual_seed(0)  # the random initialisation distill() drew with seed 0
    initial = build_student(str(tiny_config), None, 2)[0].get_input_embeddings().weight
    frozen, trained = (
        AutoModelForSequenceClassification.from_pretrained(tmp_path / d).get_input_embeddings().weight
        for d in ("frozen", "trained")
    )
    assert torch.equal(frozen, initial) and not torch.equal(trained, initial)


def test_default_student_is_teacher_base_cut_to_two_layers():
    from kdaug.distillation.train import build_student

    model, tokenizer = build_student(None, None, 3)
    assert model.config.num_hidden_layers == 2 and len(model.bert.encoder.layer) == 2
    assert model.config.num_labels == 3 and tokenizer.name_or_path == resolve_teacher_dir(None)


def test_sweep_resumes_and_reports(output, tmp_path, monkeypatch):
    calls = []

    def fake_distill(data_dir, selection, config, dev, out_dir, progress, teacher, allow_unfinished, test, quiet):
        assert quiet  # a sweep says one line per cell, its cells' training nothing
        assert teacher == TEACHER  # the one teacher every size was labelled by, checked before the first cell
        calls.append((selection, config.mode, config.seed))
        degree = selection.degrees[0] if selection.degrees else 0.0
        return {
            "dev_accuracy": 0.8 + degree / 10 + config.seed / 100,
            "dev_f1": 0.8,
            "best_step": 1,
            "steps": 2,
            "warmup_steps": 1,
            "best_in_warmup": config.seed == 1,
            "train_seconds": 0.1,
            "train_rows": 8,
            "hit_cap": config.seed == 0,
            "test_accuracy": test and 0.7 + degree / 10 + config.seed / 100,
            "test_f1": test and 0.7,
            "warnings": [],
        }

    monkeypatch.setattr(sweep_module, "distill", fake_distill)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    args = [
        "sweep",
        "--data",
        f"size=8:{output}",
        "--dev",
        str(tmp_path / "dev.tsv"),
        "--output",
        str(tmp_path / "sw"),
        "--methods",
        "knn,augpro-mix",
        "--degrees",
        "0,0.3",
        "--copies",
        "1,2",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # per (mode, seed): one originals-only cell + 2 methods × 1 degree × 2 copies
    assert len(calls) == 2 * 2 * (1 + 4)
    assert Selection(methods=()) in [c[0] for c in calls]
    assert Selection(methods=("knn",), degrees=(0.3,), copies=2) in [c[0] for c in calls]

    calls.clear()
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert calls == []  # every cell is in results.csv already
    assert CliRunner().invoke(cli, args + ["--seeds", "0,1,2"]).exit_code == 0
    assert {c[2] for c in calls} == {2} and len(calls) == 2 * (1 + 4)

    out = tmp_path / "sw"
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 30
    table = (out / "results.md").read_text()
    assert "| 8 | 2 | kd | knn | 81.0 ± 1.0 (3) | 84.0 ± 1.0 (3) | 0.30 | 84.0 |" in table
    assert "10 ran to their step cap" in table and "pass --test" in table  # the seed-0 cells; dev reported
    assert "10 kept a checkpoint from inside the learning-rate warm-up (which ends at step 1)" in table  # seed 1
    assert "with no test set the accuracy beside it is dev's too" in table
    assert (out / "results.png").stat().st_size > 10_000
    # each cell records its rows as the teacher measured them (the fixture: shift copy / 10, copy 2 flips)
    knn = {
        (r["copies"], r["mode"], r["seed"]): r
        for r in csv.DictReader(open(out / "results.csv"))
        if r["method"] == "knn"
    }
    assert [knn[("1", "kd", "0")][k] for k in sweep_module.SHIFT] == ["0.3", "0.0", "0.0"]
    assert [float(knn[("2", "ft", "2")][k]) for k in sweep_module.SHIFT] == [0.3, pytest.approx(0.05), 0.0]
    assert "| 8 | 2 | knn | 0.30 | 0.30 | 0.050 | 0.0% | +3.0 | +3.0 | +0.0 |" in table
    assert (out / "gain_vs_shift.png").stat().st_size > 10_000

    # with a test set the report shows test accuracy, which the checkpoint selection never saw
    (tmp_path / "test.tsv").write_text("sentence\tlabel\nbad\t0\n")
    args[args.index(str(tmp_path / "sw"))] = str(tmp_path / "sw-test")
    assert CliRunner().invoke(cli, args + ["--test", str(tmp_path / "test.tsv")]).exit_code == 0
    table = (tmp_path / "sw-test" / "results.md").read_text()
    assert "Test accuracy (%) of the checkpoint dev selected" in table
    assert "| 8 | 2 | kd | knn | 70.5 ± 0.7 (2) | 73.5 ± 0.7 (2) | 0.30 | 73.5 |" in table


def test_training_stops_on_a_dev_plateau_and_says_when_it_hit_the_cap(output, tiny_config, monkeypatch):
    """Early stopping on a synthetic dev curve: better, better, then flat for `patience` evaluations
    → stop, keep the best step, hit_cap False; a curve that keeps improving runs to the cap."""
    from kdaug.distillation import train as train_module

    def run(curve: list[float]) -> dict:
        scores = iter(curve)
        monkeypatch.setattr(train_module, "evaluate_model", lambda *a, **k: {"accuracy": next(scores), "n": 2})
        config = DistillConfig(
            student=str(tiny_config), batch_size=8, max_length=16, max_steps=40, eval_every=5, patience=2
        )
        return distill(
            output, Selection(methods=["knn"], degrees=[0.3]), config, dev=[("good", None, 1)], progress=False
        )

    plateau = run([0.5, 0.7, 0.7, 0.6, 0.9, 0.9, 0.9, 0.9])
    assert plateau["steps"] == 20 and plateau["best_step"] == 10 and plateau["dev_accuracy"] == 0.7
    assert plateau["hit_cap"] is False
    rising = run([0.1 * i for i in range(1, 9)])
    assert rising["steps"] == 40 and rising["best_step"] == 40 and rising["hit_cap"] is True


def test_warmup_is_a_tenth_of_an_epoch_and_at_most_100_steps():
    assert warmup_steps(DistillConfig(), 500) == 2  # 16 steps an epoch at batch size 32
    assert warmup_steps(DistillConfig(), 170_000) == 100  # 5,313 steps an epoch
    assert warmup_steps(DistillConfig(max_warmup_steps=None), 170_000) == 532
    assert warmup_steps(DistillConfig(warmup=0.0), 500) == 0


def test_warmup_does_not_scale_with_the_step_cap(output, monkeypatch):
    """Two runs of one data set, capped at 20 and 40 steps, warm up for the same 5 steps (half an
    epoch of 20 rows at batch size 2): the rate is 0 for the first update, below the peak up to step
    5 and at the peak for step 6. A checkpoint kept at step 5 is inside the warm-up, one at step 6
    is not."""
    from kdaug.distillation import train as train_module

    def run(max_steps: int, best_step: int, **options) -> dict:
        curve = iter([0.9 if step == best_step else 0.5 for step in range(1, max_steps + 1)])
        monkeypatch.setattr(train_module, "evaluate_model", lambda *a, **k: {"accuracy": next(curve), "n": 1})
        config = DistillConfig(student="cnn", batch_size=2, warmup=0.5, max_steps=max_steps, eval_every=1, patience=100)
        return distill(
            output,
            Selection(methods=["knn"], degrees=[0.3]),
            replace(config, **options),
            dev=[("good", None, 1)],
            progress=False,
            quiet=True,
        )

    short, long = run(20, best_step=5), run(40, best_step=6)
    assert short["train_rows"] == 20 and short["warmup_steps"] == long["warmup_steps"] == 5
    peak = DistillConfig(student="cnn").learning_rate
    for metrics in (short, long):
        rates = {h["step"]: h["learning_rate"] for h in metrics["history"]}
        assert rates[1] == 0 and 0 < rates[5] < peak and rates[6] == pytest.approx(peak)
    assert short["best_step"] == 5 and short["best_in_warmup"] is True
    assert long["best_step"] == 6 and long["best_in_warmup"] is False
    assert run(20, best_step=3, max_warmup_steps=2)["warmup_steps"] == 2
    assert run(20, best_step=1, warmup=0.0)["best_in_warmup"] is False


def test_training_warns_when_its_numbers_mislead(output, tmp_path, monkeypatch, capsys):
    """One `warning:` line each, kept in the metrics too: a single evaluation (--eval-every past the
    last step), a dev accuracy at the majority-class rate, a run stopped by its step cap."""
    from kdaug.distillation import train as train_module

    dev = [("good", None, 1)] * 3 + [("bad", None, 0)]  # 75% positive

    def run(curve: list[float], out_dir=None, **options) -> dict:
        scores = iter(curve)
        monkeypatch.setattr(train_module, "evaluate_model", lambda *a, **k: {"accuracy": next(scores), "n": 4})
        config = DistillConfig(student="cnn", batch_size=8, max_steps=8, eval_every=4, patience=2)
        return distill(
            output, Selection(methods=["knn"], degrees=[0.3]), replace(config, **options), dev, out_dir, progress=False
        )

    once = run([0.9], tmp_path / "once", eval_every=10)
    assert len(once["history"]) == 1
    assert once["warnings"][0] == (
        "--eval-every 10 exceeds the 8 training steps: one evaluation, at the end, so no checkpoint was "
        "selected and early stopping never ran"
    )
    assert json.loads((tmp_path / "once" / "metrics.json").read_text())["warnings"] == once["warnings"]
    collapsed = run([0.75, 0.75, 0.75], eval_every=2)  # stopped early, by patience: no cap warning
    assert collapsed["warnings"] == [
        "dev accuracy 75.0% is no better than the majority-class rate (75.0% of dev is 'positive'): the "
        "student may answer one class whatever the input; try another --lr or more steps"
    ]
    capped = run([0.8, 0.9])
    assert capped["hit_cap"] and capped["warnings"] == [
        "training ran to its step cap (8 steps) without dev accuracy levelling off for 2 evaluations: it "
        "may not have converged; raise --max-steps or --epochs"
    ]
    assert run([0.9, 0.9, 0.9], max_steps=12)["warnings"] == []  # levelled off at the cap: nothing to say
    said = [line for line in unstamped(capsys.readouterr().err) if line.startswith("warning: ")]
    assert said == [f"warning: {w}" for w in once["warnings"] + collapsed["warnings"] + capped["warnings"]]


def fake_sweep_distill(calls: list):
    """`distill` for sweeps whose dev accuracy says which config trained it: 0.5 + 100 × the learning
    rate + max_steps / 1000 (lr 0.001 and 10 steps: 61%)."""

    def fake(data_dir, selection, config, dev, out_dir, progress, teacher, allow_unfinished, test, quiet):
        calls.append(config)
        return {
            "dev_accuracy": 0.5 + 100 * config.learning_rate + config.max_steps / 1000,
            "dev_f1": 0.5,
            "best_step": config.max_steps,
            "steps": config.max_steps,
            "warmup_steps": 1,
            "best_in_warmup": False,
            "train_seconds": 0.1,
            "train_rows": 8,
            "hit_cap": True,
            "test_accuracy": None,
            "test_f1": None,
            "warnings": ["a warning"],
        }

    return fake


def test_sweep_trains_again_under_another_training_config(output, tmp_path, monkeypatch):
    """A cell is done only for the training config and data it ran with: another --lr or --max-steps
    trains the grid again and the report shows the new numbers; the rows of the old config stay
    in results.csv; the same config (an unchanged command, or the student's default lr spelt out)
    trains nothing."""
    calls: list = []
    monkeypatch.setattr(sweep_module, "distill", fake_sweep_distill(calls))
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    out = tmp_path / "sw"
    args = ["sweep", "--data", f"size=8:{output}", "--dev", str(tmp_path / "dev.tsv"), "--output", str(out)]
    args += ["--methods", "knn", "--degrees", "0,0.3", "--seeds", "0", "--student", "cnn", "--max-steps", "10"]

    def sweep(*extra: str) -> str:
        calls.clear()
        result = CliRunner().invoke(cli, args + list(extra))
        assert result.exit_code == 0, result.output
        return result.stderr

    sweep()
    assert len(calls) == 4  # kd and ft: originals only, knn 0.3
    assert "| 8 | 1 | kd | knn | 61.0 ± 0.0 (1) | 61.0 ± 0.0 (1) | 0.00 | 61.0 |" in (out / "results.md").read_text()
    sweep("--lr", "0.001")
    assert calls == []  # the cnn's default rate: the same config

    said = sweep("--lr", "0.002")
    assert len(calls) == 4 and {c.lr for c in calls} == {0.002}
    table = (out / "results.md").read_text()
    assert "| 8 | 1 | kd | knn | 71.0 ± 0.0 (1) | 71.0 ± 0.0 (1) | 0.00 | 71.0 |" in table and "61.0" not in table
    assert "4 students" in table and "lr 0.002" in table
    assert f"4 rows of other training configs stay in {out / 'results.csv'}" in said
    cell = "size=8 mode=kd method=knn degree=0.30 copies=1 seed=0: dev accuracy 71.0% (best step 10 of 10)"
    assert f"{cell}, 1 warning (results.csv)" in said  # one line a cell

    sweep("--max-steps", "20")
    assert len(calls) == 4 and {c.max_steps for c in calls} == {20}
    assert "| 8 | 1 | kd | knn | 62.0 ± 0.0 (1) | 62.0 ± 0.0 (1) | 0.00 | 62.0 |" in (out / "results.md").read_text()

    sweep()  # back to the first config: nothing trains, its report is back
    assert calls == []
    assert "| 8 | 1 | kd | knn | 61.0 ± 0.0 (1) | 61.0 ± 0.0 (1) | 0.00 | 61.0 |" in (out / "results.md").read_text()

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and len({r["config"] for r in rows}) == 3
    assert {r["data"] for r in rows} == {commit.published(str(output)).attempt}
    assert {r["warnings"] for r in rows} == {"a warning"}
    configs = json.loads((out / "configs.json").read_text())
    assert sorted((c["lr"], c["max_steps"]) for c in configs.values()) == [(0.001, 10), (0.001, 20), (0.002, 10)]
    first = configs[rows[0]["config"]]
    assert (first["student"], first["temperature"], first["alpha"], first["batch_size"]) == ("cnn", 1.0, 0.0, 32)
    assert first["epochs"] is None and first["threads"] == 1


def test_sweep_refuses_a_results_csv_without_training_configs(output, tmp_path):
    """An older kdaug's results.csv says nothing of the config its rows ran with: refused in one line,
    not resumed or reported as this run's."""
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    out = tmp_path / "sw"
    out.mkdir()
    old = "size,mode,method,degree,copies,seed,dev_accuracy\n8,kd,knn,0.30,1,0,0.9\n"
    (out / "results.csv").write_text(old)
    args = ["sweep", "--data", f"size=8:{output}", "--dev", str(tmp_path / "dev.tsv"), "--output", str(out)]
    result = CliRunner().invoke(cli, args + ["--methods", "knn", "--degrees", "0.3", "--seeds", "0"])
    assert result.exit_code == 2
    assert (
        f"{out / 'results.csv'} was written by an older kdaug" in result.output and "another --output" in result.output
    )
    assert (out / "results.csv").read_text() == old
