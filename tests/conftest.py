"""Shared fixtures: a tiny random teacher (seconds to build and run) instead of the real one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from kdaug.augmenters.resources import resolve_teacher_dir


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
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        id2label={i: f"label{i}" for i in range(num_labels)},
        label2id={f"label{i}": i for i in range(num_labels)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> str:
    return str(make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"), num_labels=2))


def publish_by_hand(root: Path, manifest: dict) -> None:
    """Publish a partition tree a test wrote by hand under ROOT (METHOD/DEGREE/*.parquet) as
    `kdaug` would: staged, then `commit.publish`ed with `manifest` (a labelled dataset's kind unless it
    names one). A published ROOT gets `manifest`'s fields patched into its manifest instead (a test
    changing what an output records)."""
    import json

    from kdaug import commit, schema

    if (root / schema.SUCCESS_FILE).exists():
        path = root / schema.MANIFEST_FILE
        path.write_text(json.dumps(json.loads(path.read_text()) | manifest))
        return
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("[!_]*/*/*.parquet"))
    with commit.Writer(str(root), "test") as attempt:
        for rel in files:
            staged = root / attempt.staging / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            (root / rel).rename(staged)
        commit.publish(
            attempt, {"kind": "run"} | manifest, [{"path": rel, "staged": f"{attempt.staging}/{rel}"} for rel in files]
        )


def write_augment(config, pipeline_args=(), label=None) -> dict:
    """`run_augment` under the commit protocol, as `kdaug augment` (or `kdaug run`) runs it."""
    from kdaug import commit
    from kdaug.beam.augment_job import run_augment

    command = "augment" if label is None else "run"
    return commit.write(
        config.output, command, config.inputs, lambda a: run_augment(config, list(pipeline_args), a, label)
    )
