"""Arrow schemas of every file kdaug writes, and how to open an output directory.

This module imports no Beam, so `distill` and any Parquet consumer can rely on it.

Layout of an output directory::

    OUT/knn/0.30/part-00000-of-00004.parquet                 shard rows (SHARD_FILE_SCHEMA)
    OUT/_dead_letter/part-00000-of-00001.parquet             rejected input rows (DEAD_LETTER_SCHEMA)
    OUT/_failed_inference/knn/0.30/part-….parquet            rows the teacher failed on (FAILED_INFERENCE_SCHEMA)
    OUT/_manifest.json                                       config, fingerprints, counts, its files
    OUT/_SUCCESS                                             written last (`kdaug.commit`)

`method` (string) and `degree` (float64) are columns of every shard file, so pandas, pyarrow.dataset,
DuckDB, polars and HF datasets all read the same typed values and `degree == 0.3` selects the same
rows in each. The folders are `METHOD/DEGREE`, not Hive's `method=…/degree=…`: pyarrow and DuckDB
type a Hive `degree=0.30` as a string (`== 0.3` then matches nothing or raises), and with the column
also in the files pyarrow (so pandas) refuses to merge the two while DuckDB takes the string; HF
datasets reads no Hive names at all. Plain readers prune by the columns' statistics; kdaug's own
readers also parse the folder names (PARTITIONING) to skip unselected files unopened. The shards'
glob is `OUT/*/*/*.parquet` (`OUT/**/*.parquet` also reaches kdaug's `_` folders: dead letters, and
the staged files of a run in progress). Read a whole output with `open_dataset`, which reads exactly
the files of its published run.

A versioned root (``ROOT/runs/<run>/``, ``ROOT/LATEST``, `kdaug.commit`) is not one dataset: its
`commit.RUNS_GUARD` file makes every plain reader pointed at ROOT or ROOT/runs fail, naming it,
instead of reading all runs together. Read ``ROOT/runs/<the run LATEST names>/`` or `open_dataset(ROOT)`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

from kdaug import commit
from kdaug.commit import MANIFEST_FILE, SUCCESS_FILE  # noqa: F401  (the dataset's names, one place)

#: What each schema version changed; an output of an older one is refused, naming the changes since
#: (`check_version`), and regenerated (the version is part of a versioned run's key).
SCHEMA_CHANGES = {
    2: "`method` and `degree` became columns of every file, and the folders `METHOD/DEGREE`",
    3: "labelled rows gained `teacher_shift` and `teacher_flip`",
}
SCHEMA_VERSION = 3

#: The columns that say which partition a row is in; its folder is `partition_dir` of them.
PARTITION_SCHEMA = pa.schema(
    [pa.field("method", pa.string(), nullable=False), pa.field("degree", pa.float64(), nullable=False)]
)
#: The partition parsed from a shard's path (directory flavour: `METHOD/DEGREE/`), for kdaug's readers.
PARTITIONING = ds.partitioning(PARTITION_SCHEMA)

#: Columns of a shard file (and of a row as `open_dataset` reads it). `teacher_logits` is null until
#: the teacher labels the row; so are the two columns that say how far the teacher's view of a row
#: moved from its original's (the row of the same `source_id` in `original/0.00`), with p = softmax
#: of the row's logits and p_o of its original's:
#:
#: - `teacher_shift`: KL(p_o || p) in nats. The original's distribution is the reference, as the
#:   target is in a KD loss: the value is the expected extra log-loss of taking the augmented row's
#:   distribution for its original's (finite, since softmax is never 0). 0 on an original itself
#:   (KL(p || p)), so every labelled row has a value and degree 0 reads as no shift.
#: - `teacher_flip`: whether the row's argmax differs from its original's (False on an original).
#:
#: Both are null where the original has no logits (the teacher failed on its chunk: see
#: FAILED_INFERENCE_DIR). Computed in float64 from the stored float32 logits, stored as float32.
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
        pa.field("teacher_shift", pa.float32()),
        pa.field("teacher_flip", pa.bool_()),
        *PARTITION_SCHEMA,
    ]
)

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
#: The partition of the unaugmented rows (`original/0.00`): every copy's source.
ORIGINAL = "original"


def is_shard(rel: str) -> bool:
    """Whether a published file (relative to its run) is a shard of the dataset: kdaug's other files
    and folders start with `_` (which pyarrow, and so pandas, skips when it lists a folder)."""
    return not rel.startswith("_")


def format_degree(degree: float) -> str:
    """The degree as it appears in a partition directory name (two decimals)."""
    return f"{degree:.2f}"


def partition_dir(method: str, degree: float) -> str:
    """Relative directory of one (method, degree) partition."""
    return f"{method}/{format_degree(degree)}"


def partition_values(partition: str) -> dict:
    """The `method` and `degree` columns of the rows in a partition directory: the degree as its
    name rounds it, so the columns and the path always agree."""
    method, degree = partition.split("/")
    return {"method": method, "degree": float(degree)}


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
        check_version(run)
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
    return ds.FileSystemDataset(fragments, SHARD_FILE_SCHEMA, fmt)


def open_published(run) -> ds.Dataset:
    """The shard files of a `kdaug.commit.Published` run as one typed dataset, by path (kdaug's own
    readers call `run.check_current()` after reading instead of holding every file open)."""
    check_version(run)
    store = commit.Store(run.dir)
    shards = [store._path(rel) for rel in run.rels if is_shard(rel)]
    return ds.dataset(
        shards,
        format="parquet",
        partitioning=PARTITIONING,
        partition_base_dir=store.base,
        schema=SHARD_FILE_SCHEMA,
        filesystem=store.fs,
    )


class OtherSchemaVersion(commit.CommitError):
    """A dataset written with another schema version: its files are not laid out as this kdaug reads them."""


def check_version(run) -> None:
    """Refuse a published run of another schema version (one read with --allow-unfinished has no
    manifest to say: its files are read as they are)."""
    version = (run.manifest or {}).get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        since = [change for v, change in sorted(SCHEMA_CHANGES.items()) if isinstance(version, int) and v > version]
        raise OtherSchemaVersion(
            f"{run.dir} was written with schema version {version} and this kdaug reads version "
            f"{SCHEMA_VERSION}" + (f" ({'; '.join(since)})" if since else "") + ": regenerate it"
        )
