"""kdaug's commit protocol: how every command that writes makes its output visible, and how every
reader knows that what it reads is one whole run.

An output directory OUT (local, or an object store such as gs://) holds::

    OUT/_kdaug/claims/<attempt>.json   the lease: one live claim at a time (heartbeat + expiry)
    OUT/_kdaug/attempts/<attempt>/     an attempt's staging area: it writes only here
    OUT/_kdaug/publish.json            the journal of a plain output's publish (its commit point)
    OUT/_manifest.json                 the published run: config, counts and every file it owns
    OUT/_SUCCESS                       the published run's attempt id; written last
    OUT/<method>/<degree>/part-….parquet   (a plain output: the published files in place)
    OUT/runs/<stamp>-<attempt>/        (a versioned root: each published run in its own directory)
    OUT/LATEST                         (a versioned root: one line, the newest published run)
    OUT/runs/0-NOT-PARQUET-….parquet   (a versioned root: RUNS_GUARD, so Parquet readers of the root fail)

The rules, in the order a writer meets them:

1. **Claim.** A writer writes its claim, then lists the claims: it goes on only when its own is the
   only live one, and otherwise withdraws and names the other writer. Two writers that claim at once
   both see both claims and both withdraw, so at most one ever proceeds. A claim is live while its
   heartbeat is younger than its expiry and, on the same host, while its process exists (a killed
   run frees the output at once there, elsewhere when the lease expires).
2. **Recover.** The new holder finishes a publish that a dead writer journaled (roll forward),
   removes dead attempts' staging areas and versioned runs that were never published.
3. **Stage.** The job writes only under its attempt's staging area; nothing a reader sees changes.
4. **Publish**, only while the claim is still the writer's own (a fence). A plain output: write the
   journal (the commit point), remove `_SUCCESS`, delete the files the old manifest lists, move the
   staged files in, the manifest, then `_SUCCESS`. A versioned root: write RUNS_GUARD (Parquet
   readers of the root then fail rather than read two runs), move the files into a new run directory
   with its manifest and `_SUCCESS`, then replace LATEST (the commit point; it never moves back in
   time) and prune to `--keep` published runs. Every step is idempotent, so a retried or recovered
   publish ends in the same place.
5. **Release** the claim.

A failure before the commit point leaves the previous output exactly as it was; after it, the next
writer (or `kdaug recover`) completes the new one. kdaug deletes only files that a manifest, a
journal or its own staging area lists, and never through a symbolic link.

What kdaug finds in storage is data, never instructions (the gate, below): every journal, manifest,
claim and LATEST is parsed strictly and every path in it must stay inside the output, before anything
it names is read, moved or deleted; a publisher re-proves its lease before each step, so a writer
paused past its lease (SIGSTOP, a long GC, a VM migration) never publishes over the one that took
over.

Readers (`published`) resolve LATEST, refuse an output without `_SUCCESS`, with a journal, or whose
`_SUCCESS` and manifest name different attempts, and read exactly the files the manifest lists, each
checked to have its listed size, so files kdaug did not write never reach them. A reader that overlaps a plain output's publish notices
with `Published.check_current` (a versioned root gives concurrent readers a stable run instead).

All I/O is through pyarrow's filesystems (local, gs://, s3://, hdfs://) and this package imports no
Beam, so `distill` shares it. Its modules, each on the one before: `layout` (names, errors),
`gate` (parsing what storage holds), `storage` (`Store`), `lease`, `read`, `publish`, `writer`.
"""

from __future__ import annotations

from kdaug.commit.gate import Journal, checked_path, parse_journal, parse_latest, parse_manifest
from kdaug.commit.layout import (
    ATTEMPTS_DIR,
    CLAIMS_DIR,
    JOURNAL_FILE,
    LATEST_FILE,
    LEASE_SECONDS,
    MANIFEST_FILE,
    METRICS_FILE,
    OWN_FILES,
    RUNS_DIR,
    RUNS_GUARD,
    STATE_DIR,
    SUCCESS_FILE,
    TEMP_DIR,
    CommitError,
    DamagedState,
    FileEntry,
    Kind,
    LeaseLost,
    Manifest,
    OutputBusy,
    TargetRefused,
    UnfinishedOutput,
)
from kdaug.commit.lease import Claim, Fence, Lease, claims, fence, heartbeat, live_claim, release
from kdaug.commit.publishing import apply_journal, delete_run, prune, publish, publish_dir, recover, write_metrics
from kdaug.commit.read import (
    Published,
    enclosing_output,
    foreign_files,
    latest,
    manifest_files,
    marker,
    output_kind,
    published,
    published_runs,
    read_journal,
    read_manifest,
    unfinished,
)
from kdaug.commit.storage import Attempt, Store, check_state_dir, filesystem
from kdaug.commit.writer import (
    Writer,
    check_kind,
    check_target,
    describe_kind,
    disk_full,
    overlaps,
    recover_output,
    write,
)

__all__ = [
    "ATTEMPTS_DIR",
    "CLAIMS_DIR",
    "JOURNAL_FILE",
    "FileEntry",
    "Kind",
    "Manifest",
    "LATEST_FILE",
    "LEASE_SECONDS",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "OWN_FILES",
    "RUNS_DIR",
    "RUNS_GUARD",
    "STATE_DIR",
    "SUCCESS_FILE",
    "TEMP_DIR",
    "CommitError",
    "DamagedState",
    "LeaseLost",
    "OutputBusy",
    "TargetRefused",
    "UnfinishedOutput",
    "Journal",
    "checked_path",
    "parse_journal",
    "parse_latest",
    "parse_manifest",
    "Attempt",
    "Store",
    "check_state_dir",
    "filesystem",
    "Claim",
    "Fence",
    "Lease",
    "claims",
    "fence",
    "heartbeat",
    "live_claim",
    "release",
    "Published",
    "enclosing_output",
    "foreign_files",
    "latest",
    "manifest_files",
    "marker",
    "output_kind",
    "published",
    "published_runs",
    "read_journal",
    "read_manifest",
    "unfinished",
    "apply_journal",
    "delete_run",
    "prune",
    "publish",
    "publish_dir",
    "recover",
    "write_metrics",
    "Writer",
    "check_kind",
    "describe_kind",
    "describe_kind",
    "check_target",
    "disk_full",
    "overlaps",
    "recover_output",
    "write",
]
