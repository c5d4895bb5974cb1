"""The teacher-labelling job (`kdaug label`): shards of an earlier run → the same shards with
`teacher_logits`, `teacher_shift` and `teacher_flip`, and the shared teacher step that `kdaug run`
puts between augment and sink.

Logits are stored raw and lossless (float32); the temperature is the consumer's choice.

A row's shift is measured against its original's logits, so the job reads the shards in groups that
hold each row's original (`shard_groups`): an output has one file per input chunk in every
partition, numbered in chunk order (`sinks.finalize`), so the i-th files of all partitions are one
chunk's rows. One worker reads a group, labels it file by file (each file packed alone, as `kdaug
run` packs a chunk's partition) and writes one output file per source file: no join across the
corpus, memory bounded by one chunk's rows as in `kdaug run`, and a labelled output grouped as its
source was (it can be labelled again). The job's parallelism is its input chunks.
"""

from __future__ import annotations

import functools
import io
import posixpath
from dataclasses import dataclass

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from kdaug import commit, logs, schema
from kdaug.beam import sinks


@dataclass(frozen=True)
class LabelConfig:
    """Which teacher labels and how: its padded batch budget (None: `teacher.default_max_tokens` of
    the device), quantisation (None: off; "int8": see `kdaug.teacher.model.quantize_int8`), torch
    threads per worker process (None: every CPU the process may use, which oversubscribes the cores
    when several worker processes share them: with N workers on C cores pass C // N), the device
    and precision (`kdaug.teacher.model.resolve_device`, `check_precision`: resolved where the job is
    launched, so the manifest says what labelled; a worker without the device fails loudly), and
    whether one teacher serves all worker processes of a machine (`share`, RunInference's
    `large_model`). Threads and sharing change the speed, not the logits (at most float rounding in
    the last bits), so they are not part of the manifest or the run key; device and precision are."""

    teacher_dir: str
    max_tokens: int | None = None
    quantize: str | None = None
    num_threads: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    share: bool = False

    def transform(self) -> beam.PTransform:
        """Beam's `RunInference` with kdaug's `TeacherHandler` (`kdaug.beam.inference.LabelGroups`)."""
        from kdaug.beam.inference import LabelGroups, TeacherHandler

        return LabelGroups(
            TeacherHandler(
                self.teacher_dir,
                self.max_tokens,
                self.num_threads,
                self.quantize,
                self.device,
                self.precision,
                self.share,
            )
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        """The teacher's fingerprint (`kdaug.teacher.model.fingerprint`: its fp32 weights, tokenizer and
        label names), hashed once: a versioned run's key and its manifest both need it."""
        from kdaug.teacher.model import fingerprint

        return fingerprint(self.teacher_dir)

    def to_manifest(self) -> dict:
        # the fingerprint hashes the fp32 weights on disk; `quantize` says how they were run
        return {
            "dir": self.teacher_dir,
            "fingerprint": self.fingerprint,
            "max_tokens": self.max_tokens,
            "quantize": self.quantize,
            "device": self.device,
            "precision": self.precision,
        }


class ReadShards(beam.DoFn):
    """Read one group of shard files of a published output (`shard_groups`) as one group of row
    batches (`kdaug.beam.inference.Group`), each keyed by (partition, source file name), which names
    its output file. One output, each element saying what it is (`kdaug.beam.elements.only`):
    ``(CHUNK, group)`` and, per file, ``(STATS, counts)``."""

    def __init__(self, root: str):
        self.root = root

    def process(self, paths: list[str]):
        from kdaug.beam.elements import CHUNK, STATS

        group = []
        for path in paths:
            partition = posixpath.relpath(posixpath.dirname(path), self.root)
            stem = posixpath.basename(path).removesuffix(".parquet")
            with FileSystems.open(path) as f:
                rows = pq.read_table(io.BytesIO(f.read()), schema=schema.SHARD_FILE_SCHEMA).to_pylist()
            group.append(((partition, stem), rows))
            yield STATS, {"file": path, "rows_read": len(rows)}
        yield CHUNK, group


class UngroupedShards(ValueError):
    """A source whose partitions do not hold one file per input chunk each: its rows cannot be read
    beside their originals."""


def shard_files(source: commit.Published) -> list[str]:
    """The shard files of a published output, as its manifest lists them (dead letters aside)."""
    root = source.dir.rstrip("/") + "/"
    return sorted(f for f in source.files if schema.is_shard(f[len(root) :]))


def shard_groups(source: commit.Published) -> list[list[str]]:
    """The shard files grouped by input chunk: the i-th file of every partition, the originals' first
    (`part-i-of-n` sorts by i). Refuses a source with another number of files in some partition than
    in `original/0.00`: one a teacher failed on chunks of (its rows are in `_failed_inference/`), or
    not written by kdaug; label the `augment` output it came from instead."""
    root = source.dir.rstrip("/") + "/"
    by_partition: dict[str, list[str]] = {}
    for path in shard_files(source):
        by_partition.setdefault(posixpath.dirname(path[len(root) :]), []).append(path)
    originals = by_partition.pop(schema.partition_dir(schema.ORIGINAL, 0.0), [])
    uneven = [f"{p} {len(files)}" for p, files in sorted(by_partition.items()) if len(files) != len(originals)]
    if uneven:
        raise UngroupedShards(
            f"{source.dir}: the teacher's shift needs each input chunk's files side by side, but original/0.00 "
            f"has {len(originals)} files and {', '.join(uneven)}; label the `kdaug augment` output instead"
        )
    return [[original, *(by_partition[p][i] for p in sorted(by_partition))] for i, original in enumerate(originals)]


def build(pipeline: beam.Pipeline, source: commit.Published, label: LabelConfig, attempt: commit.Attempt):
    """Add the label job: the shards of the published `source` → labelled shards, published as `attempt`."""
    from kdaug.beam.elements import CHUNK, STATS, only

    read = pipeline | "Shards" >> beam.Create(shard_groups(source)) | "Read" >> beam.ParDo(ReadShards(source.dir))
    files = (
        read
        | "Groups" >> beam.FlatMap(only, CHUNK)
        | "Spread" >> beam.Reshuffle()
        | "Label" >> label.transform()
        | "Partitions" >> beam.FlatMap(lambda group: group)
        | "Write" >> beam.ParDo(sinks.WriteFile(attempt))
    )
    manifest = {
        "kind": commit.Kind.LABEL.value,
        "schema_version": schema.SCHEMA_VERSION,
        "source": {"dir": source.dir, "manifest": source.manifest},
        "teacher": label.to_manifest(),
        "versions": sinks.versions(),
    }
    stats = read | "Stats" >> beam.FlatMap(only, STATS)
    # publish only if the source is still the run that was read (a plain source regenerated while it
    # was labelled would have mixed two runs' rows)
    return sinks.gather_and_publish(files, stats, attempt, manifest, source.check_current)


def run_label(source: str, label: LabelConfig, pipeline_args: list[str], attempt: commit.Attempt) -> dict:
    """Label the published run at `source` as `attempt` (the CLI's: `kdaug.commit.write` owns the
    protocol) and return the published manifest."""
    from kdaug.beam.engines import run_pipeline

    published = commit.published(source)
    schema.check_version(published)  # older shard files lack columns this job reads and writes
    groups = shard_groups(published)  # refuses a source it cannot group before anything starts
    total = sum(f.get("rows", 0) for f in published.manifest["files"] if schema.is_shard(f["path"]))
    on = f"{label.device}, {label.precision}" + (f", {label.quantize}" if label.quantize else "")
    logs.say(f"labelling {total:,} rows of {published.dir} with teacher {label.teacher_dir} ({on})")
    return run_pipeline(
        attempt,
        pipeline_args,
        lambda p: build(p, published, label, attempt),
        (total, "labelling", None),
        len(groups),
    )
