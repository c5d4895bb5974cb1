"""`kdaug.distill` and `kdaug.sweep`, the Python API over the student trainer: the same students as
the command line, a `Result`, and dev files shaped like the training input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import kdaug
from kdaug.distillation.cli import main as cli
from kdaug.schema import SCHEMA_VERSION
from tests.conftest import publish_by_hand
from tests.distill.conftest import BAD, GOOD, LABELS, TEACHER, sentiment_rows, write_partition

TRAINING = {"student": "bilstm", "max_steps": 20, "eval_every": 10, "batch_size": 8}


@pytest.fixture
def reviews(tmp_path):
    """A labelled output made from a file of the user's own columns (review, stars: 1 or 5), and a
    dev file of the same shape, which no GLUE preset reads."""
    root = tmp_path / "reviews"
    write_partition(root, "original", 0.0, sentiment_rows(8))
    write_partition(root, "knn", 0.3, sentiment_rows(4, copies=2))
    config = {
        "label_names": list(LABELS),
        "text_fields": ["review", None],
        "label_field": "stars",
        "labels": ["1", "5"],
    }
    publish_by_hand(
        root, {"schema_version": SCHEMA_VERSION, "config": config, "teacher": {"dir": "t", "fingerprint": TEACHER}}
    )
    dev = tmp_path / "dev.tsv"
    dev.write_text("review\tstars\n" + "".join(f"{t}\t5\n" for t in GOOD) + "".join(f"{t}\t1\n" for t in BAD))
    return root, dev


def test_the_api_trains_the_students_the_cli_trains(reviews, tmp_path):
    data, dev = reviews
    result = kdaug.distill(str(data), str(tmp_path / "api"), dev=str(dev), methods=["knn"], **TRAINING)
    assert result.command == "distill" and result.status == "published" and result.path == str(tmp_path / "api")
    assert result.counts == {"train_rows": 8 + 8, "steps": 20} and result.metrics["dev_accuracy"] >= 0.5
    flags = ["--student", "bilstm", "--max-steps", "20", "--eval-every", "10", "--batch-size", "8"]
    args = ["distill", "--data", str(data), "--methods", "knn", "--dev", str(dev), "--output", str(tmp_path / "cli")]
    done = CliRunner().invoke(cli, [*args, *flags])
    assert done.exit_code == 0, done.output
    api, made = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("api", "cli"))
    assert api["history"] == made["history"] and api["dev_accuracy"] == made["dev_accuracy"]


def test_api_sweep_reports_its_rows_and_mistakes_are_usage_errors(reviews, tmp_path):
    data, dev = reviews
    result = kdaug.sweep(
        {16: str(data)},
        str(tmp_path / "sweep"),
        dev=str(dev),
        methods=["knn"],
        degrees=[0.3],
        modes=["kd"],
        seeds=[0],
        **TRAINING,
    )
    assert result.status == "published" and result.counts == {"results": 1}
    assert result.metrics["rows"][0]["method"] == "knn" and (tmp_path / "sweep" / "results.md").is_file()
    with pytest.raises(kdaug.UsageError, match="unknown mode"):
        kdaug.sweep({16: str(data)}, str(tmp_path / "x"), dev=str(dev), methods=["knn"], modes=["kd", "distil"])
    with pytest.raises(kdaug.UsageError, match="test_api_distill.py: cannot tell the format"):
        kdaug.distill(str(data), dev=__file__, **TRAINING)
