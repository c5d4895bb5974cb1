"""Shared fixtures: a tiny random teacher (seconds to build and run) instead of the real one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from pipeline.resources import resolve_teacher_dir


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


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> str:
    return str(make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"), num_labels=2))
