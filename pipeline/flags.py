"""Options several commands share, defined once: where a model runs, at which precision, and
comma-separated lists. `kdaug.distill.train.DistillConfig` takes its device and precision defaults
from here too, so the CLI and the Python API agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import click

from kdaug.teacher.model import DEVICE_HELP, PRECISION_HELP, PRECISIONS

#: Where a model runs unless told: CUDA when torch sees a GPU, else the CPU (resolved at launch;
#: configs hold the resolved device).
DEVICE_DEFAULT = "auto"
PRECISION_DEFAULT = "fp32"


def device_option(where: str, note: str = ""):
    """`--device`, saying what runs there (`where`: "Where the student trains")."""
    return click.option("--device", default=DEVICE_DEFAULT, show_default=True, help=f"{where}: {DEVICE_HELP}.{note}")


def precision_option(note: str = ""):
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=PRECISION_DEFAULT,
        show_default=True,
        help=note + PRECISION_HELP,
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
