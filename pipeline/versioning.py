"""Run keys of versioned runs, for scheduled regeneration: `--if-changed` skips a run whose key
equals the key of the root's LATEST run.

The layout of a root of versioned runs (``ROOT/runs/<stamp>-<attempt>/``, ``ROOT/LATEST``), how a
run is published, and `--keep`'s pruning belong to the commit protocol, `kdaug.commit`.

The run key is what decides a run's rows (same key, same rows): the input fingerprint, the config,
the labelling teacher's fingerprint and quantisation, and the schema version. `--if-changed` reads it
back from the manifest of the run LATEST names, so it compares with what that run really used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kdaug import commit, schema

# --- run keys ------------------------------------------------------------------------------------


def manifest_key(manifest: Mapping[str, Any]) -> dict:
    """The run key of a finished run, from its manifest (a `label` run's input is its source's key)."""
    ran = manifest.get("teacher")
    teacher = {"teacher": None, "teacher_quantize": None, "teacher_device": None, "teacher_precision": None}
    if ran:  # runs from before the device and precision options ran on the CPU in fp32
        teacher = {
            "teacher": ran.get("fingerprint"),
            "teacher_quantize": ran.get("quantize"),
            "teacher_device": ran.get("device", "cpu"),
            "teacher_precision": ran.get("precision", "fp32"),
        }
    if manifest["kind"] == commit.Kind.LABEL:
        source = manifest_key(manifest["source"]["manifest"])
        return {
            "kind": commit.Kind.LABEL.value,
            "schema_version": manifest["schema_version"],
            "source": source,
            **teacher,
        }
    return {
        "kind": manifest["kind"],
        "schema_version": manifest["schema_version"],
        "input_fingerprint": manifest["input_fingerprint"],
        "config": manifest["config"],
        **teacher,
    }


def _teacher_key(label) -> dict:
    """The teacher's part of a run key: the fp32 weights' fingerprint and how they were run: quantised,
    bf16 or GPU logits differ a little from fp32 CPU ones, so `--quantize`, `--precision` and the device
    are changes like any config change. Manifests written before `quantize` existed read as fp32 (None),
    so their key is unchanged."""
    if label is None:
        return {"teacher": None, "teacher_quantize": None, "teacher_device": None, "teacher_precision": None}
    return {
        "teacher": label.fingerprint,
        "teacher_quantize": label.quantize,
        "teacher_device": label.device,
        "teacher_precision": label.precision,
    }


def augment_key(config, label=None) -> dict:
    """The run key `kdaug augment` (or, with `label`, `kdaug run`) would record for `config`."""
    from kdaug.inputs.splits import input_fingerprint

    return _plain(
        {
            "kind": (commit.Kind.AUGMENT if label is None else commit.Kind.RUN).value,
            "schema_version": schema.SCHEMA_VERSION,
            "input_fingerprint": input_fingerprint(config.inputs),
            "config": config.to_dict(),
            **_teacher_key(label),
        }
    )


def label_key(source_manifest: Mapping[str, Any], label) -> dict:
    """The run key `kdaug label` would record for a source output with this manifest."""
    source_key = manifest_key(source_manifest)
    return {
        "kind": commit.Kind.LABEL.value,
        "schema_version": schema.SCHEMA_VERSION,
        "source": source_key,
        **_teacher_key(label),
    }


def _plain(value):
    """`value` as it reads back from JSON (tuples become lists), so keys compare equal."""
    return json.loads(json.dumps(value))


def _differences(old, new, prefix: str = "") -> list[str]:
    """Dotted paths of the entries that differ, e.g. ["config.degrees", "config.options.seed"]."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d for k in sorted(old.keys() | new.keys()) for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


# --- one scheduled run ---------------------------------------------------------------------------


def compare(root: str, key: dict) -> tuple[bool, str]:
    """Whether `key` equals the run key of LATEST's run, and a sentence saying why."""
    store = commit.Store(root)
    name = commit.latest(store)
    if name is None:
        return False, "no published run yet"
    try:
        manifest = commit.read_manifest(store, f"{commit.RUNS_DIR}/{name}/{commit.MANIFEST_FILE}")
        if manifest is None:
            return False, f"the manifest of {name} is missing"
        old = manifest_key(manifest)
    except (OSError, KeyError, TypeError, ValueError, commit.CommitError) as err:
        return False, f"the manifest of {name} is unreadable ({err})"
    differs = _differences(old, key)
    if differs:
        return False, f"changed since {name}: {', '.join(differs)} differ"
    same = (
        ["source run key"]
        if key["kind"] == commit.Kind.LABEL
        else [f"input fingerprint {key['input_fingerprint'][:12]}", "config"]
    )
    if key.get("teacher"):
        same.append(f"teacher fingerprint {key['teacher'][:12]} ({key['teacher_quantize'] or 'fp32'})")
    return True, f"unchanged since {name}: same {', '.join(same[:-1])} and {same[-1]}"
