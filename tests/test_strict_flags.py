"""Strict flags (issue 22, item 1): every argument of `augment`, `run` and `label` is kdaug's or one of
Beam's pipeline options, anything else is one line and exit 2 naming the closest known option, before
anything is written; the group's flags work after the command too; kdaug's class values are
`--label-values`, so a job's `--labels` (Airflow adds `--labels=airflow-version=…`) reach Beam."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import DirectOptions, GoogleCloudOptions
from click.testing import CliRunner

from kdaug import cli
from kdaug.beam import engines

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["good", "bad", "movie", "film", "great", "awful", "plot", "acting", "dull", "fun"]
TINY = ["--task", "sst2", "--methods", "random", "--degrees", "0.1", "--copies", "1"]
#: The options Airflow's Beam operator adds to every Dataflow job it starts.
AIRFLOW = [
    "--labels=airflow-version=v2-8-1",
    "--job_name=kdaug-sst2-3f2a9c1d",
    "--project=my-project",
    "--region=europe-west1",
    "--temp_location=gs://bucket/tmp",
]


def load_flex_main():
    spec = importlib.util.spec_from_file_location("flex_main_strict", ROOT / "docker" / "flex_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tsv(tmp_path):
    """20 SST-2 rows, both classes."""
    path = tmp_path / "train.tsv"
    rows = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(6)) + f"\t{i % 2}" for i in range(20)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return str(path)


@pytest.fixture
def beam_options(monkeypatch):
    """The PipelineOptions each pipeline ran with, as Beam got them."""
    seen = []
    build = engines.pipeline_options

    def recording(pipeline_args, elements=None):
        seen.append(build(pipeline_args, elements))
        return seen[-1]

    monkeypatch.setattr(engines, "pipeline_options", recording)
    return seen


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.mark.parametrize(
    "extra, line",
    [
        (["--copie", "1"], "no such option --copie (did you mean --copies?)"),
        (["--max_rows", "5"], "no such option --max_rows (did you mean --max-rows?)"),
        (["--direct_num_worker", "1"], "no such option --direct_num_worker (did you mean --direct_num_workers?)"),
        (["--job-name=j"], "no such option --job-name (did you mean --job_name?)"),
        (["--runer", "dask"], "no such option --runer (did you mean --runner?)"),
        (["--verbos"], "no such option --verbos (did you mean --verbose?)"),
        (["--direct_running_mode", "fast"], "argument --direct_running_mode: invalid choice: 'fast' (choose from"),
        (["--direct_num_workers", "two"], "argument --direct_num_workers: invalid int value: 'two'"),
        (["stray"], "unexpected argument 'stray' (no option takes it)"),
        (["--labels", "0,1"], "--labels 0,1: --labels are the Dataflow job's labels (key=value); the class values"),
    ],
)
def test_an_unknown_flag_is_one_line_and_exit_2_before_anything_is_written(tsv, tmp_path, extra, line):
    out = tmp_path / "out"
    result = invoke("augment", "--input", tsv, "--output", out, *TINY, *extra)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [result.output.strip()]  # one line
    assert result.output.startswith(f"Error: {line}"), result.output
    assert not out.exists()


def test_a_misspelt_required_flag_is_named_not_reported_missing(tsv, tmp_path):
    result = invoke("augment", "--input", tsv, "--ouput", tmp_path / "out", *TINY)
    assert result.exit_code == 2
    assert result.output.strip() == "Error: no such option --ouput (did you mean --output?)"


@pytest.mark.parametrize(
    "command, extra, line",
    [
        (
            ["run", "--teacher", "t", "--output", "o"],
            ["--copie", "1"],
            "no such option --copie (did you mean --copies?)",
        ),
        (
            ["label", "--teacher", "t", "--input", "i", "--output", "o"],
            ["--max-token", "64"],
            "no such option --max-token (did you mean --max-tokens?)",
        ),
        (
            ["run", "--teacher", "t", "--output", "o"],
            ["--dask_npartition=4"],
            "no such option --dask_npartition (did you mean --dask_npartitions?)",
        ),
    ],
)
def test_run_and_label_are_strict_too(tmp_path, command, extra, line):
    result = CliRunner().invoke(cli.main, [*command, *extra])
    assert (result.exit_code, result.output.strip()) == (2, f"Error: {line}")


def test_beam_options_run_as_before_and_verbose_may_follow_the_command(tsv, tmp_path, beam_options, monkeypatch):
    logging_calls = []
    monkeypatch.setattr(cli, "configure_logging", lambda verbose=False: logging_calls.append(verbose))
    out = tmp_path / "out"
    result = invoke(
        "augment", "--input", tsv, "--output", out, *TINY, "--direct_num_workers", "1", "--labels=team=nlp", "--verbose"
    )
    assert result.exit_code == 0, result.output
    assert (out / "_SUCCESS").exists()
    assert json.loads((out / "_manifest.json").read_text())["config"]["labels"] == ["0", "1"]
    assert logging_calls == [True]  # `--verbose` reached the group, not Beam
    [options] = beam_options
    assert options.view_as(DirectOptions).direct_num_workers == 1
    assert options.view_as(GoogleCloudOptions).labels == ["team=nlp"]
    assert "--verbose" not in options.get_all_options(retain_unknown_options=True)


def test_global_flags_before_or_after_the_command():
    hoist = cli.hoist_global_flags
    assert hoist(["augment", "--output", "o", "--verbose"]) == ["--verbose", "augment", "--output", "o"]
    assert hoist(["--debug", "teacher", "train", "-v"]) == ["--debug", "-v", "teacher", "train"]
    assert hoist(["run", "--", "--debug"]) == ["run", "--", "--debug"]  # nothing after `--` moves
    assert hoist(["--verbose"]) == ["--verbose"]


def test_kdaug_flags_never_shadow_a_beam_option():
    """A kdaug flag spelt like a Beam option (once `--labels`) would take the option from Beam."""
    beam = {name.lstrip("-").replace("-", "_") for name in engines.option_names()}
    for name in ("augment", "run", "label"):
        flags = {opt for p in cli.main.commands[name].params for opt in p.opts if opt.startswith("--")}
        assert not {f for f in flags if f[2:].replace("-", "_") in beam}, name
    assert {"--runner", "--labels", "--job_name", "--direct_num_workers", "--dask_npartitions"} <= set(
        engines.option_names()
    )


def test_airflow_options_pass_through_flex_main(tsv, tmp_path, tiny_teacher_dir, beam_options):
    """`flex_main.py` as Airflow's Beam operator runs it: kdaug's options with underscores, Airflow's
    own options added; a DirectRunner stands in for Dataflow."""
    flex_main = load_flex_main()
    out = tmp_path / "out"
    argv = [
        f"--input={tsv}",
        f"--output={out}",
        f"--teacher={tiny_teacher_dir}",
        "--task=sst2",
        "--label_values=0,1",
        "--methods=random",
        "--degrees=0.1",
        "--copies=1",
        "--runner=DirectRunner",
        *AIRFLOW,
    ]
    args = flex_main.kdaug_args(argv, cli.main.commands["run"].params)
    ctx = cli.main.commands["run"].make_context("run", args[1:])
    assert ctx.params["labels"] == "0,1"
    assert ctx.args == ["--runner=DirectRunner", *AIRFLOW]  # untouched, in order
    results = []
    flex_main.main(
        argv, cli=lambda args, prog_name: results.append(CliRunner().invoke(cli.main, args, prog_name=prog_name))
    )
    assert results[0].exit_code == 0, results[0].output
    assert (out / "_SUCCESS").exists()
    assert beam_options  # the teacher's settings and the pipeline read them
    for options in beam_options:
        cloud = options.view_as(GoogleCloudOptions)
        assert cloud.labels == ["airflow-version=v2-8-1"]
        assert (cloud.job_name, cloud.project, cloud.region, cloud.temp_location) == (
            "kdaug-sst2-3f2a9c1d",
            "my-project",
            "europe-west1",
            "gs://bucket/tmp",
        )


def test_a_typo_through_flex_main_is_refused(tmp_path):
    flex_main = load_flex_main()
    argv = ["--output=gs://b/o", "--teacher=/opt/kdaug/teacher", "--max_row=5", *AIRFLOW]
    results = []
    flex_main.main(
        argv, cli=lambda args, prog_name: results.append(CliRunner().invoke(cli.main, args, prog_name=prog_name))
    )
    assert results[0].exit_code == 2
    assert results[0].output.strip() == "Error: no such option --max_row (did you mean --max-rows?)"
