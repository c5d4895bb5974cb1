"""Arrow schemas of every file kdaug writes, and how to open an output directory.

This module imports no Beam, so `distill` and any Parquet consumer can rely on it.

Layout of an output directory::

    OUT/method=knn/degree=0.30/part-00000-of-00004.parquet   shard rows (SHARD_FILE_SCHEMA)
    OUT/_dead_letter/part-00000-of-00001.parquet             rejected input rows (DEAD_LETTER_SCHEMA)
    OUT/_manifest.json                                       config, fingerprints, counts
    OUT/_SUCCESS                                             written last

`method` and `degree` live in the directory names only (the Hive convention): when a column is
both in the files and in the path, pandas and pyarrow refuse to merge the two. Read a whole output
with `open_dataset`, which restores them with their declared types (ROW_SCHEMA).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

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
MANIFEST_FILE = "_manifest.json"
SUCCESS_FILE = "_SUCCESS"


def format_degree(degree: float) -> str:
    """The degree as it appears in a partition directory name (two decimals)."""
    return f"{degree:.2f}"


def partition_dir(method: str, degree: float) -> str:
    """Relative directory of one (method, degree) partition."""
    return f"method={method}/degree={format_degree(degree)}"


def shard_file_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def open_dataset(path: str) -> ds.Dataset:
    """Open a kdaug output directory (or a copy of its partition tree) as one typed dataset.

    A root of versioned runs (``ROOT/LATEST`` names the newest finished run in ``ROOT/runs/``, see
    `pipeline.versioning`) opens that run, so readers of ROOT always see one complete run; a root
    whose first run has not finished yet is refused rather than read half-written.
    """
    import os

    import pyarrow.fs as pafs

    path = os.fspath(path)
    filesystem, base = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), os.path.abspath(path))
    try:
        with filesystem.open_input_stream(f"{base}/LATEST") as f:
            path = f"{path.rstrip('/')}/runs/{f.read().decode().strip()}"
    except (FileNotFoundError, NotADirectoryError):  # not a versioned root (or a single file)
        if filesystem.get_file_info(f"{base}/runs").type != pafs.FileType.NotFound:
            raise FileNotFoundError(f"{path} has versioned runs but no LATEST: no run has finished yet") from None
    return ds.dataset(
        path,
        format="parquet",
        partitioning=PARTITIONING,
        schema=ROW_SCHEMA,
        exclude_invalid_files=False,
        ignore_prefixes=["_", "."],
    )
