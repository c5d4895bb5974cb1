"""Source readers: presets, formats, stable ids and dead letters with file, line and reason."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdaug.inputs import sources


def read(path, data, task, max_rows=None):
    out = list(sources.read_examples(path, data, task, max_rows))
    return [x for k, x in out if k == "example"], [x for k, x in out if k == "dead_letter"]


def test_glue_single_sentence_and_ids():
    data = b'sentence\tlabel\nit \'s a charming journey . \t1\na dull , "quoted" mess \t0\n'
    examples, dead = read("dir/train.tsv", data, sources.make_task("sst2"))
    assert dead == []
    assert examples == [
        {"source_id": "train-0000002", "text_a": "it 's a charming journey . ", "text_b": None, "label": 1},
        {"source_id": "train-0000003", "text_a": 'a dull , "quoted" mess ', "text_b": None, "label": 0},
    ]


def test_glue_pairs_keep_quotes():
    data = b'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said "yes" today.\tToday he said "yes".\n'
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
    assert dead[0]["line"] == 2 and dead[0]["reason"] == "missing text in field 'review' (null)"
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
    with pytest.raises(ValueError, match="--label-values"):
        sources.make_task(None, text_a="t", label_field="y")
    with pytest.raises(ValueError, match="extension"):
        sources.file_format("data.txt", sources.Task("custom"))


SST2 = sources.make_task("sst2")


def write(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_file(path, task):
    with open(path, "rb") as f:
        return read(path, f.read(), task)


def test_csv_quoted_line_breaks_stay_in_the_field_and_lines_count_on(tmp_path):
    path = write(
        tmp_path,
        "q.csv",
        (
            b"sentence,label\n"
            b'"two\nlines",1\n'  # lines 2-3
            b"plain,0\n"  # line 4
            b'"three\r\n""quoted""\r\nlines",0\r\n'  # lines 5-7, CRLF kept inside the field
            b'"",1\n'  # line 8
            b"last,1"  # line 9, no final line break
        ),
    )
    examples, dead = read_file(path, SST2)
    assert [(e["source_id"], e["text_a"], e["label"]) for e in examples] == [
        ("q-0000002", "two\nlines", 1),
        ("q-0000004", "plain", 0),
        ("q-0000005", 'three\r\n"quoted"\r\nlines', 0),
        ("q-0000009", "last", 1),
    ]
    assert [(d["line"], d["reason"], d["raw"]) for d in dead] == [(8, "empty text in field 'sentence'", '"",1')]

    good = write(tmp_path, "good.csv", b'sentence,label\n"a\nb",1\nc,0\n')
    assert sources.load_labelled(good, SST2) == [("a\nb", None, 1), ("c", None, 0)]


def test_csv_bad_records_are_dead_letters_at_their_first_line(tmp_path):
    path = write(
        tmp_path,
        "bad.csv",
        (
            b"sentence,label\n"
            b"ok,1\n"  # 2
            b"bad \xff bytes,0\n"  # 3
            b'"spans \xfe an\n'  # 4-5: the quoted field holds an undecodable line
            b'undecodable line",1\n'
            b"\n"  # 6
            b"one,two,three\n"  # 7
            b'"ok ""again""",0\n'  # 8
            b'"never closed,1\n'  # 9-10: the quote runs to the end of the file
            b"still inside,0\n"
        ),
    )
    examples, dead = read_file(path, SST2)
    assert [(e["source_id"], e["text_a"]) for e in examples] == [("bad-0000002", "ok"), ("bad-0000008", 'ok "again"')]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (3, "undecodable bytes (not UTF-8)"),
        (4, "undecodable bytes (not UTF-8)"),
        (6, "empty line"),
        (7, "wrong column count: 3 (header has 2)"),
        (9, "unterminated quoted field"),
    ]
    assert dead[0]["raw"] == "bad \\xff bytes,0"
    assert dead[1]["raw"] == '"spans \\xfe an\nundecodable line",1'
    assert dead[4]["raw"] == '"never closed,1\nstill inside,0'
    with pytest.raises(ValueError, match=r"bad\.csv: 5 unreadable rows \(line 3: undecodable bytes .*; line 4: "):
        sources.load_labelled(path, SST2)


def test_csv_header_problems_refuse_the_file(tmp_path):
    cases = {
        b'"sentence,label\nx,1\n': "unreadable header: unterminated quoted field",
        b"sent\xffence,label\nx,1\n": "unreadable header: undecodable bytes",
        b"": "the file is empty",
    }
    for data, message in cases.items():
        with pytest.raises(ValueError, match=f"h.csv: {message}"):
            read("h.csv", data, SST2)
    # a byte-order mark before a quoted header cell is not part of the name
    examples, _ = read("h.csv", b'\xef\xbb\xbf"sentence",label\nx,1\n', SST2)
    assert examples[0]["text_a"] == "x"


def test_tsv_stays_one_record_per_line():
    examples, dead = read("t.tsv", b'sentence\tlabel\n"open quote\t1\nnext\t0\n', SST2)
    assert [(e["source_id"], e["text_a"]) for e in examples] == [("t-0000002", '"open quote'), ("t-0000003", "next")]
    assert dead == []


def test_the_extension_decides_the_format_before_the_preset(tmp_path):
    path = write(tmp_path, "sst.jsonl", b'{"sentence": "fine", "label": 1}\n{"sentence": "dull", "label": "0"}\n')
    examples, dead = read_file(path, SST2)  # sst2's own files are TSV; this one says JSONL
    assert dead == []
    assert [(e["source_id"], e["text_a"], e["label"]) for e in examples] == [
        ("sst-0000001", "fine", 1),
        ("sst-0000002", "dull", 0),
    ]
    assert sources.load_labelled(path, SST2) == [("fine", None, 1), ("dull", None, 0)]

    assert sources.file_format("x.JSON", SST2) == "jsonl"
    assert sources.file_format("questions.txt", sources.TASKS["trec"]) == "trec"  # no known extension: the preset's
    assert sources.file_format("snippets.txt", sources.TASKS["rt-snippets"]) == "tsv"


def test_an_explicit_format_beats_the_extension(tmp_path):
    path = write(tmp_path, "mislabelled.csv", b"sentence\tlabel\na, b\t1\n")
    task = sources.make_task("sst2", fmt="tsv")
    assert sources.file_format(path, task) == "tsv"
    assert sources.load_labelled(path, task) == [("a, b", None, 1)]
    examples, dead = read_file(path, SST2)  # read as the CSV its name claims, the comma splits the text
    assert examples == [] and dead[0]["reason"] == "wrong column count: 2 (header has 1)"
    assert sources.file_format("data.txt", sources.Task("custom", format="jsonl")) == "jsonl"


def test_an_unknown_extension_without_a_preset_format_is_refused(tmp_path):
    path = write(tmp_path, "data.txt", b'{"t": "x"}\n')
    task = sources.make_task(None, text_a="t", label_field="y", labels=("a", "b"))
    with pytest.raises(ValueError, match=f"{path}: cannot tell the format from the extension; pass --format"):
        read_file(path, task)


def test_texts_without_printable_characters_are_dead_letters(tmp_path):
    path = write(
        tmp_path,
        "ctl.tsv",
        (
            b"sentence\tlabel\n"
            b"\x00\x00\t1\n"
            b"\x01 \x02\t0\n"
            b"\x1b\xe2\x80\x8b\x7f\t1\n"  # ESC, zero-width space, DEL
            b"a \x00 b\x07\t0\n"  # control characters among words stay
        ),
    )
    examples, dead = read_file(path, SST2)
    assert [(e["source_id"], e["text_a"]) for e in examples] == [("ctl-0000005", "a \x00 b\x07")]
    assert [(d["line"], d["reason"]) for d in dead] == [(n, "no printable text in field 'sentence'") for n in (2, 3, 4)]
    with pytest.raises(ValueError, match="3 unreadable rows \\(line 2: no printable text in field 'sentence'"):
        sources.load_labelled(path, SST2)

    pair = sources.make_task("mrpc")
    row = {"Quality": "1", "#1 String": "fine", "#2 String": "\u0000"}
    with pytest.raises(ValueError, match="no printable text in field '#2 String'"):
        sources.to_example(row, pair, "x-1")


def test_json_texts_that_are_not_strings_say_what_they_are(tmp_path):
    lines = [
        {"sentence": 5, "label": 1},
        {"sentence": 2.5, "label": 1},
        {"sentence": {"text": "hi"}, "label": 1},
        {"sentence": ["hi"], "label": 1},
        {"sentence": True, "label": 1},
        {"sentence": None, "label": 1},
        {"label": 1},
        {"sentence": "", "label": 1},
        {"sentence": "fine", "label": 1},
    ]
    path = write(tmp_path, "types.jsonl", "\n".join(map(json.dumps, lines)).encode())
    examples, dead = read_file(path, SST2)
    assert [e["source_id"] for e in examples] == ["types-0000009"]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (1, "field 'sentence' is a number, not a string"),
        (2, "field 'sentence' is a number, not a string"),
        (3, "field 'sentence' is an object, not a string"),
        (4, "field 'sentence' is a list, not a string"),
        (5, "field 'sentence' is a boolean, not a string"),
        (6, "missing text in field 'sentence' (null)"),
        (7, "missing field 'sentence'"),
        (8, "empty text in field 'sentence'"),
    ]
    with pytest.raises(ValueError, match="8 unreadable rows \\(line 1: field 'sentence' is a number, not a string;"):
        sources.load_labelled(path, SST2)


def test_guess_task_still_finds_the_glue_preset(tmp_path):
    path = write(tmp_path, "dev.tsv", b"\xef\xbb\xbfsentence\tlabel\nfine\t1\n")
    assert sources.load_labelled(path) == [("fine", None, 1)]
