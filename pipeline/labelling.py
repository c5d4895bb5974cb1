"""Beam step that fills `teacher_logits`: one teacher per worker process, batched by token budget.

Elements are `(key, rows)` where `rows` is already a batch of a few hundred row dicts (the job
groups them, e.g. with `beam.BatchElements` or per shard), so the DoFn can sort and pack them
by length itself (`Teacher.logits`). Per-row elements would leave nothing to batch.

The model is loaded through `beam.utils.shared.Shared`: every DoFn instance (runner threads) of a
process gets the same `Teacher`, so a worker holds one copy in memory, not one per thread.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipeline.teacher import DEFAULT_MAX_TOKENS, Teacher


class LabelRows(beam.DoFn):
    """`(key, [row, ...]) -> (key, [row + teacher_logits, ...])`.

    Rows need `text_a` and `text_b` (None for single sentences); pairs and single sentences may
    be mixed in one element. Each output row is a new dict; `teacher_logits` is a list of float32
    values (Python floats that hold float32 numbers exactly, so Parquet float32 is lossless).
    """

    def __init__(self, teacher_dir: str, max_tokens: int = DEFAULT_MAX_TOKENS, num_threads: int | None = None,
                 quantize: str | None = None):
        self.teacher_dir = teacher_dir
        self.max_tokens = max_tokens
        self.num_threads = num_threads
        self.quantize = quantize
        self._shared = Shared()
        self.rows = Metrics.counter("teacher", "rows_labelled")
        self.batches = Metrics.counter("teacher", "batches")
        self.tokens = Metrics.counter("teacher", "tokens")
        self.padded_tokens = Metrics.counter("teacher", "padded_tokens")

    def setup(self):
        # The handle is pickled with the DoFn, so every copy of this DoFn in a process finds the
        # same cached Teacher; holding the reference keeps it alive while the worker runs.
        self.teacher = self._shared.acquire(
            lambda: Teacher.load(self.teacher_dir, self.max_tokens, self.num_threads, quantize=self.quantize)
        )

    def process(self, element):
        key, rows = element
        logits = [None] * len(rows)
        pairs = [i for i, r in enumerate(rows) if r.get("text_b") is not None]
        singles = [i for i, r in enumerate(rows) if r.get("text_b") is None]
        for idx, texts_b in ((singles, None), (pairs, [rows[i]["text_b"] for i in pairs])):
            if not idx:
                continue
            out, stats = self.teacher.logits_with_stats([rows[i]["text_a"] for i in idx], texts_b)
            for i, row_logits in zip(idx, out.tolist()):
                logits[i] = row_logits
            self.batches.inc(stats["batches"])
            self.tokens.inc(stats["tokens"])
            self.padded_tokens.inc(stats["padded_tokens"])
        self.rows.inc(len(rows))
        yield key, [{**row, "teacher_logits": lg} for row, lg in zip(rows, logits)]
