"""The layout of an output (the names kdaug writes), its lease length and the protocol's errors."""

from __future__ import annotations

import os
from enum import Enum
from typing import TypedDict

STATE_DIR = "_kdaug"
TEMP_DIR = f"{STATE_DIR}/tmp"
CLAIMS_DIR = f"{STATE_DIR}/claims"
ATTEMPTS_DIR = f"{STATE_DIR}/attempts"
JOURNAL_FILE = f"{STATE_DIR}/publish.json"
MANIFEST_FILE = "_manifest.json"
SUCCESS_FILE = "_SUCCESS"
METRICS_FILE = "_metrics.json"
LATEST_FILE = "LATEST"
RUNS_DIR = "runs"
#: Not Parquet, on purpose: a Parquet reader pointed at a versioned root (or its runs/) would read every
#: run together; this file makes each one fail instead, naming it. Its name sorts before every run's
#: (they start with the year), so a reader that opens the first file only (a schema, a LIMIT) fails too.
RUNS_GUARD = f"{RUNS_DIR}/0-NOT-PARQUET-read-only-the-run-LATEST-names.parquet"
RUNS_GUARD_TEXT = (
    b"This is not Parquet. It is here so that a Parquet reader pointed at this root of kdaug's versioned runs "
    b"(or at its runs/ folder) fails instead of reading every run together. Read one run: "
    b"runs/<the name in LATEST>/, or kdaug.schema.open_dataset(ROOT), which follows LATEST.\n"
)
#: Files of a published output that its manifest cannot list (itself, the marker, the counters).
OWN_FILES = (MANIFEST_FILE, SUCCESS_FILE, METRICS_FILE)


class Kind(str, Enum):
    """What an output is: its manifest's `kind` (the command that wrote it). Outputs of different
    families (`family`) never replace one another."""

    AUGMENT = "augment"
    RUN = "run"
    LABEL = "label"
    TEACHER = "teacher"
    STUDENT = "student"
    SWEEP = "sweep"  # a sweep's results.csv and report (no manifest)

    @property
    def family(self) -> str:
        """The kind for a person: `run` and `label` both make a labelled dataset."""
        return _FAMILIES[self]

    @property
    def labelled(self) -> bool:
        """Whether its rows carry the teacher's logits."""
        return self in (Kind.RUN, Kind.LABEL)


_FAMILIES = {
    Kind.AUGMENT: "an augmented dataset",
    Kind.RUN: "a labelled dataset",
    Kind.LABEL: "a labelled dataset",
    Kind.TEACHER: "a teacher model",
    Kind.STUDENT: "a student model",
    Kind.SWEEP: "a sweep's results",
}


class _Listed(TypedDict):
    path: str  # relative to the published directory
    bytes: int


class FileEntry(_Listed, total=False):
    """One published file in a manifest's `files` (`rows` for shards and dead letters)."""

    rows: int


class Manifest(TypedDict, total=False):
    """What `_manifest.json` holds (the gate, `commit.gate.parse_manifest`, checks the fields kdaug acts
    on: attempt, kind, files). A dataset's manifest also has config, input_fingerprint, partitions,
    counts, teacher and versions; a labelled one its source; a model its config and data."""

    attempt: str
    kind: str  # a `Kind` value
    files: list[FileEntry]
    published_at: str
    run: str  # versioned roots: the run's directory name
    schema_version: int
    config: dict
    input_fingerprint: str
    partitions: dict
    counts: dict
    teacher: dict | None
    source: dict
    versions: dict


#: A claim without a heartbeat for this long is dead (when its process can't be checked).
LEASE_SECONDS = float(os.environ.get("KDAUG_LEASE_SECONDS", "300"))


class CommitError(RuntimeError):
    """The protocol refuses: another writer holds the output, the output is not kdaug's, a reader
    met an unfinished output, or a publish lost its lease."""


class OutputBusy(CommitError):
    """Another live writer holds the output's lease."""


class UnfinishedOutput(CommitError, FileNotFoundError):
    """A reader asked for an output that has no published run."""


class TargetRefused(CommitError):
    """An output kdaug must not write (foreign files, links, overlapping an input, another layout)."""


class LeaseLost(CommitError):
    """A publisher no longer holds the output's lease: it must not touch the output."""


class DamagedState(CommitError):
    """A state file of the output is not as kdaug writes it: refused before anything it names is touched."""


LOCK_WAIT = max(
    2.0, LEASE_SECONDS / 10
)  # seconds a writer waits for another's recover or publish to end (30 by default)
