"""The `kdaug` command line.

Application flags are click options; the other flags of `augment`, `run` and `label` (``--runner``,
``--direct_num_workers``, Dataflow's ``--project/--region/--temp_location`` …) pass straight
through to Beam, as in Beam's own examples, but only Beam's pipeline options do: any other flag is
a usage error naming the closest known option (`BeamCommand`). The group's flags (``--verbose``,
``--debug``) may also follow the command.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import click

from kdaug import logs

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load from local paths only, never from a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's C core writes straight to stderr


#: Libraries whose INFO lines (and Beam's logged tracebacks of a failing step, which kdaug reports
#: itself) a person does not need; `--verbose` shows them.
CHATTY = ("apache_beam", "distributed", "dask", "tornado", "faiss", "absl", "urllib3")
#: Where Beam logs a Dataflow job's id and console URL, and how those lines begin.
DATAFLOW_SUBMIT_LOGGER = "apache_beam.runners.dataflow.internal.apiclient"
DATAFLOW_JOB_LINES = ("Created job with id", "To access the Dataflow monitoring console")
#: Root-logger warnings Beam prints on import that say nothing about the job.
IMPORT_NOISE = ("apitools not found",)


def configure_logging(verbose: bool = False) -> None:
    """Warnings and errors of kdaug and the libraries on stderr, their chatter only when `verbose`.
    Done before Beam is imported: a module-level `logging.warning` would otherwise install Python's
    default handler."""
    root = logging.getLogger()
    handler = logging.StreamHandler()
    stamp = "" if logs.on_terminal() else "%(asctime)s "  # a log file's lines say when (`kdaug.logs`)
    formatter = logging.Formatter(stamp + "%(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    if not verbose:
        handler.addFilter(lambda record: not str(record.msg).startswith(IMPORT_NOISE))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if verbose else logging.CRITICAL if name == "apache_beam" else logging.ERROR
        )
    # Dataflow's job id and console URL, among Beam's hidden INFO lines: a person needs them, and
    # Airflow's Dataflow hook reads the job id from them
    submitted = logging.getLogger(DATAFLOW_SUBMIT_LOGGER)
    submitted.setLevel(logging.NOTSET if verbose else logging.INFO)
    submitted.filters[:] = [] if verbose else [lambda record: str(record.msg).startswith(DATAFLOW_JOB_LINES)]
    # transformers' "Loading weights" bars, once per model load and worker (read when it is imported,
    # and inherited by worker processes); kdaug's own bars are not Hugging Face's
    if verbose:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    else:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


configure_logging()

from kdaug import report
from kdaug.augmenters import REGISTRY, AugmentOptions
from kdaug.augmenters.base import CHUNK_SIZE, COPIES
from kdaug.flags import comma_list_of, device_option, input_options, precision_option
from kdaug.inputs import sources
from kdaug.teacher.model import QUANTIZE_CHOICES

BEAM_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}
#: The group's flags, which may also follow the command (`kdaug augment ... --verbose`).
GLOBAL_FLAGS = ("--verbose", "-v", "--debug")


def hoist_global_flags(args: list[str]) -> list[str]:
    """`args` with the group's flags that follow the command moved in front of it: `kdaug augment
    ... --verbose` is `kdaug --verbose augment ...` (the group's flags take no value, so the command
    is the first argument that is no flag). Nothing after `--` moves."""
    command = next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))
    rest = args[command:]
    end = rest.index("--") if "--" in rest else len(rest)
    flags = [arg for arg in rest[:end] if arg in GLOBAL_FLAGS]
    return [*args[:command], *flags, *(arg for arg in rest[:end] if arg not in GLOBAL_FLAGS), *rest[end:]]


class BeamCommand(click.Command):
    """A command that passes the flags it does not know to Beam (`ctx.args`), each checked to be one
    of Beam's pipeline options (`kdaug.beam.engines.check_pipeline_args`: every PipelineOptions
    class's, whatever the runner) with a value Beam accepts. Anything else is a usage error naming
    the closest known flag, the command's or Beam's: Beam itself only logs "Unparseable argument"
    and runs without it, so `--copie 1` would run the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs["context_settings"] = {**BEAM_PASSTHROUGH, **(kwargs.get("context_settings") or {})}
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx, args):
        try:
            rest = super().parse_args(ctx, list(args))
        except click.MissingParameter:
            # a misspelt required flag (`--ouput`) reads as a missing one: name the misspelling first
            try:
                _, leftover, _ = self.make_parser(ctx).parse_args(args=list(args))
            except click.UsageError:
                leftover = []
            self.check_pipeline_args(ctx, leftover)
            raise
        self.check_pipeline_args(ctx, rest)
        return rest

    def check_pipeline_args(self, ctx, pipeline_args: list[str]) -> None:
        if not pipeline_args or ctx.resilient_parsing:
            return
        from kdaug.beam.engines import PipelineArgError, check_pipeline_args, dataflow_labels

        contexts = [c for c in (ctx, ctx.parent) if c is not None]
        own = [opt for c in contexts for p in c.command.get_params(c) for opt in (*p.opts, *p.secondary_opts)]
        try:
            check_pipeline_args(pipeline_args, own)
        except PipelineArgError as err:
            raise click.UsageError(str(err)) from None  # no ctx: the one line, without the usage
        if any(p.name == "labels" for p in self.params):  # `--label-values`, once `--labels`
            for label in dataflow_labels(pipeline_args):
                if "=" not in label and not label.lstrip().startswith("{"):  # no Dataflow label
                    raise click.UsageError(
                        f"--labels {label}: --labels are the Dataflow job's labels (key=value); "
                        "the class values are --label-values"
                    )


class StageGroup(click.Group):
    """The `kdaug` group. The teacher and distill stages own their commands, imported when one of
    them is used (or listed by --help): their modules import torch and transformers, seconds that
    `kdaug augment` need not pay.

    Errors: a user's mistake (flags, inputs, outputs, teacher) is a usage error (exit 2) and any
    other failure a run error (exit 1), each shown as its message alone; the traceback only with
    `kdaug --debug` or KDAUG_DEBUG=1.
    """

    STAGE_COMMANDS = {
        "teacher": "kdaug.teacher.train:teacher",
        "distill": "kdaug.distillation.cli:distill_command",
        "evaluate": "kdaug.distillation.cli:evaluate_command",
        "sweep": "kdaug.distillation.cli:sweep_command",
    }

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.STAGE_COMMANDS])

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_flags(list(args)))

    def get_command(self, ctx, name):
        if name not in self.STAGE_COMMANDS:
            return super().get_command(ctx, name)
        import importlib

        module, attr = self.STAGE_COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        with STOP as stop:
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as err:  # (`Stopped` is no Exception: it passes to STOP)
                if stop.signum is not None:  # Beam re-raised the interrupt as its own error
                    raise Stopped(stop.signum) from None
                if ctx.params.get("debug") or os.environ.get("KDAUG_DEBUG"):
                    raise
                raise user_error(err) from None


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: unwinds like Ctrl-C (the commit protocol's cleanup runs: staged
    files removed, the lease released), then the command ends with one line and 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class stopped_by_signals:
    """Within it, SIGINT and SIGTERM raise `Stopped` in the main thread (Python's default would print
    a KeyboardInterrupt traceback for one and nothing for the other). The command's worker processes
    (Beam's multi_processing SDK workers) are killed when the signal arrives, and again on the way
    out, before they print their lost connections; one line says what happened and what the output
    was left as. The previous handlers come back afterwards."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> stopped_by_signals:
        self.signum: int | None = None
        self.notes: list[str] = []  # what the command said while it stopped (`echo_err`), for the line
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._raise) for s in self.SIGNALS}
        return self

    def _raise(self, signum, frame):
        if self.signum is None:  # the first: later ones (a second Ctrl-C) must not cut the cleanup
            self.signum = signum
            # the command ends: its worker processes go first, before they notice and print it, and
            # Beam's threads, finding them gone, say nothing new
            threading.excepthook = lambda args: None
            kill_children()
            raise Stopped(signum)

    def __exit__(self, exc_type, exc, tb):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if not isinstance(exc, Stopped):
            return False
        kill_children()  # any a runner thread started while the command unwound
        name = signal.Signals(exc.signum).name
        # what the output was left as (`commit.Writer`: a note on the interrupt, or a line it logged)
        outcome = "; ".join([*getattr(exc, "__notes__", ()), *self.notes])
        click.echo(logs.stamp(f"kdaug: stopped by {name}" + (f": {outcome}" if outcome else "")), err=True)
        raise click.exceptions.Exit(128 + exc.signum)


#: The command's signal handling (one command runs per process; `kdaug.cli.echo_err` consults it).
STOP = stopped_by_signals()


def kill_children() -> None:
    """SIGKILL the processes this one started (and theirs), so none outlives the command or prints
    a traceback of its lost parent."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


def user_error(err: BaseException) -> click.ClickException:
    """The one- or two-line error a person sees for `err`: a usage error (exit 2) for what the user
    can fix in the command, else a run error (exit 1). Beam wraps a step's exception in its own (with
    the worker's traceback as text): its last line is the message that matters."""
    from kdaug import api, commit
    from kdaug.beam import sinks
    from kdaug.inputs import splits

    if isinstance(err, api.UsageError):
        return click.UsageError(str(err))
    message = _root_message(err)
    if commit.disk_full(err):
        return click.ClickException(
            f"{message}: the disk is full; this run's staged files were removed, free space "
            "and run again (a killed run's are reclaimed by the next run or `kdaug recover`)"
        )
    if isinstance(err, (commit.UnfinishedOutput, commit.TargetRefused, FileNotFoundError, IsADirectoryError)):
        return click.UsageError(message)
    explained = (
        commit.CommitError,
        commit.LeaseLost,
        commit.DamagedState,
        sinks.NoUsableRows,
        splits.InputChangedError,
    )
    # a worker's error reaches here as Beam's text: its class is named there
    if not isinstance(err, explained) and not any(f"{cls.__name__}: " in str(err) for cls in explained):
        message += "\n(for the traceback: kdaug --debug COMMAND ..., or KDAUG_DEBUG=1)"
    return click.ClickException(message)


def _root_message(err: BaseException) -> str:
    import re

    text = str(err).strip() or type(err).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [
        m
        for line in lines
        if (m := re.match(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Busy|Output|Rows)): (.+)$", line.strip()))
    ]
    message = errors[-1].group(2) if len(lines) > 1 and errors else lines[0] if len(lines) > 1 else text
    return re.sub(r" \[while running '[^']*'\]$", "", message)


@click.group(cls=StageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kdaug")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error (also KDAUG_DEBUG=1).")
@click.option("--verbose", "-v", is_flag=True, help="Show the INFO logs of Beam, Dask, faiss and the other libraries.")
def main(debug, verbose):
    """kdaug: augmented corpora for knowledge distillation (KD) of text classifiers.

    \b
    The flow (each step is one command; `kdaug COMMAND --help` explains it):
      kdaug teacher train   fine-tune the teacher on the task (offline base model)
      kdaug augment         augmented copies of a labelled dataset, several methods x degrees
      kdaug label           add the teacher's logits (soft labels) to those shards
      kdaug run             augment + label in one Beam pipeline
      kdaug distill         train a small student from the shards (KD or plain fine-tuning)
      kdaug sweep           students over methods x degrees x sizes x seeds: table + plots
      kdaug inspect         partitions, counts, measured changed_frac, sample rows
      kdaug evaluate        accuracy (and F1) of a model directory on a labelled file
      kdaug recover         finish or clean up what a killed run left in an output

    \b
    Outputs: OUT/METHOD/DEGREE/part-*.parquet (`method` and `degree` also columns of every file),
    OUT/_manifest.json and, last, OUT/_SUCCESS; pandas, pyarrow.dataset, DuckDB, polars and HF
    datasets read them as they are, with the same types (README, Output). A run stages
    its files and publishes them in one step at the end: a failed run leaves the previous output
    as it was, and a second writer on the same output is refused (README, Guarantees).
    Degree = fraction of a text's words changed. KD tolerates, and profits from, larger shifts
    than fine-tuning: best ~30% for KD vs ~10% for fine-tuning; smaller datasets want more.
    """
    configure_logging(verbose or debug or bool(os.environ.get("KDAUG_DEBUG")))


#: The method parameters' defaults, as the config dataclasses declare them.
OPTIONS = AugmentOptions()


def augment_options(fn):
    """The flags `augment` and `run` share (what to read, which methods, degrees and copies)."""
    options = [
        click.option(
            "--input",
            "inputs",
            multiple=True,
            help="Input file (TSV/CSV/JSONL/Parquet/TREC; local or gs://). Repeat for several. Default: the task's packaged data.",
        ),
        click.option(
            "--output",
            required=True,
            help="Output directory: replaced whole when the run succeeds, untouched when it fails; complete when OUT/_SUCCESS exists. Must be new, empty or a kdaug output.",
        ),
        click.option(
            "--task",
            "task_name",
            default=None,
            help=f"Task preset: {', '.join(sources.TASKS)} (default {sources.DEFAULT_TASK} when neither --input nor fields are given).",
        ),
        input_options,
        click.option(
            "--methods",
            default="knn,synonym,eda,random,augpro-mix",
            show_default=True,
            callback=comma_list_of(str),
            help=f"Comma-separated methods: {', '.join(sorted(REGISTRY))}.",
        ),
        click.option(
            "--degrees",
            default="0.1,0.3,0.5",
            show_default=True,
            callback=comma_list_of(float),
            help="Comma-separated fractions of word positions to change, each in (0, 1].",
        ),
        click.option(
            "--copies", default=COPIES, show_default=True, help="Augmented copies per example, per method and degree."
        ),
        click.option(
            "--seed",
            default=OPTIONS.seed,
            show_default=True,
            help="Seed: same input + config + seed => same rows and ids.",
        ),
        click.option(
            "--knn-k",
            default=OPTIONS.knn_k,
            show_default=True,
            help="KNN methods: draw a replacement among the k nearest words.",
        ),
        click.option(
            "--glove-vocab",
            default=OPTIONS.glove_vocab,
            show_default=True,
            help="knn: the most frequent GloVe words that take part.",
        ),
        click.option(
            "--mix-alpha", default=OPTIONS.mix_alpha, show_default=True, help="augpro-mix: lambda ~ Beta(alpha, alpha)."
        ),
        click.option("--max-rows", type=int, default=None, help="Read only the first N data rows of each input file."),
        click.option(
            "--chunk-size",
            default=CHUNK_SIZE,
            show_default=True,
            help="Examples per chunk: the unit of work travelling through Beam, and of output files (one Parquet file per chunk and partition, written as soon as it is made, so memory stays bounded by the chunk, not the corpus).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def teacher_options(fn):
    """The flags `run` and `label` share for the labelling teacher's inference."""
    options = [
        click.option(
            "--max-tokens",
            type=click.IntRange(min=1),
            default=None,
            help="Teacher batches hold at most this many padded tokens. Default: 1024 on the CPU, 16384 on CUDA.",
        ),
        device_option(
            "Where the teacher (and, in `run`, AugPro's projection and gradients) runs",
            " `auto` is resolved where the job is launched; for GPU workers the launcher lacks (Dataflow's "
            "worker_accelerator) pass cuda. Recorded in the manifest.",
        ),
        precision_option(),
        click.option(
            "--share-teacher",
            type=click.Choice(("auto", "yes", "no")),
            default="auto",
            show_default=True,
            help="yes: one teacher per machine, which every worker process calls (RunInference's large_model); "
            "no: one per worker process. auto: shared when the runner starts several worker processes on a "
            "machine (DirectRunner multi_processing, Dataflow).",
        ),
        click.option(
            "--teacher-threads",
            type=click.IntRange(min=1),
            default=None,
            help="torch threads per worker process. Default: the CPUs divided among the DirectRunner's worker "
            "processes (--direct_num_workers with multi_processing); 1 on Dataflow (one SDK process per vCPU); "
            "else all CPUs.",
        ),
        click.option(
            "--quantize",
            type=click.Choice(QUANTIZE_CHOICES),
            default=None,
            help="Run the teacher int8-quantised on CPU (torch dynamic quantisation of its encoder's Linear layers): "
            "faster labelling, logits a little off fp32 (see BENCHMARKS.md for the measured speed-up, argmax "
            "agreement and probability difference). Recorded in the manifest; the fingerprint stays the fp32 weights'. "
            "Default: fp32.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def version_options(fn):
    """The flags `augment`, `run` and `label` share for scheduled regeneration (pipeline.versioning)."""
    options = [
        click.option(
            "--versioned",
            is_flag=True,
            help="Treat --output as a root: each run is published as ROOT/runs/<UTC time>-<attempt>/ and ROOT/LATEST then names it (readers of ROOT follow it; one run per root at a time).",
        ),
        click.option(
            "--if-changed",
            is_flag=True,
            help="Skip the run (exit 0) when the input fingerprint, config and teacher fingerprint equal those of LATEST's run. Implies --versioned.",
        ),
        click.option(
            "--keep",
            type=click.IntRange(min=1),
            default=None,
            help="After publishing, delete all but the newest N published runs (LATEST's always stays; never a run being written). Implies --versioned.",
        ),
        click.option(
            "--summary-json",
            type=click.Path(dir_okay=False, writable=True),
            default=None,
            help="Also write the job's result as JSON to this file, for schedulers: status (published, unchanged "
            "or launched), output, path, run id, counts and seconds.",
        ),
        click.option(
            "--unchanged-exit-code",
            type=click.IntRange(min=0, max=255),
            default=0,
            show_default=True,
            help="Exit status when --if-changed skips the run, so a scheduler can branch on it "
            "(e.g. 99 with Airflow's BashOperator skip_on_exit_code=99).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def job_flags(flags: dict) -> dict:
    """`augment_options`' values under the API's argument names (`kdaug.api.augment_config`)."""
    renamed = {"task_name": "task", "labels": "label_values", "fmt": "format"}
    return {renamed.get(k, k): v for k, v in flags.items()}


def echo_err(message: str) -> None:
    """A job's log line on stderr; while the command stops on a signal, kept for its one closing line."""
    if getattr(STOP, "signum", None) is not None:
        STOP.notes.append(message)
        return
    click.echo(logs.stamp(message), err=True)


def run_job(api_job, ctx, *args, summary_json: str | None, unchanged_exit_code: int, **options) -> None:
    """`api_job(*args, **options)` (`kdaug.api`'s augment, run or label) with Beam's flags and the
    log on stderr; then print the job's summary table (a new run's), write `--summary-json`, and end
    with `--unchanged-exit-code` when `--if-changed` skipped the run."""
    import json

    result = api_job(*args, pipeline_args=ctx.args, log=echo_err, **options)
    if result.status == "published":
        click.echo(report.summary(result.manifest))
        click.echo("\n" + report.metrics(result.manifest["metrics"]))
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as f:
            json.dump(result.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
    if result.status == "unchanged" and unchanged_exit_code:
        raise click.exceptions.Exit(unchanged_exit_code)


@main.command(cls=BeamCommand)
@augment_options
@version_options
@click.option(
    "--teacher",
    "teacher_dir",
    default=None,
    help="Model directory whose word-piece table knn-teacher and augpro-mix use. Default: packaged all-MiniLM-L6-v2.",
)
@device_option("Where AugPro's projection search and FGSM's gradients run", " Recorded in the manifest.")
@click.pass_context
def augment(ctx, teacher_dir, output, inputs, summary_json, unchanged_exit_code, **flags):
    """Augment a labelled dataset at several degrees with several methods.

    \b
    Example (SST-2, first 2,000 rows, two Beam workers):
      kdaug augment --task sst2 --input train.tsv --output out/sst2 --max-rows 2000 \\
          --methods knn,synonym,eda,random,augpro-mix --degrees 0.1,0.3,0.5 --copies 4 \\
          --direct_num_workers 2 --direct_running_mode multi_processing

    Beam's pipeline options go to Beam (e.g. --runner DataflowRunner --project P --region R
    --temp_location gs://...); any other flag is an error. Without --runner the local
    DirectRunner is used.
    """
    from kdaug import api

    run_job(
        api.augment,
        ctx,
        output,
        inputs,
        summary_json=summary_json,
        unchanged_exit_code=unchanged_exit_code,
        teacher=teacher_dir,
        **job_flags(flags),
    )


@main.command(cls=BeamCommand)
@augment_options
@version_options
@click.option(
    "--teacher",
    "teacher_dir",
    required=True,
    help="Fine-tuned teacher directory (`kdaug teacher train`): labels every row and provides the word-piece table.",
)
@teacher_options
@click.pass_context
def run(ctx, teacher_dir, output, inputs, summary_json, unchanged_exit_code, **flags):
    """Augment and label with the teacher in one Beam pipeline (no intermediate files).

    Same flags and outputs as `augment`, and every row (originals included) gets
    `teacher_logits`: raw float32 logits, one per class. The manifest records the teacher's
    fingerprint (hash of weights and tokenizer).
    """
    from kdaug import api

    run_job(
        api.run,
        ctx,
        output,
        inputs,
        summary_json=summary_json,
        unchanged_exit_code=unchanged_exit_code,
        teacher=teacher_dir,
        **job_flags(flags),
    )


@main.command(cls=BeamCommand)
@click.option(
    "--input",
    "source",
    required=True,
    help="A finished kdaug output (has _SUCCESS), or a root of versioned runs (its LATEST run is read).",
)
@click.option("--output", required=True, help="Where the labelled shards go (same layout); may not lie inside --input.")
@click.option("--teacher", "teacher_dir", required=True, help="Fine-tuned teacher directory (`kdaug teacher train`).")
@teacher_options
@version_options
@click.pass_context
def label(ctx, source, output, teacher_dir, summary_json, unchanged_exit_code, **teacher):
    """Label the shards of an `augment` output with the teacher's logits.

    Beam's RunInference step with kdaug's model handler: the teacher loads once per worker
    process, or once per machine (--share-teacher); each chunk's rows are sorted by length and
    packed into batches of at most --max-tokens padded tokens. Logits are stored raw (float32):
    the temperature is the consumer's choice. Rows of a chunk the teacher fails on go to
    OUT/_failed_inference/ with the error, counted in the summary.
    """
    from kdaug import api

    run_job(
        api.label,
        ctx,
        source,
        output,
        summary_json=summary_json,
        unchanged_exit_code=unchanged_exit_code,
        teacher=teacher_dir,
        **teacher,
    )


@main.command("inspect")
@click.argument("output")
@click.option("--samples", default=3, show_default=True, help="Sample rows per method and degree.")
@click.option(
    "--allow-unfinished",
    is_flag=True,
    help="Read an output that has no published run (forensics): whatever shard files it holds.",
)
def inspect_cmd(output, samples, allow_unfinished):
    """Show an output's partitions, row counts, measured changed_frac and sample rows."""
    click.echo(report.inspect(output, samples, allow_unfinished))


@main.command()
@click.argument("output")
def recover(output):
    """Finish or clean up what killed runs left in OUTPUT.

    A run killed after its commit point (while moving its published files in) is completed; staging
    areas of dead runs and versioned runs that were never published are deleted. The next kdaug run
    on OUTPUT does the same before it starts, so this is only needed to read OUTPUT before that.
    """
    from kdaug import commit

    commit.recover_output(output, log=lambda message: click.echo(message, err=True))
    click.echo(f"{output}: nothing left to recover")


if __name__ == "__main__":
    main()
