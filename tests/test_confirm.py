"""The pre-registered analysis (bench/confirm.py): its contrasts are what PLAN.md says they are."""

import csv
import json

import numpy as np
import pytest

from bench import confirm


def test_slope_contrast_is_the_least_squares_slope_of_kd_minus_ft_times_the_span():
    rng = np.random.default_rng(0)
    acc = {(mode, d): rng.uniform(60, 90) for mode in ("kd", "ft") for d in confirm.GRID}
    value = sum(w * acc[(mode, degree)] for w, mode, _, degree, _ in confirm.kd_minus_ft_slope())
    slope = np.polyfit(confirm.GRID, [acc[("kd", d)] - acc[("ft", d)] for d in confirm.GRID], 1)[0]
    assert value == pytest.approx(0.7 * slope)


def test_fixed_degree_contrast_is_kd_gain_minus_ft_gain():
    terms = confirm.kd_minus_ft_gain("knn", 0.3, 16)
    assert sorted(terms) == sorted(
        [
            (1.0, "kd", "knn", 0.3, 16),
            (-1.0, "kd", "original", 0.0, 0),
            (-1.0, "ft", "knn", 0.3, 16),
            (1.0, "ft", "original", 0.0, 0),
        ]
    )


def write_study(path, rows, configs=1):
    path.mkdir(parents=True)
    (path / "configs.json").write_text(json.dumps({f"c{i}": {} for i in range(configs)}))
    with open(path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["size", "mode", "method", "degree", "copies", "seed", "test_accuracy"])
        writer.writeheader()
        writer.writerows(rows)


P5 = next(c for c in confirm.CONTRASTS if c.name == "P5")


def p5_rows(fgsm_above_knn: float) -> list[dict]:
    """P5's cells on every planned seed: augpro-fgsm `fgsm_above_knn` points above knn, ±0.5 by seed."""
    rows = []
    for i, seed in enumerate(P5.seeds):
        cell = dict(size=2000, mode="kd", degree=0.3, copies=4, seed=seed)
        rows.append(cell | dict(method="knn", test_accuracy=0.80))
        noise = 0.005 if i % 2 else -0.005
        rows.append(cell | dict(method="augpro-fgsm", test_accuracy=0.80 + fgsm_above_knn / 100 + noise))
    return rows


def test_report_tests_complete_contrasts_in_the_predicted_direction_and_holds_back_incomplete_ones(tmp_path):
    rows = p5_rows(2.0)
    write_study(tmp_path / P5.study, rows)
    p4 = next(c for c in confirm.CONTRASTS if c.name == "P4")
    write_study(
        tmp_path / p4.study,
        [dict(size=500, mode="kd", method="original", degree=0.0, copies=0, seed=100, test_accuracy=0.7)],
    )
    text = confirm.report(tmp_path)
    line = next(row for row in text.splitlines() if row.startswith("| P5 "))
    assert "| 10 | +2.00 |" in line and line.endswith("| holds | holds |")
    assert "| P4 | primary |" in text and "0 of 16 | incomplete" in text
    # a study with two training configs is refused: the plan runs each with one
    write_study(tmp_path / "other" / P5.study, rows, configs=2)
    with pytest.raises(Exception, match="2 training configs"):
        confirm.report(tmp_path / "other")


def test_a_contrast_below_zero_reads_opposite_not_holds(tmp_path):
    write_study(tmp_path / P5.study, p5_rows(-2.0))
    line = next(row for row in confirm.report(tmp_path).splitlines() if row.startswith("| P5 "))
    assert "| -2.00 |" in line and line.endswith("| opposite (CI below 0) | opposite (CI below 0) |")
