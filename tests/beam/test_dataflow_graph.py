"""The distributed path, proved offline: `kdaug run`'s graph goes through DataflowRunner up to the
point of submission (`--dry_run`, no network), carries the expected steps and no large pickled
objects, and the DoFns taken out of that graph set up and run in a fresh process that may not
touch the network, loading every resource from local files (as a worker of docker/Dockerfile)."""

import json
import os
import socket
import subprocess
import sys
import types

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions, WorkerOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from kdaug import commit
from kdaug.augmenters import REGISTRY, AugmentOptions
from kdaug.beam.augment_job import AugmentConfig, build
from kdaug.beam.label_job import LabelConfig
from kdaug.inputs import sources
from tests.helpers import REPO

IMAGE = "us-docker.pkg.dev/kdaug-test/kdaug/worker:test"
DATAFLOW = [
    "--runner",
    "DataflowRunner",
    "--project",
    "kdaug-test",
    "--region",
    "us-central1",
    "--temp_location",
    "gs://kdaug-test-bucket/tmp",
    "--sdk_container_image",
    IMAGE,
    "--job_name",
    "kdaug-graph-test",
    "--dry_run",
    "True",
]
STEPS = {
    "Splits",
    "Read",
    "Chunks",
    "Spread",
    "Augment",
    "Label",
    "Partitions",
    "Write",
    "DeadLetters",
    "WriteDeadLetters",
    "Files",
    "Stats",
    "Summaries",
    "Gather",
    "Finalize",
}
DEGREES, COPIES = [0.1, 0.3], 2
SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the film is strictly routine and never finds a rhythm",
    "it 's a charming and often affecting journey .",
    "an ugly , pointless , stupid movie",
]

# Run as a separate process: the DoFns of the graph, unpickled as a Dataflow worker does.
WORKER = """
import json, socket, sys
from pathlib import Path
attempts = []
real_connect = socket.socket.connect
def connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        attempts.append(repr(address))
        raise RuntimeError(f"network connect to {address!r}")
    return real_connect(sock, address)
def lookup(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise RuntimeError(f"DNS lookup of {args[:2]!r}")
socket.socket.connect, socket.getaddrinfo = connect, lookup

from apache_beam.internal import pickler
from apache_beam.io.filesystems import FileSystems
from kdaug.inputs import sources, splits
work = Path(sys.argv[1])
read, augment, label = (pickler.loads((work / f"{step}.pkl").read_bytes())[0] for step in ("Read", "Augment", "Label"))
for fn in (read, augment, label):
    fn.setup()
plan = splits.plan_file(sys.argv[2], "tsv", 3, None, FileSystems.open)
chunks = [value for split in plan.splits for kind, value in read.process(split) if kind == "chunk"]
rows = {}
for chunk in chunks:
    for group in augment.process(chunk):
        for labelled in label.process([group], None, None):  # RunInference's DoFn: batches of one group
            for (partition, _), batch in labelled:
                rows.setdefault(partition, []).extend(batch)
print(json.dumps({"attempts": attempts, "rows": rows}))
"""


def refuse_network(monkeypatch):
    """Fail on any TCP/UDP connect or DNS lookup in this process."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network connect to {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail(f"DNS lookup of {a[:2]!r}"))


def stub_dataflow_client(monkeypatch) -> bool:
    """DataflowRunner's API client needs apache-beam[gcp]; without it, a stand-in `Job` receives the
    pipeline proto at the point where the real one would be built. Returns whether the real is used."""
    try:
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401

        return True
    except ImportError:
        stub = types.ModuleType("apache_beam.runners.dataflow.internal.apiclient")
        stub.get_container_image_from_options = lambda options: options.view_as(WorkerOptions).sdk_container_image
        stub.Job = lambda options, proto_pipeline: types.SimpleNamespace(options=options, proto_pipeline=proto_pipeline)
        monkeypatch.setitem(sys.modules, stub.__name__, stub)
        return False


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_teacher_dir):
    """`kdaug run` with every method, through DataflowRunner with --dry_run: (runner, result, input, real client?)."""
    tmp = tmp_path_factory.mktemp("dataflow")
    data = tmp / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES)))
    options = AugmentOptions(seed=1, teacher_dir=tiny_teacher_dir, glove_vocab=5_000)
    config = AugmentConfig(
        [str(data)],
        "gs://kdaug-test-bucket/out",
        sources.make_task("sst2"),
        sorted(REGISTRY),
        DEGREES,
        COPIES,
        options,
        chunk_size=3,
    )
    config.validate()
    with pytest.MonkeyPatch.context() as monkeypatch:
        refuse_network(monkeypatch)
        real = stub_dataflow_client(monkeypatch)
        pipeline = beam.Pipeline(options=PipelineOptions(DATAFLOW))
        attempt = commit.Attempt(config.output, "graphtest0000", detached=True)
        build(pipeline, config, attempt, label=LabelConfig(tiny_teacher_dir))
        result = pipeline.run()  # --dry_run: everything up to the submission request
    return pipeline.runner, result, str(data), real


def transforms(proto):
    return proto.components.transforms.values()


def do_fn_payloads(proto) -> dict[str, bytes]:
    return {
        t.unique_name: beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload).do_fn.payload
        for t in transforms(proto)
        if t.spec.urn == common_urns.primitives.PAR_DO.urn
    }


def step_fn(payloads: dict[str, bytes], step: str) -> bytes:
    """The pickled DoFn of a top-level step (`Read` is `Read/ParDo(ReadChunks)` in the graph, the
    teacher's DoFn of `Label` is `Label/RunInference/BeamML_RunInference`)."""
    (name,) = [
        n
        for n in payloads
        if n == step or n.startswith(f"{step}/ParDo(") or n == f"{step}/RunInference/BeamML_RunInference"
    ]
    return payloads[name]


def test_dataflow_graph_has_the_job_steps_on_the_worker_image(job):
    runner, _, _, _ = job
    proto = runner.proto_pipeline
    top = {t.unique_name for t in transforms(proto) if "/" not in t.unique_name}
    assert STEPS <= top, f"missing steps: {STEPS - top}"
    images = {
        beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
        for env in proto.components.environments.values()
    }
    assert images == {IMAGE}
    assert all(t.environment_id in proto.components.environments for t in transforms(proto) if t.environment_id)
    for step in ("Read", "Augment", "Label", "Write", "Finalize"):
        assert step_fn(do_fn_payloads(proto), step)
    assert "Label/RunInference" in {t.unique_name for t in transforms(proto)}  # Beam's standard inference step


def test_real_dataflow_client_built_the_job(job):
    runner, result, _, real = job
    if not real:
        pytest.skip(
            "apache-beam[gcp] is not installed (pip install '.[gcp]'): the graph went through "
            "DataflowRunner up to a stand-in Job"
        )
    from apache_beam.runners.dataflow.internal.apiclient import Job

    assert isinstance(result.job, Job) and result.job.proto_pipeline is runner.proto_pipeline


def test_no_large_objects_pickled_into_the_graph(job):
    runner, _, _, _ = job
    proto = runner.proto_pipeline
    payloads = do_fn_payloads(proto)
    assert max(len(p) for p in payloads.values()) < 64 * 1024, sorted((len(p), n) for n, p in payloads.items())[-3:]
    assert max(len(t.spec.payload) for t in transforms(proto)) < 1 << 20
    assert len(proto.SerializeToString()) < 1 << 20
    for step in ("Augment", "Label"):  # models, vectors and WordNet load in setup, on the worker
        fn = pickler.loads(step_fn(payloads, step))[0]
        assert not {"augmenters", "teacher", "_model"} & {k for k, v in vars(fn).items() if v is not None}, (
            step,
            sorted(vars(fn)),
        )


def test_worker_setup_loads_everything_offline(job, tmp_path):
    runner, _, data, _ = job
    payloads = do_fn_payloads(runner.proto_pipeline)
    for step in ("Read", "Augment", "Label"):
        (tmp_path / f"{step}.pkl").write_bytes(step_fn(payloads, step))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf"),
        "KDAUG_DATA_DIR": str(tmp_path / "kdaug-data"),
        "PYTHONPATH": str(REPO),
    }
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path), data], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    rows = report["rows"]
    expected = {f"{m}/{d:.2f}" for m in REGISTRY for d in DEGREES} | {"original/0.00"}
    assert set(rows) == expected
    for partition, labelled in rows.items():
        assert len(labelled) == len(SENTENCES) * (1 if "original" in partition else COPIES), partition
        assert all(len(r["teacher_logits"]) == 2 and r["teacher_shift"] >= 0 for r in labelled)
