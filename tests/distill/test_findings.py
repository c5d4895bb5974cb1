"""The sweep's findings: paired-by-seed intervals and verdicts, Holm-adjusted verdicts across a report's
family, and best degrees chosen on dev, against hand-computed cases."""

from __future__ import annotations

import pytest

from kdaug import commit
from kdaug.distillation.findings import (
    Finding,
    Interval,
    bootstrap_interval,
    findings,
    holm,
    markdown,
    t_interval,
)
from kdaug.distillation.sweep import write_report


def test_t_interval_matches_a_hand_computed_case():
    # diffs 1..5: mean 3, sd sqrt(2.5), se sqrt(2.5)/sqrt(5) = 0.70711; t(0.975, 4 df) = 2.77645
    interval = t_interval([1, 2, 3, 4, 5])
    assert interval.estimate == 3 and interval.n == 5
    assert interval.low == pytest.approx(3 - 2.776445 * 0.707107, abs=1e-5)
    assert interval.high == pytest.approx(3 + 2.776445 * 0.707107, abs=1e-5)
    assert interval.verdict == "holds"


def test_verdicts():
    assert t_interval([-2, -2.5, -3, -2.2, -2.8]).verdict == "does not hold"
    assert t_interval([1, -1, 2, -2]).verdict == "inconclusive (CI includes 0)"
    assert t_interval([1.0]).verdict == "inconclusive (CI includes 0)"  # one seed: no interval at all
    assert Interval(0.2, 0.2, 0.2, 5, 0.0).verdict == "holds"


def test_one_sided_p_values():
    # diffs 1, 2, 3: t = 2 / (1 / sqrt 3) = 2 sqrt 3 on 2 df, where P(T > t) = 1/2 − t / (2 sqrt(2 + t²))
    assert t_interval([1, 2, 3]).p == pytest.approx(0.5 - 3**0.5 / 14**0.5, abs=1e-12)  # 0.0371
    assert t_interval([-1, -2, -3]).p == t_interval([1, 2, 3]).p  # in the direction of the estimate
    assert t_interval([2.0, 2.0, 2.0]).p == 0 and t_interval([1.0]).p == 1
    # a bootstrap whose every resample agrees: (0 against + 1) / (4000 + 1), never 0
    assert bootstrap_interval([0.2] * 5, lambda s: sum(s) / len(s)).p == pytest.approx(1 / 4001)
    assert bootstrap_interval([0.0] * 5, lambda s: sum(s) / len(s)).p == 1


def test_holm_matches_a_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 → running max 0.06 for the last
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []


def test_holm_keeps_the_strong_comparison_and_drops_the_marginal_ones():
    """A family of 8: one strong effect, four marginal ones that hold raw (p just under 2.5%) and
    three nulls. Holm: 8 × 1e-6; 7 × 0.010 = 0.07; 6 × 0.015 = 0.09; 5 × 0.020 = 0.10; 4 × 0.024 =
    0.096 → 0.10 (the running max); 3 × 0.3 = 0.9; 2 × 0.5 = 1; 1 × 0.8 → 1."""
    marginal = [0.010, 0.015, 0.020, 0.024]
    family = [Finding("a", "strong", Interval(5.0, 4.8, 5.2, 5, 1e-6), "points")]
    family += [Finding("d", f"marginal {p}", Interval(1.0, 0.1, 1.9, 5, p), "points") for p in marginal]
    family += [Finding("e", f"null {p}", Interval(0.1, -1.0, 1.2, 5, p), "points") for p in (0.3, 0.5, 0.8)]
    assert holm([f.interval.p for f in family]) == pytest.approx([8e-6, 0.07, 0.09, 0.10, 0.10, 0.9, 1.0, 1.0])
    md = "\n".join(markdown(family))
    assert "| estimate | 95% CI | seeds | raw p | Holm p | verdict (raw) | verdict (Holm) |" in md
    assert "| strong | +5.0 points | [+4.8, +5.2] | 5 | < 0.001 | < 0.001 | holds | holds |" in md
    assert (
        "| marginal 0.01 | +1.0 points | [+0.1, +1.9] | 5 | 0.010 | 0.070 | holds | inconclusive (Holm p ≥ 0.025) |"
        in md
    )
    assert "| marginal 0.024 | +1.0 points | [+0.1, +1.9] | 5 | 0.024 | 0.100 | holds | inconclusive" in md
    assert (
        "| null 0.5 | +0.1 points | [-1.0, +1.2] | 5 | 0.500 | 1.000 | inconclusive (CI includes 0) | inconclusive"
        in md
    )
    assert (
        "Family: the 8 comparisons below. At the one-sided 2.5% level of a raw verdict, chance alone would give "
        'about 0.2 "holds" among them (8 × 0.025) even if no effect were real; 5 read "holds" raw, 1 after '
        "Holm–Bonferroni adjustment" in md
    )
    # a strong effect against the other direction is a Holm "does not hold"
    flipped = [Finding("a", "against", Interval(-5.0, -5.2, -4.8, 5, 1e-6), "points")]
    assert "| < 0.001 | < 0.001 | does not hold | does not hold |" in "\n".join(markdown(flipped))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    values = [0.1, 0.3, 0.3, 0.5, 0.3]
    a = bootstrap_interval(values, lambda s: sum(s) / len(s))
    assert a == bootstrap_interval(values, lambda s: sum(s) / len(s))
    assert a.low <= a.estimate <= a.high and a.low >= 0.1 and a.high <= 0.5


def rows(accuracy) -> list[dict]:
    """A grid's CSV rows: sizes 500/2000, kd/ft, knn + augpro-mix, degrees 0-0.5, copies 4 (+16 for
    knn at 0.3), seeds 0-4; `accuracy(size, mode, method, degree, copies, seed)` gives test accuracy,
    dev is the same minus 0.01."""
    out = []

    def add(size, mode, method, degree, copies, seed):
        acc = accuracy(size, mode, method, degree, copies, seed)
        out.append(
            {
                "size": str(size),
                "mode": mode,
                "method": method,
                "degree": f"{degree:.2f}",
                "copies": str(copies),
                "seed": str(seed),
                "test_accuracy": str(acc),
                "dev_accuracy": str(acc - 0.01),
            }
        )

    for size in (500, 2000):
        for mode in ("kd", "ft"):
            for seed in range(5):
                add(size, mode, "original", 0.0, 0, seed)
                for method in ("knn", "augpro-mix"):
                    for degree in (0.1, 0.3, 0.5):
                        add(size, mode, method, degree, 4, seed)
                add(size, mode, "knn", 0.3, 16, seed)
    return out


def paper_like(size, mode, method, degree, copies, seed):
    """KD peaks at 0.5 on 500 and 0.3 on 2,000 and gains from copies; FT peaks at 0.1, gains little
    and not from copies; AugPro is 1 point above knn; seeds add a little noise."""
    noise = 0.002 * ((seed * 7 + len(method)) % 3)
    if mode == "kd":
        peak = 0.5 if size == 500 else 0.3
        return (
            0.80
            + (0.04 - 0.1 * abs(degree - peak) if degree else 0)
            + (0.01 if method == "augpro-mix" else 0)
            + (0.02 if copies == 16 else 0)
            + noise
        )
    return 0.78 + (0.01 - 0.05 * abs(degree - 0.1) if degree else 0) + noise


def test_findings_hold_on_a_grid_built_to_show_them():
    found = findings(rows(paper_like), "test_accuracy")
    by = {}
    for f in found:
        by.setdefault(f.finding, []).append(f)
    assert set(by) == {"a", "b", "c", "d", "e"}
    assert all(f.interval.verdict == "holds" for f in by["a"] + by["c"] + by["d"] + by["e"]), markdown(found)
    b = {f.where.split(";")[0]: f.interval for f in by["b"]}
    assert b["size 500, copies 4, knn"].estimate == pytest.approx(0.4)  # KD 0.5 vs FT 0.1
    assert b["size 500, copies 4, knn"].verdict == "holds"
    (c,) = [f for f in by["c"] if "knn" in f.where]
    assert c.interval.estimate == pytest.approx(0.2)  # 0.5 on 500 vs 0.3 on 2,000
    assert "| (e) KD keeps gaining" in "\n".join(markdown(found))


def test_findings_that_do_not_hold_say_so():
    flipped = lambda *cell: paper_like(*cell) if cell[1] == "ft" else 0.80 - 0.05 * cell[3]  # noqa: E731
    found = findings(rows(flipped), "test_accuracy")
    a = [f for f in found if f.finding == "a"]
    assert a and all(f.interval.verdict == "does not hold" for f in a)


def disagreeing(tmp_path) -> tuple[list[dict], str]:
    """Rows (as results.csv holds them) where dev and test disagree on every line's best degree:
    on dev KD peaks at 0.1 on 500 rows and 0.3 on 2,000 and FT the other way round; on test each
    line peaks at the degree dev ranks second. Return them and the results.md they report."""
    dev_peak = {(500, "kd"): 0.1, (500, "ft"): 0.3, (2000, "kd"): 0.3, (2000, "ft"): 0.1}
    rows = []
    for (size, mode), peak in dev_peak.items():
        for degree in (0.0, 0.1, 0.3):
            dev = 0.80 if degree == peak else 0.75 if degree else 0.70
            test = 0.90 if degree and degree != peak else 0.65 if degree else 0.60
            for seed in range(3):
                rows.append(
                    {
                        "size": str(size),
                        "mode": mode,
                        "method": "knn" if degree else "original",
                        "degree": f"{degree:.2f}",
                        "copies": "4" if degree else "0",
                        "seed": str(seed),
                        "dev_accuracy": str(dev + seed / 1000),
                        "test_accuracy": str(test + seed / 1000),
                        "train_seconds": "1.0",
                        "hit_cap": "False",
                        "warmup_steps": "50",
                        "best_in_warmup": str(seed == 0 and size == 500),
                    }
                )
    write_report(rows, commit.Store(str(tmp_path)))
    return rows, (tmp_path / "results.md").read_text()


def test_best_degrees_are_chosen_on_dev_and_reported_on_test(tmp_path):
    """The table, findings (b) and (c) and best_degree.png choose on dev; the number shown for a
    choice is its test accuracy (the choice's, not the best test score)."""
    rows, md = disagreeing(tmp_path)
    assert "| best degree (dev) | its test accuracy |" in md
    assert "| 500 | 4 | kd | knn | 60.1 ± 0.1 (3) | 65.1 ± 0.1 (3) | 90.1 ± 0.1 (3) | 0.10 | 65.1 |" in md
    assert "| 500 | 4 | ft | knn | 60.1 ± 0.1 (3) | 90.1 ± 0.1 (3) | 65.1 ± 0.1 (3) | 0.30 | 65.1 |" in md
    assert "the accuracy beside it is its test accuracy" in md
    assert "6 kept a checkpoint from inside the learning-rate warm-up (which ends at step 50)" in md
    found = {f.finding: f for f in findings(rows, "test_accuracy") if f.finding in "bc" and "500" in f.where}
    assert found["b"].interval.estimate == pytest.approx(0.1 - 0.3)  # on test it would read +0.2
    assert "best degree on dev: KD 0.1 (test 65.1), FT 0.3 (test 65.1)" in found["b"].where
    assert found["c"].interval.estimate == pytest.approx(0.1 - 0.3)
    assert "best degree on dev: 0.1 (test 65.1) vs 0.3 (test 65.1)" in found["c"].where
    assert (tmp_path / "best_degree.png").is_file()


def test_without_a_test_set_dev_chooses_and_reports_and_says_so(tmp_path):
    rows, _ = disagreeing(tmp_path)
    write_report([{**r, "test_accuracy": ""} for r in rows], commit.Store(str(tmp_path)))
    md = (tmp_path / "results.md").read_text()
    assert "| 500 | 4 | kd | knn | 70.1 ± 0.1 (3) | 80.1 ± 0.1 (3) | 75.1 ± 0.1 (3) | 0.10 | 80.1 |" in md
    assert "| best degree (dev) | its dev accuracy |" in md and "the accuracy beside it is dev's too" in md
