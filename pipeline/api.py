"""kdaug's Python API: the jobs of the command line as functions that return a `Result`.

    import kdaug

    result = kdaug.augment("out/sst2", ["train.tsv"], task="sst2", methods=["knn", "eda"], degrees=[0.1, 0.3])
    if result.status == "published":
        table = kdaug.open_dataset(result.path).to_table()

The CLI (`kdaug.cli`) is a thin layer over these functions: the same defaults (the config
dataclasses'), the same checks and the same files. A mistake in the arguments raises `UsageError`
(a ValueError) with the one line the CLI prints, before anything is read or written; a failed run
raises the error the CLI reports, and leaves the previous output as it was (`kdaug.commit`).
Beam's pipeline options go in `pipeline_args`, as on the command line (`["--runner", "DirectRunner",
"--direct_num_workers", "2"]`); anything that is no Beam option is a UsageError.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kdaug.augmenters import REGISTRY, AugmentOptions
from kdaug.augmenters.base import CHUNK_SIZE, COPIES
from kdaug.flags import DEVICE_DEFAULT, PRECISION_DEFAULT
from kdaug.inputs import sources

#: The methods and degrees a run makes unless told (the papers' range: ~10% for fine-tuning, ~30% for KD).
DEFAULT_METHODS = ("knn", "synonym", "eda", "random", "augpro-mix")
DEFAULT_DEGREES = (0.1, 0.3, 0.5)
_OPTIONS = AugmentOptions()

Log = Callable[[str], None]


class UsageError(ValueError):
    """A mistake in what the job was asked to do (flags, inputs, outputs, teacher): the CLI's exit 2."""


@dataclass(frozen=True)
class Result:
    """What one job did.

    `status`: "published" (a new run is the output's), "unchanged" (`if_changed` found the latest run's
    key equal and skipped), "launched" (a Flex Template's graph was written: the job publishes when
    it runs) or "trained" (a student trained without an output to publish it in). `path` is where the run's files are (OUTPUT, or ROOT/runs/<run> for versioned runs),
    `run` its id (the versioned run's name, else the attempt id), `counts` the manifest's counts."""

    command: str
    status: Literal["published", "unchanged", "launched", "trained"]
    output: str
    path: str | None
    run: str | None
    counts: dict[str, Any]
    seconds: float
    message: str
    manifest: dict | None = field(default=None, repr=False)
    metrics: dict | None = field(default=None, repr=False)  # a student's metrics.json; a sweep's {"rows": …}

    def to_json(self) -> dict[str, Any]:
        """The result as `--summary-json` writes it (the manifest stays in OUTPUT/_manifest.json)."""
        return {k: v for k, v in asdict(self).items() if k not in ("manifest", "metrics")}


def _local(path: str) -> str:
    """A local path made absolute (URIs such as gs://… stay as given), so the same file named two ways
    is one input: the run key and the manifest record it the same."""
    return path if "://" in path else os.path.abspath(path)


def augment_config(
    output: str,
    inputs: Sequence[str] = (),
    *,
    task: str | None = None,
    text_field: str | None = None,
    text_b_field: str | None = None,
    label_field: str | None = None,
    label_values: Sequence[str] | None = None,
    format: str | None = None,  # noqa: A002  (the CLI's --format)
    delimiter: str | None = None,
    quoting: str | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    degrees: Sequence[float] = DEFAULT_DEGREES,
    copies: int = COPIES,
    seed: int = _OPTIONS.seed,
    knn_k: int = _OPTIONS.knn_k,
    glove_vocab: int = _OPTIONS.glove_vocab,
    mix_alpha: float = _OPTIONS.mix_alpha,
    max_rows: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    teacher: str | None = None,
    device: str = DEVICE_DEFAULT,
):
    """The `AugmentConfig` of `augment`'s arguments, checked (inputs included) before anything runs.
    `device`: where AugPro's projection and gradients run; `auto` asks torch (seconds to import) only
    when a method computes on the device."""
    from kdaug.beam.augment_job import AugmentConfig
    from kdaug.teacher.model import check_model_dir, resolve_device

    preset = task or (None if (inputs or text_field) else sources.DEFAULT_TASK)
    on_device = any(REGISTRY[m].uses_device for m in methods if m in REGISTRY)
    try:
        if teacher:
            check_model_dir(teacher, "teacher")
        made = sources.make_task(
            preset, text_field, text_b_field, label_field, _tuple(label_values), format, delimiter, quoting
        )
        paths = [_local(p) for p in inputs] or [sources.packaged_input(made)]
        options = AugmentOptions(
            seed=seed,
            teacher_dir=teacher and _local(teacher),
            knn_k=knn_k,
            glove_vocab=glove_vocab,
            mix_alpha=mix_alpha,
            device=resolve_device(device, here=False) if device != "auto" or on_device else "cpu",
        )
        config = AugmentConfig(
            paths, output, made, list(methods), [float(d) for d in degrees], copies, options, chunk_size, max_rows
        )
        config.validate()
    except (ValueError, OSError) as err:
        raise UsageError(str(err)) from None
    return config


def label_config(
    teacher: str,
    pipeline_args: Sequence[str] = (),
    *,
    max_tokens: int | None = None,
    teacher_threads: int | None = None,
    quantize: str | None = None,
    device: str = DEVICE_DEFAULT,
    precision: str = PRECISION_DEFAULT,
    share_teacher: Literal["auto", "yes", "no"] = "auto",
):
    """The `LabelConfig` of the teacher's arguments (`run`, `label`), checked before anything starts."""
    from kdaug.beam.engines import pipeline_options, processes_per_machine, threads_per_worker
    from kdaug.beam.label_job import LabelConfig
    from kdaug.teacher.model import resolve_device

    try:
        device = resolve_device(device, here=False)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    if quantize and (device != "cpu" or precision == "bf16"):
        raise UsageError(
            f"--quantize {quantize} runs on the CPU in fp32 only (asked: --device {device} --precision {precision})"
        )
    if share_teacher not in ("auto", "yes", "no"):
        raise UsageError(f"share_teacher must be auto, yes or no, got {share_teacher!r}")
    options = pipeline_options(list(pipeline_args))
    processes = processes_per_machine(options)
    return LabelConfig(
        _local(teacher),
        max_tokens,
        quantize,
        threads_per_worker(teacher_threads, options, processes),
        device,
        precision,
        processes > 1 if share_teacher == "auto" else share_teacher == "yes",
    )


def augment(
    output: str,
    inputs: Sequence[str] = (),
    *,
    versioned: bool = False,
    if_changed: bool = False,
    keep: int | None = None,
    pipeline_args: Sequence[str] = (),
    log: Log | None = None,
    **options: Any,
) -> Result:
    """`kdaug augment`: OUTPUT/METHOD/DEGREE/part-*.parquet for each method × degree × copy of the
    inputs' rows, plus the originals. `options` are `augment_config`'s (task, fields, methods, degrees,
    copies, seed, …)."""
    from kdaug import versioning
    from kdaug.beam.augment_job import run_augment

    args = _beam_args(pipeline_args)
    config = augment_config(output, inputs, **options)
    _check_resources(config, args)
    return _execute(
        "augment",
        config.output,
        config.inputs,
        lambda attempt: run_augment(config, args, attempt),
        lambda: versioning.augment_key(config),
        versioned,
        if_changed,
        keep,
        args,
        log,
    )


def run(
    output: str,
    inputs: Sequence[str] = (),
    *,
    teacher: str,
    max_tokens: int | None = None,
    teacher_threads: int | None = None,
    quantize: str | None = None,
    precision: str = PRECISION_DEFAULT,
    share_teacher: Literal["auto", "yes", "no"] = "auto",
    versioned: bool = False,
    if_changed: bool = False,
    keep: int | None = None,
    pipeline_args: Sequence[str] = (),
    log: Log | None = None,
    **options: Any,
) -> Result:
    """`kdaug run`: augment and label with `teacher` in one pipeline; every row gets `teacher_logits`."""
    from kdaug import versioning
    from kdaug.beam.augment_job import run_augment
    from kdaug.teacher.model import check_teacher

    args = _beam_args(pipeline_args)
    config = augment_config(output, inputs, teacher=teacher, **options)
    _check_resources(config, args)
    check_teacher(teacher, config.task.labels)  # a ModelDirError (a ValueError) names what is wrong
    label = label_config(
        teacher,
        args,
        max_tokens=max_tokens,
        teacher_threads=teacher_threads,
        quantize=quantize,
        device=options.get("device", DEVICE_DEFAULT),
        precision=precision,
        share_teacher=share_teacher,
    )
    return _execute(
        "run",
        config.output,
        config.inputs,
        lambda attempt: run_augment(config, args, attempt, label),
        lambda: versioning.augment_key(config, label),
        versioned,
        if_changed,
        keep,
        args,
        log,
    )


def label(
    source: str,
    output: str,
    *,
    teacher: str,
    versioned: bool = False,
    if_changed: bool = False,
    keep: int | None = None,
    pipeline_args: Sequence[str] = (),
    log: Log | None = None,
    **teacher_options: Any,
) -> Result:
    """`kdaug label`: the published run at `source` (a plain output, or a versioned root's LATEST run)
    with the teacher's logits added to every row, at OUTPUT. `teacher_options` are `label_config`'s."""
    from kdaug import commit, versioning
    from kdaug.beam.label_job import run_label
    from kdaug.teacher.model import check_teacher

    args = _beam_args(pipeline_args)
    try:
        published = commit.published(source)
    except commit.UnfinishedOutput as err:
        raise UsageError(f"--input {err}") from None
    source_manifest = published.manifest
    assert source_manifest is not None  # a finished run's (`published` refuses an unfinished one)
    check_teacher(teacher, (source_manifest.get("config") or {}).get("labels"))
    config = label_config(teacher, args, **teacher_options)
    return _execute(
        "label",
        output,
        [source],
        lambda attempt: run_label(source, config, args, attempt),
        lambda: versioning.label_key(source_manifest, config),
        versioned,
        if_changed,
        keep,
        args,
        log,
    )


def distill(
    data: str,
    output: str | None = None,
    *,
    methods: Sequence[str] | None = None,
    degrees: Sequence[float] | None = None,
    copies: int | None = None,
    originals: bool = True,
    originals_only: bool = False,
    dev: str | Sequence | None = None,
    test: str | Sequence | None = None,
    teacher: str | None = None,
    allow_unfinished: bool = False,
    **training: Any,
) -> Result:
    """`kdaug distill`: a student trained on the labelled output `data` (KD on the teacher's logits,
    or `mode="ft"` on gold labels), published whole at `output` when given. `methods`, `degrees`
    and `copies` select partitions (default: all); `dev`/`test` are labelled files (or `Example`s);
    `teacher` a directory whose fingerprint the shards must carry; `training` is `DistillConfig`'s
    (student, lr, temperature, alpha, max_steps, …). The metrics are `Result.metrics`."""
    from kdaug.distillation.shards import Selection
    from kdaug.distillation.train import distill as train

    config = _distill_config(training)
    selection = Selection(
        methods=() if originals_only else _list(methods),
        degrees=None if degrees is None else [float(d) for d in degrees],
        copies=copies,
        originals=originals or originals_only,
    )
    started = time.monotonic()
    metrics = train(
        data,
        selection,
        config,
        dev=_examples(dev, data),
        out_dir=output,
        teacher=_fingerprint(teacher),
        allow_unfinished=allow_unfinished,
        test=_examples(test, data),
    )
    seconds = round(time.monotonic() - started, 3)
    counts = {"train_rows": int(metrics["train_rows"]), "steps": int(metrics["steps"])}
    status: Literal["published", "trained"] = "published" if output else "trained"
    message = f"student published at {output}" if output else "student trained (no output given)"
    return Result("distill", status, data, output, None, counts, seconds, message, metrics=metrics)


def sweep(
    data: dict[int, str | Path],
    output: str,
    *,
    dev: str | Sequence,
    methods: Sequence[str],
    degrees: Sequence[float] = (0, 0.1, 0.3, 0.5, 0.7),
    modes: Sequence[str] = ("kd", "ft"),
    copies: Sequence[int] = (1,),
    seeds: Sequence[int] = (0, 1),
    test: str | Sequence | None = None,
    teacher: str | None = None,
    keep_models: bool = False,
    jobs: int = 1,
    allow_unfinished: bool = False,
    **training: Any,
) -> Result:
    """`kdaug sweep`: students over sizes × modes × methods × degrees × copies × seeds, `data` mapping each
    size to its labelled output; OUTPUT/results.csv (resumable, keyed on the training config and the
    data's runs), results.md and the plots. `Result.metrics["rows"]` are the report's rows."""
    from kdaug.distillation.loss import MODES
    from kdaug.distillation.sweep import grid
    from kdaug.distillation.sweep import sweep as train_grid

    if unknown := set(modes) - set(MODES):
        raise UsageError(f"unknown mode(s) {sorted(unknown)}: use {', '.join(MODES)}")
    cells = grid(sorted(data), list(modes), list(methods), [float(d) for d in degrees], list(copies), list(seeds))
    started = time.monotonic()
    rows = train_grid(
        data,
        _examples(dev, str(data[min(data)])),
        output,
        cells,
        _distill_config(training),
        teacher,
        keep_models,
        allow_unfinished=allow_unfinished,
        test=_examples(test, str(data[min(data)])),
        jobs=jobs,
    )
    seconds = round(time.monotonic() - started, 3)
    message = f"{len(rows)} results of this training config in {output}/results.csv"
    return Result(
        "sweep", "published", output, output, None, {"results": len(rows)}, seconds, message, metrics={"rows": rows}
    )


def _distill_config(training: dict):
    from kdaug.distillation.train import DistillConfig

    try:
        return DistillConfig(**training)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def _examples(source: str | Sequence | None, data: str):
    """A labelled file's examples (`read_labelled`, with the task of the labelled output DATA), or
    the examples given."""
    from kdaug.distillation.evaluate import read_labelled

    if not isinstance(source, (str, os.PathLike)):
        return source
    try:
        return read_labelled(os.fspath(source), data)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _fingerprint(teacher: str | None) -> str | None:
    from kdaug.teacher.model import fingerprint

    return fingerprint(teacher) if teacher else None


def _list(values: Sequence[str] | str | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)


def _execute(
    command: str,
    output: str,
    inputs: list[str],
    run_fn,
    key_fn,
    versioned: bool,
    if_changed: bool,
    keep: int | None,
    pipeline_args: list[str],
    log: Log | None,
) -> Result:
    """Write OUTPUT (or a new versioned run under it) under the commit protocol (`kdaug.commit`):
    refuse a target kdaug must not write, take the output's lease, `run_fn(attempt) -> manifest`
    stages and publishes. `key_fn()` gives the run key (`if_changed` only). With --template_location
    (a Flex Template launch) only the job's graph is written here: the job holds the lease from then
    on and publishes when it runs."""
    from kdaug import commit, versioning
    from kdaug.beam.engines import template_location

    log = log or (lambda message: None)
    started = time.monotonic()
    versioned = versioned or if_changed or keep is not None
    if if_changed:
        unchanged, why = versioning.compare(output, key_fn())
        log(f"{why}, skipping" if unchanged else why)
        if unchanged:
            run = commit.published(output)
            latest: dict[str, Any] = dict(run.manifest or {})
            name = commit.latest(commit.Store(output))
            return Result(command, "unchanged", output, run.dir, name, dict(latest["counts"]), 0.0, why, latest)
    template = template_location(pipeline_args)
    manifest = commit.write(output, command, inputs, run_fn, versioned, keep, log, detached=template is not None)
    seconds = round(time.monotonic() - started, 3)
    if template is not None:
        message = (
            f"job graph written to {template}: the job holds the lease of {output} and publishes it when it finishes"
        )
        log(message)
        return Result(command, "launched", output, None, None, {}, seconds, message)
    path = f"{output.rstrip('/')}/{commit.RUNS_DIR}/{manifest['run']}" if versioned else output
    if versioned:
        log(
            f"{output.rstrip('/')}/LATEST → {manifest['run']}"
            + ("" if keep is None else f" (keeping {keep} published runs)")
        )
    run_id = manifest["run"] if versioned else manifest["attempt"]
    return Result(
        command, "published", output, path, run_id, dict(manifest["counts"]), seconds, f"published {path}", manifest
    )


def _check_resources(config, pipeline_args: list[str]) -> None:
    """On the DirectRunner, whose workers are this machine, each method's resources (`Augmenter.check`);
    a launcher for remote workers (Dataflow, a Dask cluster) may lack what their image holds."""
    from kdaug.augmenters import create
    from kdaug.beam.engines import workers_run_here

    if not workers_run_here(pipeline_args):
        return
    for method in config.methods:
        try:
            create(method, config.options).check()
        except OSError as err:
            raise UsageError(f"{method}: {err}") from None


def _beam_args(pipeline_args: Sequence[str]) -> list[str]:
    """Beam's options as given, each checked to be one (Beam itself would only log and ignore it)."""
    from kdaug.beam.engines import PipelineArgError, check_pipeline_args

    args = [str(a) for a in pipeline_args]
    try:
        check_pipeline_args(args)
    except PipelineArgError as err:
        raise UsageError(str(err)) from None
    return args


def _tuple(values: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(v.strip() for v in values.split(",")) if isinstance(values, str) else tuple(values)


class Augmenter:
    """One augmentation method applied to texts in memory, the way nlpaug's and TextAttack's
    augmenters are used::

        kdaug.Augmenter("knn").augment("a gripping, funny film", degree=0.3, n=4)  # 4 texts

    Each text's edits are the pipeline's: its seed, source id, method, degree and copy decide them
    (`kdaug.augmenters.seeding`), so a text given with the source id the pipeline gave it (`<file
    stem>-<line>`, the `source_id` of every row) comes back exactly as its rows in the shards. The
    AugPro methods pair and batch texts within what one call is given, as within a pipeline chunk.
    `options` are `AugmentOptions`' (knn_k, glove_vocab, mix_alpha, teacher_dir, device)."""

    def __init__(self, method: str, *, seed: int = _OPTIONS.seed, **options: Any):
        from kdaug.augmenters import create

        try:
            self.method = create(method, AugmentOptions(seed=seed, **options))
        except (TypeError, ValueError) as err:
            raise UsageError(str(err)) from None
        self._ready = False

    def augment(
        self, texts: str | Sequence[str], degree: float = 0.3, n: int = 1, source_ids: str | Sequence[str] | None = None
    ) -> list[str] | list[list[str]]:
        """`n` augmented copies of a text (a list of `n` strings), or of each of a list of texts (a
        list of such lists). `source_ids` default to "text-<i>" (the i-th text)."""
        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else list(texts)
        ids = [source_ids] if isinstance(source_ids, str) else source_ids or [f"text-{i}" for i in range(len(batch))]
        if len(ids) != len(batch) or not 0 < degree <= 1 or n < 1:
            raise UsageError("one source id per text, a degree in (0, 1] and n ≥ 1 are needed")
        if not self._ready:
            self.method.setup()
            self._ready = True
        examples = [{"source_id": i, "text_a": t, "text_b": None, "label": None} for i, t in zip(ids, batch)]
        copies = [self.method.augment_chunk(examples, degree, copy) for copy in range(n)]
        out = [[rows[k]["text_a"] for rows in copies] for k in range(len(batch))]
        return out[0] if single else out
