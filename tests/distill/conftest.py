"""The distill tests' data: a labelled output written by hand (shards of the shard-file schema and a
manifest as `kdaug label` writes it), small enough to train on in seconds."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdaug.schema import SCHEMA_VERSION, SHARD_FILE_SCHEMA, partition_dir, partition_values, shard_file_name
from tests.conftest import publish_by_hand

GOOD = ["a great film", "wonderful and moving", "truly good fun", "a delight"]
BAD = ["a dull mess", "boring and bad", "truly awful", "a waste of time"]


def write_partition(root: Path, method: str, degree: float, rows: list[dict], index: int = 0, count: int = 1) -> Path:
    """One shard file of SHARD_FILE_SCHEMA under root/METHOD/DEGREE/."""
    full = [
        {
            "id": f"{method}-{degree}-{index}-{i}",
            "source_id": str(i),
            "text_b": None,
            "label": None,
            "copy": 0,
            "changed_frac": degree,
            "partner_id": None,
            "mix_lambda": None,
            "teacher_logits": None,
            **partition_values(partition_dir(method, degree)),
        }
        | row
        for i, row in enumerate(rows)
    ]
    path = root / partition_dir(method, degree) / shard_file_name(index, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=SHARD_FILE_SCHEMA), path)
    return path


def sentiment_rows(n: int, copies: int = 1) -> list[dict]:
    """n rows per copy alternating positive/negative, with confident teacher logits; the teacher's
    shift is copy / 10, and copy 2 flips its argmax."""
    rows = []
    for copy in range(copies):
        for i in range(n):
            label = i % 2
            text = (GOOD if label else BAD)[i // 2 % 4]
            rows.append(
                {
                    "text_a": text,
                    "label": label,
                    "copy": copy,
                    "teacher_logits": [-2.0, 2.0] if label else [2.0, -2.0],
                    "teacher_shift": copy / 10,
                    "teacher_flip": copy == 2,
                }
            )
    return rows


@pytest.fixture
def output(tmp_path) -> Path:
    """originals (8 rows), knn at 0.1 (two files) and 0.3, augpro-mix at 0.3; 3 copies each."""
    root = tmp_path / "out"
    write_partition(root, "original", 0.0, sentiment_rows(8))
    write_partition(root, "knn", 0.1, sentiment_rows(4, copies=3), 0, 2)
    write_partition(root, "knn", 0.1, sentiment_rows(4, copies=3), 1, 2)
    write_partition(root, "knn", 0.3, sentiment_rows(4, copies=3))
    write_partition(root, "augpro-mix", 0.3, sentiment_rows(4, copies=3))
    write_manifest(root)
    return root


TEACHER = "0123456789abcdef0123456789abcdef"  # the fingerprint the fixtures' manifests record
LABELS = ("negative", "positive")  # the class names the fixtures' manifests record (label 0, label 1)


def write_manifest(root: Path, teacher: str | None = TEACHER, schema_version: int = SCHEMA_VERSION) -> None:
    """Publish ROOT with a manifest as `kdaug run` writes it (only the fields distill reads);
    teacher=None: `augment`'s."""
    publish_by_hand(
        root,
        {
            "schema_version": schema_version,
            "config": {"label_names": list(LABELS)},
            "teacher": teacher and {"dir": "t", "fingerprint": teacher},
        },
    )
