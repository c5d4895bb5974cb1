"""Teacher labelling as Beam's `RunInference`: `TeacherHandler` is kdaug's `ModelHandler`.

Elements are chunks, ``((partition, batch key), rows)``: a few hundred rows that one input chunk
made for one partition. `LabelChunks` hands RunInference each chunk as a batch of its own (no
`BatchElements`: it emits its last batch in `finish_bundle`, whose outputs Beam 2.77's DaskRunner
drops — measured: a whole partition of a `kdaug run` went missing), and the handler packs the
chunk's rows itself: sorted by length, in batches of at most `max_tokens` padded tokens
(`Teacher.logits`, measured ~3× faster than rows in input order). One chunk per call keeps every
batch's composition, and so every logit, independent of the runner and of how bundles fall, which
is what makes outputs byte-identical across runners.

What RunInference brings: the model loads once per process (`Shared`), or once per machine with
`share=True` (`large_model`: one process holds the teacher and the workers' SDK processes call it),
and its metrics (load time, inference latency, batch sizes) under the `teacher` namespace.

A chunk whose inference raises does not crash the job: its rows go, with the error, to
``_failed_inference/<partition>/`` (`schema.FAILED_INFERENCE_SCHEMA`), counted in the manifest, in
the same one output (Beam's tagged dead-letter outputs are not run alike by every runner: see
`kdaug.beam.augment_job`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from kdaug import schema
from kdaug.teacher.model import Teacher

Chunk = tuple[tuple[str, str], list[dict]]


class LabelChunks(beam.PTransform):
    """Chunks → labelled chunks, through `RunInference(handler)`, one chunk per inference call."""

    def __init__(self, handler: TeacherHandler):
        super().__init__()
        self.handler = handler

    def expand(self, chunks):
        return (
            chunks | "OneChunkPerCall" >> beam.Map(lambda chunk: [chunk]) | "RunInference" >> RunInference(self.handler)
        )


class TeacherHandler(ModelHandler[Chunk, Chunk, Teacher]):
    """Loads a `Teacher` and fills `teacher_logits` of a chunk's rows (raw float32 logits, as Python
    floats that hold float32 values exactly, so Parquet float32 is lossless). Rows need `text_a`
    and `text_b` (None for single sentences); a chunk may mix pairs and single sentences."""

    def __init__(
        self,
        teacher_dir: str,
        max_tokens: int | None = None,
        num_threads: int | None = None,
        quantize: str | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        share: bool = False,
    ):
        super().__init__(large_model=share)
        self.teacher_dir, self.max_tokens, self.num_threads = teacher_dir, max_tokens, num_threads
        self.quantize, self.device, self.precision = quantize, device, precision

    def load_model(self) -> Teacher:
        return Teacher.load(
            self.teacher_dir,
            self.max_tokens,
            self.num_threads,
            device=self.device,
            precision=self.precision,
            quantize=self.quantize,
        )

    def run_inference(self, batch: Sequence[Chunk], model: Teacher, inference_args=None) -> Iterable[Chunk]:
        return [label_chunk(model, chunk) for chunk in batch]

    def should_skip_batching(self) -> bool:
        return True  # `LabelChunks` makes the batches: one chunk each

    def get_num_bytes(self, batch: Sequence[Chunk]) -> int:
        return sum(len(r["text_a"]) + len(r.get("text_b") or "") for _, rows in batch for r in rows)

    def get_metrics_namespace(self) -> str:
        return "teacher"


def label_chunk(teacher: Teacher, chunk: Chunk) -> Chunk:
    """The chunk with `teacher_logits` filled, or, when inference fails, its rows under
    `_failed_inference/<partition>` with the reason."""
    (partition, key), rows = chunk
    try:
        logits = [None] * len(rows)
        pairs = [i for i, r in enumerate(rows) if r.get("text_b") is not None]
        singles = [i for i, r in enumerate(rows) if r.get("text_b") is None]
        for idx, texts_b in ((singles, None), (pairs, [rows[i]["text_b"] for i in pairs])):
            if not idx:
                continue
            out, stats = teacher.logits_with_stats([rows[i]["text_a"] for i in idx], texts_b)
            for i, row_logits in zip(idx, out.tolist()):
                logits[i] = row_logits
            for name in ("batches", "tokens", "padded_tokens"):
                Metrics.counter("teacher", name).inc(stats[name])
    except Exception as err:  # noqa: BLE001 - any failure of one chunk is that chunk's dead letter
        reason = f"{type(err).__name__}: {err}"
        logging.getLogger(__name__).warning(
            "teacher inference failed on %s/%s (%d rows): %s", partition, key, len(rows), reason
        )
        Metrics.counter("teacher", "rows_failed").inc(len(rows))
        return (f"{schema.FAILED_INFERENCE_DIR}/{partition}", key), [{**r, "reason": reason} for r in rows]
    Metrics.counter("teacher", "rows_labelled").inc(len(rows))
    return (partition, key), [{**row, "teacher_logits": lg} for row, lg in zip(rows, logits)]
