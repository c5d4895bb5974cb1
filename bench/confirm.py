"""The pre-registered confirmation's analysis (results/confirm/PLAN.md): every planned contrast, from
the sweeps' results.csv files, with raw and Holm-adjusted verdicts per family.

Each contrast is a fixed linear combination of cell accuracies computed per seed (a seed fixes the
student's initialisation and data order in every cell, so the combination is paired by seed), e.g.
(KD at 0.3 − KD on originals) − (FT at 0.3 − FT on originals). Its per-seed values get a Student-t
95% interval and a one-sided p-value in the direction the plan predicts (a positive value is the
papers' claim). Holm's adjustment runs within each family. Nothing here chooses a degree, a seed or
a contrast after the fact: the weights below are the plan's, committed before any of its cells ran.

    python -m bench.confirm [--results results/confirm]   → results/confirm/results.md
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import click

from kdaug.distillation.findings import LEVEL, holm, t_interval
from kdaug.schema import ORIGINAL

ORIGINAL_CELL = (ORIGINAL, 0.0, 0)  # method, degree, copies of an originals-only cell
GRID = (0.0, 0.1, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Contrast:
    name: str
    family: str  # "primary" or "secondary": Holm runs within a family
    study: str  # the sweep output under results/confirm
    size: int
    seeds: tuple[int, ...]
    terms: tuple[tuple[float, str, str, float, int], ...]  # (weight, mode, method, degree, copies)
    what: str


def gain(mode: str, method: str, degree: float, copies: int, sign: float = 1.0) -> tuple:
    """(accuracy at degree − accuracy on originals) for one mode, as terms."""
    return ((sign, mode, method, degree, copies), (-sign, mode, *ORIGINAL_CELL))


def kd_minus_ft_gain(method: str, degree: float, copies: int) -> tuple:
    """Finding (a) at a fixed degree: KD's gain over its originals minus FT's."""
    return gain("kd", method, degree, copies) + gain("ft", method, degree, copies, -1.0)


def kd_minus_ft_slope(degrees=GRID, copies: int = 4, span: float = 0.7) -> tuple:
    """The least-squares slope of (KD − FT accuracy) over the degrees, times `span`: how much more KD's
    accuracy rises than FT's from degree 0 to 0.7, on the fitted line (points)."""
    mean = sum(degrees) / len(degrees)
    spread = sum((d - mean) ** 2 for d in degrees)
    terms = []
    for d in degrees:
        w = span * (d - mean) / spread
        cell = ORIGINAL_CELL if d == 0 else ("knn", d, copies)
        terms += [(w, "kd", *cell), (-w, "ft", *cell)]
    return tuple(terms)


def seeds(first: int, n: int) -> tuple[int, ...]:
    return tuple(range(first, first + n))


CONTRASTS = (
    Contrast(
        "P1",
        "primary",
        "trec-cnn",
        500,
        seeds(100, 16),
        kd_minus_ft_slope(),
        "TREC 500, CNN, knn ×4: slope of KD − FT accuracy over degree 0 → 0.7",
    ),
    Contrast(
        "P2",
        "primary",
        "trec-cnn",
        500,
        seeds(100, 16),
        kd_minus_ft_gain("knn", 0.3, 16),
        "TREC 500, CNN: (a) at knn 0.3 ×16, KD gain − FT gain",
    ),
    Contrast(
        "P3",
        "primary",
        "trec-cnn",
        500,
        seeds(100, 16),
        (
            (1.0, "kd", "knn", 0.3, 16),
            (-1.0, "kd", "knn", 0.3, 4),
            (-1.0, "ft", "knn", 0.3, 16),
            (1.0, "ft", "knn", 0.3, 4),
        ),
        "TREC 500, CNN: (e) gain from 4 → 16 copies of knn 0.3, KD − FT",
    ),
    Contrast(
        "P4",
        "primary",
        "sst2-cnn",
        500,
        seeds(100, 16),
        kd_minus_ft_gain("knn", 0.3, 16),
        "SST-2 500, CNN: (a) at knn 0.3 ×16, KD gain − FT gain",
    ),
    Contrast(
        "P5",
        "primary",
        "sst2-cnn-methods",
        2000,
        seeds(100, 10),
        ((1.0, "kd", "augpro-fgsm", 0.3, 4), (-1.0, "kd", "knn", 0.3, 4)),
        "SST-2 2,000, CNN, KD: (d) augpro-fgsm − knn at 0.3 ×4",
    ),
    Contrast(
        "S1",
        "secondary",
        "sst2-transformer",
        500,
        seeds(100, 5),
        kd_minus_ft_gain("knn", 0.3, 4),
        "SST-2 500, 2-layer MiniLM student: (a) at knn 0.3 ×4",
    ),
    Contrast(
        "S2",
        "secondary",
        "sst2-transformer",
        500,
        seeds(100, 5),
        kd_minus_ft_gain("knn", 0.7, 4),
        "SST-2 500, 2-layer MiniLM student: (a) at knn 0.7 ×4",
    ),
    Contrast(
        "S3",
        "secondary",
        "sst2-student",
        500,
        seeds(100, 10),
        kd_minus_ft_slope(),
        "SST-2 500, the item-3 student, knn ×4: slope of KD − FT over degree 0 → 0.7",
    ),
    Contrast(
        "S4",
        "secondary",
        "sst2-student",
        2000,
        seeds(100, 10),
        kd_minus_ft_slope(),
        "SST-2 2,000, the item-3 student, knn ×4: slope of KD − FT over degree 0 → 0.7",
    ),
)


def read_study(path: Path) -> dict[tuple, float]:
    """Test accuracy (points) by (size, mode, method, degree, copies, seed) from one sweep output,
    which must hold one training config only (the plan fixes each study's config)."""
    configs = json.loads((path / "configs.json").read_text())
    if len(configs) != 1:
        raise click.ClickException(f"{path}: {len(configs)} training configs; the plan runs each study with one")
    with open(path / "results.csv", newline="") as f:
        return {
            (int(r["size"]), r["mode"], r["method"], float(r["degree"]), int(r["copies"]), int(r["seed"])): 100
            * float(r["test_accuracy"])
            for r in csv.DictReader(f)
        }


def values(contrast: Contrast, acc: dict[tuple, float]) -> list[float]:
    """The contrast per seed, for the planned seeds whose every cell has trained."""
    out = []
    for seed in contrast.seeds:
        keys = [
            (contrast.size, mode, method, degree, copies, seed) for _, mode, method, degree, copies in contrast.terms
        ]
        if all(k in acc for k in keys):
            out.append(sum(w * acc[k] for (w, *_), k in zip(contrast.terms, keys)))
    return out


def verdict(interval, p: float) -> str:
    """`holds` when p (one-sided, predicted direction) is below the level; `opposite` when the 95%
    interval lies below 0 (the claim's reverse, which a one-sided test cannot confirm); else inconclusive."""
    if p < LEVEL:
        return "holds"
    return "opposite (CI below 0)" if interval.high < 0 else "inconclusive"


def report(results: Path) -> str:
    studies = {
        c.study: read_study(results / c.study) for c in CONTRASTS if (results / c.study / "results.csv").is_file()
    }
    md = [
        "# Pre-registered confirmation: results",
        "",
        "Generated by `python -m bench.confirm` from the sweeps under this directory, as PLAN.md fixed them. "
        "Estimate: mean over seeds of the planned contrast (points of test accuracy); 95% t interval; p one-sided "
        f"in the predicted direction (positive); a verdict holds at one-sided {LEVEL:g}. Holm runs within each "
        "family over its complete contrasts. A contrast still missing seeds is shown as incomplete and left out "
        "of its family's adjustment and verdicts.",
        "",
        "| contrast | family | what | seeds | estimate | 95% CI | raw p | Holm p | verdict (raw) | verdict (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family in ("primary", "secondary"):
        members = [c for c in CONTRASTS if c.family == family]
        done = {c.name: values(c, studies.get(c.study, {})) for c in members}
        complete = [c for c in members if len(done[c.name]) == len(c.seeds)]
        intervals = {c.name: t_interval(done[c.name]) for c in complete}
        # one-sided in the predicted direction: t_interval's p is in the direction of the estimate
        p = {n: i.p if i.estimate > 0 else 1 - i.p for n, i in intervals.items()}
        adjusted = dict(zip(p, holm(list(p.values()))))
        for c in members:
            if c.name not in intervals:
                md.append(
                    f"| {c.name} | {family} | {c.what} | {len(done[c.name])} of {len(c.seeds)} | incomplete |||||"
                )
                continue
            i = intervals[c.name]
            raw, held = (verdict(i, q) for q in (p[c.name], adjusted[c.name]))
            md.append(
                f"| {c.name} | {family} | {c.what} | {i.n} | {i.estimate:+.2f} | [{i.low:+.2f}, {i.high:+.2f}] | "
                f"{p[c.name]:.4f} | {adjusted[c.name]:.4f} | {raw} | {held} |"
            )
    return "\n".join(md) + "\n"


@click.command()
@click.option("--results", default="results/confirm", show_default=True, type=click.Path(path_type=Path))
def main(results: Path):
    text = report(results)
    (results / "results.md").write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
