"""Arrow schemas of every file kdaug writes, and how to open an output directory.

This module imports no Beam, so `distill` and any Parquet consumer can rely on it.

Layout of an output directory::

    OUT/method=knn/degree=0.30/part-00000-of-00004.parquet   shard rows (SHARD_FILE_SCHEMA)
    OUT/_dead_letter/part-00000-of-00001.parquet             rejected input rows (DEAD_LETTER_SCHEMA)
    OUT/_failed_inference/method=…/degree=…/part-….parquet   rows the teacher failed on (FAILED_INFERENCE_SCHEMA)
    OUT/_manifest.json                                       config, fingerprints, counts, its files
    OUT/_SUCCESS                                             written last (`kdaug.commit`)

`method` and `degree` live in the directory names only (the Hive convention): when a column is
both in the files and in the path, pandas and pyarrow refuse to merge the two. Read a whole output
with `open_dataset`, which restores them with their declared types (ROW_SCHEMA).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

from kdaug import commit
from kdaug.commit import MANIFEST_FILE, SUCCESS_FILE  # noqa: F401  (the dataset's names, one place)

SCHEMA_VERSION = 1

#: Columns of a shard file. `teacher_logits` is null until the teacher labels the row.
SHARD_FILE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("text_a", pa.string(), nullable=False),
        pa.field("text_b", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("copy", pa.int32(), nullable=False),
        pa.field("changed_frac", pa.float32(), nullable=False),
        pa.field("partner_id", pa.string()),
        pa.field("mix_lambda", pa.float32()),
        pa.field("teacher_logits", pa.list_(pa.float32())),
    ]
)

#: The Hive partition columns, typed.
PARTITION_SCHEMA = pa.schema([pa.field("method", pa.string()), pa.field("degree", pa.float32())])
PARTITIONING = ds.partitioning(PARTITION_SCHEMA, flavor="hive")

#: A row as a consumer sees it through `open_dataset`.
ROW_SCHEMA = pa.schema(list(SHARD_FILE_SCHEMA) + list(PARTITION_SCHEMA))

#: Rejected input rows: where they came from and why.
DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

DEAD_LETTER_DIR = "_dead_letter"

#: Rows whose teacher inference failed (`kdaug.beam.inference`): the shard row, no logits, the error.
FAILED_INFERENCE_SCHEMA = SHARD_FILE_SCHEMA.append(pa.field("reason", pa.string(), nullable=False))
FAILED_INFERENCE_DIR = "_failed_inference"
#: The partition of the unaugmented rows (`method=original/degree=0.00`): every copy's source.
ORIGINAL = "original"
#: What every shard file's path starts with (the other published files are kdaug's own).
SHARD_PREFIX = "method="


def is_shard(rel: str) -> bool:
    """Whether a published file (relative to its run) is a shard of the dataset."""
    return rel.startswith(SHARD_PREFIX)


def format_degree(degree: float) -> str:
    """The degree as it appears in a partition directory name (two decimals)."""
    return f"{degree:.2f}"


def partition_dir(method: str, degree: float) -> str:
    """Relative directory of one (method, degree) partition."""
    return f"{SHARD_PREFIX}{method}/degree={format_degree(degree)}"


def shard_file_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def open_dataset(path: str, allow_unfinished: bool = False) -> ds.Dataset:
    """Open the published run of a kdaug output (a plain output, or a root of versioned runs through
    its LATEST) as one typed dataset of exactly the shard files its manifest lists.

    The files are opened here, and the run checked to be still published once they are: on a local
    disk the dataset then reads that run's bytes whatever a later publish or prune does to the
    directory (an open file outlives its name). A publish that overlaps the opening is retried,
    then refused. An output that is not one whole run (no `_SUCCESS`, a publish in progress, a
    versioned root with no published run) is refused with the reason
    (`kdaug.commit.UnfinishedOutput`); `allow_unfinished` reads whatever shard files the
    directory holds instead (forensics).
    """
    tries = _OPEN_TRIES
    while True:
        run = commit.published(path, allow_unfinished)
        try:
            dataset = _pinned(run)
            run.check_current()
            return dataset
        except (commit.CommitError, FileNotFoundError):
            tries -= 1
            if not tries:
                raise


_OPEN_TRIES = 3  # a publish overlapping an open is retried this often (each takes a new look at the output)


def _pinned(run) -> ds.Dataset:
    """The run's shard files, opened now, as one dataset (partition values from their paths)."""
    store = commit.Store(run.dir)
    fmt = ds.ParquetFileFormat()
    fragments = [
        fmt.make_fragment(store.fs.open_input_file(store._path(rel)), partition_expression=PARTITIONING.parse(rel))
        for rel in run.rels
        if is_shard(rel)
    ]
    return ds.FileSystemDataset(fragments, ROW_SCHEMA, fmt)


def open_published(run) -> ds.Dataset:
    """The shard files of a `kdaug.commit.Published` run as one typed dataset, by path (kdaug's own
    readers call `run.check_current()` after reading instead of holding every file open)."""
    store = commit.Store(run.dir)
    shards = [store._path(rel) for rel in run.rels if is_shard(rel)]
    return ds.dataset(
        shards,
        format="parquet",
        partitioning=PARTITIONING,
        partition_base_dir=store.base,
        schema=ROW_SCHEMA,
        filesystem=store.fs,
    )
