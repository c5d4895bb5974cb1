"""What a person sees while a job runs: one line per phase and the progress of rows done (a bar
on a terminal, timestamped lines in a log: `kdaug.logs`).

The bar is read from the attempt's staging area, not from runner counters (Beam's DaskRunner has
none, and Dataflow's arrive late): every staged shard's Parquet footer says how many rows it holds,
so polling the staging area once a second measures the same thing on every runner, local or gs://.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq

from kdaug import commit, logs


class StagedRows:
    """A progress bar of the rows in the attempt's staged files of `partitions` (all when None),
    against `total`; a context manager that polls in a thread while the job runs."""

    def __init__(
        self,
        attempt: commit.Attempt,
        total: int,
        desc: str,
        partitions: tuple[str, ...] | None = None,
        every: float = 1.0,
    ):
        self.store = commit.Store(attempt.output)
        self.prefix = attempt.staging + "/"
        self.partitions, self.every = partitions, every
        self.bar = logs.progress(total, desc, "rows", unit_scale=True, mininterval=every)
        self.counted: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kdaug-progress", daemon=True)

    def __enter__(self) -> StagedRows:
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if exc is None:  # every row is done; the last staged files were published before the last poll
            self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            self.bar.update(self._new_rows())

    def _new_rows(self) -> int:
        rows = 0
        for rel in self.store.files(self.prefix.rstrip("/")):
            if rel in self.counted or not rel.endswith(".parquet"):
                continue
            if self.partitions is not None and not rel[len(self.prefix) :].startswith(self.partitions):
                continue
            try:
                with self.store.fs.open_input_file(self.store._path(rel)) as f:
                    rows += pq.read_metadata(f).num_rows
            except (
                OSError,
                pa.ArrowException,
            ):  # still being written, or already published (moved): counted at the end
                continue
            self.counted.add(rel)
        return rows
