"""Cut input files into splits that any worker reads on its own, without a process holding a file.

A file's data records are numbered in order, and every `chunk_size` consecutive records make one
chunk: the unit of work and of output files, named by (file, chunk index). A split is a run of
whole chunks, stored as the byte range of their records (text formats: the range starts and ends
at record boundaries, as in Hadoop's and Beam's text sources) or their row range (Parquet), with the
line number of its first record, so its reader needs nothing from before it.

Planning streams each file once, in blocks, in the launching process (the pass that also hashes the
file for the manifest's input fingerprint), finding record ends by the rule the readers use
(`kdaug.inputs.sources.RecordEnds`: a line feed, for TSV/CSV one outside quoted fields, so a quoted
line break never cuts a split), and Parquet splits come from its footer. Chunk boundaries, and so
chunk keys, row ids and file names, depend on the file and `chunk_size` only: never on the split
size, the runner or the worker count.
Splits only group chunks so that a job has at most `MAX_SPLITS` of them (each is one element of the
pipeline's first step, and one Dask task). A split also carries how many records planning found in
it, and the job stamps each file (`Stamp`) before planning it: a file that changed after planning
fails the run (`check_unchanged`) instead of being published under the planned fingerprint.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kdaug.inputs.sources import Dialect, RecordEnds, header_columns

BLOCK_BYTES = 8 << 20
MAX_SPLITS = 1024  # per job: the pipeline's first step holds them all (a Dataflow graph is at most 10 MB)


@dataclass(frozen=True)
class Split:
    """Chunks `first_chunk` … `first_chunk + chunks - 1` of one input file."""

    path: str
    fmt: str
    start: int  # text: byte offset of the first record; Parquet: its row index (0-based)
    end: int  # text: byte offset past the last record; Parquet: past the last row
    first_line: int  # 1-based line (Parquet: row) number of the first record
    first_chunk: int
    chunks: int
    rows: int  # its records, as planned: its reader must find as many (see `check_unchanged`)
    header: bytes | None = None  # TSV/CSV: the header line, which every split needs to read its rows
    dialect: Dialect | None = None  # TSV/CSV: how the file delimits and quotes its fields


@dataclass
class FilePlan:
    """What planning learnt of one file: its splits, its data records (read, up to --max-rows) and
    the hash of all its bytes (hex digest of the planner's digest after it)."""

    path: str
    splits: list[Split]
    records: int
    sha256: str


@dataclass(frozen=True)
class Stamp:
    """A file's size and modification time. Planning takes them before it reads the file, and the job
    compares them again before it publishes: the splits, the counts and the manifest's input
    fingerprint all describe the file as planned, so a file truncated or rewritten since must fail
    the run rather than publish rows of another file under that fingerprint."""

    size: int
    mtime_ns: int


class InputChangedError(RuntimeError):
    """An input file changed after it was planned (see `Stamp`): nothing was published."""


def check_unchanged(
    path: str, planned: Stamp, now: Stamp | None, split: Split | None = None, read: int | None = None
) -> None:
    """Raise InputChangedError, naming `path` and what changed, when its stamp `now` (None: no file is
    there any more) differs from the `planned` one, or when `read` records were read of `split`
    rather than the split's planned rows."""
    changes = ["deleted"] if now is None else []
    if now is not None and now.size != planned.size:
        changes.append(f"size {planned.size:,} -> {now.size:,} bytes")
    if now is not None and now.mtime_ns != planned.mtime_ns:
        changes.append(f"modified {time.strftime('%H:%M:%S', time.localtime(now.mtime_ns / 1e9))}")
    if split is not None and read != split.rows:
        where = "row" if split.fmt == "parquet" else "line"
        changes.append(f"{read:,} rows read of the {split.rows:,} planned from {where} {split.first_line:,}")
    if changes:
        raise InputChangedError(
            f"input {path} changed while the job ran ({', '.join(changes)}): nothing was published; run again"
        )


def plan_file(
    path: str, fmt: str, chunk_size: int, max_rows: int | None, open_fn, digest=None, dialect: Dialect | None = None
) -> FilePlan:
    """Plan one file (see the module docstring); `open_fn(path)` opens it for reading (Beam's
    FileSystems.open in the job); `digest` (a hashlib object, default a new sha256) is updated with
    all its bytes; `dialect`: a TSV/CSV file's, when not the format's own. Raises ValueError naming
    the file when its header line is missing or unreadable."""
    digest = digest or hashlib.sha256()
    if fmt == "parquet":
        return _plan_parquet(path, chunk_size, max_rows, open_fn, digest)
    dialect = dialect or Dialect.of(fmt)
    limit = max_rows if max_rows is not None else np.iinfo(np.int64).max
    chunk_starts: list[tuple[int, int]] = []  # (byte offset, line number) of each chunk's first record
    header = None if dialect is not None else b""  # TSV/CSV (those with a dialect) have a header line
    head: list[bytes] = []  # the header line's pieces while it has not ended
    records = lines = offset = last_start = 0  # record starts, line feeds, bytes so far
    end = None  # the start of record number `limit`: where the planned records end
    with open_fn(path) as f:
        for piece, ends in _pieces(f, RecordEnds(dialect), digest):
            ends = ends + offset
            feeds = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10) + offset + 1
            if header is None and len(ends):  # a TSV/CSV file's first record is its header
                header = b"".join(head) + piece[: ends[0] - offset]
            elif header is None:
                head.append(piece)
            # a record starts at the file's start (no header) and after every record end
            starts = ends if offset or dialect is not None else np.concatenate([[0], ends]).astype(np.int64)
            index = records + np.arange(len(starts))
            first = (index % chunk_size == 0) & (index < limit)
            numbers = lines + np.searchsorted(feeds, starts[first], side="right") + 1
            chunk_starts += zip(starts[first].tolist(), numbers.tolist())
            records += len(starts)
            last_start = int(starts[-1]) if len(starts) else last_start
            lines += len(feeds)
            offset += len(piece)
            if (index == limit).any():
                end = int(starts[index == limit][0])
                break
        while block := f.read(BLOCK_BYTES):  # past --max-rows: hashed only
            digest.update(block)
    if header is None and not head:
        raise ValueError(f"{path}: the file is empty (no header line)")
    if header is None:  # a header line without a line feed, and no data
        header, end = b"".join(head), offset
    if dialect is not None:
        try:
            header_columns(header, dialect)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    if end is None:
        end = offset
        if records and last_start == offset:  # a record end at the very end starts no record
            records -= 1
            if chunk_starts and chunk_starts[-1][0] == offset:
                chunk_starts.pop()
    records = min(records, limit)
    found = _group(path, fmt, chunk_starts, end, header, chunk_size, records, dialect)
    return FilePlan(path, found, records, digest.hexdigest())


def _pieces(f, scanner: RecordEnds, digest) -> Iterator[tuple[bytes, np.ndarray]]:
    """The bytes of file `f`, read in blocks and hashed into `digest`, as consecutive pieces with the
    record ends in each (offsets in the piece): a piece ends where `scanner` has decided every record
    end before it, and what is left of a block, undecided, begins the next piece."""
    pending = b""
    while True:
        block = f.read(BLOCK_BYTES)
        digest.update(block)
        data = pending + block
        ends, decided = scanner.scan(data, final=not block)
        if decided:
            yield data[:decided], ends
        pending = data[decided:]
        if not block:
            return


def _group(
    path: str,
    fmt: str,
    starts: list[tuple[int, int]],
    end: int,
    header: bytes | None,
    chunk_size: int,
    records: int,
    dialect: Dialect | None = None,
) -> list[Split]:
    """Consecutive chunks grouped into at most MAX_SPLITS splits of equal chunk counts; every chunk
    holds `chunk_size` of the file's `records` (the last one the rest)."""
    per_split = max(1, -(-len(starts) // MAX_SPLITS))
    splits = []
    for first in range(0, len(starts), per_split):
        last = min(first + per_split, len(starts))
        stop = starts[last][0] if last < len(starts) else end
        rows = min(last * chunk_size, records) - first * chunk_size
        first_line = starts[first][1]
        splits.append(Split(path, fmt, starts[first][0], stop, first_line, first, last - first, rows, header, dialect))
    return splits


def _plan_parquet(path: str, chunk_size: int, max_rows: int | None, open_fn, digest) -> FilePlan:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_fn(path) as f:
        while block := f.read(BLOCK_BYTES):
            digest.update(block)
    try:
        with open_fn(path) as f:
            rows = pq.ParquetFile(f).metadata.num_rows
    except (pa.ArrowException, OSError) as err:  # not Parquet, truncated
        raise ValueError(f"{path}: not a readable Parquet file: {err}") from None
    rows = min(rows, max_rows) if max_rows is not None else rows
    starts = [(row, row + 1) for row in range(0, rows, chunk_size)]
    return FilePlan(path, _group(path, "parquet", starts, rows, None, chunk_size, rows), rows, digest.hexdigest())


def read_bytes(split: Split, open_fn) -> bytes:
    """The split's records as bytes (a text split), read by seeking: memory is the split's size."""
    with open_fn(split.path) as f:
        f.seek(split.start)
        return f.read(split.end - split.start)


def parquet_rows(split: Split, open_fn):
    """The split's rows of a Parquet file, read row group by row group (memory: one row group)."""
    import pyarrow.parquet as pq

    with open_fn(split.path) as f:
        parquet = pq.ParquetFile(f)
        first = 0
        for group in range(parquet.num_row_groups):
            count = parquet.metadata.row_group(group).num_rows
            lo, hi = max(split.start, first), min(split.end, first + count)
            if lo < hi:
                yield from parquet.read_row_group(group).slice(lo - first, hi - lo).to_pylist()
            first += count
            if first >= split.end:
                break


def open_input(path: str):
    """A local path or URI opened for reading through pyarrow's filesystems (no Beam needed)."""
    from kdaug import commit

    fs, base, _ = commit.filesystem(path)
    return fs.open_input_stream(base)


def input_fingerprint(paths: list[str], open_fn=open_input) -> str:
    """Hash of the input files' bytes: a changed input changes the manifest."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with open_fn(path) as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
