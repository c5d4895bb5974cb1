"""Quoted TSV/CSV files as pandas and Python's csv module write them (`kdaug.inputs.sources.Dialect`):
their texts read back exactly as written, quoted tabs, delimiters, quotes and line breaks included,
read whole, split by split and through `kdaug augment`; GLUE's unquoted TSV files read as before;
`--delimiter` and `--quoting` name other dialects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kdaug import schema
from kdaug.inputs import sources, splits
from tests.helpers import invoke, rows

TEXTS = [
    'he said "hi"',
    "a tab\there",
    "two\nlines",
    "windows\r\nline break",
    '" starts with a quote',
    'ends with a quote "',
    '"quoted" start',
    "commas, and; semicolons",
    '""',
    "plain text",
    '" The result is a package . "',  # quoted as a whole: what a writer quotes, for its inner quotes
]
TASK = sources.make_task(None, text_a="review", label_field="stars", labels=("bad", "ok", "good"))
LAYOUTS = [("tsv", "\t"), ("csv", ","), ("csv", ";")]


def pandas_file(tmp_path: Path, fmt: str, sep: str, texts=TEXTS, **to_csv) -> Path:
    frame = pd.DataFrame({"review": texts, "stars": [("bad", "ok", "good")[i % 3] for i in range(len(texts))]})
    path = tmp_path / f"reviews.{fmt}"
    frame.to_csv(path, sep=sep, index=False, **to_csv)
    return path


def read_texts(path: Path, task: sources.Task) -> list[str]:
    found = list(sources.read_examples(str(path), path.read_bytes(), task))
    assert [item for kind, item in found if kind == "dead_letter"] == []
    return [item["text_a"] for _, item in found]


@pytest.mark.parametrize(("fmt", "sep"), LAYOUTS)
def test_pandas_files_read_back_what_pandas_wrote(tmp_path, fmt, sep):
    path = pandas_file(tmp_path, fmt, sep)
    task = sources.make_task(None, "review", None, "stars", ("bad", "ok", "good"), delimiter=sep)
    assert read_texts(path, task) == TEXTS
    assert pd.read_csv(path, sep=sep, keep_default_na=False)["review"].tolist() == TEXTS


@pytest.mark.parametrize(("fmt", "sep"), LAYOUTS)
def test_quoted_line_breaks_never_cut_a_split(tmp_path, monkeypatch, fmt, sep):
    path = pandas_file(tmp_path, fmt, sep, TEXTS * 5)
    dialect = sources.Dialect(sep, sources.DIALECTS[fmt].quoting)
    monkeypatch.setattr(splits, "BLOCK_BYTES", 7)  # records end across the planner's blocks too
    plan = splits.plan_file(str(path), fmt, 2, None, lambda p: open(p, "rb"), dialect=dialect)
    assert len(plan.splits) == 28 and plan.records == 55
    found = []
    for split in plan.splits:
        data = splits.read_bytes(split, lambda p: open(p, "rb"))
        found += list(sources.records(data, fmt, split.header, split.first_line, split.dialect))
    assert [fields["review"] for _, _, fields in found] == TEXTS * 5
    assert [line for line, _, _ in found][:5] == [2, 3, 4, 6, 8]  # each record's first line


def test_augment_reads_pandas_files_end_to_end(tmp_path):
    """Through `kdaug augment`, a chunk and a split per two rows: the originals are pandas' texts; a bad
    record spanning lines is one dead letter at its first line, and the counts add up."""
    path = pandas_file(tmp_path, "csv", ";")
    path.write_bytes(path.read_bytes() + b'"an unknown\nlabel";awful\n')
    flags = ["--text-field", "review", "--label-field", "stars", "--label-values", "bad,ok,good"]
    out = tmp_path / "out"
    summary = invoke(
        "augment", "--input", path, *flags, "--delimiter", ";", "--methods", "random", "--degrees", "0.1",
        "--copies", "1", "--chunk-size", "2", "--output", out,
    )  # fmt: skip
    assert "originals" in summary
    originals = sorted((r for r in rows(out) if r["method"] == "original"), key=lambda r: r["source_id"])
    assert [r["text_a"] for r in originals] == TEXTS
    assert [r["source_id"] for r in originals][2:4] == ["reviews-0000004", "reviews-0000006"]
    dead = pq.read_table(out / schema.DEAD_LETTER_DIR).to_pylist()
    assert [(d["file"], d["line"], d["reason"]) for d in dead] == [
        (str(path), 15, "unknown label 'awful' (expected one of bad, ok, good)")
    ]
    counts = json.loads((out / schema.MANIFEST_FILE).read_text())["counts"]
    assert counts["rows_read"] == len(TEXTS) + 1 == counts["originals"] + counts["dead_letters"]


GLUE_MRPC = (
    b"Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    # a quote that opens a text and one that ends the other: read as one quoted field, the row would
    # have 4 fields, so it is its line
    b'1\t497592\t497567\t" Writing safe programs is adequate .\tWriting safe programs is adequate . "\n'
    # a text that opens a quote closed at the end of a later line's field: a record that spanned
    # them would have 6 fields
    b'1\t763729\t763570\t" Of course I want to win . "\t" Of course , I want to win .\n'
    b"1\t1708063\t1708041\tRevenues were $ 1.45 billion .\tRevenues rose to $ 1.45 billion .\n"
    b'1\t2455942\t2455978\tMy decision is not based on any event . "\tHe said it was " not based on any event . "\n'
    # a text quoted as a whole, but with nothing a writer quotes: its quotes are text
    b'0\t1014977\t1014962\t" The result is a package . "\tThe result is a package .\n'
)


def test_glue_files_read_as_they_are_written():
    default = list(sources.read_examples("mrpc.tsv", GLUE_MRPC, sources.make_task("mrpc")))
    unquoted = list(sources.read_examples("mrpc.tsv", GLUE_MRPC, sources.make_task("mrpc", quoting="none")))
    assert default == unquoted
    lines = GLUE_MRPC.decode().splitlines()[1:]
    assert [(e["text_a"], e["text_b"]) for _, e in default] == [tuple(line.split("\t")[3:]) for line in lines]


@pytest.mark.slow
def test_the_shared_glue_files_read_as_they_are_written():
    for task, split in (("sst2", "train"), ("sst2", "dev"), ("mrpc", "train"), ("mrpc", "dev")):
        path = sources.glue_file(task, split)
        data = Path(path).read_bytes()
        default = list(sources.read_examples(path, data, sources.make_task(task)))
        assert default == list(sources.read_examples(path, data, sources.make_task(task, quoting="none")))
        assert all(kind == "example" for kind, _ in default) and len(default) == data.count(b"\n") - 1


def test_quoting_all_reads_files_that_quote_every_field(tmp_path):
    path = pandas_file(tmp_path, "tsv", "\t", quoting=csv.QUOTE_ALL)
    assert (
        read_texts(path, sources.make_task(None, "review", None, "stars", ("bad", "ok", "good"), quoting="all"))
        == TEXTS
    )
    header = path.read_bytes().split(b"\n")[0]
    assert sources.header_columns(header, sources.DIALECTS["tsv"]) == ['"review"', '"stars"']  # nothing to quote


def test_delimiter_flags_are_checked():
    assert sources.make_task(None, "t", None, "y", ("a",), delimiter="\\t").delimiter == "\t"
    assert sources.make_task(None, "t", None, "y", ("a",), delimiter="tab").delimiter == "\t"
    for bad in (";;", '"', "\n", "§"):
        with pytest.raises(ValueError, match="the delimiter must be one ASCII character"):
            sources.make_task(None, "t", None, "y", ("a",), delimiter=bad)
    with pytest.raises(ValueError, match="unknown quoting 'some'"):
        sources.make_task(None, "t", None, "y", ("a",), quoting="some")
    assert sources.dialect_of("x.csv", sources.make_task(None, "t", None, "y", ("a",), quoting="minimal")) == (
        sources.Dialect(",", "minimal")
    )
    assert sources.dialect_of("x.jsonl", sources.make_task(None, "t", None, "y", ("a",), delimiter=";")) is None
