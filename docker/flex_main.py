"""Flex Template entry point: the template's parameters are `kdaug run` flags.

The launcher calls this file with the parameters of docker/metadata.json as ``--name=value``
(names are the `kdaug run` flags with ``_`` for ``-``, e.g. ``--max_rows=2000``) and Dataflow's
own options (``--project``, ``--region``, ``--temp_location``, ``--template_location`` …).
kdaug's flags get their dashes back; everything else goes to Beam as `kdaug run` passes it on, so
the options Airflow's Beam operator adds (``--labels=airflow-version=…``, ``--job_name``,
``--project``, ``--region``) reach Dataflow: kdaug's class values are ``--label_values``, not
``--labels``. An option that is neither kdaug's nor Beam's is refused (exit 2).
"""

from __future__ import annotations

import os
import sys


def kdaug_args(argv: list[str], run_params, worker_image: str | None = None) -> list[str]:
    """`kdaug run` arguments from the launcher's: `--max_rows=5` → `--max-rows=5` for kdaug's
    flags (`--some_switch=true` → `--some-switch`); the runner defaults to Dataflow and the worker
    image to the launcher's own. Other arguments go on unchanged (to Beam)."""
    switches = {opt for p in run_params if getattr(p, "is_flag", False) for opt in p.opts}
    flags = {opt for p in run_params for opt in p.opts}
    args = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        dashed = "--" + name[2:].replace("_", "-")
        if not name.startswith("--") or dashed not in flags:
            args.append(arg)
        elif dashed in switches:
            if not sep or value.lower() in ("true", "1", "yes"):  # "=false" drops the switch
                args.append(dashed)
        else:
            args.append(dashed + sep + value)
    given = {a.partition("=")[0] for a in args}
    if "--runner" not in given:
        args.append("--runner=DataflowRunner")
    if worker_image and "--sdk_container_image" not in given:
        args.append(f"--sdk_container_image={worker_image}")
    return ["run", *args]


def main(argv: list[str] | None = None, cli=None) -> None:
    from kdaug.cli import main as kdaug

    cli = cli or kdaug
    argv = sys.argv[1:] if argv is None else argv
    # With the launcher's --template_location, `kdaug run` writes the job's graph and returns; the job
    # holds the output's lease and publishes it when it runs (pipeline.commit, detached attempts).
    cli(kdaug_args(argv, kdaug.commands["run"].params, os.environ.get("KDAUG_WORKER_IMAGE")), prog_name="kdaug")


if __name__ == "__main__":
    main()
