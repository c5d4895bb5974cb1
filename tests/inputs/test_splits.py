"""Input splits (`pipeline.splits`): reading a file split by split gives exactly the records of
reading it whole, in order, with the same line numbers, whatever the block size of the planner, the
chunk size, --max-rows and the TSV/CSV dialect (a quoted line break never cuts a split); chunks are
numbered by records alone (never by how splits group them)."""

from __future__ import annotations

import io
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdaug.inputs import sources, splits

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
PIECES = st.sampled_from(
    ["a", "b c", "\t", ",", ";", '"', '""', "\r", "\n", "\r\n", "\ufeff", "é", "x:y z", "{}", '{"s": "t"}']
)
BAD = st.sampled_from([b"\xff", b"\xfe\xff", b"\n", b'"', b"\r\n"])
CONTENT = st.lists(st.one_of(PIECES.map(str.encode), BAD), max_size=40).map(b"".join)


def opener(data: bytes):
    return lambda path: io.BytesIO(data)


def whole(data: bytes, fmt: str, max_rows, dialect=None) -> list:
    out = list(sources.records(data, fmt, dialect=dialect))
    return out[:max_rows] if max_rows is not None else out


def split_by_split(plan: splits.FilePlan, data: bytes) -> list[tuple[int, list]]:
    """(chunk index, record) of every record, read split by split."""
    found = []
    for split in plan.splits:
        part = splits.read_bytes(split, opener(data))
        records = list(sources.records(part, split.fmt, split.header, split.first_line, split.dialect))
        assert len(records) <= split.chunks * CHUNK[0] and len(records) > (split.chunks - 1) * CHUNK[0]
        assert len(records) == split.rows  # the job's reader checks this (an input changed while it ran)
        found += [(split.first_chunk + i // CHUNK[0], r) for i, r in enumerate(records)]
    return found


CHUNK = [1]


DIALECTS = {  # the formats' own dialects, and others by flags
    "tsv": None,
    "csv": None,
    "tsv-none": sources.Dialect("\t", "none"),
    "csv-minimal": sources.Dialect(",", "minimal"),
    "semicolon": sources.Dialect(";", "all"),
    "jsonl": None,
    "trec": None,
}


@pytest.mark.parametrize("name", sorted(DIALECTS))
@SETTINGS
@given(
    data=CONTENT,
    chunk=st.integers(1, 4),
    block=st.integers(1, 9),
    max_splits=st.integers(1, 4),
    max_rows=st.one_of(st.none(), st.integers(1, 6)),
    limit=st.integers(1, 12),
)
def test_splits_read_the_records_of_the_whole_file(monkeypatch, name, data, chunk, block, max_splits, max_rows, limit):
    monkeypatch.setattr(splits, "BLOCK_BYTES", block)
    monkeypatch.setattr(splits, "MAX_SPLITS", max_splits)
    monkeypatch.setattr(sources, "QUOTED_RECORD_LIMIT", limit)  # "minimal": records longer than that are lines
    CHUNK[0] = chunk
    fmt, dialect = name.split("-")[0].replace("semicolon", "csv"), DIALECTS[name]
    try:
        expected = whole(data, fmt, max_rows, dialect)
    except ValueError:  # a TSV/CSV file without a readable header: no split may read around that
        expected = None
    try:
        plan = splits.plan_file("in." + fmt, fmt, chunk, max_rows, opener(data), dialect=dialect)
    except ValueError as err:
        assert expected is None and str(err).startswith("in.")
        return
    assert len(plan.splits) <= max_splits and expected is not None  # a bad header is refused when planning
    found = split_by_split(plan, data)
    assert [r for _, r in found] == expected
    assert [c for c, _ in found] == [i // chunk for i in range(len(expected))]
    assert plan.records == len(expected)


def test_chunk_keys_do_not_depend_on_how_splits_group_them(monkeypatch):
    data = b"sentence\tlabel\n" + b"".join(b"row %d\t1\n" % i for i in range(1000))
    plans = []
    for max_splits in (1, 7, 1024):
        monkeypatch.setattr(splits, "MAX_SPLITS", max_splits)
        plan = splits.plan_file("in.tsv", "tsv", 64, None, opener(data))
        assert len(plan.splits) == math.ceil(16 / math.ceil(16 / max_splits))  # 16 chunks, equal groups
        plans.append(sorted((s.first_chunk + i, s.first_line) for s in plan.splits for i in range(s.chunks)))
    assert {tuple(c for c, _ in p) for p in plans} == {tuple(range(16))}
    assert plans[2][:3] == [(0, 2), (1, 66), (2, 130)]  # first lines: the header is line 1


def test_planning_hashes_the_whole_file_and_stops_counting_at_max_rows():
    data = b"sentence\tlabel\n" + b"".join(b"row %d\t1\n" % i for i in range(100))
    plan = splits.plan_file("in.tsv", "tsv", 8, 10, opener(data))
    import hashlib

    assert plan.sha256 == hashlib.sha256(data).hexdigest() and plan.records == 10
    assert plan.splits[-1].end == data.index(b"row 10\t")


def test_parquet_splits_are_row_ranges_across_row_groups(tmp_path):
    table = pa.table({"sentence": [f"row {i}" for i in range(23)], "label": ["1"] * 23})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=5)
    open_fn = lambda p: open(p, "rb")  # noqa: E731
    plan = splits.plan_file(str(path), "parquet", 4, 21, open_fn)
    rows = [(s.first_chunk, row["sentence"]) for s in plan.splits for row in splits.parquet_rows(s, open_fn)]
    assert [r for _, r in rows] == [f"row {i}" for i in range(21)] and plan.records == 21
    assert [s.first_line for s in plan.splits] == list(range(1, 22, 4))
    assert [s.rows for s in plan.splits] == [4, 4, 4, 4, 4, 1]
