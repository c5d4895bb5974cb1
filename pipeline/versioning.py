"""Versioned runs under one output root, for scheduled regeneration (`--versioned`, `--if-changed`,
`--keep`).

    ROOT/runs/20250101T020000Z-1a2b3c4d/   one complete kdaug output per run
    ROOT/LATEST                            one line: the name of the newest finished run

Why a pointer file: object stores (gs://) have neither symlinks nor directory renames, but replacing
one small object is atomic. A run writes only into its own directory and LATEST moves only once that
run's `_SUCCESS` exists, so whoever follows LATEST (`schema.open_dataset(ROOT)`, `kdaug label --input
ROOT`) never sees a partial run, and a killed run leaves at most an unfinished directory that a later
`--keep` prunes.

The run key is what decides a run's rows (same key, same rows): the input fingerprint, the config,
the labelling teacher's fingerprint and quantisation, and the schema version. `--if-changed` reads it
back from the manifest of the run LATEST names, so it compares with what that run really used; the run
directory's suffix is a short hash of it.

All I/O goes through Beam's `FileSystems`, so ROOT may be a local path or gs://.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable

from apache_beam.io.filesystems import FileSystems

from pipeline import schema, sinks

RUNS_DIR = "runs"
LATEST_FILE = "LATEST"


# --- run keys ------------------------------------------------------------------------------------


def manifest_key(manifest: dict) -> dict:
    """The run key of a finished run, from its manifest (a `label` run's input is its source's key)."""
    teacher = manifest.get("teacher") or {}
    teacher = {"teacher": teacher.get("fingerprint"), "teacher_quantize": teacher.get("quantize")}
    if manifest["kind"] == "label":
        source = manifest_key(manifest["source"]["manifest"])
        return {"kind": "label", "schema_version": manifest["schema_version"], "source": source, **teacher}
    return {
        "kind": manifest["kind"],
        "schema_version": manifest["schema_version"],
        "input_fingerprint": manifest["input_fingerprint"],
        "config": manifest["config"],
        **teacher,
    }


def _teacher_key(label) -> dict:
    """The teacher's part of a run key: the fp32 weights' fingerprint and how they were run
    (quantised logits differ a little, so `--quantize` is a change like any config change).
    Manifests written before `quantize` existed read as fp32 (None), so their key is unchanged."""
    if label is None:
        return {"teacher": None, "teacher_quantize": None}
    return {"teacher": label.fingerprint, "teacher_quantize": label.quantize}


def augment_key(config, label=None) -> dict:
    """The run key `kdaug augment` (or, with `label`, `kdaug run`) would record for `config`."""
    from pipeline.job import input_fingerprint

    return _plain({
        "kind": "augment" if label is None else "run",
        "schema_version": schema.SCHEMA_VERSION,
        "input_fingerprint": input_fingerprint(config.inputs),
        "config": config.to_dict(),
        **_teacher_key(label),
    })


def label_key(source: str, label) -> dict:
    """The run key `kdaug label` would record for the finished output `source`."""
    source_key = manifest_key(sinks.read_manifest(source))
    return {"kind": "label", "schema_version": schema.SCHEMA_VERSION, "source": source_key, **_teacher_key(label)}


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _plain(value):
    """`value` as it reads back from JSON (tuples become lists), so keys compare equal."""
    return json.loads(json.dumps(value))


def _differences(old, new, prefix: str = "") -> list[str]:
    """Dotted paths of the entries that differ, e.g. ["config.degrees", "config.options.seed"]."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(old.keys() | new.keys()) for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


# --- the layout ----------------------------------------------------------------------------------


def latest(root: str) -> str | None:
    """The name of the run LATEST points to, or None before the first finished run."""
    path = posixpath.join(root, LATEST_FILE)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return f.read().decode().strip()


def resolve(path: str) -> str:
    """The directory to read for `path`: its LATEST run when it is a versioned root, else itself."""
    name = latest(path)
    return path if name is None else posixpath.join(path, RUNS_DIR, name)


def check_root(output: str, versioned: bool) -> None:
    """Refuse to mix the two layouts in one directory (readers of a root follow LATEST only)."""
    if versioned and FileSystems.exists(posixpath.join(output, schema.MANIFEST_FILE)):
        raise ValueError(f"{output} holds an unversioned output (it has {schema.MANIFEST_FILE}); use another root for versioned runs")
    if not versioned and FileSystems.exists(posixpath.join(output, LATEST_FILE)):
        raise ValueError(f"{output} is a root of versioned runs (it has {LATEST_FILE}); pass --versioned or write elsewhere")


def runs(root: str) -> tuple[list[str], set[str]]:
    """All run names under ROOT/runs, oldest first (names start with a UTC timestamp), and the finished ones."""
    runs_dir = posixpath.join(root, RUNS_DIR)
    names, finished = set(), set()
    for match in FileSystems.match([posixpath.join(runs_dir, "**")])[0].metadata_list:
        name, _, rest = match.path[len(runs_dir) + 1 :].partition("/")
        names.add(name)
        if rest == schema.SUCCESS_FILE:
            finished.add(name)
    return sorted(names), finished


def publish(root: str, run_dir: str) -> None:
    """Point LATEST at `run_dir` (written to a temporary file, then renamed over LATEST)."""
    if not FileSystems.exists(posixpath.join(run_dir, schema.SUCCESS_FILE)):
        raise RuntimeError(f"{run_dir} has no {schema.SUCCESS_FILE}: LATEST stays where it is")
    name = posixpath.basename(run_dir)
    temp = posixpath.join(root, f"_{LATEST_FILE}.{name}")
    with FileSystems.create(temp) as f:
        f.write(name.encode() + b"\n")
    FileSystems.rename([temp], [posixpath.join(root, LATEST_FILE)])


def finish(root: str, run_dir: str, keep: int | None) -> None:
    """Move LATEST to the finished `run_dir`, then prune to `keep` runs; the last step of a versioned
    run's pipeline (idempotent, so a retried step does no harm)."""
    publish(root, run_dir)
    if keep is not None:
        pruned = prune(root, keep)
        if pruned:
            logging.info("pruned %d old run(s) of %s: %s", len(pruned), root, ", ".join(pruned))


def prune(root: str, keep: int) -> list[str]:
    """Delete the runs beyond the newest `keep` finished ones; return their names.

    LATEST's run is always kept. An unfinished run is deleted only when it is older than every kept
    run: by then `keep` later runs have finished, so it crashed (a run still going is left alone).
    A finished run loses its `_SUCCESS` first, so a half-deleted run never looks complete.
    """
    names, finished = runs(root)
    kept = set([n for n in names if n in finished][-keep:]) | {latest(root)} - {None}
    doomed = [n for n in names if n not in kept and (n in finished or n < min(kept))]
    for name in doomed:
        run_dir = posixpath.join(root, RUNS_DIR, name)
        sinks._delete_tree(posixpath.join(run_dir, schema.SUCCESS_FILE))
        sinks._delete_tree(run_dir)
    return doomed


# --- one scheduled run ---------------------------------------------------------------------------


def compare(root: str, key: dict) -> tuple[bool, str]:
    """Whether `key` equals the run key of LATEST's run, and a sentence saying why."""
    name = latest(root)
    if name is None:
        return False, "no finished run yet"
    try:
        old = manifest_key(sinks.read_manifest(posixpath.join(root, RUNS_DIR, name)))
    except (OSError, KeyError, ValueError) as err:
        return False, f"the manifest of {name} is unreadable ({err})"
    differs = _differences(old, key)
    if differs:
        return False, f"changed since {name}: {', '.join(differs)} differ"
    same = ["source run key"] if key["kind"] == "label" else [f"input fingerprint {key['input_fingerprint'][:12]}", "config"]
    if key.get("teacher"):
        same.append(f"teacher fingerprint {key['teacher'][:12]} ({key['teacher_quantize'] or 'fp32'})")
    return True, f"unchanged since {name}: same {', '.join(same[:-1])} and {same[-1]}"


def run(root: str, key: dict, run_fn: Callable[[str, Callable], dict], *, if_changed: bool = False,
        keep: int | None = None, log: Callable[[str], None] = print) -> dict | None:
    """Run `run_fn(run_dir, then) -> manifest` as a new run under `root`; its pipeline's last step,
    `then(manifest)`, moves LATEST and prunes (`finish`).

    With `if_changed`, skip the run (return None) when `key` equals the key of LATEST's run.
    If the pipeline fails (or its process dies) before that step, LATEST stays where it was.
    """
    if if_changed:
        unchanged, why = compare(root, key)
        if unchanged:
            log(f"{why}, skipping")
            return None
        log(why)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = posixpath.join(root, RUNS_DIR, f"{stamp}-{key_hash(key)[:8]}")
    manifest = run_fn(run_dir, lambda _: finish(root, run_dir, keep))
    log(f"{posixpath.join(root, LATEST_FILE)} → {latest(root)}" + ("" if keep is None else f" (keeping {keep} finished runs)"))
    return manifest
