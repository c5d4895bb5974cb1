"""The papers' findings, tested on a sweep's cells with 95% confidence intervals over seeds.

Every cell of a sweep is trained once per seed, and a seed fixes the student's initialisation and
shuffling, so two cells that differ only in one factor (degree, mode, method, copies) are compared
*paired by seed*: the per-seed differences' mean and a Student-t 95% interval. Where the quantity
is a best degree (an argmax, not an average), the interval comes from a seeded bootstrap over seeds
(resampling whole seeds keeps the pairing). A verdict reads "holds" when the interval is above 0,
"does not hold" when below, and "inconclusive (CI includes 0)" otherwise.

Accuracy is the sweep's reported metric (test when every cell has it). Where a degree must be
chosen (finding a), it is chosen on dev and the gain is measured on the reported set, so the
selection does not flatter the estimate.

  (a) augmentation helps KD more than FT: (KD at its best degree − KD on originals) − (the same for FT)
  (b) KD's best degree is higher than FT's: best degree (KD) − best degree (FT), bootstrap
  (c) smaller sets prefer higher degrees: KD's best degree on the smallest size − on the largest, bootstrap
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


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

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
    """Mean of paired differences with a Student-t interval (n − 1 degrees of freedom)."""
    from scipy.stats import t

    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return Interval(mean, float("-inf"), float("inf"), n)
    half = t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(diffs) / n**0.5
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_interval(
    seeds: Sequence,
    statistic: Callable[[Sequence], float],
    confidence: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Interval:
    """`statistic(seeds)` with a percentile interval from resampling the seeds with replacement."""
    rng = np.random.default_rng(seed)
    draws = [statistic([seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]) for _ in range(samples)]
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(statistic(seeds), float(low), float(high), len(seeds))


class Cells:
    """Accuracies by (size, copies, mode, method, degree) and seed; the originals-only cells of a
    (size, mode) serve as degree 0 of every line of that size and mode (a (size, mode) with no
    augmented cell gets a line of its own, copies 0 and method `original`)."""

    def __init__(self, rows: Sequence[dict], metric: str):
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

    def best_degree(self, line: tuple, seeds: Sequence[int], scores: str = "acc") -> float:
        table = self.acc if scores == "acc" else self.dev
        return max(self.degrees(line), key=lambda d: statistics.fmean(table[(*line, d)][s] for s in seeds))

    def degree_gap(self, a: tuple, b: tuple) -> Callable[[Sequence[int]], float]:
        """The statistic `bootstrap_interval` resamples for findings (b) and (c): the best degree of
        line `a` minus that of line `b`, over the seeds it is given."""
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
                where,
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
                    f"KD, {method}, copies {copies}: size {sizes[0]} vs {sizes[-1]}",
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
    """The findings section of results.md: one table row per comparison."""
    if not found:
        return []
    md = [
        "## Findings (paired by seed, 95% CI)",
        "",
        "Differences in accuracy points (t interval over seeds) or in degree (bootstrap over seeds).",
        "",
        "| finding | cells | estimate | 95% CI | seeds | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for f in found:
        i = f.interval
        fmt = "{:+.1f}" if f.unit == "points" else "{:+.2f}"
        md.append(
            f"| ({f.finding}) {STATEMENTS[f.finding]} | {f.where} | {fmt.format(i.estimate)} {f.unit} | "
            f"[{fmt.format(i.low)}, {fmt.format(i.high)}] | {i.n} | {i.verdict} |"
        )
    return md + [""]
