"""The sweep's findings: paired-by-seed intervals and verdicts, against hand-computed cases."""

from __future__ import annotations

import pytest

from kdaug.distillation.findings import Interval, bootstrap_interval, findings, markdown, t_interval


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
    assert Interval(0.2, 0.2, 0.2, 5).verdict == "holds"


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
    b = {f.where: f.interval for f in by["b"]}
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
