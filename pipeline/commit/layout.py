"""The layout of an output (the names kdaug writes), its lease length and the protocol's errors."""

from __future__ import annotations

import os

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
#: Files of a published output that its manifest cannot list (itself, the marker, the counters).
OWN_FILES = (MANIFEST_FILE, SUCCESS_FILE, METRICS_FILE)
#: What each manifest kind is, for a person: outputs of different kinds never replace one another.
KINDS = {
    "augment": "an augmented dataset",
    "run": "a labelled dataset",
    "label": "a labelled dataset",
    "teacher": "a teacher model",
    "student": "a student model",
    "sweep": "a sweep's results",
}

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


LOCK_WAIT = max(5.0, LEASE_SECONDS / 10)  # seconds a writer waits for another's recover or publish to end
