"""Dirty data, property-based (hypothesis, bounded examples): random bytes, huge lines, empty fields,
wrong column counts and unknown labels at the sources; odd texts at the augmenters and the teacher;
NaN/inf logits at the distill reader; missing files and mismatched teachers at the command line.

The contract: every data record (a line, ended by a line feed; a TSV/CSV record whose quoted field
holds line breaks spans several) ends up exactly once, as an example or as a dead letter naming its
file and first line; only a whole-file problem raises, as a ValueError naming the file.
"""

import csv
import io
import json
import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdaug import schema
from kdaug.augmenters import AugmentOptions, create
from kdaug.beam.augment_job import AugmentConfig
from kdaug.inputs import sources
from kdaug.inputs.sources import BOM
from tests.conftest import make_tiny_teacher, publish_by_hand, write_augment
from tests.helpers import run_cli

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TASK = sources.make_task("sst2")  # text in `sentence`, labels "0", "1"
LABELS = st.sampled_from(["0", "1", "1", "2", "-1", "pos", "", " 1 ", "1.0", "NaN", "1e400"])
TEXTS = st.one_of(st.text(max_size=40), st.sampled_from(["a fine film", "", "   ", "\t", '"', "a,b", "\ufeffbom"]))
HUGE = st.integers(132_000, 140_000).map(lambda n: "word " * (n // 5))  # beyond csv.field_size_limit()


def text_line(fmt: str):
    """One physical line (or several, when a drawn text holds line breaks) of `fmt`, as bytes."""
    row = st.tuples(st.one_of(TEXTS, HUGE), LABELS)
    shaped = {
        "tsv": row.map(lambda r: f"{r[0]}\t{r[1]}"),
        "csv": st.one_of(row.map(lambda r: f"{r[0]},{r[1]}"), row.map(quoted_csv)),
        "jsonl": st.one_of(
            row.map(lambda r: json.dumps({"sentence": r[0], "label": r[1]})),
            st.sampled_from(["{", "[1]", "null", '{"sentence": 5}', "1" * 5000, "[" * 3000]),
        ),
        "trec": row.map(lambda r: f"{r[1]}:fine {r[0]}"),
    }[fmt]
    wrong_columns = st.lists(TEXTS, max_size=4).map(("\t" if fmt == "tsv" else ",").join)
    return st.one_of(shaped.map(str.encode), wrong_columns.map(str.encode), st.binary(max_size=30), st.just(b""))


def quoted_csv(row) -> str:
    """A record as csv.writer writes it: quoted where a field holds a comma, quote or line break."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def text_file(fmt: str):
    header = {"tsv": b"sentence\tlabel", "csv": b"sentence,label"}.get(fmt)
    lines = st.lists(text_line(fmt), max_size=12).map(lambda ls: b"\n".join(([header] if header else []) + ls))
    return st.one_of(lines, st.binary(max_size=200))


def line_of(kind: str, item: dict) -> int:
    return item["line"] if kind == "dead_letter" else int(item["source_id"].rsplit("-", 1)[1])


def check_every_row_once(path: str, data: bytes, fmt: str, max_rows, lines: list[int]):
    """read_examples gives the rows starting on `lines` exactly once, in order, up to max_rows."""
    try:
        out = list(sources.read_examples(path, data, replace(TASK, format=fmt), max_rows))
    except ValueError as err:
        assert str(err).startswith(f"{path}: ")
        return err
    assert [line_of(kind, item) for kind, item in out] == lines[:max_rows]
    for kind, item in out:
        if kind == "dead_letter":
            assert item["file"] == path and item["reason"] and isinstance(item["raw"], str)
        else:
            assert item["text_a"].strip() and item["label"] in (0, 1)
    return None


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "trec"])
@SETTINGS
@given(data=st.data())
def test_text_formats_give_every_line_once(fmt, data):
    content = data.draw(text_file(fmt))
    max_rows = data.draw(st.one_of(st.none(), st.integers(0, 8)))
    lines = content.split(b"\n")[:-1] if content.endswith(b"\n") else content.split(b"\n") if content else []
    starts = {"csv": record_starts, "tsv": minimal_record_starts}.get(fmt, lambda _: list(range(1, len(lines) + 1)))(
        content
    )
    delimited = fmt in ("tsv", "csv")
    err = check_every_row_once(f"dir/in.{fmt}", content, fmt, max_rows, starts[1:] if delimited else starts)
    if err is not None:  # only a file without a readable header is refused
        assert delimited
        header_lines = lines[: starts[1] - 1] if len(starts) > 1 else lines  # a header running to the end
        header_ok = bool(lines) and all(map(_utf8, header_lines)) and len(starts) > 1  # may be an open quote
        assert not header_ok, err


def record_starts(content: bytes) -> list[int]:
    """First line of each CSV record, header included, by the documented rule, written plainly: a line
    feed ends a record when the record so far holds an even number of quotes."""
    starts, quotes, line, begun = [], 0, 1, False
    for byte in content:
        if not begun:
            starts.append(line)
            begun = True
        quotes += byte == ord('"')
        if byte == ord("\n"):
            line += 1
            if quotes % 2 == 0:
                begun, quotes = False, 0
    return starts


def minimal_record_starts(content: bytes, delimiter: bytes = b"\t") -> list[int]:
    """First line of each TSV record, header included, by the documented "minimal" rule, written
    plainly: from a record's start, read it with its quotes (`quoted_record`); it spans lines only
    when that reading holds and gives the header's field count, else it is its line. (Records here
    are far shorter than QUOTED_RECORD_LIMIT.)"""
    starts, pos, line, columns = [], 0, 1, None
    while pos < len(content):
        starts.append(line)
        header = columns is None
        bom = len(BOM) if header and content.startswith(BOM) else 0
        read = quoted_record(content, pos + bom, delimiter)
        line_end = content.find(b"\n", pos) + 1 or len(content)
        end = read[0] if read and (header or read[0] <= line_end or read[1] == columns) else line_end
        if header:
            text = content[pos + bom : end].removesuffix(b"\n").removesuffix(b"\r")
            columns = read[1] if read and b'"' in text else plain_count(text, delimiter)
        line += content[pos:end].count(b"\n")
        pos = end
    return starts


def plain_count(line: bytes, delimiter: bytes) -> int:
    """The fields of a header line read without quoting, as csv.reader counts them (-1: it cannot, and
    the file is refused)."""
    try:
        text = line.decode().lstrip("\ufeff")
        return len(next(csv.reader([text], delimiter=delimiter.decode(), quoting=csv.QUOTE_NONE), []))
    except (UnicodeDecodeError, csv.Error):
        return -1


def quoted_record(content: bytes, pos: int, delimiter: bytes) -> tuple[int, int] | None:
    """(end, field count) of the record at `pos` read as csv.writer writes records (QUOTE_MINIMAL),
    byte by byte; None when a field that starts with a quote is no quoted field it writes."""
    fields = 0
    while True:
        fields += 1
        if content[pos : pos + 1] == b'"':
            close = pos + 1
            while content[close : close + 2] == b'""' or content[close : close + 1] not in (b'"', b""):
                close += 2 if content[close : close + 2] == b'""' else 1
            inside = content[pos + 1 : close]
            after = content[close + 1 : close + 3]
            after = after[1:] if after in (b"\r", b"\r\n") else after[:1]
            if close == len(content) or after not in (b"", delimiter, b"\n"):
                return None  # never closed, or text after the closing quote
            if inside and not any(c in inside for c in (b'"', delimiter, b"\n", b"\r")):
                return None  # csv.writer does not quote such a field
            pos = close + 1 + (content[close + 1 : close + 2] == b"\r")
        else:
            while pos < len(content) and content[pos : pos + 1] not in (delimiter, b"\n"):
                pos += 1
        if pos == len(content):
            return pos, fields
        if content[pos : pos + 1] == b"\n":
            return pos + 1, fields
        pos += 1


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


PARQUET_LABELS = {
    "string": (pa.string(), LABELS),
    "int": (pa.int64(), st.integers(-3, 3)),
    "float": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
}


@SETTINGS
@given(data=st.data())
def test_parquet_gives_every_row_once(data):
    label_type, labels = PARQUET_LABELS[data.draw(st.sampled_from(sorted(PARQUET_LABELS)))]
    rows = data.draw(st.lists(st.tuples(st.one_of(st.none(), TEXTS), st.one_of(st.none(), labels)), max_size=10))
    table = pa.table(
        {"sentence": pa.array([r[0] for r in rows], pa.string()), "label": pa.array([r[1] for r in rows], label_type)}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    assert check_every_row_once("in.parquet", sink.getvalue(), "parquet", None, list(range(1, len(rows) + 1))) is None

    garbage = data.draw(st.binary(max_size=100))
    err = check_every_row_once("in.parquet", garbage, "parquet", None, [])
    assert err is not None and "not a readable Parquet file" in str(err)


def test_dirty_file_through_the_job_counts_add_up(tmp_path):
    path = tmp_path / "dirty.tsv"
    path.write_bytes(
        b"\n".join(
            [
                b"sentence\tlabel",
                b"a fine film\t1",
                b"\xff\xfe bad bytes\t0",
                b"word " * 30_000 + b"\t1",
                b"\t1",
                b"too\tmany\tcolumns",
                b"unknown label\t7",
                b"",
                b"another fine film\t0",
                b"\x00\t1",
            ]
        )
        + b"\n"
    )
    config = AugmentConfig([str(path)], str(tmp_path / "out"), TASK, ["random"], [0.5], copies=1)
    manifest = write_augment(config, [])
    counts = manifest["counts"]
    assert counts["rows_read"] == 9 == counts["originals"] + counts["dead_letters"] and counts["originals"] == 2
    assert manifest["metrics"]["kdaug/dead_letters"] == counts["dead_letters"]
    dead = pq.read_table(tmp_path / "out" / schema.DEAD_LETTER_DIR).to_pylist()
    assert [(d["file"], d["line"]) for d in dead] == [(str(path), n) for n in (3, 4, 5, 6, 7, 8, 10)]
    assert dead[1]["reason"].startswith("unreadable line: field larger than field limit")
    assert dead[6]["reason"] == "no printable text in field 'sentence'"


def test_unreadable_file_fails_the_job_naming_it(tmp_path):
    headless = tmp_path / "headless.tsv"
    headless.write_bytes(b"\xff\xfe\tlabel\n")
    with pytest.raises(Exception, match=f"{headless}: unreadable header"):
        write_augment(AugmentConfig([str(headless)], str(tmp_path / "out"), TASK, ["random"], [0.5]), [])
    assert not (tmp_path / "out" / schema.SUCCESS_FILE).exists()


@pytest.fixture(scope="module")
def augmenters():
    augmenters = [create(name, AugmentOptions(seed=1)) for name in ("random", "eda", "synonym")]
    for augmenter in augmenters:
        augmenter.setup()
    return augmenters


@settings(SETTINGS, max_examples=40)
@given(
    text_a=st.one_of(st.text(min_size=1), st.just("a long text with many words . " * 50)).filter(str.strip),
    text_b=st.one_of(st.none(), st.text(min_size=1).filter(str.strip)),
    degree=st.sampled_from([0.1, 0.5, 1.0]),
)
def test_augmenters_take_any_text(augmenters, text_a, text_b, degree):
    """Texts stay below ~400 words: `words.changed_words` is quadratic in the text length (one
    4,000-word row takes 8 s with synonym and 34 s with eda), which bounds what one test may draw."""
    example = {"source_id": "f-0000002", "text_a": text_a, "text_b": text_b, "label": 1}
    for augmenter in augmenters:
        [row] = augmenter.augment_chunk([example], degree, copy=0)
        assert isinstance(row["text_a"], str) and (row["text_b"] is None) == (text_b is None)
        assert 0.0 <= row["changed_frac"] <= 1.0
        assert augmenter.augment_chunk([example], degree, copy=0) == [row]  # deterministic


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    from kdaug.teacher.model import Teacher

    return Teacher.load(tiny_teacher_dir, max_tokens=256)


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.one_of(st.text(max_size=50), st.just("word " * 2000), st.just("")), min_size=1, max_size=6))
def test_teacher_labels_any_text(teacher, texts):
    logits = teacher.logits(texts)
    assert logits.shape == (len(texts), 2) and np.isfinite(logits).all()


def write_shards(root: Path, logits: list[list[float]]) -> Path:
    """A one-shard kdaug output whose rows carry `logits`."""
    partition = schema.partition_dir(schema.ORIGINAL, 0.0)
    part = root / partition / schema.shard_file_name(0, 1)
    part.parent.mkdir(parents=True)
    rows = [
        {
            "id": f"{i:05d}",
            "source_id": f"s-{i}",
            "text_a": "x",
            "text_b": None,
            "label": 0,
            "copy": 0,
            "changed_frac": 0.0,
            "partner_id": None,
            "mix_lambda": None,
            "teacher_logits": lg,
            **schema.partition_values(partition),
        }
        for i, lg in enumerate(logits)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.SHARD_FILE_SCHEMA), part)
    teacher = {"dir": "t", "fingerprint": "0" * 32}
    publish_by_hand(root, {"schema_version": schema.SCHEMA_VERSION, "teacher": teacher})
    return part


@SETTINGS
@given(logits=st.lists(st.lists(st.floats(width=32), min_size=2, max_size=2), min_size=1, max_size=20))
def test_distill_reader_refuses_non_finite_logits(logits):
    from kdaug.distillation.shards import ShardReader

    with tempfile.TemporaryDirectory() as tmp:
        part = write_shards(Path(tmp), logits)
        bad = [i for i, lg in enumerate(logits) if not all(map(math.isfinite, lg))]
        reader = ShardReader(tmp, buffer_rows=4, read_rows=3)
        if bad:
            with pytest.raises(ValueError, match=rf"{part}, row {bad[0]}: teacher_logits .* not finite"):
                list(reader.batches(2))
        else:
            assert sum(len(b["text_a"]) for b in reader.batches(2)) == len(logits)


def test_missing_input_file_is_a_clear_usage_error(tmp_path):
    missing = tmp_path / "nope.tsv"
    result = run_cli(
        "augment", "--task", "sst2", "--input", missing, "--output", tmp_path / "out", "--methods", "random"
    )
    assert result.exit_code == 2 and f"input file not found: {missing}" in result.output
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def finished_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    (root / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\t0\n")
    result = run_cli(
        "augment",
        "--task",
        "sst2",
        "--input",
        root / "train.tsv",
        "--output",
        root / "out",
        "--methods",
        "random",
        "--degrees",
        "0.5",
        "--copies",
        "1",
    )
    assert result.exit_code == 0, result.output
    return root / "out"


def broken_teacher(tmp_path, tiny_teacher_dir, how: str) -> Path:
    path = tmp_path / how
    if how == "three-classes":
        return make_tiny_teacher(path, num_labels=3)
    shutil.copytree(tiny_teacher_dir, path)
    if how == "no-config":
        (path / "config.json").unlink()
    elif how == "no-weights":
        (path / "model.safetensors").unlink()
    elif how == "no-vocab":
        for name in ("vocab.txt", "tokenizer.json"):
            (path / name).unlink()
    elif how == "small-embeddings":  # weights of a model with a smaller vocabulary than the tokenizer's
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))
    return path


@pytest.mark.parametrize(
    "how, message",
    [
        ("no-config", "no config.json"),
        ("no-weights", "no model weights"),
        ("no-vocab", "the tokenizer has 5 tokens but the model's embedding table 30522: the vocabulary is missing"),
        (
            "small-embeddings",
            "the tokenizer has 30522 tokens but the model's embedding table 1000: the vocabulary is missing or belongs",
        ),
        ("three-classes", "the model has 3 classes but the data 2 (0, 1)"),
    ],
)
def test_mismatched_teacher_is_refused_before_the_job(finished_output, tmp_path, tiny_teacher_dir, how, message):
    teacher = broken_teacher(tmp_path, tiny_teacher_dir, how)
    result = run_cli("label", "--input", finished_output, "--output", tmp_path / "lab", "--teacher", teacher)
    assert result.exit_code == 2 and f"teacher {teacher}: {message}" in result.output
    assert not (tmp_path / "lab").exists()
