"""A command's attempt at an output from claim to release: the target checks, the Writer, `write`."""

from __future__ import annotations

import calendar
import errno
import os
import time
from collections.abc import Iterable

from kdaug.commit.layout import (
    LATEST_FILE,
    LEASE_SECONDS,
    LOCK_WAIT,
    MANIFEST_FILE,
    RUNS_DIR,
    RUNS_GUARD,
    STATE_DIR,
    SUCCESS_FILE,
    CommitError,
    Kind,
    TargetRefused,
)
from kdaug.commit.lease import Fence, Lease
from kdaug.commit.publishing import _already_published, recover
from kdaug.commit.read import _run_names, enclosing_output, foreign_files, latest, output_kind, unfinished
from kdaug.commit.storage import Attempt, Store, check_state_dir


def check_target(output: str, inputs: Iterable[str] = (), versioned: bool = False, kind: str | None = None) -> None:
    """Refuse, before anything is written, an output kdaug must not write: the filesystem root, a file,
    one inside another kdaug output, one that holds another kind of output (`kind`: the manifest kind
    this command writes), files kdaug did not write (or links, also in its state folder), lies inside
    an input or holds one, or has the other layout. Raises TargetRefused naming what to do."""
    store = Store(output)
    if store.local and store.base == "/":
        raise TargetRefused(f"--output {output} is the filesystem root: give a directory of its own")
    if store.exists("") and not store.is_dir(""):
        raise TargetRefused(f"--output {output} is a file, not a directory")
    for path in inputs:
        if overlaps(path, output):
            raise TargetRefused(
                f"--output {output} and input {path} overlap: an output may not lie inside an input "
                "or hold one (its files would be read as input, or the input overwritten); choose another --output"
            )
    if outer := enclosing_output(output):
        raise TargetRefused(
            f"--output {output} lies inside the kdaug output {outer}: its readers would mix the two; "
            "choose a directory outside it"
        )
    check_state_dir(store)
    if versioned and store.exists(MANIFEST_FILE):
        raise TargetRefused(
            f"{output} holds a plain output (it has {MANIFEST_FILE}); use another root for --versioned runs"
        )
    if not versioned and (store.exists(LATEST_FILE) or store.exists(RUNS_GUARD) or _run_names(store)):
        raise TargetRefused(f"{output} is a root of versioned runs; pass --versioned or write elsewhere")
    if kind is not None:
        check_kind(store, kind)
    foreign = foreign_files(store)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TargetRefused(
            f"--output {output} holds files kdaug did not write ({shown}): kdaug never deletes or "
            "mixes them with its output; move them away or choose another --output"
        )


def describe_kind(kind: str) -> str:
    """A manifest kind for a person ("a labelled dataset"); one kdaug does not know, as itself."""
    try:
        return Kind(kind).family
    except ValueError:
        return f"a kdaug {kind!r} output"


def check_kind(store: Store, kind: str) -> None:
    """Refuse an output that holds another kind of kdaug output than `kind` (a manifest kind, or "sweep")."""
    found = output_kind(store)
    if found is not None and describe_kind(found) != describe_kind(kind):
        raise TargetRefused(
            f"{store.root} holds {describe_kind(found)} and this command "
            f"writes {describe_kind(kind)}: kdaug never replaces one kind of output by another; "
            "choose another output directory"
        )


def overlaps(a: str, b: str) -> bool:
    """Whether one of the two paths lies inside the other (or they are the same)."""
    return _inside(a, b) or _inside(b, a)


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies under it (local paths with links resolved)."""
    if "://" in path or "://" in directory:
        return (path.rstrip("/") + "/").startswith(directory.rstrip("/") + "/")
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def disk_full(err: BaseException | None) -> bool:
    """Whether `err` (or what it wraps, or its text: Beam re-raises a worker's error as text) is ENOSPC."""
    while err is not None:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC or "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


class Writer:
    """A command's attempt at OUTPUT from claim to release (rules 1, 2 and 5; the job stages and
    calls `publish`)::

        with Writer(out, "augment") as attempt:
            ...write under attempt.staging_uri...
            publish(attempt, manifest, moves)
    """

    def __init__(
        self,
        output: str,
        command: str,
        versioned: bool = False,
        keep: int | None = None,
        lease_seconds: float = LEASE_SECONDS,
        log=None,
        detached: bool = False,
    ):
        self.store = Store(output)
        self.versioned, self.keep, self.detached = versioned, keep, detached
        self.lease = Lease(self.store, command, lease_seconds, detached)
        self.log = log or (lambda message: None)
        self.attempt: Attempt | None = None

    def __enter__(self) -> Attempt:
        with self.store.exclusive(LOCK_WAIT) as exclusive:
            self.lease.acquire()
            try:
                recover(self.store, self.lease.attempt, self.log, Fence(self.store, self.lease.attempt, exclusive))
                run_name = _next_run_name(self.store, self.lease.attempt) if self.versioned else None
            except BaseException:
                self.lease.release()
                raise
        self.attempt = Attempt(
            self.store.root,
            self.lease.attempt,
            self.versioned,
            self.keep,
            run_name,
            self.detached,
            self.lease.claim.lease_seconds,
        )
        return self.attempt

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.detached and exc is None:  # the job holds the lease now; its publish releases it
            self.lease.stop_beating()
            return
        if exc is not None and self.attempt is not None and not _already_published(self.store, self.attempt):
            staging, full = self.attempt.staging, disk_full(exc)
            kept = self.store.files(staging)
            if full or not kept:  # nothing worth keeping, or room needed now
                self.store.delete_tree(staging)
                kept = []
            message = (
                f"{self.store.root}: nothing was published, the previous output is unchanged"
                + (
                    f"; this attempt's files stay in {self.attempt.staging_uri} until the next run on it"
                    if kept
                    else ""
                )
                + ("; the disk is full: its staged files were removed, free space and run again" if full else "")
            )
            if isinstance(exc, Exception):
                self.log(message)
            else:  # an interrupt (Ctrl-C, SIGTERM): the command's one closing line says it (a PEP 678 note)
                exc.__notes__ = [*getattr(exc, "__notes__", ()), message]
        self.lease.release()


def write(
    output: str,
    command: str,
    inputs: Iterable[str],
    stage_and_publish,
    versioned: bool = False,
    keep: int | None = None,
    log=None,
    detached: bool = False,
):
    """The whole protocol around `stage_and_publish(attempt)`: check the target, claim, recover,
    run it (it stages and calls `publish`), release. Returns what it returns. `detached`: the job
    runs after this returns (a Dataflow template): the lease passes to it, kept alive by its
    workers' heartbeats and released by its publish."""
    check_target(output, inputs, versioned, kind=command)
    with Writer(output, command, versioned, keep, log=log, detached=detached) as attempt:
        return stage_and_publish(attempt)


def _next_run_name(store: Store, attempt: str) -> str:
    """`<UTC time to the microsecond>-<attempt>`, later than every run already there, so names sort in
    the order runs began even when the clock steps back; the attempt id keeps names unique."""
    now = time.time()
    names = _run_names(store)
    if names:
        now = max(now, _stamp_seconds(names[-1]) + 1e-6)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z-{attempt}"


def _stamp_seconds(name: str) -> float:
    stamp = name.split("-", 1)[0]
    whole, _, micros = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole.rstrip("Z"), "%Y%m%dT%H%M%S")) + int(micros or 0) / 1e6


def recover_output(output: str, log=print) -> None:
    """`kdaug recover`: take the lease and finish or clean up what dead writers left (kdaug outputs only),
    then check the output is one whole run again: damage that no kdaug run made is an error, never
    "nothing left to recover"."""
    store = Store(output)
    if not store.is_dir(""):
        raise CommitError(f"{output}: no such output directory")
    if not any(store.exists(rel) for rel in (STATE_DIR, MANIFEST_FILE, SUCCESS_FILE, LATEST_FILE, RUNS_DIR)):
        raise TargetRefused(
            f"{output} is not a kdaug output (no {STATE_DIR}/, {MANIFEST_FILE} or {LATEST_FILE}): nothing to recover"
        )
    with store.exclusive(LOCK_WAIT) as exclusive:
        lease = Lease(store, "recover").acquire()
        try:
            recover(store, lease.attempt, log, Fence(store, lease.attempt, exclusive))
        finally:
            lease.release()
    head = latest(store)
    run = Store(store.uri(f"{RUNS_DIR}/{head}")) if head else store
    if (head or store.exists(MANIFEST_FILE) or store.exists(SUCCESS_FILE)) and (problem := unfinished(run)):
        raise CommitError(
            f"{run.root}: {problem}; kdaug cannot repair what no kdaug run did: regenerate the output "
            "(into a new directory, or after moving this one away)"
        )
