"""Source readers: presets, formats, stable ids and dead letters with file, line and reason."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import sources


def read(path, data, task, max_rows=None):
    out = list(sources.read_examples(path, data, task, max_rows))
    return [x for k, x in out if k == "example"], [x for k, x in out if k == "dead_letter"]


def test_glue_single_sentence_and_ids():
    data = b"sentence\tlabel\nit 's a charming journey . \t1\na dull , \"quoted\" mess \t0\n"
    examples, dead = read("dir/train.tsv", data, sources.make_task("sst2"))
    assert dead == []
    assert examples == [
        {"source_id": "train-0000002", "text_a": "it 's a charming journey . ", "text_b": None, "label": 1},
        {"source_id": "train-0000003", "text_a": 'a dull , "quoted" mess ', "text_b": None, "label": 0},
    ]


def test_glue_pairs_keep_quotes():
    data = (
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        '1\t1\t2\tHe said "yes" today.\tToday he said "yes".\n'
    ).encode()
    examples, dead = read("mrpc/train.tsv", data, sources.make_task("mrpc"))
    assert dead == []
    assert examples[0]["text_a"] == 'He said "yes" today.'
    assert examples[0]["text_b"] == 'Today he said "yes".'
    assert examples[0]["label"] == 1


def test_every_bad_row_becomes_a_dead_letter_with_its_line():
    data = (
        b"sentence\tlabel\n"
        b"fine row\t1\n"
        b"too\tmany\tcolumns\n"
        b"\t0\n"
        b"unknown label\t7\n"
        b"bad bytes \xff\xfe\t1\n"
        b"\n"
        b"last good\t0\n"
    )
    examples, dead = read("bad.tsv", data, sources.make_task("sst2"))
    assert [e["source_id"] for e in examples] == ["bad-0000002", "bad-0000008"]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (3, "wrong column count: 3 (header has 2)"),
        (4, "empty text in field 'sentence'"),
        (5, "unknown label '7' (expected one of 0, 1)"),
        (6, "undecodable bytes (not UTF-8)"),
        (7, "empty line"),
    ]
    assert all(d["file"] == "bad.tsv" for d in dead)
    assert dead[3]["raw"] == "bad bytes \\xff\\xfe\t1"


def test_jsonl_csv_and_parquet_with_custom_fields(tmp_path):
    task = sources.make_task(None, text_a="review", label_field="stars", labels=("neg", "pos"))
    jsonl = b'{"review": "great", "stars": "pos"}\n{"review": "bad"\n[1, 2]\n{"review": "meh", "stars": "neg"}\n'
    examples, dead = read("r.jsonl", jsonl, task)
    assert [e["label"] for e in examples] == [1, 0]
    assert [d["line"] for d in dead] == [2, 3]
    assert dead[0]["reason"].startswith("invalid JSON")
    assert dead[1]["reason"] == "not a JSON object"

    csv_data = b'review,stars\n"great, really",pos\nno label,\n'
    examples, dead = read("r.csv", csv_data, task)
    assert examples[0]["text_a"] == "great, really"
    assert dead[0]["reason"] == "missing label in field 'stars'"

    table = pa.table({"review": ["fine", None], "stars": ["pos", "neg"]})
    pq.write_table(table, tmp_path / "r.parquet")
    examples, dead = read("r.parquet", (tmp_path / "r.parquet").read_bytes(), task)
    assert [e["source_id"] for e in examples] == ["r-0000001"]
    assert dead[0]["line"] == 2 and "empty text" in dead[0]["reason"]
    assert json.loads(dead[0]["raw"]) == {"review": None, "stars": "neg"}


def test_max_rows_counts_data_rows():
    data = b"sentence\tlabel\na\t1\nb\t9\nc\t0\n"
    examples, dead = read("t.tsv", data, sources.make_task("sst2"), max_rows=2)
    assert len(examples) == 1 and len(dead) == 1


def test_packaged_demo_data_is_real():
    task = sources.make_task(sources.DEFAULT_TASK)
    path = sources.packaged_input(task)
    with open(path, "rb") as f:
        examples, dead = read(path, f.read(), task)
    assert len(examples) == 10_605 and dead == []
    assert {e["label"] for e in examples} == {0, 1}


def test_task_errors_are_clear():
    with pytest.raises(ValueError, match="unknown task"):
        sources.make_task("nope")
    with pytest.raises(ValueError, match="--labels"):
        sources.make_task(None, text_a="t", label_field="y")
    with pytest.raises(ValueError, match="extension"):
        sources.file_format("data.txt", sources.Task("custom"))
