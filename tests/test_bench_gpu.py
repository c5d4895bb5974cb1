"""bench/bench_gpu.py is run once on a GPU machine, where a broken script would waste its time: it
must run here, on the CPU, with small sizes, and report every figure it promises. Slow (10 s): run it
with `make test-slow` before a GPU session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_runs_on_the_cpu_and_reports_every_figure(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--quick",
            "--json",
            str(tmp_path / "gpu.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    results = report["results"]
    labels = {(r["precision"], r["max_tokens"]) for r in results if r["what"] == "label"}
    assert labels == {(p, t) for p in ("fp32", "bf16") for t in (1024, 4096)}
    assert all(r["sentences_per_s"] > 0 for r in results if r["what"] == "label")
    (agreement,) = [r for r in results if r["what"] == "agreement"]
    assert 0.5 <= agreement["argmax_agreement"] <= 1
    assert {r["precision"] for r in results if r["what"] == "distill" and r["steps_per_s"] > 0} == {"fp32", "bf16"}
