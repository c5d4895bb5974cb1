"""Dask as a second engine: a `dask.distributed.LocalCluster` of 2 worker processes on 127.0.0.1 runs
`kdaug augment`, `kdaug run` and `kdaug label` to the same files, byte for byte, as the DirectRunner
(dead letters and manifests included), for several input files and for one file, whose splits reach
both workers."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from kdaug import commit, schema
from kdaug.beam import engines
from tests.helpers import invoke

distributed = pytest.importorskip("distributed")
dask_bag = pytest.importorskip("dask.bag")

WORDS = "the a film movie story actor plot scene good bad great dull charming witty long music camera funny sad".split()


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local.scheduler_address, client


def sentences(rng, n):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) for _ in range(n)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two TSV files and a JSONL file with bad rows, and one larger TSV file."""
    root = tmp_path_factory.mktemp("inputs")
    rng = random.Random(1)
    (root / "a.tsv").write_text(
        "sentence\tlabel\n"
        + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sentences(rng, 90)))
        + "bad\tline\tthree\n\t1\nunknown\t7\n"
    )
    (root / "b.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sentences(rng, 40)))
    )
    (root / "c.jsonl").write_text(
        "".join(json.dumps({"sentence": s, "label": str(i % 2)}) + "\n" for i, s in enumerate(sentences(rng, 30)))
        + "{not json\n"
        + json.dumps({"sentence": 5, "label": "1"})
        + "\n"
    )
    (root / "one.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sentences(rng, 400)))
    )
    return root


def published(output) -> tuple[dict, dict[str, str]]:
    """(manifest without what differs by attempt, {file: sha256}) of an output's published run."""
    run = commit.published(str(output))
    files = {
        rel: hashlib.sha256((Path(run.dir) / rel).read_bytes()).hexdigest()
        for rel in commit.manifest_files(run.manifest)
    }
    manifest = {k: v for k, v in run.manifest.items() if k not in ("attempt", "published_at")}
    if "source" in manifest:
        manifest["source"] = {
            "manifest": {
                k: v for k, v in manifest["source"]["manifest"].items() if k not in ("attempt", "published_at")
            }
        }
    return manifest, files


def on_both(tmp_path, cluster, *args) -> tuple:
    """Run `kdaug ARGS --output …` on the DirectRunner and on the cluster; both outputs' published runs."""
    address, _ = cluster
    invoke(*args, "--output", tmp_path / "direct")
    invoke(*args, "--output", tmp_path / "dask", "--runner", "dask", "--dask_client_address", address)
    return published(tmp_path / "direct"), published(tmp_path / "dask")


def augment_args(*files, methods="random,eda,knn"):
    return [
        "augment",
        "--task",
        "sst2",
        *[a for f in files for a in ("--input", f)],
        "--methods",
        methods,
        "--degrees",
        "0.2,0.5",
        "--copies",
        "2",
        "--chunk-size",
        "16",
        "--seed",
        "3",
    ]


def test_augment_on_dask_equals_the_direct_runner(inputs, cluster, tmp_path):
    direct, dask = on_both(tmp_path, cluster, *augment_args(inputs / "a.tsv", inputs / "b.tsv", inputs / "c.jsonl"))
    assert dask == direct
    manifest, files = dask
    assert manifest["counts"]["dead_letters"] == 5 and manifest["counts"]["rows_read"] == 93 + 40 + 32
    assert [f["file"] for f in manifest["counts"]["per_file"]] == [
        str(inputs / n) for n in ("a.tsv", "b.tsv", "c.jsonl")
    ]
    assert any(f.startswith("_dead_letter/") for f in files)
    metrics = json.loads((tmp_path / "dask" / commit.METRICS_FILE).read_text())
    assert metrics["runner"] == "DaskRunner" and metrics["counters"] is None


def test_one_file_is_split_across_both_workers(inputs, cluster, tmp_path):
    _, client = cluster
    with distributed.get_task_stream(client) as stream:
        direct, dask = on_both(tmp_path, cluster, *augment_args(inputs / "one.tsv", methods="random"))
    assert dask == direct and len([f for f in dask[1] if f.startswith("original/")]) == 25  # 400 rows / 16
    # 25 splits in (up to) PARTITIONS_PER_THREAD partitions per worker thread; the steps over them run on both workers
    partitions = dask_bag.from_sequence(range(25), npartitions=engines.PARTITIONS_PER_THREAD * 2).npartitions
    by_step: dict[str, set] = {}
    for task in stream.data:
        key = task.get("key")
        if isinstance(key, tuple) and str(key[0]).startswith("apply_dofn_to_bundle"):
            by_step.setdefault(key[0], set()).add((key[1], task["worker"]))
    split_steps = [runs for runs in by_step.values() if len({p for p, _ in runs}) == partitions]
    assert split_steps and all(len({w for _, w in runs}) == 2 for runs in split_steps), by_step


def test_run_and_label_on_dask_equal_the_direct_runner(inputs, cluster, tmp_path, tiny_teacher_dir):
    teacher = ["--teacher", tiny_teacher_dir, "--teacher-threads", "1"]
    run = ["run", *augment_args(inputs / "a.tsv", methods="random,augpro-mix")[1:]]
    direct, dask = on_both(tmp_path / "run", cluster, *run, *teacher)
    assert dask == direct and dask[0]["teacher"]["fingerprint"]
    invoke(*augment_args(inputs / "a.tsv", inputs / "c.jsonl", methods="random"), "--output", tmp_path / "aug")
    direct, dask = on_both(tmp_path / "label", cluster, "label", "--input", tmp_path / "aug", *teacher)
    assert dask == direct
    assert dask[0]["counts"]["rows_read"] == sum(
        f["rows"] for f in commit.published(str(tmp_path / "aug")).manifest["files"] if schema.is_shard(f["path"])
    )
