"""kdaug as a library and as a scheduled job: the Python API the CLI is a layer over, the single-text
augmenter, machine-readable results and exit codes, logs a file can hold, and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import kdaug
from tests.helpers import REPO, invoke, rows, run_cli, tree

WORDS = "the a film movie plot actor scene great dull moving funny slow story music ending".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("api") / "reviews.tsv"
    lines = ["text\tlabel"]
    for i in range(60):
        lines.append(" ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(8 + i % 5)) + f"\t{i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


FLAGS = {"text_field": "text", "label_values": ["0", "1"], "methods": ["random", "eda"], "degrees": [0.3], "copies": 2}
CLI_FLAGS = [
    "--text-field",
    "text",
    "--label-values",
    "0,1",
    "--methods",
    "random,eda",
    "--degrees",
    "0.3",
    "--copies",
    "2",
]


def test_the_api_and_the_cli_write_the_same_files(data, tmp_path):
    result = kdaug.augment(str(tmp_path / "api"), [str(data)], **FLAGS)
    assert result.status == "published" and result.path == str(tmp_path / "api")
    assert result.counts["rows_read"] == 60 and len(result.run) == 12
    invoke("augment", "--input", data, "--output", tmp_path / "cli", *CLI_FLAGS)
    shards = lambda out: {k: v for k, v in tree(out).items() if k.endswith(".parquet")}  # noqa: E731
    assert shards(tmp_path / "api") == shards(tmp_path / "cli") and len(shards(tmp_path / "cli")) == 3
    assert len(kdaug.open_dataset(result.path).to_table()) == 60 * 5


def test_api_mistakes_raise_usage_errors_before_anything_is_written(data, tmp_path):
    with pytest.raises(kdaug.UsageError, match="unknown method 'randm'"):
        kdaug.augment(str(tmp_path / "a"), [str(data)], **{**FLAGS, "methods": ["randm"]})
    with pytest.raises(kdaug.UsageError, match="--direct_num_workers"):
        kdaug.augment(str(tmp_path / "b"), [str(data)], pipeline_args=["--direct_num_worker", "2"], **FLAGS)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_single_text_augmenter_gives_the_pipelines_rows(data, tmp_path):
    out = tmp_path / "out"
    kdaug.augment(str(out), [str(data)], **{**FLAGS, "methods": ["random", "eda", "synonym", "knn"], "seed": 5})
    found = rows(out)
    originals = {r["source_id"]: r["text_a"] for r in found if r["method"] == "original"}
    for method in ("random", "eda", "synonym", "knn"):
        augmenter = kdaug.Augmenter(method, seed=5)
        ids = sorted(originals)[:6]
        texts = augmenter.augment([originals[i] for i in ids], degree=0.3, n=2, source_ids=ids)
        for source_id, copies in zip(ids, texts):
            made = sorted(
                (r["copy"], r["text_a"]) for r in found if r["method"] == method and r["source_id"] == source_id
            )
            assert [t for _, t in made] == copies, (method, source_id)
    one = kdaug.Augmenter("random").augment("a gripping and funny film about the sea", degree=0.5, n=3)
    assert len(one) == 3 and all(isinstance(t, str) for t in one) and len(set(one)) > 1


def test_a_users_pipeline_py_never_shadows_kdaug_in_the_launcher_or_its_workers(data, tmp_path):
    for name in ("pipeline", "distill"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    script = textwrap.dedent(
        f"""
        import kdaug
        result = kdaug.augment(
            "out", [{str(data)!r}], text_field="text", label_values=["0", "1"], methods=["random"], degrees=[0.3],
            copies=1, chunk_size=10,
            pipeline_args=["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        )
        print(result.status, result.counts["rows_read"])
        """
    )
    env = dict(os.environ, PYTHONPATH="")  # the working directory comes first on sys.path, as for a user
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["published", "60"]


def test_summary_json_and_the_unchanged_exit_code(data, tmp_path, monkeypatch):
    summary = tmp_path / "summary.json"
    args = ["augment", "--output", tmp_path / "root", *CLI_FLAGS, "--if-changed", "--summary-json", summary]
    invoke(*args, "--input", data, "--unchanged-exit-code", "99")
    published = json.loads(summary.read_text())
    assert published["status"] == "published" and published["counts"]["rows_read"] == 60
    assert published["path"].endswith(published["run"]) and published["seconds"] > 0
    # the same file named by a relative path is the same input: unchanged, exit 99
    monkeypatch.chdir(data.parent.parent)
    invoke(*args, "--input", os.path.relpath(data), "--unchanged-exit-code", "99", code=99)
    skipped = json.loads(summary.read_text())
    assert skipped["status"] == "unchanged" and skipped["run"] == published["run"]
    assert "unchanged since" in skipped["message"]
    invoke(*args, "--input", data)  # the exit code is opt-in: 0


def test_logs_off_a_terminal_have_times_and_no_bars(data, tmp_path, monkeypatch):
    monkeypatch.setenv("KDAUG_PROGRESS_SECONDS", "0")
    result = run_cli("augment", "--input", data, "--output", tmp_path / "out", *CLI_FLAGS)
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and "\r" not in result.stderr and "\x1b[" not in result.stderr
    stamped = [line for line in lines if line[:4].isdigit() and line[10] == "T" and line[19] == "Z"]
    assert any("planned" in line for line in stamped) and any("augmenting: 60/60" in line for line in stamped), lines


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_a_multi_processing_run_with_one_line(data, tmp_path, how):
    """SIGTERM to kdaug (a scheduler's stop) or SIGINT to its process group (Ctrl-C reaches Beam's
    workers too): one line, exit 128 + the signal, no worker left, nothing published."""
    big = tmp_path / "big.tsv"
    body = data.read_text().splitlines()[1:]
    big.write_text("text\tlabel\n" + "\n".join(body * 40) + "\n")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdaug", "augment", "--input", str(big), "--output", str(out), *CLI_FLAGS[:6],
         "--methods", "random,eda,synonym", "--degrees", "0.1,0.3,0.5", "--copies", "20", "--chunk-size", "50",
         "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("_kdaug/attempts/*/*/*/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = psutil.Process(proc.pid).children(recursive=True)  # Beam's SDK workers among them
    signum = getattr(signal, how)
    if how == "SIGINT":
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-3000:]
    # Beam's workers log their start-up (WARNING:/INFO: lines) in any multi_processing run; after the
    # signal only kdaug's one line follows: no traceback, no lost gRPC connection
    after = err[err.index("augmenting") :] if "augmenting" in err else err
    said = [
        line for line in after.splitlines() if not line.startswith(("WARNING:", "INFO:")) and "augmenting" not in line
    ]
    assert len(said) == 1 and f"stopped by {how}: " in said[0] and "nothing was published" in said[0], err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "grpc" not in err.lower(), err[-3000:]
    assert not (out / "_SUCCESS").exists()
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


def test_a_missing_wordnet_is_refused_before_anything_is_touched(data, tmp_path, monkeypatch):
    from kdaug.augmenters import resources

    monkeypatch.setattr(resources, "WORDNET_SOURCE", tmp_path / "nowhere")
    for method in ("synonym", "eda"):
        with pytest.raises(kdaug.UsageError, match=f"{method}: WordNet not found in .*nowhere"):
            kdaug.augment(str(tmp_path / "out"), [str(data)], **{**FLAGS, "methods": [method]})
    assert not (tmp_path / "out").exists()
