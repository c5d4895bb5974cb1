"""Stream training batches out of a kdaug output directory, without loading it whole.

A selection picks partitions (the folders `METHOD/DEGREE/`), so unselected files are never opened; the
originals (method `original`, degree 0) are mixed in or left out with one flag.

Shuffling is deterministic given (seed, epoch) and the set of files, and needs memory for one record
batch per open file plus a buffer:

1. the selected files are sorted by path, then read *interleaved*: the next record batch comes from a
   file drawn at random in proportion to its unread rows, so a small partition (the originals) is
   spread over the whole epoch instead of forming one block of it;
2. rows are permuted within a buffer of `buffer_rows`, and cut into mini-batches of similar length
   (`length_grouped`), whose order is shuffled.

A mix within ~`buffer_rows` is what a streaming reader can give; use a buffer as large as memory
allows (the default holds a few MB of short texts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from kdaug import commit
from kdaug.schema import MANIFEST_FILE, ORIGINAL, SCHEMA_VERSION, open_published, partition_dir

COLUMNS = ["text_a", "text_b", "label", "teacher_logits"]


@dataclass(frozen=True)
class Selection:
    """Which rows of an output directory to train on.

    methods / degrees: None selects every augmented method / degree; methods=() selects no
        augmented row (originals only).
    copies: use copies 0 … copies-1 of each augmented example (None: all); the amount of
        augmented data.
    originals: add the unaugmented examples.
    """

    methods: Sequence[str] | None = None
    degrees: Sequence[float] | None = None
    copies: int | None = None
    originals: bool = True

    def partition_filter(self) -> ds.Expression:
        augmented = ds.field("method") != ORIGINAL
        if self.methods is not None:
            augmented &= ds.field("method").isin(pa.array(self.methods, pa.string()))
        if self.degrees is not None:
            augmented &= ds.field("degree").isin(pa.array(self.degrees, pa.float64()))
        return augmented | (ds.field("method") == ORIGINAL) if self.originals else augmented

    def row_filter(self) -> ds.Expression:
        """The rows of the selected files to read: copies 0 … copies-1 (all when copies is None)."""
        return ds.scalar(True) if self.copies is None else ds.field("copy") < self.copies


class ShardError(ValueError):
    """Shards that must not be trained on, with what is wrong and where (file, row or manifest)."""


def check_manifest(
    runs: Iterable[commit.Published], require_teacher: bool = False, teacher: str | None = None
) -> str | None:
    """Refuse shards that would train the wrong thing; return the teacher fingerprint they record.

    Refused: another schema version (its columns may mean other things); with `require_teacher`
    (KD), an output whose manifest records no teacher (an `augment` output: nothing to distil);
    runs labelled by different teachers (their logits are not one target: a sweep's sizes are
    checked together); and, given `teacher` (the expected fingerprint, `kdaug.teacher.model.fingerprint`),
    shards of any other teacher. A run read with --allow-unfinished may have no manifest: nothing to
    compare, and the rows are still checked one by one.
    """
    found: dict[str, str] = {}  # fingerprint -> the first manifest recording it
    for run in runs:
        if run.manifest is None:
            continue
        where = f"{run.dir.rstrip('/')}/{MANIFEST_FILE}"
        version = run.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ShardError(
                f"{where}: schema_version {version!r}, but this kdaug reads version {SCHEMA_VERSION}; "
                "regenerate the output with this version"
            )
        recorded = (run.manifest.get("teacher") or {}).get("fingerprint")
        if recorded is None:
            if require_teacher:
                raise ShardError(
                    f"{where}: records no teacher, so its shards carry no teacher logits; label them "
                    "(`kdaug label`) or train on gold labels (--mode ft)"
                )
            continue
        if teacher is not None and recorded != teacher:
            raise ShardError(
                f"{where}: teacher fingerprint {recorded}, expected {teacher}: these shards were "
                "labelled by another teacher (or another version of it); relabel them with the expected one"
            )
        if found and recorded not in found:
            other, first = next(iter(found.items()))
            raise ShardError(
                f"the selected shards mix teachers: {first} records teacher fingerprint {other}, "
                f"{where} records {recorded}; label them all with one teacher"
            )
        found.setdefault(recorded, where)
    return next(iter(found), None)


def label_names(manifest: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The task's class names in class-index order, as the augment config recorded them (a `label`
    run's are in its source's manifest), so a student trained on the shards can name its classes."""
    while manifest:
        names = (manifest.get("config") or {}).get("label_names")
        if names:
            return tuple(names)
        manifest = (manifest.get("source") or {}).get("manifest")
    return None


class ShardReader:
    """Mini-batches of (text_a, text_b, label, teacher_logits) from one output directory.

    require_logits (KD): the manifest must record a teacher (and `teacher`, when given, must be its
    fingerprint; see `check_manifest`), and every selected row must carry finite teacher logits of
    one length; a bad row stops training with its file and row number (0-based, in the file) rather
    than feeding NaN into the loss. require_labels (fine-tuning): rows without a gold label are
    skipped. `self.teacher` is the fingerprint the manifest records (None without one);
    `self.label_names` the class names it records (`label_names`).
    """

    def __init__(
        self,
        path: str | Path,
        selection: Selection = Selection(),
        *,
        require_logits: bool = True,
        require_labels: bool = False,
        teacher: str | None = None,
        buffer_rows: int = 10_000,
        read_rows: int = 256,
        allow_unfinished: bool = False,
    ):
        self.path = str(path)
        self.selection = selection
        self.require_logits = require_logits
        self.buffer_rows = buffer_rows
        self.read_rows = read_rows
        self.run = commit.published(self.path, allow_unfinished)
        self.teacher = check_manifest([self.run], require_teacher=require_logits, teacher=teacher)
        dataset = open_published(self.run)
        self.label_names = label_names(self.run.manifest)
        self.fragments = sorted(dataset.get_fragments(filter=selection.partition_filter()), key=lambda f: f.path)
        self.row_filter = selection.row_filter()
        if require_labels:
            self.row_filter &= ds.field("label").is_valid()
        self.counts = [f.count_rows(filter=self.row_filter) for f in self.fragments]
        if not sum(self.counts):
            available = sorted({_partition(f) for f in dataset.get_fragments()})
            raise ShardError(f"{self.path}: no rows selected by {selection}; partitions there: {available}")
        self.width: int | None = None  # logits per row, fixed by the first checked row

    def __len__(self) -> int:
        return sum(self.counts)

    def check_current(self) -> None:
        """Raise when the output was regenerated since it was opened (`commit.Published.check_current`)."""
        self.run.check_current()

    def num_labels(self) -> int:
        """Classes: the teacher's logit width in KD (which must be the number of label names, when the
        manifest records them), else the number of label names (a class absent from a small subset
        still has its output), else the largest gold label + 1."""
        if self.require_logits:
            first = next(f for f, n in zip(self.fragments, self.counts) if n)
            width = len(first.head(1, columns=["teacher_logits"], filter=self.row_filter).column(0)[0])
            if self.label_names and len(self.label_names) != width:
                raise ShardError(
                    f"{self.path}: the teacher's logits have {width} classes but the data's labels are "
                    f"{', '.join(self.label_names)}; label it with a teacher of this task"
                )
            return width
        if self.label_names:
            return len(self.label_names)
        labels = (f.to_table(columns=["label"], filter=self.row_filter).column(0) for f in self.fragments)
        return max(pc.max(column).as_py() or 0 for column in labels) + 1

    def batches(self, batch_size: int, seed: int = 0, epoch: int = 0) -> Iterator[dict]:
        """One epoch of shuffled mini-batches: dicts of column lists (logits as a float32 array)."""
        rng = np.random.default_rng([seed, epoch])
        buffer: list[pa.Table] = []
        buffered = 0
        for table in self._interleave(rng):
            buffer.append(table)
            buffered += table.num_rows
            if buffered >= self.buffer_rows:
                rest = yield from self._emit(pa.concat_tables(buffer), batch_size, rng, final=False)
                buffer, buffered = [rest], rest.num_rows
        if buffered:
            yield from self._emit(pa.concat_tables(buffer), batch_size, rng, final=True)

    def _interleave(self, rng: np.random.Generator) -> Iterator[pa.Table]:
        """Record batches of all files, the next one from a file drawn by its unread rows."""
        streams = [self._rows(f) for f in self.fragments]
        left = np.array(self.counts, dtype=np.float64)
        while left.sum() > 0:
            i = rng.choice(len(streams), p=left / left.sum())
            table = next(streams[i], None)
            if table is None:  # fewer rows than counted: the file changed underfoot
                raise RuntimeError(f"{self.fragments[i].path} changed while being read")
            left[i] -= table.num_rows
            yield table

    def _rows(self, fragment: ds.Fragment) -> Iterator[pa.Table]:
        """Selected rows of one file, batch by batch, checked; `_row` numbers the rows in the file."""
        offset = 0
        for batch in fragment.to_batches(columns=COLUMNS + ["copy"], batch_size=self.read_rows):
            numbered = pa.Table.from_batches([batch]).append_column(
                "_row", pa.array(np.arange(offset, offset + batch.num_rows))
            )
            offset += batch.num_rows
            table = numbered.filter(self.row_filter)
            if self.require_logits:
                self._check_logits(fragment.path, table)
            yield table

    def _check_logits(self, path: str, table: pa.Table) -> None:
        logits = table.column("teacher_logits").combine_chunks()
        lengths = pc.list_value_length(logits).fill_null(0).to_numpy(zero_copy_only=False)
        if self.width is None and len(lengths):
            self.width = int(lengths[0])
        values = logits.flatten().to_numpy(zero_copy_only=False)  # null values become NaN
        bad_value = np.zeros(len(lengths), dtype=bool)
        if values.size:
            rows_of_values = np.repeat(np.arange(len(lengths)), lengths)
            bad_value[rows_of_values[~np.isfinite(values)]] = True
        bad = (lengths == 0) | (lengths != self.width) | bad_value
        if bad.any():
            i = int(np.argmax(bad))
            row = table.column("_row")[i].as_py()
            raise ShardError(
                f"{path}, row {row}: teacher_logits {logits[i].as_py()!r} are missing, not finite or not "
                f"{self.width} wide; KD needs the teacher's logits on every row (relabel the output, or use --mode ft)"
            )

    def _emit(self, table: pa.Table, batch_size: int, rng: np.random.Generator, final: bool):
        """Yield the buffer permuted, in full mini-batches of similar length (`length_grouped`) in
        random order, then, when final, the short last one; return the rows left for the next buffer."""
        table = table.take(rng.permutation(table.num_rows))
        full = table.num_rows - table.num_rows % batch_size
        chars = pc.utf8_length(table.column("text_a").slice(0, full)).to_numpy(zero_copy_only=False)
        if table.column("text_b").null_count < table.num_rows:
            chars = chars + pc.utf8_length(table.column("text_b").slice(0, full)).fill_null(0).to_numpy(
                zero_copy_only=False
            )
        batches = length_grouped(range(full), chars.__getitem__, batch_size)
        for i in rng.permutation(len(batches)):
            yield self._to_batch(table.take(batches[i]))
        if final and full < table.num_rows:
            yield self._to_batch(table.slice(full))
            return table.slice(table.num_rows)
        return table.slice(full)

    def _to_batch(self, table: pa.Table) -> dict:
        batch = table.select(["text_a", "text_b", "label"]).to_pydict()
        if self.require_logits:  # checked: all rows have `width` finite values
            values = table.column("teacher_logits").combine_chunks().flatten()
            batch["teacher_logits"] = values.to_numpy().reshape(-1, self.width)
        return batch


def length_grouped(order: Sequence[int], length, batch_size: int, window: int = 50) -> list[list[int]]:
    """`order` (already shuffled) cut into batches of rows of similar `length(row)`: each run of
    `window` batches' rows is sorted by length before it is cut. A batch then pads to about its own
    longest row — on a CPU a step costs its padded size, and random batches of short and long texts
    cost several times their real tokens — while the caller shuffles the batches' order."""
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        rows = sorted(order[start : start + span], key=length)
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    return batches


def _partition(fragment: ds.Fragment) -> str:
    keys = ds.get_partition_keys(fragment.partition_expression)
    return partition_dir(keys.get("method", "?"), keys.get("degree", math.nan))
