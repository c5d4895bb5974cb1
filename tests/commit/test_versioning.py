"""Versioned runs: ROOT/runs/<time>-<attempt>/, LATEST moved as the commit point, --if-changed,
--keep, readers following LATEST, the Beam counters in _metrics.json, and the same protocol end to
end on an object store (tests/commit/memstore.py: no directories, no renames of directories)."""

import json
from dataclasses import replace

import pytest

from kdaug import commit, schema, versioning
from kdaug.beam.label_job import LabelConfig
from tests.commit import memstore
from tests.conftest import make_tiny_teacher
from tests.helpers import invoke, rows

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "it 's a charming and often affecting journey .",
    "the film is strictly routine and its long middle section never finds a rhythm",
    "bleak",
]


@pytest.fixture
def sst2_file(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 2)) + "x\t9\n")
    return path


def augment(sst2_file, root, *flags, degrees="0.3"):
    return invoke(
        "augment",
        "--input",
        sst2_file,
        "--task",
        "sst2",
        "--methods",
        "random",
        "--degrees",
        degrees,
        "--copies",
        "2",
        "--output",
        root,
        *flags,
    )


def latest(root):
    return commit.latest(commit.Store(str(root)))


def published_runs(root):
    return commit.published_runs(commit.Store(str(root)))


def test_versioned_runs_if_changed_and_keep(sst2_file, tmp_path):
    root = tmp_path / "root"
    out = augment(sst2_file, root, "--versioned")
    first = latest(root)
    run_dir = root / "runs" / first
    assert (run_dir / schema.SUCCESS_FILE).exists() and f"LATEST → {first}" in out
    assert rows(root) == rows(run_dir) and len(rows(root)) == 8 + 16

    # the key recorded in the manifest is the key computed before a run: --if-changed compares like with like
    manifest = json.loads((run_dir / schema.MANIFEST_FILE).read_text())
    assert versioning.manifest_key(manifest)["config"] == manifest["config"]
    assert first.endswith(manifest["attempt"])

    # observability: the counters are in _metrics.json and in the summary
    metrics = json.loads((run_dir / commit.METRICS_FILE).read_text())["counters"]
    assert metrics["kdaug/rows_read"] == 9 and metrics["kdaug/dead_letters"] == 1
    assert metrics["kdaug/rows/random/0.30"] == 16
    assert "kdaug/rows_read" in out and "counter" in out

    out = augment(sst2_file, root, "--if-changed")
    assert f"unchanged since {first}: same input fingerprint" in out and "skipping" in out
    assert published_runs(root) == [first]

    out = augment(sst2_file, root, "--if-changed", "--keep", "1", degrees="0.5")
    second = latest(root)
    assert (
        f"changed since {first}: config.degrees differ" in out
        and f"LATEST → {second} (keeping 1 published runs)" in out
    )
    assert (
        second > first
        and published_runs(root) == [second]
        and sorted(p.name for p in (root / "runs").glob("*/")) == [second]
    )
    assert {r["degree"] for r in rows(root)} == {0.0, 0.5}

    sst2_file.write_text(sst2_file.read_text() + "one more line\t1\n")
    out = augment(sst2_file, root, "--if-changed", degrees="0.5")
    assert f"changed since {second}: input_fingerprint differ" in out
    assert len(published_runs(root)) == 2 and len(rows(root)) == 9 + 18


def test_label_reads_latest_and_skips_when_unchanged(sst2_file, tmp_path, tiny_teacher_dir):
    augment(sst2_file, tmp_path / "aug", "--versioned")
    label = [
        "label",
        "--input",
        tmp_path / "aug",
        "--output",
        tmp_path / "lab",
        "--teacher",
        tiny_teacher_dir,
        "--if-changed",
    ]
    out = invoke(*label)
    assert "no published run yet" in out and "teacher/rows_labelled" in out
    assert all(len(r["teacher_logits"]) == 2 for r in rows(tmp_path / "lab"))
    source = commit.published(str(tmp_path / "aug"))
    assert (
        commit.published(str(tmp_path / "lab")).manifest["source"]["dir"]
        == source.dir
        == str(tmp_path / "aug" / "runs" / latest(tmp_path / "aug"))
    )

    assert "same source run key and teacher fingerprint" in invoke(*label)
    other = str(make_tiny_teacher(tmp_path / "other", num_labels=2, seed=1))
    unchanged, why = versioning.compare(
        str(tmp_path / "lab"), versioning.label_key(source.manifest, LabelConfig(other))
    )
    assert not unchanged and why.endswith(": teacher differ")
    # how the teacher ran is part of the key: bf16 logits differ a little from fp32 ones
    same = LabelConfig(tiny_teacher_dir, device="cpu", precision="fp32")
    assert versioning.compare(str(tmp_path / "lab"), versioning.label_key(source.manifest, same))[0]
    for how in ({"precision": "bf16"}, {"device": "cuda:0"}):
        unchanged, why = versioning.compare(
            str(tmp_path / "lab"), versioning.label_key(source.manifest, replace(same, **how))
        )
        assert not unchanged and why.endswith(f": teacher_{next(iter(how))} differ"), why


def test_layouts_do_not_mix(sst2_file, tmp_path):
    augment(sst2_file, tmp_path / "plain")
    assert "holds a plain output" in invoke(
        "augment",
        "--input",
        sst2_file,
        "--task",
        "sst2",
        "--methods",
        "random",
        "--output",
        tmp_path / "plain",
        "--versioned",
        code=2,
    )
    augment(sst2_file, tmp_path / "root", "--versioned")
    assert "pass --versioned" in invoke(
        "augment", "--input", sst2_file, "--task", "sst2", "--methods", "random", "--output", tmp_path / "root", code=2
    )


def test_versioned_runs_on_an_object_store(sst2_file, monkeypatch):
    """The whole protocol where files cannot be renamed atomically as directories and nothing is a
    directory: versioned runs, --keep, a plain output replaced in place, readers on each."""
    objects = memstore.use(monkeypatch)
    root, plain = "memfs://bucket/root", "memfs://bucket/plain"
    augment(sst2_file, root, "--versioned")
    first = commit.latest(commit.Store(root))
    augment(sst2_file, root, "--keep", "1", degrees="0.5")
    second = commit.latest(commit.Store(root))
    assert second > first and commit.published_runs(commit.Store(root)) == [second]
    assert not [k for k in objects if k.startswith(f"bucket/root/runs/{first}") or "/_kdaug/" in k]
    assert {r["degree"] for r in rows(root)} == {0.0, 0.5} and len(rows(root)) == 8 + 16
    assert b"not Parquet" in objects[f"bucket/root/{commit.RUNS_GUARD}"]  # plain readers of the root fail on it

    augment(sst2_file, plain)
    augment(sst2_file, plain, degrees="0.5")  # replaced in place: the 0.3 partition goes, 0.5 comes
    assert {r["degree"] for r in rows(plain)} == {0.0, 0.5}
    assert not [k for k in objects if k.startswith("bucket/plain/random/0.30")]
    assert objects["bucket/plain/_SUCCESS"].decode() == json.loads(objects["bucket/plain/_manifest.json"])["attempt"]


def test_prune_deletes_only_published_runs_beyond_keep(sst2_file, tmp_path):
    root = tmp_path / "root"
    for degrees in ("0.1", "0.2", "0.3"):
        augment(sst2_file, root, "--versioned", degrees=degrees)
    names = published_runs(root)
    (root / "runs" / names[0] / "notes.txt").write_text("mine")  # not the run's: kdaug leaves it
    assert commit.prune(commit.Store(str(root)), keep=2) == names[:1]
    assert published_runs(root) == names[1:] and latest(root) == names[2]
    assert [p.name for p in (root / "runs" / names[0]).iterdir()] == ["notes.txt"]
