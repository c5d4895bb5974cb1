"""kdaug's commit protocol: how every command that writes makes its output visible, and how every
reader knows that what it reads is one whole run.

An output directory OUT (local, or an object store such as gs://) holds::

    OUT/_kdaug/claims/<attempt>.json   the lease: one live claim at a time (heartbeat + expiry)
    OUT/_kdaug/attempts/<attempt>/     an attempt's staging area: it writes only here
    OUT/_kdaug/publish.json            the journal of a plain output's publish (its commit point)
    OUT/_manifest.json                 the published run: config, counts and every file it owns
    OUT/_SUCCESS                       the published run's attempt id; written last
    OUT/method=…/degree=…/part-….parquet   (a plain output: the published files in place)
    OUT/runs/<stamp>-<attempt>/        (a versioned root: each published run in its own directory)
    OUT/LATEST                         (a versioned root: one line, the newest published run)

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
   staged files in, the manifest, then `_SUCCESS`. A versioned root: move the files into a new run
   directory with its manifest and `_SUCCESS`, then replace LATEST (the commit point; it never
   moves back in time) and prune to `--keep` published runs. Every step is idempotent, so a retried
   or recovered publish ends in the same place.
5. **Release** the claim.

A failure before the commit point leaves the previous output exactly as it was; after it, the next
writer (or `kdaug recover`) completes the new one. kdaug deletes only files that a manifest, a
journal or its own staging area lists, and never through a symbolic link.

Readers (`published`) resolve LATEST, refuse an output without `_SUCCESS`, with a journal, or whose
`_SUCCESS` and manifest name different attempts, and read exactly the files the manifest lists, so
files kdaug did not write never reach them. A reader that overlaps a plain output's publish notices
with `Published.check_current` (a versioned root gives concurrent readers a stable run instead).

All I/O is through pyarrow's filesystems (local, gs://, s3://, hdfs://) and this module imports no
Beam, so `distill` shares it.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pyarrow.fs as pafs

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

LEASE_SECONDS = 300.0  # a claim without a heartbeat for this long is dead (when its process can't be checked)


class CommitError(RuntimeError):
    """The protocol refuses: another writer holds the output, the output is not kdaug's, a reader
    met an unfinished output, or a publish lost its lease."""


class OutputBusy(CommitError):
    """Another live writer holds the output's lease."""


class UnfinishedOutput(CommitError, FileNotFoundError):
    """A reader asked for an output that has no published run."""


class TargetRefused(CommitError):
    """An output kdaug must not write (foreign files, links, overlapping an input, another layout)."""


# --- storage ----------------------------------------------------------------------------------------


def filesystem(root: str) -> tuple[pafs.FileSystem, str, bool]:
    """(pyarrow filesystem, the root's path in it, whether it is the local disk) for a path or URI."""
    if "://" not in root:
        return pafs.LocalFileSystem(), os.path.abspath(root), True
    fs, base = pafs.FileSystem.from_uri(root)
    return fs, base.rstrip("/"), False


class Store:
    """Files under one root (a local path or a URI) by relative POSIX path.

    Nothing here follows a symbolic link: a path through one is refused before anything is deleted or
    moved, so a link inside OUT can never make kdaug touch files outside it. Object stores have no
    links, and no directories to rename: only single files are ever moved.
    """

    def __init__(self, root: str):
        self.root = os.fspath(root).rstrip("/") or "/"
        self.fs, self.base, self.local = filesystem(self.root)

    def uri(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def _path(self, rel: str) -> str:
        return posixpath.join(self.base, rel) if rel else self.base

    def is_dir(self, rel: str = "") -> bool:
        return self.fs.get_file_info(self._path(rel)).type == pafs.FileType.Directory

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._path(rel)).type != pafs.FileType.NotFound

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self._path(rel)) as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def read_json(self, rel: str) -> dict | None:
        data = self.read(rel)
        return None if data is None else json.loads(data)

    def write(self, rel: str, data: bytes) -> None:
        """Replace the file at once: readers see the old or the new bytes, never part of them (a
        local file is written under TEMP_DIR and renamed; an object store replaces an object
        atomically)."""
        self.refuse_links(rel)
        target = rel if not self.local else f"{TEMP_DIR}/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        self._mkparent(target)
        self._mkparent(rel)
        with self.fs.open_output_stream(self._path(target)) as f:
            f.write(data)
        if target != rel:
            self.fs.move(self._path(target), self._path(rel))

    def write_json(self, rel: str, value: dict) -> None:
        self.write(rel, json.dumps(value, indent=2, sort_keys=True).encode())

    def delete(self, rel: str) -> None:
        """Delete one file (nothing when it is already gone)."""
        self.refuse_links(rel)
        try:
            self.fs.delete_file(self._path(rel))
        except FileNotFoundError:
            pass

    def move(self, src: str, dst: str) -> None:
        """Move one file, replacing `dst`."""
        self.refuse_links(src)
        self.refuse_links(dst)
        self._mkparent(dst)
        self.fs.move(self._path(src), self._path(dst))

    def delete_tree(self, rel: str) -> None:
        """Delete a directory kdaug made (a staging area) and everything in it, links unfollowed."""
        self.refuse_links(rel)
        if self.local:
            shutil.rmtree(self._path(rel), ignore_errors=True)  # unlinks links inside, never follows them
        elif self.files(rel):
            self.fs.delete_dir(self._path(rel))

    def remove_empty_dirs(self, rels: Iterable[str]) -> None:
        """Remove these directories and their parents up to the root while they are empty (local
        disks only: object stores have no directories)."""
        if not self.local:
            return
        for rel in sorted(set(rels), key=lambda r: -r.count("/")):
            while rel and rel != ".":
                try:
                    os.rmdir(self._path(rel))
                except OSError:  # not empty, gone or not a directory
                    break
                rel = posixpath.dirname(rel)

    def files(self, rel: str = "") -> list[str]:
        """Relative paths of every file under `rel`, sorted; symbolic links are listed as entries,
        never entered."""
        if self.local:
            top = self._path(rel)
            if os.path.islink(top) or not os.path.isdir(top):
                return []
            found = []
            for dirpath, dirnames, filenames in os.walk(top):
                links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                for name in filenames + links:
                    found.append(posixpath.relpath(os.path.join(dirpath, name), self.base))
            return sorted(found)
        selector = pafs.FileSelector(self._path(rel), recursive=True, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(posixpath.relpath(i.path, self.base) for i in infos if i.type == pafs.FileType.File)

    def links(self, rels: Iterable[str]) -> list[str]:
        """Those of `rels` that are, or pass through, a symbolic link below the root."""
        return [r for r in rels if self._link_in(r)]

    def refuse_links(self, rel: str) -> None:
        if ".." in rel.split("/"):
            raise CommitError(f"{rel!r} leaves the output {self.root}: refused")
        if link := self._link_in(rel):
            raise CommitError(f"{self.uri(link)} is a symbolic link: kdaug never deletes or moves through one; "
                              "remove the link (or choose another output)")

    def _link_in(self, rel: str) -> str | None:
        """The first component of `rel` (below the root) that is a symbolic link, if any."""
        if not self.local:
            return None
        parts = [p for p in rel.split("/") if p and p != "."]
        for i in range(1, len(parts) + 1):
            if os.path.islink(self._path("/".join(parts[:i]))):
                return "/".join(parts[:i])
        return None

    def _mkparent(self, rel: str) -> None:
        parent = posixpath.dirname(rel)
        if self.local and parent:
            os.makedirs(self._path(parent), exist_ok=True)


# --- the lease --------------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken
    for the original process; None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]  # a zombie has exited


def _process_alive(pid: int, start: str | None) -> bool:
    if start is not None and os.path.exists("/proc/self/stat"):
        return _process_start(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@dataclass
class Claim:
    """One attempt's claim on an output: who, and when it last proved it was alive."""

    attempt: str
    command: str
    host: str
    pid: int
    pid_start: str | None
    started: float
    heartbeat: float
    lease_seconds: float = LEASE_SECONDS
    detached: bool = False  # a job that outlives this process (a Dataflow template): its workers beat

    @classmethod
    def new(cls, attempt: str, command: str, lease_seconds: float = LEASE_SECONDS, detached: bool = False) -> Claim:
        now = time.time()
        pid = os.getpid()
        return cls(attempt, command, socket.gethostname(), pid, _process_start(pid), now, now, lease_seconds, detached)

    def live(self, now: float | None = None) -> bool:
        if not self.detached and self.host == socket.gethostname() and not _process_alive(self.pid, self.pid_start):
            return False
        return (now or time.time()) - self.heartbeat < self.lease_seconds

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        beat = max(0.0, time.time() - self.heartbeat)
        who = "a job launched" if self.detached else f"pid {self.pid}"
        return (f"attempt {self.attempt} (`kdaug {self.command}`, {who} on {self.host}, started {started}, "
                f"last heartbeat {beat:.0f} s ago)")


def _claim_path(attempt: str) -> str:
    return f"{CLAIMS_DIR}/{attempt}.json"


def claims(store: Store) -> list[Claim]:
    """Every claim on the output; an unreadable claim counts as live, unnamed (safety first)."""
    found = []
    for rel in store.files(CLAIMS_DIR):
        if not rel.endswith(".json"):
            continue
        try:
            found.append(Claim(**store.read_json(rel)))
        except (TypeError, ValueError):
            found.append(Claim(posixpath.basename(rel)[:-5], "?", "?", 0, None, time.time(), time.time()))
    return found


def live_claim(store: Store, besides: str | None = None) -> Claim | None:
    """A live claim other than attempt `besides`, if any."""
    return next((c for c in claims(store) if c.attempt != besides and c.live()), None)


class Lease:
    """An attempt's hold on an output, with a heartbeat thread, for the life of one command."""

    def __init__(self, store: Store, command: str, lease_seconds: float = LEASE_SECONDS, detached: bool = False):
        self.store = store
        self.claim = Claim.new(uuid.uuid4().hex[:12], command, lease_seconds, detached)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def attempt(self) -> str:
        return self.claim.attempt

    def acquire(self) -> Lease:
        """Claim the output or raise OutputBusy naming the live holder (see rule 1)."""
        path = _claim_path(self.attempt)
        self.store.write_json(path, asdict(self.claim))
        other = live_claim(self.store, besides=self.attempt)
        if other is not None:
            self.store.delete(path)
            raise OutputBusy(f"{self.store.root} is being written by another kdaug run: {other.describe()}. "
                             "Wait for it to finish or write elsewhere (one writer per output; a killed run's "
                             f"lease ends when its process is gone, or {other.lease_seconds:.0f} s after its last heartbeat).")
        for dead in claims(self.store):
            if dead.attempt != self.attempt:
                self.store.delete(_claim_path(dead.attempt))
        self._thread = threading.Thread(target=self._beat, name=f"kdaug-lease-{self.attempt}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.claim.lease_seconds / 10):
            if not self.store.exists(_claim_path(self.attempt)):
                return  # released, or taken over after expiring: never resurrect it
            self.claim.heartbeat = time.time()
            self.store.write_json(_claim_path(self.attempt), asdict(self.claim))

    def stop_beating(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def release(self) -> None:
        self.stop_beating()
        release(self.store, self.attempt)


def release(store: Store, attempt: str) -> None:
    store.delete(_claim_path(attempt))
    store.remove_empty_dirs([CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR])


def heartbeat(attempt: Attempt) -> None:
    """Prove a detached attempt's job alive (its workers call this as they write); a claim that is
    gone (released, or taken over after expiring) is never recreated."""
    store = Store(attempt.output)
    claim = store.read_json(_claim_path(attempt.attempt))
    if claim is not None:
        store.write_json(_claim_path(attempt.attempt), claim | {"heartbeat": time.time()})


def fence(store: Store, attempt: str) -> None:
    """Refuse to publish unless `attempt` still holds the only live claim."""
    own = store.read_json(_claim_path(attempt))
    other = live_claim(store, besides=attempt)
    if own is None or other is not None:
        holder = f"; {other.describe()} holds it now" if other else ""
        raise CommitError(f"attempt {attempt} lost its lease on {store.root}{holder}: not publishing")


# --- what a published output owns ------------------------------------------------------------------


def manifest_files(manifest: dict) -> list[str]:
    """The relative paths of the data files a published manifest owns."""
    if "files" not in manifest:
        raise CommitError("its manifest lists no files: it was written by an older kdaug; regenerate it")
    return [f["path"] for f in manifest["files"]]


def _run_names(store: Store) -> list[str]:
    """Run directory names under ROOT/runs, oldest first (names start with a UTC timestamp)."""
    return sorted({rel.split("/")[1] for rel in store.files(RUNS_DIR) if rel.count("/") >= 2})


def latest(store: Store) -> str | None:
    """The run LATEST names, or None before the first published run."""
    data = store.read(LATEST_FILE)
    return None if data is None else data.decode().strip()


def published_runs(store: Store) -> list[str]:
    """The versioned root's published runs, oldest first: those with `_SUCCESS`, LATEST's and older."""
    head = latest(store)
    if head is None:
        return []
    return [n for n in _run_names(store) if n <= head and store.exists(f"{RUNS_DIR}/{n}/{SUCCESS_FILE}")]


def foreign_files(store: Store) -> list[str]:
    """Files (and links) under the output that kdaug did not write: anything but its state, the
    published files and their own files, LATEST and the runs' contents as their manifests list them.
    Inside its state (staging areas) kdaug deletes links as entries, never what they point to."""
    ours = {LATEST_FILE, *OWN_FILES}
    manifest = store.read_json(MANIFEST_FILE)
    if manifest is not None and "files" in manifest:
        ours.update(manifest_files(manifest))
    journal = store.read_json(JOURNAL_FILE)
    if journal is not None:
        ours.update(dst for _, dst in journal["moves"])
    for name in _run_names(store):
        run_manifest = store.read_json(f"{RUNS_DIR}/{name}/{MANIFEST_FILE}")
        listed = manifest_files(run_manifest) if run_manifest and "files" in run_manifest else []
        ours.update(f"{RUNS_DIR}/{name}/{rel}" for rel in [*listed, *OWN_FILES])
    outside_state = [rel for rel in store.files() if not rel.startswith(STATE_DIR + "/")]
    return sorted({rel for rel in outside_state if rel not in ours} | set(store.links(outside_state)))


# --- writers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One attempt at writing an output: what the job needs to stage and publish (picklable, so a
    pipeline's last step can publish on a worker)."""

    output: str
    attempt: str
    versioned: bool = False
    keep: int | None = None
    run_name: str | None = None  # versioned: the run directory it publishes
    detached: bool = False  # the job outlives the command (a Dataflow template): it releases the lease itself
    lease_seconds: float = LEASE_SECONDS

    @property
    def staging(self) -> str:
        """The attempt's staging area (relative to the output)."""
        return f"{ATTEMPTS_DIR}/{self.attempt}"

    @property
    def staging_uri(self) -> str:
        return Store(self.output).uri(self.staging)

    @property
    def published_dir(self) -> str:
        """Where readers find the run once published."""
        return Store(self.output).uri(f"{RUNS_DIR}/{self.run_name}" if self.versioned else "")


def check_target(output: str, inputs: Iterable[str] = (), versioned: bool = False) -> None:
    """Refuse, before anything is written, an output kdaug must not write: one that is a file, holds
    files kdaug did not write (or links), lies inside an input or holds one, or has the other layout.
    Raises TargetRefused naming what to do."""
    store = Store(output)
    if store.exists("") and not store.is_dir(""):
        raise TargetRefused(f"--output {output} is a file, not a directory")
    for path in inputs:
        if overlaps(path, output):
            raise TargetRefused(f"--output {output} and input {path} overlap: an output may not lie inside an input "
                              "or hold one (its files would be read as input, or the input overwritten); choose another --output")
    if versioned and store.exists(MANIFEST_FILE):
        raise TargetRefused(f"{output} holds a plain output (it has {MANIFEST_FILE}); use another root for --versioned runs")
    if not versioned and (store.exists(LATEST_FILE) or _run_names(store)):
        raise TargetRefused(f"{output} is a root of versioned runs; pass --versioned or write elsewhere")
    foreign = foreign_files(store)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TargetRefused(f"--output {output} holds files kdaug did not write ({shown}): kdaug never deletes or "
                          "mixes them with its output; move them away or choose another --output")


def overlaps(a: str, b: str) -> bool:
    """Whether one of the two paths lies inside the other (or they are the same)."""
    return _inside(a, b) or _inside(b, a)


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies under it (local paths with links resolved)."""
    if "://" in path or "://" in directory:
        return (path.rstrip("/") + "/").startswith(directory.rstrip("/") + "/")
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


class Writer:
    """A command's attempt at OUTPUT from claim to release (rules 1, 2 and 5; the job stages and
    calls `publish`)::

        with Writer(out, "augment") as attempt:
            ...write under attempt.staging_uri...
            publish(attempt, manifest, moves)
    """

    def __init__(self, output: str, command: str, versioned: bool = False, keep: int | None = None,
                 lease_seconds: float = LEASE_SECONDS, log=None, detached: bool = False):
        self.store = Store(output)
        self.versioned, self.keep, self.detached = versioned, keep, detached
        self.lease = Lease(self.store, command, lease_seconds, detached)
        self.log = log or (lambda message: None)
        self.attempt: Attempt | None = None

    def __enter__(self) -> Attempt:
        self.lease.acquire()
        try:
            recover(self.store, self.lease.attempt, self.log)
            run_name = _next_run_name(self.store, self.lease.attempt) if self.versioned else None
        except BaseException:
            self.lease.release()
            raise
        self.attempt = Attempt(self.store.root, self.lease.attempt, self.versioned, self.keep, run_name, self.detached,
                               self.lease.claim.lease_seconds)
        return self.attempt

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.detached and exc is None:  # the job holds the lease now; its publish releases it
            self.lease.stop_beating()
            return
        self.lease.release()
        if exc is not None and self.attempt is not None and not _already_published(self.store, self.attempt):
            kept = self.store.files(self.attempt.staging)
            self.log(f"{self.store.root}: nothing was published, the previous output is unchanged"
                     + (f"; this attempt's files stay in {self.attempt.staging_uri} until the next run on it" if kept else ""))


def write(output: str, command: str, inputs: Iterable[str], stage_and_publish, versioned: bool = False,
          keep: int | None = None, log=None, detached: bool = False):
    """The whole protocol around `stage_and_publish(attempt)`: check the target, claim, recover,
    run it (it stages and calls `publish`), release. Returns what it returns. `detached`: the job
    runs after this returns (a Dataflow template): the lease passes to it, kept alive by its
    workers' heartbeats and released by its publish."""
    check_target(output, inputs, versioned)
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
    import calendar

    stamp = name.split("-", 1)[0]
    whole, _, micros = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole.rstrip("Z"), "%Y%m%dT%H%M%S")) + int(micros or 0) / 1e6


def publish(attempt: Attempt, manifest: dict, files: list[dict]) -> dict:
    """Publish the attempt (rule 4). `files`: one ``{"path", "staged"[, "rows"]}`` per published
    file, `path` relative to the published directory, `staged` relative to the output. The manifest
    gets the attempt id, the publish time and the file list (with sizes). Returns the published
    manifest; repeating it (a retried step) changes nothing."""
    store = Store(attempt.output)
    if _already_published(store, attempt):
        return _published_manifest(store, attempt)
    fence(store, attempt.attempt)
    moves = {f["path"]: f["staged"] for f in files}
    listed = [{k: v for k, v in f.items() if k != "staged"} | {"bytes": _size(store, f["staged"])}
              for f in sorted(files, key=lambda f: f["path"])]
    manifest = dict(manifest, attempt=attempt.attempt, files=listed,
                    published_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if attempt.versioned:
        manifest["run"] = attempt.run_name
    if attempt.versioned:
        _publish_run(store, attempt, manifest, moves)
    else:
        store.write_json(f"{attempt.staging}/{MANIFEST_FILE}", manifest)
        journal = {"attempt": attempt.attempt, "moves": sorted((src, dst) for dst, src in moves.items()),
                   "manifest": f"{attempt.staging}/{MANIFEST_FILE}", "remove": _owned(store)}
        store.write_json(JOURNAL_FILE, journal)  # the commit point
        apply_journal(store, journal)
    if attempt.detached:
        release(store, attempt.attempt)
    return manifest


def publish_dir(attempt: Attempt, manifest: dict) -> dict:
    """Publish every file the attempt staged, under the same relative path (a model directory
    that `save_pretrained` wrote into the staging area, a report)."""
    store = Store(attempt.output)
    prefix = attempt.staging + "/"
    files = [{"path": rel[len(prefix):], "staged": rel} for rel in store.files(attempt.staging)]
    return publish(attempt, manifest, files)


def _size(store: Store, rel: str) -> int:
    return store.fs.get_file_info(store._path(rel)).size


def _already_published(store: Store, attempt: Attempt) -> bool:
    if attempt.versioned:
        return latest(store) == attempt.run_name
    return (store.read(SUCCESS_FILE) or b"").decode().strip() == attempt.attempt


def _published_manifest(store: Store, attempt: Attempt) -> dict:
    base = f"{RUNS_DIR}/{attempt.run_name}/" if attempt.versioned else ""
    return store.read_json(base + MANIFEST_FILE)


def _owned(store: Store) -> list[str]:
    """The files the plain output's published run owns (what the next publish may delete)."""
    manifest = store.read_json(MANIFEST_FILE)
    if manifest is None:
        return []
    return [*manifest_files(manifest), *OWN_FILES]


def apply_journal(store: Store, journal: dict) -> None:
    """Carry out a plain publish from its journal: the old run's files out, the new ones in, the
    manifest, `_SUCCESS` last. Safe to repeat after a crash at any step."""
    store.delete(SUCCESS_FILE)
    incoming = {dst for _, dst in journal["moves"]} | {MANIFEST_FILE}
    gone = [rel for rel in journal["remove"] if rel not in incoming]
    for rel in gone:
        store.delete(rel)
    store.remove_empty_dirs(posixpath.dirname(rel) for rel in gone if "/" in rel)
    for src, dst in journal["moves"]:
        if store.exists(src):
            store.move(src, dst)
        elif not store.exists(dst):
            raise CommitError(f"cannot finish publishing attempt {journal['attempt']} of {store.root}: "
                              f"{src} and {dst} are both missing")
    if store.exists(journal["manifest"]):
        store.move(journal["manifest"], MANIFEST_FILE)
    store.write(SUCCESS_FILE, journal["attempt"].encode())
    store.delete(JOURNAL_FILE)
    store.delete_tree(f"{ATTEMPTS_DIR}/{journal['attempt']}")


def _publish_run(store: Store, attempt: Attempt, manifest: dict, moves: dict[str, str]) -> None:
    run = f"{RUNS_DIR}/{attempt.run_name}"
    head = latest(store)
    if head is not None and head > attempt.run_name:
        raise CommitError(f"{store.root}: LATEST already names a newer run ({head}); run {attempt.run_name} is "
                          "not published (LATEST never moves back in time)")
    store.write_json(f"{run}/{MANIFEST_FILE}", manifest)  # first: it says which files the run owns
    for dst, src in sorted(moves.items()):
        if store.exists(src):
            store.move(src, f"{run}/{dst}")
    store.write(f"{run}/{SUCCESS_FILE}", attempt.attempt.encode())
    store.write(LATEST_FILE, attempt.run_name.encode() + b"\n")  # the commit point
    store.delete_tree(attempt.staging)
    if attempt.keep is not None:
        prune(store, attempt.keep)


def prune(store: Store, keep: int) -> list[str]:
    """Delete all but the newest `keep` published runs (LATEST's always stays); return their names.
    Only the lease holder prunes, so no run being written is ever touched."""
    doomed = published_runs(store)[:-keep]
    for name in doomed:
        delete_run(store, name)
    return doomed


def delete_run(store: Store, name: str) -> None:
    """Delete a run's files as its manifest lists them, `_SUCCESS` first (a half-deleted run never
    looks published); what it does not list stays."""
    run = f"{RUNS_DIR}/{name}"
    manifest = store.read_json(f"{run}/{MANIFEST_FILE}")
    listed = manifest_files(manifest) if manifest and "files" in manifest else []
    store.delete(f"{run}/{SUCCESS_FILE}")
    for rel in listed:
        store.delete(f"{run}/{rel}")
    for rel in (METRICS_FILE, MANIFEST_FILE):
        store.delete(f"{run}/{rel}")
    store.remove_empty_dirs(posixpath.dirname(f"{run}/{rel}") for rel in [*listed, "x"])


def recover(store: Store, attempt: str, log) -> None:
    """As the lease holder (so every other attempt is dead): finish a journaled publish, delete
    other attempts' staging areas and versioned runs that were never published."""
    journal = store.read_json(JOURNAL_FILE)
    if journal is not None and journal["attempt"] != attempt:
        log(f"finishing the publish of attempt {journal['attempt']}, interrupted after its commit point")
        apply_journal(store, journal)
    for rel in sorted({posixpath.join(*r.split("/")[:3]) for r in store.files(ATTEMPTS_DIR)}):
        if posixpath.basename(rel) != attempt:
            store.delete_tree(rel)
    for rel in store.files(TEMP_DIR):  # temporary files of writes killed mid-way (never one being written)
        host, pid, _ = posixpath.basename(rel).rsplit("-", 2)
        mine = host == socket.gethostname()
        if (mine and not _process_alive(int(pid), None)) or (not mine and _age(store, rel) > 3600):
            store.delete(rel)
    head = latest(store)
    for name in _run_names(store):
        finished = store.exists(f"{RUNS_DIR}/{name}/{SUCCESS_FILE}")
        if not finished or (head is not None and name > head):  # without LATEST, keep what looks finished
            log(f"removing run {name}: it was never published")
            delete_run(store, name)


def _age(store: Store, rel: str) -> float:
    return time.time() - store.fs.get_file_info(store._path(rel)).mtime.timestamp()


def write_metrics(attempt: Attempt, metrics: dict) -> None:
    """Beside the published run, the counters known only after the pipeline (not part of the
    manifest, which is final once `_SUCCESS` exists)."""
    store = Store(attempt.output)
    base = f"{RUNS_DIR}/{attempt.run_name}/" if attempt.versioned else ""
    if _already_published(store, attempt):
        store.write_json(base + METRICS_FILE, metrics)


# --- readers ----------------------------------------------------------------------------------------


@dataclass
class Published:
    """A published run as a reader sees it: its directory, manifest and data files."""

    dir: str
    manifest: dict | None
    files: list[str] = field(default_factory=list)  # URIs (local paths for a local output)
    finished: bool = True

    @property
    def attempt(self) -> str | None:
        return (self.manifest or {}).get("attempt")

    def check_current(self) -> None:
        """Raise when the run read was replaced or pruned since `published` returned it: rows read
        before and after would belong to different runs."""
        if not self.finished:
            return
        marker = (Store(self.dir).read(SUCCESS_FILE) or b"").decode().strip()
        journal = Store(self.dir).exists(JOURNAL_FILE)
        if marker != self.attempt or journal:
            raise CommitError(f"{self.dir} changed while it was being read (run {self.attempt} was replaced or "
                              "deleted); read it again, or use a --versioned root when readers overlap regeneration")


def published(path: str, allow_unfinished: bool = False) -> Published:
    """The published run at `path` (a plain output, or a versioned root through LATEST).

    Refuses (UnfinishedOutput) what is not one whole run, saying why and who is writing it.
    `allow_unfinished` (forensics) reads whatever Parquet files the directory holds instead.
    """
    path = os.fspath(path)
    store = Store(path)
    if not store.is_dir(""):
        raise UnfinishedOutput(f"{path}: no such output directory")
    head = latest(store)
    if head is not None:
        return published(store.uri(f"{RUNS_DIR}/{head}"), allow_unfinished)
    if _run_names(store) and not allow_unfinished:
        raise UnfinishedOutput(f"{path} is a root of versioned runs but no run has been published yet{_writing(store)}")
    problem = _unfinished(store)
    if problem is None:
        manifest = store.read_json(MANIFEST_FILE)
        try:
            files = manifest_files(manifest)
        except CommitError as err:
            raise UnfinishedOutput(f"{path}: {err}") from None
        return Published(store.root, manifest, [store.uri(rel) for rel in files])
    if not allow_unfinished:
        raise UnfinishedOutput(f"{path}: {problem}; pass --allow-unfinished to read it anyway (forensics)")
    data = [store.uri(rel) for rel in store.files() if rel.endswith(".parquet") and not rel.startswith("_")]
    return Published(store.root, store.read_json(MANIFEST_FILE), data, finished=False)


def _unfinished(store: Store) -> str | None:
    """Why the plain output at `store` is not one whole published run, or None."""
    journal = store.read_json(JOURNAL_FILE)
    if journal is not None:
        return (f"attempt {journal['attempt']} is publishing it{_writing(store)}, or was interrupted doing so "
                "(the next kdaug run on it, or `kdaug recover`, finishes that publish)")
    marker = store.read(SUCCESS_FILE)
    if marker is None:
        return f"it has no {SUCCESS_FILE}: no run of it has finished{_writing(store)}"
    manifest = store.read_json(MANIFEST_FILE)
    if manifest is None:
        return f"it has {SUCCESS_FILE} but no {MANIFEST_FILE}: it is not a kdaug output, or a damaged one"
    if manifest.get("attempt") != marker.decode().strip():
        return (f"its {SUCCESS_FILE} (attempt {marker.decode().strip() or '?'}) and {MANIFEST_FILE} (attempt "
                f"{manifest.get('attempt')}) belong to different runs")
    return None


def _writing(store: Store) -> str:
    claim = live_claim(store)
    return "" if claim is None else f" ({claim.describe()} is writing it)"


def recover_output(output: str, log=print) -> None:
    """`kdaug recover`: take the lease and finish or clean up what dead writers left."""
    store = Store(output)
    if not store.is_dir(""):
        raise CommitError(f"{output}: no such output directory")
    lease = Lease(store, "recover").acquire()
    try:
        recover(store, lease.attempt, log)
    finally:
        lease.release()
