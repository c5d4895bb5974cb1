"""Options several commands share, defined once: how input files hold their texts and labels, where
a model runs, at which precision, and comma-separated lists. `kdaug.distillation.train.DistillConfig` takes its device and precision defaults
from here too, so the CLI and the Python API agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import click

from kdaug.inputs.sources import FORMATS, QUOTINGS
from kdaug.teacher.model import DEVICE_HELP, PRECISION_HELP, PRECISIONS

#: Where a model runs unless told: CUDA when torch sees a GPU, else the CPU (resolved at launch;
#: configs hold the resolved device).
DEVICE_DEFAULT = "auto"
PRECISION_DEFAULT = "fp32"


def input_options(fn):
    """The flags that say where an input file keeps its texts and labels and how it is written
    (`kdaug.inputs.sources.make_task`): `augment` and `run` read their inputs with them, `teacher
    train` its training and dev files."""
    options = [
        click.option("--text-field", default=None, help="Field/column holding the text (first text of a pair)."),
        click.option("--text-b-field", default=None, help="Field holding the second text of a pair (MRPC/RTE style)."),
        click.option("--label-field", default=None, help="Field holding the gold label."),
        click.option(
            "--label-values",
            "labels",
            default=None,
            help="Label values as they appear in the file, comma-separated, in class order "
            "(--labels are a Dataflow job's labels, and go to Beam).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help="Input format (default: from the extension, else the task preset's).",
        ),
        click.option(
            "--delimiter",
            default=None,
            help="TSV/CSV field delimiter, one character (\\t or tab: a tab). Default: a tab for TSV, a comma for CSV.",
        ),
        click.option(
            "--quoting",
            type=click.Choice(QUOTINGS),
            default=None,
            help="How TSV/CSV fields are quoted, named after the Python csv setting that wrote them. minimal "
            "(TSV's default): by pandas' to_csv and csv.writer by default, or not at all (GLUE): a record is "
            "read with its quotes (a quoted field may hold tabs, quotes, line breaks) where it reads as they "
            "write it and has the header's field count, else as its line, quotes and all. all (CSV's default): "
            "RFC 4180, any field that starts with a quote is quoted (QUOTE_ALL, R's write.csv, spreadsheets). "
            "none: quotes are text, a line is a record.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def device_option(where: str, note: str = ""):
    """`--device`, saying what runs there (`where`: "Where the student trains")."""
    return click.option("--device", default=DEVICE_DEFAULT, show_default=True, help=f"{where}: {DEVICE_HELP}.{note}")


def precision_option(note: str = "", recorded: str | None = "the manifest"):
    """`--precision`, with `note` before the shared help and, after it, where the command records the
    precision it ran at (`recorded`; None: the command records it nowhere, e.g. `evaluate`)."""
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=PRECISION_DEFAULT,
        show_default=True,
        help=note + PRECISION_HELP + (f" Recorded in {recorded}." if recorded else ""),
    )


@overload
def comma_list(value: str, cast: Callable[[str], Any] = ...) -> list: ...
@overload
def comma_list(value: None, cast: Callable[[str], Any] = ...) -> None: ...
def comma_list(value: str | None, cast: Callable[[str], Any] = str) -> list | None:
    """A comma-separated option as a list (None when not given); a value `cast` refuses is a usage error."""
    if value is None:
        return None
    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        kind = "numbers" if cast in (int, float) else "values"
        raise click.BadParameter(f"expected comma-separated {kind}, got {value!r}") from None


def comma_list_of(cast=str):
    """`comma_list` as a click callback."""
    return lambda ctx, param, value: comma_list(value, cast)
