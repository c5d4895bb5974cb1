"""The augmentation job: read → augment × method × degree × copy → Parquet shards + manifest.

Rows travel through Beam in chunks (lists of a few hundred rows), never one element per row:
Beam's per-element overhead would otherwise dominate token-level augmentation. A chunk's rows of
every partition travel as one element (so `kdaug run`'s teacher sees each row beside its original)
and each partition's are written as one file right away (`sinks.WriteFile`): no GroupByKey holds the
corpus, so memory stays bounded by one chunk's rows: chunk size × (1 + methods × degrees × copies).

Determinism: chunks are cut in file order and named by (input file, chunk index), every row draws
its randomness from its own seeded stream, every file is sorted by row id and the finaliser numbers
a partition's files in chunk order, so the same input, config and seed give byte-identical files
whatever the runner and worker count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from kdaug import commit, logs, schema
from kdaug.augmenters import ORIGINAL, AugmentOptions, create, original_row
from kdaug.augmenters.base import CHUNK_SIZE, COPIES
from kdaug.beam import sinks
from kdaug.beam.elements import CHUNK, DEAD_LETTERS, STATS, only
from kdaug.beam.engines import run_pipeline
from kdaug.inputs import sources, splits


@dataclass
class AugmentConfig:
    """Everything that decides the output of `kdaug augment` (recorded in the manifest)."""

    inputs: list[str]
    output: str
    task: sources.Task
    methods: list[str]
    degrees: list[float]
    copies: int = COPIES
    options: AugmentOptions = field(default_factory=AugmentOptions)
    chunk_size: int = CHUNK_SIZE
    max_rows: int | None = None

    def validate(self) -> None:
        """Refuse, before anything runs or is written, every flag and input that cannot make a whole
        run (inside the pipeline they would surface late, as Beam tracebacks)."""
        if not self.methods:
            raise ValueError("no augmentation method given (--methods)")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods are repeated: {','.join(self.methods)}")
        for name in self.methods:
            create(name, self.options)  # raises with the list of methods when unknown
        if not self.degrees or any(not 0 < d <= 1 for d in self.degrees):
            raise ValueError(f"degrees must be in (0, 1], got {self.degrees}")
        names = [schema.format_degree(d) for d in self.degrees]
        if "0.00" in names or len(set(names)) != len(names):
            raise ValueError(
                f"degrees name partitions by their first two decimals ({', '.join(names)}): "
                f"they must differ there and not round to 0.00, got {self.degrees}"
            )
        if self.copies < 1 or self.chunk_size < 1:
            raise ValueError("copies and chunk size must be at least 1")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"--max-rows must be at least 1, got {self.max_rows}")
        stems = [sources.source_prefix(p) for p in self.inputs]
        if len(set(stems)) != len(stems):
            raise ValueError(f"input file names must differ (they prefix the source ids): {self.inputs}")
        for path in self.inputs:
            check_input_file(path)
            sources.check_usable(path, self.task, FileSystems.open)  # a data row, the task's fields

    def to_dict(self) -> dict:
        return {
            "inputs": self.inputs,
            "task": self.task.name,
            "text_fields": [self.task.text_a, self.task.text_b],
            "label_field": self.task.label_field,
            "labels": list(self.task.labels or []),
            "label_names": list(self.task.label_names or self.task.labels or []),
            "methods": self.methods,
            "degrees": self.degrees,
            "copies": self.copies,
            "options": self.options.to_dict(),
            "chunk_size": self.chunk_size,
            "max_rows": self.max_rows,
            "delimiter": self.task.delimiter,
            "quoting": self.task.quoting,
        }


def check_input_file(path: str) -> splits.Stamp:
    """A readable, non-empty file, or a FileNotFoundError/ValueError naming it; returns its stamp."""
    import pyarrow.fs as pafs

    kind, stamp = stat_file(path)
    if kind == pafs.FileType.NotFound:
        raise FileNotFoundError(f"input file not found: {path}")
    if kind == pafs.FileType.Directory:
        raise IsADirectoryError(f"input {path} is a directory; pass the files in it (--input once per file)")
    if stamp.size == 0:
        raise ValueError(f"input {path} is empty")
    return stamp


def stat_file(path: str) -> tuple[object, splits.Stamp]:
    """What is at `path` (a pyarrow FileType: a file, a directory, nothing) and its size and
    modification time, through the filesystem of its URI (local, gs://, …)."""
    store = commit.Store(path)
    info = store.fs.get_file_info(store.base)
    return info.type, splits.Stamp(info.size, info.mtime_ns)


@dataclass(frozen=True)
class InputGuard:
    """The inputs' stamps when planned (`splits.Stamp`), checked where the job could otherwise publish
    rows of a file that changed meanwhile: by `ReadSplit` after each split (its records against the
    plan's) and, called, by the publishing step just before it publishes. Both may run on a worker
    (DirectRunner multi_processing, Dask, Dataflow): the input paths are the same there."""

    stamps: dict[str, splits.Stamp]

    def __call__(self) -> None:
        for path in self.stamps:
            self.check(path)

    def check(self, path: str, split: splits.Split | None = None, read: int | None = None) -> None:
        """Raise `splits.InputChangedError` when `path` changed since planning, or `read` records
        were read of its `split` rather than the planned ones."""
        import pyarrow.fs as pafs

        kind, now = stat_file(path)
        splits.check_unchanged(path, self.stamps[path], now if kind == pafs.FileType.File else None, split, read)


def batch_key(prefix: str, index: int) -> str:
    """The name of an input file's `index`-th chunk: it names the chunk's output files (and its dead
    letters'), and sorting by it puts them in input order."""
    return f"{prefix}-{index:06d}"


class ReadSplit(beam.DoFn):
    """Read one split of an input file (`kdaug.inputs.splits`): a few MB at most, never the whole file.

    One output, each element saying what it is — ``(CHUNK, (key, examples))`` and ``(DEAD_LETTERS,
    ((partition, key), dead letters))`` per chunk, ``(STATS, counts)`` per split — since runners
    differ on tagged outputs (Beam's DaskRunner sends every output to every consumer). Having read
    the split, it asks `guard` whether the file is still as planned and gave the split's planned rows.
    """

    def __init__(self, task: sources.Task, chunk_size: int, guard: InputGuard):
        self.task, self.chunk_size, self.guard = task, chunk_size, guard
        self.dead_counter = Metrics.counter("kdaug", "dead_letters")
        self.read_counter = Metrics.counter("kdaug", "rows_read")

    def process(self, split: splits.Split):
        prefix = sources.source_prefix(split.path)
        batches: dict[int, tuple[list, list]] = {}  # chunk index -> (examples, dead letters)
        read = dead = 0
        try:
            for i, (kind, item) in enumerate(sources.examples(split.path, self._records(split), self.task)):
                chunk = split.first_chunk + i // self.chunk_size
                if chunk not in batches:
                    yield from self._emit(prefix, batches)
                    batches[chunk] = ([], [])
                batches[chunk][kind == "dead_letter"].append(item)
                read, dead = read + 1, dead + (kind == "dead_letter")
        except Exception:
            self.guard.check(split.path)  # a file deleted or rewritten under its reader fails to read: say why
            raise
        self.guard.check(split.path, split, read)
        yield from self._emit(prefix, batches)
        self.read_counter.inc(read)
        self.dead_counter.inc(dead)
        yield STATS, {"file": split.path, "rows_read": read, "dead_letters": dead}

    @staticmethod
    def _records(split: splits.Split):
        """The split's records, read as they are iterated (inside `process`'s guard)."""
        if split.fmt == "parquet":
            yield from sources.parquet_records(splits.parquet_rows(split, FileSystems.open), split.first_line)
        else:
            data = splits.read_bytes(split, FileSystems.open)
            yield from sources.records(data, split.fmt, split.header, split.first_line, split.dialect)

    @staticmethod
    def _emit(prefix: str, batches: dict):
        for chunk, (examples, dead) in batches.items():
            key = batch_key(prefix, chunk)
            if examples:
                yield CHUNK, (key, examples)
            if dead:
                yield DEAD_LETTERS, ((schema.DEAD_LETTER_DIR, key), dead)
        batches.clear()


class AugmentChunks(beam.DoFn):
    """Turn a chunk of originals into one group (`kdaug.beam.inference.Group`): its row batches keyed
    by (partition, the chunk's batch key), the originals' first. The group keeps every augmented row
    beside its original, so the teacher can measure each row's shift from it (`kdaug run`).

    The augmenters load their resources in `setup`, once per DoFn instance; the loaders are
    memoised per process, so the instances of one worker share one copy.
    """

    def __init__(self, methods: list[str], degrees: list[float], copies: int, options: AugmentOptions):
        self.methods, self.degrees, self.copies, self.options = methods, degrees, copies, options

    def setup(self):
        self.augmenters = [create(name, self.options) for name in self.methods]
        for augmenter in self.augmenters:
            augmenter.setup()

    def process(self, element):
        key, examples = element
        group = [((schema.partition_dir(ORIGINAL, 0.0), key), [original_row(self.options.seed, ex) for ex in examples])]
        for augmenter in self.augmenters:
            for degree in self.degrees:
                rows = [row for copy in range(self.copies) for row in augmenter.augment_chunk(examples, degree, copy)]
                group.append(((schema.partition_dir(augmenter.name, degree), key), rows))
        for (partition, _), rows in group:
            Metrics.counter("kdaug", f"rows/{partition}").inc(len(rows))
        yield group


def plan(config: AugmentConfig) -> tuple[list[splits.Split], dict[str, int], str, InputGuard]:
    """Every input's splits, its planned data records (up to --max-rows), the input fingerprint (hash
    of all input bytes, as `input_fingerprint`), from one streaming pass over each file, and the guard
    of the files' stamps, taken before that pass."""
    digest, found, records, stamps = hashlib.sha256(), [], {}, {}
    for path in config.inputs:
        stamps[path] = check_input_file(path)
        fmt, dialect = sources.file_format(path, config.task), sources.dialect_of(path, config.task)
        file_plan = splits.plan_file(path, fmt, config.chunk_size, config.max_rows, FileSystems.open, digest, dialect)
        found += file_plan.splits
        records[path] = file_plan.records
    return found, records, digest.hexdigest(), InputGuard(stamps)


def build(pipeline: beam.Pipeline, config: AugmentConfig, attempt: commit.Attempt, label=None, planned=None):
    """Add the augment job to `pipeline`, writing and publishing `attempt`; with `label` (a
    `label_job.LabelConfig`) the teacher labels each chunk's group of row batches, and measures
    their shift from their originals, on their way to the sink (`kdaug run`). `planned`:
    `plan(config)`, when the caller has it. Returns the PCollection holding the published manifest.

    The graph uses only what every runner executes alike: one output per step, summaries gathered
    by a GroupByKey (not a side input or a combiner: Beam's DaskRunner returns wrong lists for those).
    """
    found, _, fingerprint, guard = planned or plan(config)
    read = (
        pipeline
        | "Splits" >> beam.Create(found)
        | "Read" >> beam.ParDo(ReadSplit(config.task, config.chunk_size, guard))
    )
    groups = (
        read
        | "Chunks" >> beam.FlatMap(only, CHUNK)
        | "Spread" >> beam.Reshuffle()
        | "Augment" >> beam.ParDo(AugmentChunks(config.methods, config.degrees, config.copies, config.options))
    )
    if label is not None:
        groups = groups | "Label" >> label.transform()
    rows = groups | "Partitions" >> beam.FlatMap(lambda group: group)
    # Each branch writes its own files and only their summaries meet: a Flatten of the rows
    # themselves would make the DirectRunner buffer all of them (its stages exchange flattened
    # PCollections through memory).
    written = (
        rows | "Write" >> beam.ParDo(sinks.WriteFile(attempt)),
        read
        | "DeadLetters" >> beam.FlatMap(only, DEAD_LETTERS)
        | "WriteDeadLetters" >> beam.ParDo(sinks.WriteFile(attempt)),
    ) | "Files" >> beam.Flatten()
    manifest = {
        "kind": (commit.Kind.AUGMENT if label is None else commit.Kind.RUN).value,
        "schema_version": schema.SCHEMA_VERSION,
        "config": config.to_dict(),
        "input_fingerprint": fingerprint,
        "teacher": None if label is None else label.to_manifest(),
        "versions": sinks.versions(),
    }
    stats = read | "Stats" >> beam.FlatMap(only, STATS)
    return sinks.gather_and_publish(written, stats, attempt, manifest, guard)


def run_augment(config: AugmentConfig, pipeline_args: list[str], attempt: commit.Attempt, label=None) -> dict:
    """Run the job (augment, or augment + label) as `attempt` (the CLI's: `kdaug.commit.write` owns the
    protocol) to completion and return its published manifest."""
    config.validate()
    planned = plan(config)
    found, records, _, _ = planned
    chunks = sum(s.chunks for s in found)
    logs.say(
        f"planned {sum(records.values()):,} rows of {len(records)} file(s): {chunks:,} chunks of "
        f"≤{config.chunk_size} rows in {len(found):,} splits"
    )
    bar = (
        sum(records.values()),
        "augmenting" if label is None else "augmenting + labelling",
        (schema.partition_dir(ORIGINAL, 0.0), schema.DEAD_LETTER_DIR),
    )
    return run_pipeline(attempt, pipeline_args, lambda p: build(p, config, attempt, label, planned), bar, len(found))
