"""The papers' findings, tested on a sweep's cells with 95% confidence intervals over seeds.

Every cell of a sweep is trained once per seed, and a seed fixes the student's initialisation and
shuffling, so two cells that differ only in one factor (degree, mode, method, copies) are compared
*paired by seed*: the per-seed differences' mean and a Student-t 95% interval. Where the quantity
is a best degree (an argmax, not an average), the interval comes from a seeded bootstrap over seeds
(resampling whole seeds keeps the pairing). A verdict reads "holds" when the interval is above 0,
"does not hold" when below, and "inconclusive (CI includes 0)" otherwise.

That raw verdict is one test at a one-sided 2.5% level (`LEVEL`: each side of the 95% interval), and a
report makes many: among m comparisons with no effect at all, about m × 2.5% would still read
"holds". So the comparisons one report makes are one family, and beside each raw verdict stands a
Holm–Bonferroni one (`holm`): from each comparison's one-sided p-value in the direction of its
estimate (the paired t-test's; the bootstrap's share of resampled statistics on the other side of
0), adjusted so that the chance of any comparison with no effect reading "holds" or "does not hold"
stays at most 5% across the family. Holm rather than Bonferroni: as strict a guarantee, never less
power, and no assumption about how the comparisons (which share cells) depend on each other.

Accuracy is the sweep's reported metric (test when every cell has it). Wherever a degree must be
chosen (the best degree of findings a, b, c), it is chosen on dev and the accuracy is measured on
the reported set, so the choice does not flatter the estimate.

  (a) augmentation helps KD more than FT: (KD at its best degree − KD on originals) − (the same for FT)
  (b) KD's best degree is higher than FT's: best degree on dev (KD) − best degree on dev (FT), bootstrap
  (c) smaller sets prefer higher degrees: KD's best degree on dev on the smallest size − on the largest,
      bootstrap
  (d) AugPro vs plain replacement: KD accuracy of augpro-mix/augpro-fgsm − another method, same degree
  (e) KD keeps gaining with more copies where FT stops: (KD at c' copies − KD at c) − (the same for FT), for
      each pair of consecutive copy counts c < c' the grid has
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kdaug.distillation.shards import ORIGINAL

AUGPRO = ("augpro-mix", "augpro-fgsm")
BOOTSTRAP_SAMPLES = 4000
LEVEL = 0.025  # one-sided level of a verdict: each side of a 95% interval


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int
    p: float  # one-sided p-value in the direction of the estimate (a test of "holds" when it is > 0)

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "holds"
        if self.high < 0:
            return "does not hold"
        return "inconclusive (CI includes 0)"


@dataclass(frozen=True)
class Finding:
    finding: str  # a … e
    where: str  # the cells compared
    interval: Interval
    unit: str  # "points" (accuracy × 100) or "degree"


def t_interval(diffs: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of paired differences with a Student-t interval (n − 1 degrees of freedom) and the paired
    t-test's one-sided p-value. Differences that never vary (no spread) give a point interval, p 0."""
    from scipy.stats import t

    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return Interval(mean, float("-inf"), float("inf"), n, 1.0)
    se = statistics.stdev(diffs) / n**0.5
    half = t.ppf(0.5 + confidence / 2, n - 1) * se
    p = float(t.sf(abs(mean) / se, n - 1)) if se else float(mean == 0)
    return Interval(mean, mean - half, mean + half, n, p)


def bootstrap_interval(
    seeds: Sequence,
    statistic: Callable[[Sequence], float],
    confidence: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Interval:
    """`statistic(seeds)` with a percentile interval from resampling the seeds with replacement, and
    a one-sided p-value: the share of resampled statistics at or beyond 0 on the other side of the
    estimate, counted (k + 1) / (samples + 1) so that a finite resample never claims p = 0."""
    rng = np.random.default_rng(seed)
    draws = np.array([statistic([seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]) for _ in range(samples)])
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    estimate = statistic(seeds)
    against = int(np.sum(np.sign(estimate) * draws <= 0))  # all of them when the estimate is 0
    return Interval(estimate, float(low), float(high), len(seeds), (against + 1) / (samples + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given: sorted ascending, the i-th smallest
    (from 0) becomes max over j ≤ i of min(1, (m − j) · p_(j)). Comparing them with a level α keeps
    the chance of rejecting any true null hypothesis of the family at most α, however they depend
    on each other."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm_verdict(estimate: float, adjusted_p: float) -> str:
    """The verdict a Holm-adjusted p-value gives, worded as `Interval.verdict`'s."""
    if adjusted_p >= LEVEL:
        return f"inconclusive (Holm p ≥ {LEVEL:g})"
    return "holds" if estimate > 0 else "does not hold"


class Cells:
    """Accuracies by (size, copies, mode, method, degree) and seed; the originals-only cells of a
    (size, mode) serve as degree 0 of every line of that size and mode (a (size, mode) with no
    augmented cell gets a line of its own, copies 0 and method `original`)."""

    def __init__(self, rows: Sequence[dict], metric: str):
        self.on = "test" if metric == "test_accuracy" else "dev"  # the reported set, as a report names it
        self.acc: dict[tuple, dict[int, float]] = defaultdict(dict)
        self.dev: dict[tuple, dict[int, float]] = defaultdict(dict)
        originals: dict[tuple[int, str], dict[int, tuple[float, float]]] = defaultdict(dict)
        for r in rows:
            seed, size = int(r["seed"]), int(r["size"])
            if r["method"] == ORIGINAL:
                originals[(size, r["mode"])][seed] = (float(r[metric]), float(r["dev_accuracy"]))
                continue
            key = (size, int(r["copies"]), r["mode"], r["method"], float(r["degree"]))
            self.acc[key][seed], self.dev[key][seed] = float(r[metric]), float(r["dev_accuracy"])
        lines = {k[:4] for k in self.acc}
        for (size, mode), by_seed in originals.items():
            matching = [known for known in lines if (known[0], known[2]) == (size, mode)]
            for line in matching or [(size, 0, mode, ORIGINAL)]:
                for seed, (acc, dev) in by_seed.items():
                    self.acc[(*line, 0.0)][seed] = acc
                    self.dev[(*line, 0.0)][seed] = dev

    def lines(self) -> set[tuple]:
        """(size, copies, mode, method) of every line."""
        return {k[:4] for k in self.acc}

    def degrees(self, line: tuple) -> list[float]:
        return sorted(k[4] for k in self.acc if k[:4] == line)

    def seeds(self, keys: Sequence[tuple]) -> list[int]:
        """Seeds every one of `keys` was trained with (the pairing)."""
        common = set.intersection(*(set(self.acc[k]) for k in keys)) if keys else set()
        return sorted(common)

    def best_degree(self, line: tuple, seeds: Sequence[int]) -> float:
        """The degree of `line` with the highest mean dev accuracy over `seeds`. Always dev: a degree
        chosen on the reported set would be the one whose score there is luckiest, and reporting that
        score would present the luck as the effect."""
        return max(self.degrees(line), key=lambda d: statistics.fmean(self.dev[(*line, d)][s] for s in seeds))

    def mean(self, key: tuple, seeds: Sequence[int]) -> float:
        """Mean reported accuracy of a cell over `seeds`."""
        return statistics.fmean(self.acc[key][s] for s in seeds)

    def chosen(self, line: tuple, seeds: Sequence[int]) -> str:
        """A line's best degree on dev and its reported accuracy there, e.g. `0.3 (test 81.2)`."""
        best = self.best_degree(line, seeds)
        return f"{best:g} ({self.on} {100 * self.mean((*line, best), seeds):.1f})"

    def degree_gap(self, a: tuple, b: tuple) -> Callable[[Sequence[int]], float]:
        """The statistic `bootstrap_interval` resamples for findings (b) and (c): the best degree on
        dev of line `a` minus that of line `b`, over the seeds it is given."""
        return lambda seeds: self.best_degree(a, seeds) - self.best_degree(b, seeds)


def findings(rows: Sequence[dict], metric: str) -> list[Finding]:
    """Every comparison the grid's cells allow, for findings (a)–(e)."""
    cells = Cells(rows, metric)
    out = []
    lines = cells.lines()
    points = lambda a, b, seeds: [100 * (cells.acc[a][s] - cells.acc[b][s]) for s in seeds]  # noqa: E731
    for size, copies, _, method in sorted({(line[0], line[1], "", line[3]) for line in lines}):
        kd, ft = (size, copies, "kd", method), (size, copies, "ft", method)
        if kd not in lines or ft not in lines or len(cells.degrees(kd)) < 2 or cells.degrees(kd)[0] != 0:
            continue
        where = f"size {size}, copies {copies}, {method}"
        keys = [(*line, d) for line in (kd, ft) for d in cells.degrees(line)]
        seeds = cells.seeds(keys)
        if len(seeds) < 2:
            continue
        best = {
            m: max(
                (d for d in cells.degrees(line) if d),
                key=lambda d: statistics.fmean(cells.dev[(*line, d)][s] for s in seeds),
            )
            for m, line in (("kd", kd), ("ft", ft))
        }
        gain = {m: points((*line, best[m]), (*line, 0.0), seeds) for m, line in (("kd", kd), ("ft", ft))}
        out.append(
            Finding(
                "a",
                f"{where}; best degree on dev: KD {best['kd']:g} (gain {statistics.fmean(gain['kd']):+.1f}), "
                f"FT {best['ft']:g} (gain {statistics.fmean(gain['ft']):+.1f})",
                t_interval([k - f for k, f in zip(gain["kd"], gain["ft"])]),
                "points",
            )
        )
        out.append(
            Finding(
                "b",
                f"{where}; best degree on dev: KD {cells.chosen(kd, seeds)}, FT {cells.chosen(ft, seeds)}",
                bootstrap_interval(seeds, cells.degree_gap(kd, ft)),
                "degree",
            )
        )
    for copies, method in sorted({(line[1], line[3]) for line in lines if line[2] == "kd"}):
        sizes = sorted(line[0] for line in lines if line[1:] == (copies, "kd", method) and len(cells.degrees(line)) > 2)
        if len(sizes) < 2:
            continue
        small, large = (sizes[0], copies, "kd", method), (sizes[-1], copies, "kd", method)
        seeds = cells.seeds([(*line, d) for line in (small, large) for d in cells.degrees(line)])
        if len(seeds) >= 2:
            out.append(
                Finding(
                    "c",
                    f"KD, {method}, copies {copies}: size {sizes[0]} vs {sizes[-1]}; best degree on dev: "
                    f"{cells.chosen(small, seeds)} vs {cells.chosen(large, seeds)}",
                    bootstrap_interval(seeds, cells.degree_gap(small, large)),
                    "degree",
                )
            )
    for size, copies, mode, method in sorted(lines):
        if mode != "kd" or method not in AUGPRO:
            continue
        for other in sorted(
            line[3]
            for line in lines
            if line[:3] == (size, copies, "kd") and line[3] != method and line[3] not in AUGPRO
        ):
            for degree in cells.degrees((size, copies, mode, method)):
                a, b = (size, copies, mode, method, degree), (size, copies, mode, other, degree)
                seeds = cells.seeds([a, b]) if degree and b in cells.acc else []
                if len(seeds) >= 2:
                    out.append(
                        Finding(
                            "d",
                            f"KD, size {size}, copies {copies}, degree {degree:g}: {method} − {other}",
                            t_interval(points(a, b, seeds)),
                            "points",
                        )
                    )
    for size, method in sorted({(line[0], line[3]) for line in lines}):
        for degree in sorted({k[4] for k in cells.acc if k[0] == size and k[3] == method and k[4]}):
            copies = sorted(
                line[1]
                for line in lines
                if (line[0], line[2], line[3]) == (size, "kd", method)
                and (size, line[1], "ft", method, degree) in cells.acc
                and (size, line[1], "kd", method, degree) in cells.acc
            )
            if len(copies) < 2:
                continue
            for few, many in zip(copies, copies[1:]):
                keys = [(size, c, m, method, degree) for c in (few, many) for m in ("kd", "ft")]
                seeds = cells.seeds(keys)
                if len(seeds) < 2:
                    continue
                kd_gain = points(keys[2], keys[0], seeds)
                ft_gain = points(keys[3], keys[1], seeds)
                out.append(
                    Finding(
                        "e",
                        f"size {size}, {method} {degree:g}: KD gain {many} vs {few} copies "
                        f"{statistics.fmean(kd_gain):+.1f}, FT gain {statistics.fmean(ft_gain):+.1f}; KD − FT",
                        t_interval([k - f for k, f in zip(kd_gain, ft_gain)]),
                        "points",
                    )
                )
    return out


STATEMENTS = {
    "a": "augmentation helps KD more than FT (gain over originals, KD − FT)",
    "b": "KD's best degree is higher than FT's (KD − FT)",
    "c": "smaller sets prefer higher degrees (KD best degree, smallest − largest size)",
    "d": "AugPro beats plain token replacement (KD accuracy difference)",
    "e": "KD keeps gaining with more copies while FT stops (gain from more copies, KD − FT)",
}


def markdown(found: Sequence[Finding]) -> list[str]:
    """The findings section of results.md: one table row per comparison, raw and Holm-adjusted side by
    side. The family is every comparison of the table, and the section says how many raw "holds"
    chance alone would give among them."""
    if not found:
        return []
    m = len(found)
    adjusted = holm([f.interval.p for f in found])
    holm_verdicts = [holm_verdict(f.interval.estimate, q) for f, q in zip(found, adjusted)]
    raw_holds = sum(f.interval.verdict == "holds" for f in found)
    md = [
        "## Findings (paired by seed, 95% CI)",
        "",
        "Differences in accuracy points (t interval over seeds) or in degree (bootstrap over seeds); best "
        "degrees are chosen on dev. Raw p: one-sided, in the direction of the estimate (the paired t-test's, "
        "or the bootstrap's share of resamples on the other side of 0); the raw verdict is the 95% interval's.",
        "",
        f"Family: the {m} comparison{'s' if m > 1 else ''} below. At the one-sided {LEVEL:.1%} level of a raw verdict, chance alone "
        f'would give about {m * LEVEL:.1f} "holds" among them ({m} × {LEVEL:g}) even if no effect were real; '
        f'{raw_holds} read "holds" raw, {holm_verdicts.count("holds")} after Holm–Bonferroni adjustment across '
        "the family (at most a 5% chance of any false verdict in it).",
        "",
        "| finding | cells | estimate | 95% CI | seeds | raw p | Holm p | verdict (raw) | verdict (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f, q, verdict in zip(found, adjusted, holm_verdicts):
        i = f.interval
        fmt = "{:+.1f}" if f.unit == "points" else "{:+.2f}"
        md.append(
            f"| ({f.finding}) {STATEMENTS[f.finding]} | {f.where} | {fmt.format(i.estimate)} {f.unit} | "
            f"[{fmt.format(i.low)}, {fmt.format(i.high)}] | {i.n} | {_p(i.p)} | {_p(q)} | {i.verdict} | {verdict} |"
        )
    return md + [""]


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
