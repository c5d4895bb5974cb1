"""The word students' variants: `-tuned` (trained GloVe vectors, saved with the student) and
`-wordpiece` (the teacher base's frozen word-piece table and tokenizer, checked by digest)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from kdaug.augmenters.resources import resolve_teacher_dir, teacher_word_embeddings
from kdaug.distillation import word_students
from kdaug.distillation.train import DistillConfig, parameter_groups

NEW_KINDS = ("bilstm-tuned", "cnn-tuned", "bilstm-wordpiece", "cnn-wordpiece")
TEXTS = ["a great film", "truly awful , and a waste of time", "well-acted -LRB- mostly -RRB-", "xyzzyq", "boring"]
LABELS = torch.tensor([1, 0, 1, 0, 0])


def trained(kind: str, steps: int = 2):
    """A fresh student of `kind` after `steps` AdamW steps on TEXTS, as the training loop makes them."""
    torch.manual_seed(0)
    model, tokenizer = word_students.build(kind, 2, ("negative", "positive"))
    table = model.embeddings.weight.detach().clone()
    head = model.classifier.weight.detach().clone()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-2)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, LABELS)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert not torch.equal(model.classifier.weight, head)  # it trained
    return model.eval(), tokenizer, table


def test_kinds_are_registered():
    assert set(NEW_KINDS) < set(word_students.KINDS) and word_students.KINDS[:2] == ("bilstm", "cnn")
    for kind in NEW_KINDS:  # what the transformer students alone can take is refused for every word student
        with pytest.raises(ValueError, match="transformer students"):
            DistillConfig(student=kind, layers=2)


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_train_save_and_load_back_identical_logits(kind, tmp_path):
    model, tokenizer, table = trained(kind)
    tuned = kind.endswith("-tuned")
    assert model.embeddings.weight.requires_grad == tuned
    assert torch.equal(model.embeddings.weight, table) != tuned  # only a tuned table moves
    if kind.endswith("-wordpiece"):
        assert torch.equal(
            model.embeddings.weight, torch.from_numpy(teacher_word_embeddings(resolve_teacher_dir(None)))
        )
    with torch.no_grad():
        before = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits

    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / word_students.WEIGHTS_FILE), "pt") as saved:
        assert ("embeddings.weight" in saved.keys()) == tuned  # a frozen table is not saved
    spec = json.loads((tmp_path / word_students.CONFIG_FILE).read_text())
    assert spec["kind"] == kind and spec["tune_vectors"] == tuned
    assert spec["vectors"] == ("glove" if tuned else "wordpiece")
    assert ("glove_sha256" in spec) == tuned and ("wordpiece_sha256" in spec) != tuned

    loaded, loaded_tokenizer = word_students.load(tmp_path)
    assert torch.equal(loaded.embeddings.weight, model.embeddings.weight)
    with torch.no_grad():
        after = loaded(**loaded_tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    assert torch.equal(before, after)
    assert loaded.config.id2label == {0: "negative", 1: "positive"}


def test_untuned_students_keep_their_saved_files(tmp_path):
    """cnn/bilstm save what they saved before the variants: no table, no new student.json fields."""
    model, _ = word_students.build("cnn", 2)
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / word_students.WEIGHTS_FILE), "pt") as saved:
        assert not [k for k in saved.keys() if k.startswith("embeddings.")]
    assert list(json.loads((tmp_path / word_students.CONFIG_FILE).read_text())) == [
        "kind",
        "num_labels",
        "id2label",
        "glove_words",
        "glove_sha256",
        "hidden",
        "widths",
        "dense",
        "dropout",
        "max_position_embeddings",
        "label2id",
    ]


def test_wordpiece_tokenizer_reads_like_the_base_without_cls():
    _, tokenizer = word_students.build("cnn-wordpiece", 2)
    base = tokenizer.tokenizer
    good, bad = (base(t, add_special_tokens=False)["input_ids"] for t in ("good", "bad"))
    assert tokenizer(["good"])["input_ids"] == [good]
    assert tokenizer(["good"], ["bad"])["input_ids"] == [good + [base.sep_token_id] + bad]
    assert tokenizer([""])["input_ids"] == [[base.unk_token_id]]
    padded = tokenizer(["good", "a good film"], padding=True, return_tensors="pt")
    assert padded["input_ids"][0, -1].item() == base.pad_token_id and padded["attention_mask"][0, -1].item() == 0


def test_a_kind_and_contradicting_vectors_are_refused():
    with pytest.raises(ValueError, match="tune_vectors"):
        word_students.WordStudentConfig("cnn-tuned", 2, tune_vectors=False)
