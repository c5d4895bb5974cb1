"""Click commands `distill`, `evaluate` and `sweep`, for the main `kdaug` group.

    from kdaug.distillation.cli import COMMANDS
    for command in COMMANDS:
        main.add_command(command)

`python -m kdaug.distillation.cli` runs them standalone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from kdaug import commit
from kdaug.distillation import word_students
from kdaug.distillation.evaluate import evaluate, read_labelled
from kdaug.distillation.loss import MODES
from kdaug.distillation.shards import Selection, ShardError
from kdaug.distillation.sweep import grid, sweep
from kdaug.distillation.train import DEFAULT_LAYERS, TRANSFORMER_LR, WORD_STUDENTS, DistillConfig, distill
from kdaug.flags import comma_list, device_option, precision_option
from kdaug.teacher.model import check_model_dir

D = DistillConfig()


def _config(options: dict) -> DistillConfig:
    try:
        return DistillConfig(**options)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def _check_student(ctx, param, value):
    """A word student (`WORD_STUDENTS`), a config file, or a model directory `check_model_dir`
    accepts: refused while the command line is read, before the output is claimed or any data is read."""
    if value is None or value in WORD_STUDENTS:
        return value
    if not Path(value).exists():
        raise click.BadParameter(f"{value!r} is neither {' nor '.join(WORD_STUDENTS)} nor an existing path")
    if Path(value).is_dir():
        check_model_dir(value, "student")
    return value


def labelled(path: str | None, flag: str, data: str | None = None):
    """The examples of a labelled file given as FLAG (None when not given; `read_labelled`, with the
    task of the labelled output DATA); a file kdaug cannot read as one is the user's to fix: a usage
    error naming the flag."""
    if path is None:
        return None
    try:
        return read_labelled(path, data)
    except ValueError as err:
        raise click.UsageError(f"{flag} {err}") from None


_TEST_HELP = (
    "Labelled test file the checkpoint selection never sees (e.g. SST-2's labelled test.tsv): the kept "
    "model is scored there too (test_accuracy), an unflattered figure."
)

_TRAINING_OPTIONS = [
    click.option(
        "--temperature",
        "-T",
        type=click.FloatRange(min=0, min_open=True),
        default=D.temperature,
        show_default=True,
        help="KD temperature T: both softmaxes use logits/T. T > 1 flattens them, so the student also "
        "learns how the teacher ranks the wrong classes (Hinton et al., 2015); the loss is scaled "
        "by T² to keep gradients comparable. 1 is TinyBERT's choice for the prediction layer.",
    ),
    click.option(
        "--alpha",
        type=click.FloatRange(min=0),
        default=D.alpha,
        show_default=True,
        help="KD only: weight α of an extra cross-entropy on gold labels (rows without one are "
        "skipped). 0 = pure KD: augmented rows carry their source's gold label, which a large "
        "edit can make wrong, while the teacher's soft label follows the edit.",
    ),
    click.option(
        "--student",
        callback=_check_student,
        help="Student: `bilstm` or `cnn` (fast CPU students over frozen GloVe 6B-50d word vectors: a "
        "BiLSTM as in Tang et al. 2019, a CNN as in Kim 2014; ~20 ms a step on one core), the same "
        "over trained GloVe vectors (`bilstm-tuned`, `cnn-tuned`) or over the teacher base's frozen "
        "word-piece embeddings and tokenizer (`bilstm-wordpiece`, `cnn-wordpiece`), a local "
        "from_pretrained directory, or a config .json (random init, the teacher base's tokenizer). "
        f"Default: the teacher base (all-MiniLM-L6-v2) cut to its first {DEFAULT_LAYERS} layers. For a CPU "
        "study use `cnn-wordpiece`: on SST-2 with 10,000 examples it reached 93% of its teacher's test "
        "accuracy in 34 s on one core, as close as the 2-layer transformer at 1/6 of the time (BENCHMARKS.md §9).",
    ),
    click.option(
        "--layers",
        type=click.IntRange(min=1),
        help="Keep only the student's first k transformer layers. Default: 2 for the teacher base, all for --student.",
    ),
    click.option(
        "--freeze-embeddings",
        is_flag=True,
        help="Keep the student's word-piece embedding table fixed. It is ~75% of a 2-layer "
        "MiniLM's weights: freezing it makes a training step ~2x faster on CPU (no dense "
        "gradient or AdamW update over 30,522 x 384 values) and keeps rare words' "
        "pretrained vectors intact on small data.",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        help=f"AdamW peak learning rate. Default: {TRANSFORMER_LR:g} for transformer students, "
        f"{word_students.DEFAULT_LR:g} for the word students (bilstm, cnn and their variants).",
    ),
    click.option("--weight-decay", type=float, default=D.weight_decay, show_default=True),
    click.option(
        "--warmup",
        type=click.FloatRange(0, 1),
        default=D.warmup,
        show_default=True,
        help="Linear warm-up over this fraction of one epoch of the training rows, at most "
        f"{D.max_warmup_steps} steps (whatever --max-steps is); the rate then decays linearly to 0 at the step cap.",
    ),
    click.option("--batch-size", type=click.IntRange(min=1), default=D.batch_size, show_default=True),
    click.option(
        "--max-length",
        type=click.IntRange(min=8),
        default=D.max_length,
        show_default=True,
        help="Tokens per example (pairs share them); longer inputs are truncated.",
    ),
    click.option("--epochs", type=click.IntRange(min=1), default=D.epochs, show_default=True),
    click.option("--max-steps", type=click.IntRange(min=1), help="Train exactly this many steps (overrides --epochs)."),
    click.option(
        "--eval-every",
        type=click.IntRange(min=1),
        default=D.eval_every,
        show_default=True,
        help="Steps between training-loss logs and dev evaluations.",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=1),
        default=D.patience,
        show_default=True,
        help="Early stopping: dev evaluations without a better accuracy before training stops; the "
        "best student is kept.",
    ),
    click.option(
        "--buffer-rows",
        type=click.IntRange(min=1),
        default=D.buffer_rows,
        show_default=True,
        help="Shuffle buffer in rows; shards are streamed, so memory grows with this, not the data.",
    ),
    device_option("Where the student trains"),
    precision_option(
        "Weights and optimiser stay fp32 either way. ",
        recorded="the training config (distill: the student's metrics.json and _manifest.json; sweep: configs.json)",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        help="torch threads for training. What a student learns depends on it (threads split float "
        "sums, and training amplifies the last bits), so a run is reproduced exactly only with "
        "the same count (metrics.json records it). Default: every CPU for distill; 1 per cell "
        "for sweep, whatever --jobs is.",
    ),
]


def training_options(command):
    """The DistillConfig options `distill` and `sweep` share (each is named after its field)."""
    for option in reversed(_TRAINING_OPTIONS):
        command = option(command)
    return command


def expected_teacher(teacher_dir: str | None, teacher_fingerprint: str | None) -> str | None:
    """The fingerprint `--teacher` or `--teacher-fingerprint` asks the shards to carry (at most one)."""
    if teacher_dir and teacher_fingerprint:
        raise click.UsageError("give --teacher or --teacher-fingerprint, not both")
    if teacher_dir:
        from kdaug.teacher.model import fingerprint

        return fingerprint(teacher_dir)
    return teacher_fingerprint.strip().lower() if teacher_fingerprint else None


_UNFINISHED_HELP = (
    "Train on an output that has no published run (no _SUCCESS: a failed or running job), reading "
    "whatever shard files it holds. For forensics only: such rows may be partial or of two runs."
)

_MODE_HELP = (
    "kd: learn the teacher's stored logits (knowledge distillation). ft: plain cross-entropy on gold "
    "labels, ignoring the teacher: the fine-tuning baseline the papers compare KD against."
)


@click.command("distill")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A labelled kdaug output directory (OUT/METHOD/DEGREE/part-*.parquet).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the best student, its tokenizer and metrics.json go.",
)
@click.option("--mode", type=click.Choice(MODES), default=D.mode, show_default=True, help=_MODE_HELP)
@click.option("--methods", help="Comma-separated augmentation methods to train on. Default: all in --data.")
@click.option("--degrees", help="Comma-separated degrees (fraction of words changed). Default: all in --data.")
@click.option("--copies", type=click.IntRange(min=1), help="Use augmented copies 0..N-1 of each example. Default: all.")
@click.option(
    "--originals/--no-originals",
    default=True,
    show_default=True,
    help="Mix in the unaugmented examples (method `original`).",
)
@click.option(
    "--originals-only", is_flag=True, help="Train on the originals alone: degree 0, the no-augmentation baseline."
)
@click.option(
    "--dev",
    "dev_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Labelled dev file (GLUE SST-2 or MRPC TSV): periodic evaluation, early stopping, best student kept. "
    "Without it the last weights are saved.",
)
@click.option("--test", "test_path", type=click.Path(exists=True, dir_okay=False), help=_TEST_HELP)
@click.option(
    "--seed",
    type=int,
    default=D.seed,
    show_default=True,
    help="Drives the head initialisation, dropout and the shuffling: same seed, same student.",
)
@click.option(
    "--teacher",
    "teacher_dir",
    type=click.Path(exists=True, file_okay=False),
    help="KD: the teacher directory the shards must have been labelled by; its fingerprint (hash of weights, "
    "tokenizer and label names) is compared with the one in the shards' _manifest.json, and other "
    "shards are refused. Shards of different teachers are always refused.",
)
@click.option(
    "--teacher-fingerprint",
    help="KD: the same check against a fingerprint (hex, as in the manifest's "
    "teacher.fingerprint), when the teacher directory is not at hand.",
)
@click.option("--allow-unfinished", is_flag=True, help=_UNFINISHED_HELP)
@training_options
def distill_command(
    data,
    output,
    methods,
    degrees,
    copies,
    originals,
    originals_only,
    dev_path,
    test_path,
    teacher_dir,
    teacher_fingerprint,
    allow_unfinished,
    **options,
):
    """Train a small student on augmented, teacher-labelled shards (KD) or on gold labels (FT).

    \b
    KD loss = KL(softmax(t/T) || softmax(s/T)) * T^2 + alpha * CE(s, gold)
    with t the teacher's stored logits and s the student's.

    \b
    Example:
      kdaug distill --data out/sst2 --methods knn --degrees 0.3 --dev dev.tsv --output students/knn-0.3
    """
    selection = Selection(
        methods=() if originals_only else comma_list(methods),
        degrees=comma_list(degrees, float),
        copies=copies,
        originals=originals or originals_only,
    )
    dev = labelled(dev_path, "--dev", data)
    try:
        metrics = distill(
            data,
            selection,
            _config(options),
            dev=dev,
            out_dir=output,
            teacher=expected_teacher(teacher_dir, teacher_fingerprint),
            allow_unfinished=allow_unfinished,
            test=labelled(test_path, "--test", data),
        )
    except ShardError as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps({k: v for k, v in metrics.items() if k not in ("history", "config")}, indent=2))


@click.command("evaluate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    help="Truncate inputs to this many tokens. Default: the model's position table.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Batch budget (rows x longest row): batches are length-sorted and filled up to it. "
    "Default: 1024 on the CPU, 16384 on CUDA.",
)
@device_option("Where the model runs")
@precision_option(recorded=None)
def evaluate_command(model_dir, file, max_length, max_tokens, device, precision):
    """Accuracy (and F1 of class 1 for binary tasks) of MODEL_DIR on a labelled FILE (GLUE SST-2/MRPC TSV).

    MODEL_DIR is any local from_pretrained sequence classifier with its tokenizer: a student, a teacher.
    """
    click.echo(
        json.dumps(evaluate(model_dir, labelled(file, "FILE"), max_length, max_tokens, device, precision), indent=2)
    )


def _parse_data(ctx, param, values) -> dict[int, str]:
    data = {}
    for value in values:
        match = re.fullmatch(r"(?:size=)?(\d+):(.+)", value)
        if not match:
            raise click.BadParameter(f"{value!r}: expected size=N:PATH, e.g. size=500:out/sst2-500")
        data[int(match[1])] = match[2]
    return data


@click.command("sweep")
@click.option(
    "--data",
    required=True,
    multiple=True,
    callback=_parse_data,
    help="size=N:PATH, the labelled output made from an N-example subset of the train file (repeat "
    "per size). The sweep only reads these; make them with `kdaug augment` and the labeller first.",
)
@click.option(
    "--dev",
    "dev_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Labelled dev file (GLUE SST-2 or MRPC TSV): selects every student's checkpoint (and is what the "
    "report shows without --test).",
)
@click.option(
    "--test", "test_path", type=click.Path(exists=True, dir_okay=False), help=_TEST_HELP + " The report shows it."
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Results directory: results.csv (resumable; one output may hold several training configs), "
    "configs.json (their settings), results.md and results.png (this run's config).",
)
@click.option("--methods", required=True, help="Comma-separated augmentation methods, e.g. knn,augpro-mix,eda.")
@click.option(
    "--degrees",
    default="0,0.1,0.3,0.5,0.7",
    show_default=True,
    help="Comma-separated degrees; 0 = the originals alone, the no-augmentation baseline. Wang et al. find "
    "fine-tuning best near 0.1 while KD prefers larger shifts, the more so the smaller the data.",
)
@click.option("--modes", default="kd,ft", show_default=True, help="Comma-separated, from kd, ft. " + _MODE_HELP)
@click.option(
    "--copies",
    default="1",
    show_default=True,
    help="Comma-separated numbers of augmented copies per example to train on, e.g. 1,4,16 (at most "
    "the output's copies); KD is expected to keep gaining from more data where fine-tuning stops.",
)
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated seeds; results show mean ± std.")
@click.option(
    "--teacher",
    type=click.Path(exists=True, file_okay=False),
    help="The teacher's model directory: its dev accuracy is reported next to the students', and KD cells "
    "refuse shards it did not label (fingerprint in each size's _manifest.json). Sizes labelled by "
    "different teachers are always refused.",
)
@click.option("--keep-models", is_flag=True, help="Save every student under OUTPUT/models (tens of MB each).")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells trained at once, each in its own process with --threads torch threads; what a cell "
    "learns does not depend on it. Suits small students (bilstm, cnn): jobs x threads = CPUs.",
)
@click.option("--allow-unfinished", is_flag=True, help=_UNFINISHED_HELP)
@training_options
def sweep_command(
    data,
    dev_path,
    test_path,
    output,
    methods,
    degrees,
    modes,
    copies,
    seeds,
    teacher,
    keep_models,
    jobs,
    allow_unfinished,
    **options,
):
    """Train a grid of students: sizes x modes x methods x degrees x copies x seeds.

    Cells already in OUTPUT/results.csv with the same training options and data are skipped, so
    re-running the same command resumes. With other options (--lr, --max-steps, --student, ...) the
    cells train again; the rows of other options stay in results.csv, and the report is this run's.

    \b
    Example:
      kdaug sweep --data size=500:out/sst2-500 --data size=2000:out/sst2-2000 \\
          --dev dev.tsv --methods knn,augpro-mix --output sweeps/sst2
    """
    modes = comma_list(modes)
    if unknown := set(modes) - set(MODES):
        raise click.BadParameter(f"unknown mode(s) {sorted(unknown)}: use {MODES}", param_hint="--modes")
    cells = grid(
        sorted(data),
        modes,
        comma_list(methods),
        comma_list(degrees, float),
        comma_list(copies, int),
        comma_list(seeds, int),
    )
    first = data[min(data)]  # every size's data shares its task (the sweep refuses mixed teachers)
    try:
        rows = sweep(
            data,
            labelled(dev_path, "--dev", first),
            output,
            cells,
            _config(options),
            teacher,
            keep_models,
            allow_unfinished=allow_unfinished,
            test=labelled(test_path, "--test", first),
            jobs=jobs,
        )
    except ShardError as err:
        raise click.ClickException(str(err)) from None
    except commit.TargetRefused as err:
        raise click.UsageError(str(err)) from None
    click.echo(
        f"{len(rows)} results of this training config in {output}/results.csv, "
        f"table {output}/results.md, plot {output}/results.png"
    )


COMMANDS = [distill_command, evaluate_command, sweep_command]


@click.group()
def main():
    """kdaug's student trainer (standalone; normally under `kdaug`)."""


for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    main()
