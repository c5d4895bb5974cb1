"""Teacher labelling as Beam's `RunInference`: `TeacherHandler` is kdaug's `ModelHandler`.

Elements are groups: one input chunk's rows of every partition, as a list of chunks
``((partition, batch key), rows)`` (a few hundred rows each), the chunk of originals among them.
`LabelGroups` hands RunInference each group as a batch of its own (no `BatchElements`: it emits its
last batch in `finish_bundle`, whose outputs Beam 2.77's DaskRunner drops — measured: a whole
partition of a `kdaug run` went missing), and the handler labels the group's chunks one by one,
packing each chunk's rows itself: sorted by length, in batches of at most `max_tokens` padded tokens
(`Teacher.logits`, measured ~3× faster than rows in input order). One chunk per packing keeps every
batch's composition, and so every logit, independent of the runner and of how bundles fall, which
is what makes outputs byte-identical across runners.

A group holds every row's original, so once its chunks are labelled each row gets `teacher_shift`
and `teacher_flip` against its original's logits (`schema.SHARD_FILE_SCHEMA`) right there: no join
across the corpus, and the values depend on the group's logits only, so they are as deterministic.

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
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from kdaug import schema
from kdaug.teacher.model import Teacher

Chunk = tuple[tuple[str, str], list[dict]]
#: One input chunk's rows of every partition: its originals' chunk and the chunks made from them.
Group = list[Chunk]

ORIGINALS = schema.partition_dir(schema.ORIGINAL, 0.0)
FAILED_ORIGINALS = f"{schema.FAILED_INFERENCE_DIR}/{ORIGINALS}"


class LabelGroups(beam.PTransform):
    """Groups → labelled groups, through `RunInference(handler)`, one group per inference call."""

    def __init__(self, handler: TeacherHandler):
        super().__init__()
        self.handler = handler

    def expand(self, groups):
        return (
            groups | "OneGroupPerCall" >> beam.Map(lambda group: [group]) | "RunInference" >> RunInference(self.handler)
        )


class TeacherHandler(ModelHandler[Group, Group, Teacher]):
    """Loads a `Teacher` and fills `teacher_logits` of a group's rows (raw float32 logits, as Python
    floats that hold float32 values exactly, so Parquet float32 is lossless), then their shift from
    their originals. Rows need `text_a` and `text_b` (None for single sentences); a chunk may mix
    pairs and single sentences."""

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

    def run_inference(self, batch: Sequence[Group], model: Teacher, inference_args=None) -> Iterable[Group]:
        return [with_shift([label_chunk(model, chunk) for chunk in group]) for group in batch]

    def should_skip_batching(self) -> bool:
        return True  # `LabelGroups` makes the batches: one group each

    def get_num_bytes(self, batch: Sequence[Group]) -> int:
        return sum(len(r["text_a"]) + len(r.get("text_b") or "") for group in batch for _, rows in group for r in rows)

    def get_metrics_namespace(self) -> str:
        return "teacher"


def label_chunk(teacher: Teacher, chunk: Chunk) -> Chunk:
    """The chunk with `teacher_logits` filled, or, when inference fails, its rows under
    `_failed_inference/<partition>` with the reason and no teacher values (a relabelled row's
    earlier ones were another teacher's)."""
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
        unlabelled = {"teacher_logits": None, "teacher_shift": None, "teacher_flip": None, "reason": reason}
        return (f"{schema.FAILED_INFERENCE_DIR}/{partition}", key), [{**r, **unlabelled} for r in rows]
    Metrics.counter("teacher", "rows_labelled").inc(len(rows))
    return (partition, key), [{**row, "teacher_logits": lg} for row, lg in zip(rows, logits)]


def with_shift(group: Group) -> Group:
    """The labelled group with `teacher_shift` and `teacher_flip` on every labelled row (an original's
    against itself: 0 and False); null where the original's chunk failed. A row whose original is not
    in the group at all means the group was cut wrong: that raises, rather than writing nulls."""
    originals: dict[str, list[float] | None] = {}  # source id -> its original's logits (None: failed)
    for (partition, _), rows in group:
        if partition in (ORIGINALS, FAILED_ORIGINALS):
            originals.update((r["source_id"], r["teacher_logits"] if partition == ORIGINALS else None) for r in rows)
    out = []
    for (partition, key), rows in group:
        if partition.startswith(schema.FAILED_INFERENCE_DIR + "/"):
            out.append(((partition, key), rows))
            continue
        missing = sorted({r["source_id"] for r in rows} - originals.keys())
        if missing:
            raise ValueError(f"{partition}/{key}: no original of source {missing[0]} in its group of chunks")
        known = [i for i, r in enumerate(rows) if originals[r["source_id"]] is not None]
        shift, flip = [None] * len(rows), [None] * len(rows)
        if known:
            kl, flipped = teacher_shift(
                np.array([originals[rows[i]["source_id"]] for i in known], np.float32),
                np.array([rows[i]["teacher_logits"] for i in known], np.float32),
            )
            for i, s, f in zip(known, kl.tolist(), flipped.tolist()):
                shift[i], flip[i] = s, f
        out.append(
            ((partition, key), [{**r, "teacher_shift": s, "teacher_flip": f} for r, s, f in zip(rows, shift, flip)])
        )
    return out


def teacher_shift(original: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, KL(softmax(original) || softmax(logits)) in nats (float64 inside, float32 out,
    never below 0) and whether the argmax differs: the `teacher_shift` and `teacher_flip` columns."""
    log_p, log_q = _log_softmax(original), _log_softmax(logits)
    kl = np.maximum((np.exp(log_p) * (log_p - log_q)).sum(axis=1), 0.0)
    return kl.astype(np.float32), original.argmax(axis=1) != logits.argmax(axis=1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))
