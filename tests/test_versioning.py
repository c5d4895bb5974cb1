"""Versioned runs: ROOT/runs/<time>-<key hash>/, LATEST moved after _SUCCESS, --if-changed, --keep,
readers following LATEST, the Beam counters in _metrics.json, and the same layout on an object store
(a fake gs://-like filesystem without directories)."""

import io
import json
import posixpath

import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem
from click.testing import CliRunner

from pipeline import schema, sinks, versioning
from pipeline.cli import main
from pipeline.job import METRICS_FILE
from pipeline.label_job import LabelConfig
from tests.conftest import make_tiny_teacher

SENTENCES = ["a gorgeous , witty , seductive movie .", "it 's a charming and often affecting journey .",
             "the film is strictly routine and its long middle section never finds a rhythm", "bleak"]


@pytest.fixture
def sst2_file(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 2)) + "x\t9\n")
    return path


def invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def augment(sst2_file, root, *flags, degrees="0.3"):
    return invoke("augment", "--input", sst2_file, "--task", "sst2", "--methods", "random", "--degrees", degrees,
                  "--copies", "2", "--output", root, *flags)


def rows(path):
    return sorted(schema.open_dataset(str(path)).to_table().to_pylist(), key=lambda r: r["id"])


def test_versioned_runs_if_changed_and_keep(sst2_file, tmp_path):
    root = tmp_path / "root"
    out = augment(sst2_file, root, "--versioned")
    first = versioning.latest(str(root))
    run_dir = root / "runs" / first
    assert (run_dir / schema.SUCCESS_FILE).exists() and f"LATEST → {first}" in out
    assert rows(root) == rows(run_dir) and len(rows(root)) == 8 + 16

    # the key recorded in the manifest is the key computed before a run: --if-changed compares like with like
    manifest = sinks.read_manifest(str(run_dir))
    config = manifest["config"]
    assert versioning.manifest_key(manifest)["config"] == config
    assert first.endswith(versioning.key_hash(versioning.manifest_key(manifest))[:8])

    # observability: the counters are in _metrics.json and in the summary
    metrics = json.loads((run_dir / METRICS_FILE).read_text())["counters"]
    assert metrics["kdaug/rows_read"] == 9 and metrics["kdaug/dead_letters"] == 1
    assert metrics["kdaug/rows/method=random/degree=0.30"] == 16
    assert "kdaug/rows_read" in out and "counter" in out

    out = augment(sst2_file, root, "--if-changed")
    assert f"unchanged since {first}: same input fingerprint" in out and "skipping" in out
    assert versioning.runs(str(root))[0] == [first]

    out = augment(sst2_file, root, "--if-changed", "--keep", "1", degrees="0.5")
    second = versioning.latest(str(root))
    assert f"changed since {first}: config.degrees differ" in out and f"LATEST → {second} (keeping 1 finished runs)" in out
    assert second != first and versioning.runs(str(root)) == ([second], {second})
    assert {r["degree"] for r in rows(root)} == {0.0, 0.5}

    sst2_file.write_text(sst2_file.read_text() + "one more line\t1\n")
    out = augment(sst2_file, root, "--if-changed", degrees="0.5")
    assert f"changed since {second}: input_fingerprint differ" in out
    assert len(versioning.runs(str(root))[0]) == 2 and len(rows(root)) == 9 + 18


def test_label_reads_latest_and_skips_when_unchanged(sst2_file, tmp_path, tiny_teacher_dir):
    augment(sst2_file, tmp_path / "aug", "--versioned")
    label = ["label", "--input", tmp_path / "aug", "--output", tmp_path / "lab", "--teacher", tiny_teacher_dir, "--if-changed"]
    out = invoke(*label)
    assert "no finished run yet" in out and "teacher/rows_labelled" in out
    assert all(len(r["teacher_logits"]) == 2 for r in rows(tmp_path / "lab"))
    source = versioning.resolve(str(tmp_path / "aug"))
    assert sinks.read_manifest(versioning.resolve(str(tmp_path / "lab")))["source"]["dir"] == source

    assert "same source run key and teacher fingerprint" in invoke(*label)
    other = str(make_tiny_teacher(tmp_path / "other", num_labels=2, seed=1))
    unchanged, why = versioning.compare(str(tmp_path / "lab"), versioning.label_key(source, LabelConfig(other)))
    assert not unchanged and why.endswith(": teacher differ")


def test_layouts_do_not_mix(sst2_file, tmp_path):
    augment(sst2_file, tmp_path / "plain")
    assert "unversioned output" in invoke("augment", "--input", sst2_file, "--task", "sst2", "--methods", "random",
                                          "--output", tmp_path / "plain", "--versioned", code=2)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / versioning.LATEST_FILE).write_text("x\n")
    assert "pass --versioned" in invoke("augment", "--input", sst2_file, "--task", "sst2", "--methods", "random",
                                        "--output", tmp_path / "root", code=2)

    (tmp_path / "first" / "runs" / "20250101T000000Z-00000000" / "_temporary").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no run has finished yet"):
        schema.open_dataset(str(tmp_path / "first"))
    with pytest.raises(RuntimeError, match="_SUCCESS"):
        versioning.publish(str(tmp_path / "first"), str(tmp_path / "first" / "runs" / "20250101T000000Z-00000000"))
    assert versioning.latest(str(tmp_path / "first")) is None


def make_runs(root: str, names: dict[str, bool], latest: str) -> None:
    """Run directories with one shard each, finished (with _SUCCESS) or not, and LATEST."""
    for name, finished in names.items():
        run_dir = posixpath.join(root, "runs", name)
        sinks._write_bytes(posixpath.join(run_dir, "method=original", "degree=0.00", "part-00000-of-00001.parquet"), b"x")
        if finished:
            sinks._write_bytes(posixpath.join(run_dir, schema.SUCCESS_FILE), b"")
    sinks._write_bytes(posixpath.join(root, versioning.LATEST_FILE), latest.encode() + b"\n")


RUNS = {"20250101T000000Z-a": True, "20250102T000000Z-b": False, "20250103T000000Z-c": True,
        "20250104T000000Z-d": True, "20250105T000000Z-e": False, "20250106T000000Z-f": True}


@pytest.mark.parametrize("root", ["local", "memfs://bucket/root"])
def test_prune_keeps_latest_and_running_runs(tmp_path, root):
    root = str(tmp_path / root) if root == "local" else root
    make_runs(root, RUNS, latest="20250103T000000Z-c")  # rolled back by hand to an older run
    assert versioning.prune(root, keep=2) == ["20250101T000000Z-a", "20250102T000000Z-b"]
    # kept: the newest two finished runs (d, f), LATEST (c), and e: unfinished but younger than c
    assert versioning.runs(root) == (
        ["20250103T000000Z-c", "20250104T000000Z-d", "20250105T000000Z-e", "20250106T000000Z-f"],
        {"20250103T000000Z-c", "20250104T000000Z-d", "20250106T000000Z-f"},
    )
    versioning.publish(root, posixpath.join(root, "runs", "20250106T000000Z-f"))
    assert versioning.resolve(root) == posixpath.join(root, "runs", "20250106T000000Z-f")
    assert versioning.prune(root, keep=1) == ["20250103T000000Z-c", "20250104T000000Z-d", "20250105T000000Z-e"]
    assert versioning.runs(root) == (["20250106T000000Z-f"], {"20250106T000000Z-f"})


class MemFileSystem(FileSystem):
    """An object store in a dict, like gs://: no directories, a "directory" is a name prefix,
    `exists` is true for objects only and only "prefix/" deletes recursively (Beam's GCS semantics)."""

    objects: dict[str, bytes] = {}

    @classmethod
    def scheme(cls):
        return "memfs"

    def join(self, base, *paths):
        return posixpath.join(base, *paths)

    def split(self, path):
        return posixpath.split(path)

    def has_dirs(self):
        return False

    def mkdirs(self, path):
        pass

    def _list(self, prefix):
        return [FileMetadata(p, len(data)) for p, data in sorted(self.objects.items()) if p.startswith(prefix)]

    def create(self, path, *args, **kwargs):
        objects = self.objects

        class Writer(io.BytesIO):
            def close(self):
                objects[path] = self.getvalue()
                super().close()

        return Writer()

    def open(self, path, *args, **kwargs):
        return io.BytesIO(self.objects[path])

    def copy(self, sources, destinations):
        for s, d in zip(sources, destinations):
            self.objects[d] = self.objects[s]

    def rename(self, sources, destinations):
        for s, d in zip(sources, destinations):
            self.objects[d] = self.objects.pop(s)

    def exists(self, path):
        return path in self.objects

    def size(self, path):
        return len(self.objects[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(hash(self.objects[path]))

    def metadata(self, path):
        return FileMetadata(path, len(self.objects[path]))

    def delete(self, paths):
        for path in paths:
            doomed = [p for p in self.objects if p.startswith(path)] if path.endswith("/") else [path]
            for p in doomed:
                del self.objects[p]
