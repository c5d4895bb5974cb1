"""The engines: which runner, with which options (Dask partitions, worker processes and teacher
threads per machine), running a pipeline and reading its counters. Every command runs its graph here.
`check_pipeline_args` keeps the pass-through flags to what Beam's PipelineOptions know."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import time
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from kdaug import commit
from kdaug.beam import progress


def template_location(pipeline_args: list[str]) -> str | None:
    """Where Dataflow writes the job's graph instead of running it (a Flex Template launch), if so."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return PipelineOptions(pipeline_args).view_as(GoogleCloudOptions).template_location


class PipelineArgError(ValueError):
    """A pass-through argument that is no Beam pipeline option, or a Beam option's invalid value."""


class _OptionParser(_BeamArgumentParser):
    """Beam's parser (it has `add_value_provider_argument`, which templated options use), raising
    instead of printing argparse's usage and exiting."""

    def error(self, message):
        raise PipelineArgError(message)


def option_classes() -> list[type[PipelineOptions]]:
    """Every registered PipelineOptions subclass that declares options (subclasses of subclasses
    included; Beam's own `get_all_options` looks at direct subclasses only), DaskOptions among them
    when Dask is installed: Beam registers a class when its module is imported."""
    with contextlib.suppress(ImportError):
        import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers DaskOptions)

    found: dict[type, None] = {}
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop(0)
        if cls not in found:
            found[cls] = None
            stack.extend(cls.__subclasses__())
    return [cls for cls in found if "_add_argparse_args" in vars(cls)]


def option_parser() -> argparse.ArgumentParser:
    """The union of the argparse parsers of every PipelineOptions class (`option_classes`), parsed
    as Beam parses them: no abbreviations. A class re-declaring another's option replaces it."""
    parser = _OptionParser(allow_abbrev=False, add_help=False, conflict_handler="resolve")
    for cls in option_classes():
        cls._add_argparse_args(parser)
    return parser


def option_names() -> list[str]:
    """Every Beam pipeline option's flag, e.g. `--runner`, `--direct_num_workers`, `--labels`."""
    return sorted({name for action in option_parser()._actions for name in action.option_strings})


def dataflow_labels(pipeline_args: list[str]) -> list[str]:
    """The job labels (`--labels`/`--label`, Dataflow's) among `pipeline_args`, as Beam reads them."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return PipelineOptions(pipeline_args).view_as(GoogleCloudOptions).labels or []


def check_pipeline_args(pipeline_args: list[str], own_flags: Iterable[str] = ()) -> None:
    """Raise `PipelineArgError` for the first of `pipeline_args` (what a command passes to Beam)
    that is no option of any Beam PipelineOptions class, naming the closest of Beam's options and
    `own_flags` (the command's own), or for a Beam option's invalid value (argparse's message).
    Beam itself only logs "Unparseable argument" and runs without it."""
    parser = option_parser()
    _, unknown = parser.parse_known_args(list(pipeline_args))
    if not unknown:
        return
    arg = unknown[0]
    if not arg.startswith("-"):
        raise PipelineArgError(f"unexpected argument {arg!r} (no option takes it)")
    name = arg.split("=", 1)[0]
    # compared with `_` and `-` alike: `--max_rows` is kdaug's `--max-rows`, `--job-name` Beam's `--job_name`
    known = {s.replace("_", "-"): s for action in parser._actions for s in action.option_strings}
    known |= {flag.replace("_", "-"): flag for flag in own_flags}
    close = difflib.get_close_matches(name.replace("_", "-"), sorted(known), n=1)
    raise PipelineArgError(f"no such option {name}" + (f" (did you mean {known[close[0]]}?)" if close else ""))


#: `--runner` short names; any other value goes to Beam as it is.
RUNNERS = {
    "direct": "DirectRunner",
    "dataflow": "DataflowRunner",
    "dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
}


def pipeline_options(pipeline_args: list[str], elements: int | None = None) -> PipelineOptions:
    """Beam options from the pass-through flags: `--runner` may be a short name (direct, dask,
    dataflow); DirectRunner unless one is named (Beam's default, Prism, downloads a binary and cannot
    run offline). On Dask, a job of `elements` splits (or shards) gets `dask_partitions` partitions
    unless --dask_npartitions or --dask_partition_size say otherwise."""
    args = list(pipeline_args)
    for i, arg in enumerate(args):
        if arg == "--runner" and i + 1 < len(args):
            args[i + 1] = RUNNERS.get(args[i + 1].lower(), args[i + 1])
        elif arg.startswith("--runner="):
            args[i] = "--runner=" + RUNNERS.get(arg.split("=", 1)[1].lower(), arg.split("=", 1)[1])
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args += ["--runner", "DirectRunner"]
    options = PipelineOptions(args)
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO and not any(
        a.startswith("--default_sdk_harness_log_level") for a in args
    )
    if (
        runner_name(options) == "DirectRunner" and quiet
    ):  # its worker processes log at INFO unless told (`kdaug --verbose`)
        options = PipelineOptions(args := args + ["--default_sdk_harness_log_level", "WARNING"])
    chosen = any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args)
    if runner_name(options) == "DaskRunner" and elements and not chosen:
        options = PipelineOptions(args + ["--dask_npartitions", str(dask_partitions(options, elements))])
    return options


#: Dask partitions per worker thread: enough for the scheduler to balance uneven splits.
PARTITIONS_PER_THREAD = 4


def dask_partitions(options: PipelineOptions, elements: int) -> int:
    """Dask partitions for a job of `elements` splits: `PARTITIONS_PER_THREAD` per worker thread of
    the cluster, at most one per split.

    Beam's DaskRunner keeps its Create's partitions through every step and ends with a task-based
    shuffle for the GroupByKey, whose task count grows faster than the partitions: measured on one
    worker, 79 one-split partitions spent 27 of a job's 45 s in ~9,000 shuffle tasks. Beam's own
    default (128 elements per partition) goes the other way: a job of fewer splits is one task on
    one worker.
    """
    import os

    from apache_beam.runners.dask.dask_runner import DaskOptions

    address = options.view_as(DaskOptions).address
    if address:
        from distributed import Client

        with Client(address, timeout=60) as client:
            threads = sum(client.nthreads().values())
    else:  # the DaskRunner starts a local cluster of one worker per CPU
        threads = os.cpu_count() or 1
    return max(1, min(elements, PARTITIONS_PER_THREAD * threads))


def runner_name(options: PipelineOptions) -> str:
    """The runner's class name, e.g. DirectRunner, DaskRunner, DataflowRunner."""
    from apache_beam.options.pipeline_options import StandardOptions

    return (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]


def workers_run_here(pipeline_args: list[str]) -> bool:
    """Whether the job's workers run on this machine (the DirectRunner), so the launcher sees what
    they will see."""
    return runner_name(PipelineOptions(list(pipeline_args))) == "DirectRunner"


def processes_per_machine(options) -> int:
    """Worker processes the runner starts on one machine, as far as the launcher can tell: the
    DirectRunner's `--direct_num_workers` in multi_processing mode, one per vCPU on Dataflow (unless
    `no_use_multiple_sdk_containers`), 1 otherwise (in process; Dask, whose workers' layout kdaug
    does not know)."""
    from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, StandardOptions

    from kdaug.teacher.model import default_num_threads

    if "Dataflow" in (options.view_as(StandardOptions).runner or ""):
        single = "no_use_multiple_sdk_containers" in (options.view_as(DebugOptions).experiments or [])
        return 1 if single else 2  # one per vCPU: at least 2 on any multi-core worker
    direct = options.view_as(DirectOptions)
    if runner_name(options) != "DirectRunner" or direct.direct_running_mode != "multi_processing":
        return 1
    return direct.direct_num_workers or default_num_threads()  # 0: one per CPU


def threads_per_worker(requested: int | None, options, processes: int) -> int | None:
    """The teacher's torch threads per worker process: as requested; else 1 on Dask, whose workers
    run a thread per core between them, and on Dataflow, which runs one SDK process per vCPU unless
    told otherwise; else the CPUs shared among the DirectRunner's `processes` worker processes (each
    would otherwise take them all: 2 workers on 2 cores ran 4 threads, half as fast); else None
    (every CPU of the process)."""
    from apache_beam.options.pipeline_options import StandardOptions

    from kdaug.teacher.model import default_num_threads

    if requested:
        return requested
    if runner_name(options) == "DaskRunner":  # Dask's advice for CPU-bound work: a thread per core in all
        return 1
    if "Dataflow" in (options.view_as(StandardOptions).runner or ""):
        return None if processes == 1 else 1
    return None if processes == 1 else max(1, default_num_threads() // processes)


def _workers_leave_sigint_to_kdaug() -> None:
    """Start the DirectRunner's multi_processing SDK workers in a session of their own. In kdaug's,
    Ctrl-C would reach each of them (the terminal signals its whole foreground process group), and
    each would print a KeyboardInterrupt traceback and then its lost gRPC connection (~150 lines);
    outside it, they leave the interrupt to kdaug, which stops them (`kdaug.cli.stopped_by_signals`).
    Beam starts them with `subprocess.Popen` in `local_job_service`: that module's `subprocess` is
    wrapped once. (`start_new_session` is done in C between fork and exec; a Python `preexec_fn` would
    run gRPC's fork handlers in a threaded process, which sometimes aborted a worker at birth.)"""
    import subprocess
    import types

    from apache_beam.runners.portability import local_job_service

    if isinstance(local_job_service.subprocess, types.SimpleNamespace):
        return

    def popen(*args, **kwargs):
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(*args, **kwargs)

    local_job_service.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": popen})


def run_pipeline(
    attempt: commit.Attempt, pipeline_args: list[str], build_fn, bar=None, elements: int | None = None
) -> dict:
    """Run the pipeline `build_fn(pipeline)` builds (its last step publishes `attempt`) and return the
    published manifest with the wall time and the Beam counters added (None for a detached attempt,
    whose job runs later: a Dataflow template). `bar`: (total rows, description, partitions counted)
    of the progress bar (`kdaug.beam.progress`); `elements`: how many the job's Create holds (splits or
    shards; for `pipeline_options`).

    The counters also go to `_metrics.json` beside the published manifest, not into it: they are
    known only once the pipeline has finished, and the manifest is final once `_SUCCESS` exists.
    Runners without counters (Beam's DaskRunner) record None.
    """
    options = pipeline_options(pipeline_args, elements)
    _workers_leave_sigint_to_kdaug()
    started = time.monotonic()
    with progress.StagedRows(attempt, *bar) if bar and not attempt.detached else contextlib.nullcontext():
        with beam.Pipeline(options=options) as pipeline:
            build_fn(pipeline)
    if attempt.detached:  # only the job's graph was written; the job publishes when it runs
        return None
    manifest = commit.published(attempt.published_dir).manifest
    if manifest.get("attempt") != attempt.attempt:
        raise commit.CommitError(
            f"{attempt.published_dir} holds attempt {manifest.get('attempt')}, not {attempt.attempt}"
        )
    manifest["wall_seconds"] = time.monotonic() - started
    manifest["metrics"] = counters(pipeline.result)
    manifest["runner"] = runner_name(options)
    commit.write_metrics(
        attempt,
        {
            "attempt": attempt.attempt,
            "wall_seconds": manifest["wall_seconds"],
            "runner": manifest["runner"],
            "counters": manifest["metrics"],
        },
    )
    return manifest


def counters(result: beam.runners.runner.PipelineResult) -> dict[str, int] | None:
    """The finished pipeline's `kdaug/*` and `teacher/*` counters as {"namespace/name": value},
    summed over steps (committed values where the runner has them), and RunInference's timings
    (`teacher/*_milli_secs`, `*_micro_secs`: distributions) as their mean and max; None when the
    runner has no metrics (Beam's DaskRunner)."""
    try:
        queried = result.metrics().query()
    except NotImplementedError:
        return None
    found: dict[str, int] = {}
    for counter in queried["counters"]:
        name = counter.key.metric
        if name.namespace in ("kdaug", "teacher"):
            value = counter.committed if counter.committed is not None else counter.attempted
            key = f"{name.namespace}/{name.name}"
            found[key] = found.get(key, 0) + value
    for distribution in queried["distributions"]:
        name = distribution.key.metric
        value = distribution.committed if distribution.committed is not None else distribution.attempted
        if name.namespace == "teacher" and name.name.endswith(("_milli_secs", "_micro_secs")) and value and value.count:
            found[f"teacher/{name.name} (mean)"] = round(value.sum / value.count)
            found[f"teacher/{name.name} (max)"] = value.max
    return dict(sorted(found.items()))
