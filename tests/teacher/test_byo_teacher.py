"""Bring your own teacher: any local `from_pretrained` sequence classifier labels (`run`), drives the
teacher-vocabulary methods (random, knn-teacher, AugPro-Mix, AugPro-FGSM) with its own word pieces,
and serves as a `distill` student. Tiny random models of two more families than BERT, made here:
RoBERTa with a byte-level BPE tokenizer trained on the fly, and ELECTRA with WordPiece."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from transformers import (
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizerFast,
)

from kdaug import commit, schema
from kdaug.augmenters import resources
from tests.helpers import invoke

WORDS = (
    "the a film movie story actor plot scene good bad great dull charming witty long music camera funny sad "
    "gorgeous routine journey bleak ugly pointless stupid rhythm"
).split()
LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}


def roberta(path: Path) -> str:
    """A 2-layer RoBERTa whose byte-level BPE (vocabulary ~400) is trained on the test's words."""
    from tokenizers import ByteLevelBPETokenizer

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(300)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    path.mkdir(parents=True)
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(
        vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=64
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        num_labels=2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **LABELS,
    )
    RobertaForSequenceClassification(config).save_pretrained(path)
    return str(path)


def electra(path: Path) -> str:
    """A 2-layer ELECTRA discriminator with the packaged MiniLM's WordPiece tokenizer."""
    base = Path(resources.resolve_teacher_dir(None))
    path.mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy(base / name, path / name)
    torch.manual_seed(0)
    config = ElectraConfig(
        vocab_size=30522,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        **LABELS,
    )
    ElectraForSequenceClassification(config).save_pretrained(path)
    return str(path)


FAMILIES = {"roberta-bpe": roberta, "electra-wordpiece": electra}
METHODS = "random,knn-teacher,augpro-mix,augpro-fgsm"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("byo-data")
    rng = random.Random(1)
    for name, rows in (("train", 40), ("dev", 12)):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(rows)]
        (root / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(lines)))
    return {name: root / f"{name}.tsv" for name in ("train", "dev")}


def test_byte_level_bpe_vocabulary_reads_as_word_pieces(tmp_path):
    vocab = resources.teacher_vocab(roberta(tmp_path / "r"))
    assert vocab[:5] == ("[<s>]", "[<pad>]", "[</s>]", "[<unk>]", "[<mask>]")
    assert "movie" in vocab  # Ġmovie: a word start
    assert not any(p.startswith(("Ġ", "##Ġ")) for p in vocab)
    assert all(p.startswith("[bytes:") for p in vocab if "\ufffd" in p or any(ord(c) > 0x2FF for c in p.lstrip("#")))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_any_family_labels_augments_and_distils(family, data, tmp_path):
    teacher = FAMILIES[family](tmp_path / "teacher")
    out, student = tmp_path / "out", tmp_path / "student"
    invoke(
        "run",
        "--task",
        "sst2",
        "--input",
        data["train"],
        "--output",
        out,
        "--teacher",
        teacher,
        "--methods",
        METHODS,
        "--degrees",
        "0.3",
        "--copies",
        "1",
        "--seed",
        "2",
    )
    manifest = commit.published(str(out)).manifest
    assert manifest["teacher"]["fingerprint"] and manifest["counts"]["dead_letters"] == 0
    words = set(WORDS)
    for method in METHODS.split(","):
        rows = pq.read_table(out / schema.partition_dir(method, 0.3)).to_pylist()
        assert len(rows) == 40 and all(len(r["teacher_logits"]) == 2 for r in rows)
        assert sum(r["changed_frac"] > 0 for r in rows) > 10, method  # the teacher's own pieces replaced words
        new = {w for r in rows for w in r["text_a"].split()} - words
        assert not {w for w in new if any(m in w for m in ("Ġ", "##", "▁", "<s>", "[", "\ufffd"))}, (
            method,
            sorted(new)[:20],
        )
    invoke(
        "distill",
        "--data",
        out,
        "--mode",
        "kd",
        "--student",
        teacher,
        "--teacher",
        teacher,
        "--methods",
        "augpro-mix",
        "--degrees",
        "0.3",
        "--dev",
        data["dev"],
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--output",
        student,
    )
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["steps"] == 4 and 0 <= metrics["dev_accuracy"] <= 1
    printed = invoke("evaluate", student, data["dev"])
    scored = json.loads(printed[printed.index("{") :])  # after transformers' loading bar (stderr, mixed in here)
    assert scored["n"] == 12
