"""The Beam augment job end to end on the DirectRunner: layout, schema, counts, dead letters,
atomic re-runs and determinism across worker counts (tests/beam/test_readers.py: the readers of the shards)."""

import json

import pyarrow.parquet as pq
import pytest

from kdaug import schema
from kdaug.augmenters import REGISTRY, AugmentOptions
from kdaug.beam.augment_job import AugmentConfig
from kdaug.inputs import sources
from tests.conftest import write_augment
from tests.helpers import rows

SENTENCES = [
    "it 's a charming and often affecting journey .",
    "the movie is a dull , lifeless mess that never finds its footing",
    "a gorgeous , witty , seductive film",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music and cinematography are all excellent",
    "this is a film well worth seeing , talking and singing heads and all",
    "an ugly , pointless , stupid movie",
    "the story is bad , but the performances are strong",
]


@pytest.fixture
def sst2_file(tmp_path):
    lines = ["sentence\tlabel"] + [f"{s}\t{i % 2}" for i, s in enumerate(SENTENCES * 3)]
    lines += ["bad\tline\twith three columns", "\t1", "unknown label\t5"]
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def config(inputs, output, methods=("random",), degrees=(0.1, 0.5), **kw):
    kw.setdefault("options", AugmentOptions(seed=7))
    return AugmentConfig(
        list(inputs), str(output), sources.make_task("sst2"), list(methods), list(degrees), copies=2, chunk_size=5, **kw
    )


def test_layout_schema_counts_and_dead_letters(sst2_file, tmp_path):
    out = tmp_path / "out"
    manifest = write_augment(config([sst2_file], out), [])

    assert (out / schema.SUCCESS_FILE).exists()
    assert not (out / "_kdaug").exists()  # no staging area, claim or journal left
    assert sorted(manifest["partitions"]) == [
        "_dead_letter",
        "original/0.00",
        "random/0.10",
        "random/0.50",
    ]
    for part in out.glob("[!_]*/*/*.parquet"):
        assert pq.read_schema(part).remove_metadata() == schema.SHARD_FILE_SCHEMA
        assert part.name.endswith("-of-00005.parquet")  # a file per chunk: 24 originals in chunks of 5
        method, degree = part.parent.relative_to(out).parts  # every file's columns say what its path says
        values = pq.read_table(part, columns=["method", "degree"]).to_pylist()
        assert {(r["method"], r["degree"]) for r in values} == {(method, float(degree))}
    files = sorted((out / "original" / "0.00").iterdir())
    lines = [sorted(int(r["source_id"].rsplit("-", 1)[1]) for r in pq.read_table(f).to_pylist()) for f in files]
    assert lines == [list(range(2 + 5 * i, min(26, 7 + 5 * i))) for i in range(5)]  # file i: chunk i (lines 2-25)

    counts = manifest["counts"]
    assert counts == {
        "rows_read": 27,
        "originals": 24,
        "dead_letters": 3,
        "failed_inference": 0,
        "per_file": [{"file": sst2_file, "rows_read": 27, "dead_letters": 3}],
    }
    assert manifest["partitions"]["random/0.50"]["rows"] == 24 * 2
    assert json.loads((out / schema.MANIFEST_FILE).read_text())["partitions"] == manifest["partitions"]

    dead = pq.read_table(out / "_dead_letter").to_pylist()
    assert [(d["line"], d["reason"]) for d in dead] == [
        (26, "wrong column count: 3 (header has 2)"),
        (27, "empty text in field 'sentence'"),
        (28, "unknown label '5' (expected one of 0, 1)"),
    ]

    data = rows(out)
    originals = {r["source_id"]: r for r in data if r["method"] == "original"}
    for r in data:
        assert r["label"] == originals[r["source_id"]]["label"]
        if r["method"] == "random":
            assert r["text_a"] != originals[r["source_id"]]["text_a"]
            assert 0 < r["changed_frac"] <= 1
    assert len({r["id"] for r in data}) == len(data)


def test_rerun_replaces_and_crash_never_looks_complete(sst2_file, tmp_path):
    out = tmp_path / "out"
    write_augment(config([sst2_file], out), [])
    left = out / "_kdaug" / "attempts" / "0123456789ab" / "random" / "0.10"  # what a killed run leaves
    left.mkdir(parents=True)
    (left / "x.parquet").write_bytes(b"half a file")
    manifest = write_augment(config([sst2_file], out, degrees=(0.3,)), [])
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("[!_]*/*")) == ["original/0.00", "random/0.30"]
    assert not (out / "_kdaug").exists()
    assert (
        len(rows(out))
        == 24 + 24 * 2
        == sum(p["rows"] for k, p in manifest["partitions"].items() if k != "_dead_letter")
    )

    with pytest.raises(FileNotFoundError, match="input file not found"):
        write_augment(config([sst2_file, str(tmp_path / "missing.tsv")], tmp_path / "out2"), [])
    assert not (tmp_path / "out2" / schema.SUCCESS_FILE).exists()


def same_rows_with_one_and_two_workers(sst2_file, tmp_path, methods):
    options = AugmentOptions(seed=3, glove_vocab=20_000)
    write_augment(config([sst2_file], tmp_path / "one", methods, options=options), ["--direct_num_workers", "1"])
    write_augment(
        config([sst2_file], tmp_path / "two", methods, options=options),
        ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
    )
    one, two = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert {r["method"] for r in one} == {"original", *methods}
    assert one == two


def test_same_rows_with_one_and_two_workers(sst2_file, tmp_path):
    """The word-level methods; the AugPro ones, which load a teacher in every worker, are compared
    across processes in tests/augmenters/test_augmenters_augpro.py, and here with -m slow."""
    same_rows_with_one_and_two_workers(sst2_file, tmp_path, sorted(m for m in REGISTRY if not REGISTRY[m].uses_device))


@pytest.mark.slow
def test_same_rows_with_one_and_two_workers_every_method(sst2_file, tmp_path):
    same_rows_with_one_and_two_workers(sst2_file, tmp_path, sorted(REGISTRY))


def test_seed_changes_texts_not_originals(sst2_file, tmp_path):
    write_augment(config([sst2_file], tmp_path / "a"), [])
    write_augment(config([sst2_file], tmp_path / "b", options=AugmentOptions(seed=8)), [])
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    text = lambda data, method: sorted(
        (r["source_id"], r["copy"], r["degree"], r["text_a"]) for r in data if r["method"] == method
    )
    assert text(a, "original") == text(b, "original")
    assert text(a, "random") != text(b, "random")


def test_a_partition_short_of_rows_fails_the_run_before_anything_is_published(tmp_path, monkeypatch):
    """The finaliser's count check: every method × degree partition holds originals × copies rows
    (a runner that loses a step's outputs — Beam 2.77's DaskRunner drops finish_bundle's — must fail
    the run, not publish a partial one); rows the teacher failed on count where they came from."""
    from kdaug import commit
    from kdaug.beam import sinks

    def summary(partition: str, rows: int) -> dict:
        return {
            "partition": partition,
            "key": "k0",
            "staged": f"x/{partition}/k0.parquet",
            "rows": rows,
            "changed_sum": 0.0,
        }

    config = {"methods": ["random"], "degrees": [0.3], "copies": 2}
    manifest = {"kind": "run", "config": config}
    stats = [{"file": "in.tsv", "rows_read": 10}]
    attempt = commit.Attempt(str(tmp_path / "out"), "attempt0")
    original, random_part = schema.partition_dir("original", 0.0), schema.partition_dir("random", 0.3)
    with pytest.raises(RuntimeError, match=r"random/0.30 has 12 rows, expected 10 originals × 2 copies = 20"):
        sinks.finalize([summary(original, 10), summary(random_part, 12)], stats, attempt, manifest)
    failed = f"{schema.FAILED_INFERENCE_DIR}/{random_part}"
    with pytest.raises(RuntimeError, match=r"read 10 rows, wrote 9 originals"):
        sinks.finalize([summary(original, 9), summary(random_part, 18)], stats, attempt, manifest)
    assert not (tmp_path / "out").exists()
    # 8 rows labelled + 12 whose labelling failed = 20: the check passes and the run is published
    monkeypatch.setattr(commit, "publish", lambda attempt, manifest, files: {**manifest, "files": files})
    published = sinks.finalize(
        [summary(original, 10), summary(random_part, 8), summary(failed, 12)], stats, attempt, manifest
    )
    assert published["counts"]["failed_inference"] == 12 and published["counts"]["originals"] == 10
    assert sorted(f["path"].rsplit("/", 1)[0] for f in published["files"]) == sorted([failed, original, random_part])
