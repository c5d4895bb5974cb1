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

What kdaug finds in storage is data, never instructions (the gate, below): every journal, manifest,
claim and LATEST is parsed strictly and every path in it must stay inside the output, before anything
it names is read, moved or deleted; a publisher re-proves its lease before each step, so a writer
paused past its lease (SIGSTOP, a long GC, a VM migration) never publishes over the one that took
over.

Readers (`published`) resolve LATEST, refuse an output without `_SUCCESS`, with a journal, or whose
`_SUCCESS` and manifest name different attempts, and read exactly the files the manifest lists, each
checked to have its listed size, so files kdaug did not write never reach them. A reader that overlaps a plain output's publish notices
with `Published.check_current` (a versioned root gives concurrent readers a stable run instead).

All I/O is through pyarrow's filesystems (local, gs://, s3://, hdfs://) and this module imports no
Beam, so `distill` shares it.
"""

from __future__ import annotations

import calendar
import errno
import fcntl
import json
import math
import os
import posixpath
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
#: What each manifest kind is, for a person: outputs of different kinds never replace one another.
KINDS = {"augment": "an augmented dataset", "run": "a labelled dataset", "label": "a labelled dataset",
         "teacher": "a teacher model", "student": "a student model", "sweep": "a sweep's results"}

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


# --- the gate: everything read from storage is data, never instructions ---------------------------------
#
# Journals, manifests, claims, LATEST, run and staging folder names are written by kdaug, but anyone who
# can write into OUT (a shared bucket, an unlucky operator) can write them too. Each is parsed here,
# strictly, before kdaug reads, moves or deletes anything it names: every path must be a plain relative
# path that stays inside the root (`Store` then refuses symbolic links on the way), every id and count
# must have kdaug's own shape. Anything else is refused with one line naming the file and what is wrong,
# and nothing is touched. Fields kdaug does not know are ignored (never acted on); so are names inside
# `_kdaug/` that kdaug did not make.

ATTEMPT_ID = re.compile(r"[0-9a-f]{12}")
RUN_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{12}")
TEMP_NAME = re.compile(r"(?P<host>[^/]+)-(?P<pid>\d{1,10})-[0-9a-f]{32}")
STATE_BYTES = 256 << 20  # no journal, manifest or claim kdaug writes comes near this; a larger one is refused unread
MARKER_BYTES = 4096  # LATEST and _SUCCESS hold one name
LOCK_WAIT = max(5.0, LEASE_SECONDS / 10)  # seconds a writer waits for another's recover or publish to end
MAX_LEASE = 86_400.0  # a claim asking for a longer lease than a day is not one kdaug wrote

REMEDY = {
    JOURNAL_FILE: "if no kdaug run is writing this output, move that file away: the output then reads as "
                  "unfinished until the next run replaces it",
    MANIFEST_FILE: "the output cannot be trusted: move it away and regenerate it",
    LATEST_FILE: "restore it to the name of a published run under runs/, or move the root away",
}


class _Bad(ValueError):
    """What is wrong with one parsed value (the caller names the file)."""


def checked_path(value, where: str) -> str:
    """`value` if it is a plain relative POSIX path that stays inside the root: a string, not absolute,
    no empty, `.` or `..` part, no backslash or control character. `where` names it in the error."""
    if not isinstance(value, str):
        raise _Bad(f"{where} is {_shape(value)}, not a path")
    if not value:
        raise _Bad(f"{where} is an empty path")
    if value.startswith("/") or "://" in value or re.match(r"[A-Za-z]:", value):
        raise _Bad(f"{where} is an absolute path ({value[:200]!r}): kdaug only follows paths inside the output")
    if any(ord(c) < 32 or c == "\\" for c in value) or len(value) > 1024:
        raise _Bad(f"{where} ({value[:200]!r}) has a control character or backslash, or is too long")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise _Bad(f"{where} ({value[:200]!r}) leaves the output or is not a plain relative path")
    return value


def _published_path(value, where: str) -> str:
    """A path of a published file: inside the root and outside kdaug's state folder."""
    path = checked_path(value, where)
    if path.split("/")[0] == STATE_DIR:
        raise _Bad(f"{where} ({path!r}) points into kdaug's state folder {STATE_DIR}/")
    return path


def _attempt_id(value, where: str) -> str:
    if not (isinstance(value, str) and ATTEMPT_ID.fullmatch(value)):
        raise _Bad(f"{where} is {_shape(value)}, not an attempt id")
    return value


def _count(value, where: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 62:
        raise _Bad(f"{where} is {_shape(value)}, not a count")
    return value


def _number(value, where: str, low: float = 0.0, high: float = math.inf) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise _Bad(f"{where} is {_shape(value)}, not a number in [{low:g}, {high:g}]")
    return float(value)


def _text(value, where: str) -> str:
    if not isinstance(value, str) or len(value) > 1024:
        raise _Bad(f"{where} is {_shape(value)}, not a short string")
    return value


def _shape(value) -> str:
    """A value as an error message shows it: its type and the start of its JSON."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = "?"
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def _object(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise _Bad(f"it is not valid JSON ({str(err)[:100]})") from None
    if not isinstance(value, dict):
        raise _Bad(f"it is {_shape(value)}, not a {what}")
    return value


def parse_manifest(data: bytes) -> dict:
    """A published manifest, its `files` checked: unique paths inside the output, byte (and row) counts."""
    manifest = _object(data, "manifest")
    _attempt_id(manifest.get("attempt"), "attempt")
    _text(manifest.get("kind"), "kind")
    if "files" not in manifest:
        raise _Bad("it lists no files: it was written by an older kdaug; regenerate it")
    if not isinstance(manifest["files"], list):
        raise _Bad(f"files is {_shape(manifest['files'])}, not a list")
    seen = set()
    for i, entry in enumerate(manifest["files"]):
        if not isinstance(entry, dict):
            raise _Bad(f"files[{i}] is {_shape(entry)}, not a file entry")
        path = _published_path(entry.get("path"), f"files[{i}].path")
        if path in OWN_FILES or path in seen:
            raise _Bad(f"files[{i}].path ({path!r}) is listed twice or names one of kdaug's own files")
        seen.add(path)
        _count(entry.get("bytes"), f"files[{i}].bytes")
        if "rows" in entry:
            _count(entry["rows"], f"files[{i}].rows")
    return manifest


@dataclass(frozen=True)
class Journal:
    """A plain output's publish as its writer recorded it at the commit point."""

    attempt: str
    moves: tuple[tuple[str, str], ...]  # (staged, published); staged inside the attempt's own staging area
    manifest: str  # the attempt's staged manifest
    remove: tuple[str, ...]  # the previous run's files

    def to_json(self) -> dict:
        return {"attempt": self.attempt, "moves": [list(m) for m in self.moves], "manifest": self.manifest,
                "remove": list(self.remove)}


def parse_journal(data: bytes) -> Journal:
    value = _object(data, "publish journal")
    attempt = _attempt_id(value.get("attempt"), "attempt")
    staging = f"{ATTEMPTS_DIR}/{attempt}/"
    moves, remove = value.get("moves"), value.get("remove")
    if not isinstance(moves, list) or not isinstance(remove, list):
        raise _Bad(f"moves ({_shape(moves)}) and remove ({_shape(remove)}) must be lists")
    pairs = []
    for i, pair in enumerate(moves):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _Bad(f"moves[{i}] is {_shape(pair)}, not a [staged, published] pair")
        src, dst = checked_path(pair[0], f"moves[{i}][0]"), _published_path(pair[1], f"moves[{i}][1]")
        if not src.startswith(staging) or dst in OWN_FILES:
            raise _Bad(f"moves[{i}] takes {src!r} to {dst!r}: not from attempt {attempt}'s staging area to a data file")
        pairs.append((src, dst))
    if value.get("manifest") != staging + MANIFEST_FILE:
        raise _Bad(f"manifest is {_shape(value.get('manifest'))}, not attempt {attempt}'s staged {MANIFEST_FILE}")
    gone = tuple(_published_path(rel, f"remove[{i}]") for i, rel in enumerate(remove))
    return Journal(attempt, tuple(pairs), staging + MANIFEST_FILE, gone)


def parse_latest(data: bytes) -> str:
    name = data.decode("utf-8", "replace").strip()
    if not RUN_NAME.fullmatch(name):
        raise _Bad(f"it holds {name[:80]!r}, not the name of a run (<UTC stamp>-<attempt>)")
    return name


# --- storage ----------------------------------------------------------------------------------------


def filesystem(root: str) -> tuple[pafs.FileSystem, str, bool]:
    """(pyarrow filesystem, the root's path in it, whether it is the local disk) for a path or URI."""
    if "://" not in root:
        return pafs.LocalFileSystem(), os.path.abspath(root), True
    fs, base = pafs.FileSystem.from_uri(root)
    return fs, base.rstrip("/"), False


class Store:
    """Files under one root (a local path or a URI) by relative POSIX path.

    Nothing here follows a symbolic link: a path through one is refused before anything is read,
    deleted or moved, so a link inside OUT can never make kdaug touch files outside it. Object stores
    have no links, and no directories to rename: only single files are ever moved.
    """

    def __init__(self, root: str):
        root = os.fspath(root)
        if not root.strip():
            raise TargetRefused("an empty path names no output directory: give one")
        self.root = root.rstrip("/") or "/"
        self.fs, self.base, self.local = filesystem(self.root)

    def uri(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def _path(self, rel: str) -> str:
        return posixpath.join(self.base, rel) if rel else self.base

    def is_dir(self, rel: str = "") -> bool:
        return self.fs.get_file_info(self._path(rel)).type == pafs.FileType.Directory

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._path(rel)).type != pafs.FileType.NotFound

    def size(self, rel: str) -> int | None:
        """The file's size in bytes; None when it is missing or not a plain file (a link counts as missing)."""
        if self._link_in(rel):
            return None
        info = self.fs.get_file_info(self._path(rel))
        return info.size if info.type == pafs.FileType.File else None

    def read(self, rel: str, limit: int = STATE_BYTES) -> bytes | None:
        """The file's bytes, or None when it does not exist; refused through a link or past `limit` bytes."""
        self.refuse_links(rel, DamagedState)
        info = self.fs.get_file_info(self._path(rel))
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.File or info.size > limit:
            raise DamagedState(f"{self.uri(rel)} is not a file of at most {limit:,} bytes as kdaug writes it: refused. "
                               + REMEDY.get(rel, "Move it away"))
        try:
            with self.fs.open_input_stream(self._path(rel)) as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def read_state(self, rel: str, parse: Callable[[bytes], object], limit: int = STATE_BYTES):
        """Parse the state file at `rel` (None when it is absent), or refuse it (DamagedState) naming the
        file, what is wrong and what to do, having touched nothing it names."""
        data = self.read(rel, limit)
        if data is None:
            return None
        try:
            return parse(data)
        except _Bad as err:
            remedy = REMEDY.get(posixpath.basename(rel) if rel.endswith(MANIFEST_FILE) else rel,
                                REMEDY[MANIFEST_FILE])
            raise DamagedState(f"{self.uri(rel)} is not as kdaug writes it: {err}. kdaug read, moved and deleted "
                               f"nothing through it; {remedy}") from None

    def read_json(self, rel: str) -> dict | None:
        """A JSON object file (None when absent), through the same checks as kdaug's state files."""
        return self.read_state(rel, lambda data: _object(data, "JSON object"))

    def write(self, rel: str, data: bytes) -> None:
        """Replace the file at once: readers see the old or the new bytes, never part of them (a
        local file is written under TEMP_DIR and renamed; an object store replaces an object
        atomically)."""
        target = rel if not self.local else f"{TEMP_DIR}/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        self.refuse_links(rel)
        self.refuse_links(target)
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
        disks only: object stores have no directories); never through a link."""
        if not self.local:
            return
        for rel in sorted(set(rels), key=lambda r: -r.count("/")):
            while rel and rel != "." and not self._link_in(rel):
                try:
                    os.rmdir(self._path(rel))
                except OSError:  # not empty, gone or not a directory
                    break
                rel = posixpath.dirname(rel)

    def children(self, rel: str) -> list[str]:
        """Names directly inside the directory `rel` (files, folders and links), sorted; [] when it is
        not a directory."""
        if self.local:
            top = self._path(rel)
            return sorted(os.listdir(top)) if os.path.isdir(top) and not self._link_in(rel) else []
        prefix = rel.rstrip("/") + "/" if rel else ""  # object stores: folders are prefixes of files
        return sorted({f[len(prefix):].split("/")[0] for f in self.files(rel)})

    def files(self, rel: str = "") -> list[str]:
        """Relative paths of every file under `rel`, sorted; symbolic links are listed as entries,
        never entered."""
        if self.local:
            top = self._path(rel)
            if self._link_in(rel) or not os.path.isdir(top):
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

    def refuse_links(self, rel: str, error: type[CommitError] = CommitError) -> None:
        if ".." in rel.split("/") or rel.startswith("/"):
            raise error(f"{rel!r} leaves the output {self.root}: refused")
        if link := self._link_in(rel):
            raise error(f"{self.uri(link)} is a symbolic link: kdaug never reads, deletes or moves through one; "
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

    @contextmanager
    def exclusive(self, wait: float) -> Iterator[bool]:
        """Hold the output's lock (an exclusive flock on its directory) while recovering or publishing:
        the storage-level fence. A holder that is paused (SIGSTOP, a long GC) keeps it, so nobody
        takes the output over under it; one that dies loses it at once. Waits up to `wait` seconds,
        then refuses (OutputBusy). Yields True when held, False on an object store (no locks there:
        the lease's `Fence` re-proves itself before each step instead)."""
        if not self.local:
            yield False
            return
        os.makedirs(self.base, exist_ok=True)
        fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OutputBusy(f"{self.root} is being recovered or published by another kdaug process (it "
                                         "holds the output's lock: it may be paused or stuck); wait for it, or stop it") from None
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _mkparent(self, rel: str) -> None:
        parent = posixpath.dirname(rel)
        if self.local and parent:
            os.makedirs(self._path(parent), exist_ok=True)


def check_state_dir(store: Store) -> None:
    """Refuse, before any work starts, a state folder kdaug did not make: `_kdaug/` or a folder or file
    in it that is a symbolic link (it would make kdaug stage, claim or delete outside OUT), or a file
    where kdaug keeps a folder. Inside a dead attempt's staging area, links are only ever removed as
    entries (`Store.delete_tree`), so they may stay until then."""
    if not store.local:
        return
    entries = [STATE_DIR, CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR, JOURNAL_FILE]
    entries += [f"{d}/{name}" for d in (CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR)
                for name in (os.listdir(store._path(d)) if os.path.isdir(store._path(d)) and not store._link_in(d) else ())]
    for rel in entries:
        path = store._path(rel)
        if os.path.islink(path):
            raise TargetRefused(f"{store.uri(rel)} is a symbolic link: kdaug keeps its state in plain folders and never "
                                "writes through a link; remove it (nothing was written)")
        if rel in (STATE_DIR, CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR) and os.path.exists(path) and not os.path.isdir(path):
            raise TargetRefused(f"{store.uri(rel)} is a file where kdaug keeps a folder; remove it (nothing was written)")


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
    except (ProcessLookupError, OverflowError):
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

    @classmethod
    def parse(cls, data: bytes, attempt: str) -> Claim:
        """The claim file of `attempt`, every field checked (unknown fields ignored)."""
        value = _object(data, "claim")
        if value.get("attempt") != attempt:
            raise _Bad(f"it claims for {_shape(value.get('attempt'))}, not for attempt {attempt} its name says")
        pid_start = value.get("pid_start")
        if pid_start is not None:
            _text(pid_start, "pid_start")
        if type(value.get("pid")) is not int or not 0 < value["pid"] < 1 << 31:
            raise _Bad(f"pid is {_shape(value.get('pid'))}, not a process id")
        if type(value.get("detached", False)) is not bool:
            raise _Bad(f"detached is {_shape(value.get('detached'))}")
        return cls(attempt, _text(value.get("command"), "command"), _text(value.get("host"), "host"), value["pid"],
                   pid_start, _number(value.get("started"), "started"), _number(value.get("heartbeat"), "heartbeat"),
                   _number(value.get("lease_seconds", LEASE_SECONDS), "lease_seconds", 1e-3, MAX_LEASE),
                   value.get("detached", False))

    def live(self, now: float | None = None) -> bool:
        if not self.detached and self.host == socket.gethostname() and not _process_alive(self.pid, self.pid_start):
            return False
        return -self.lease_seconds < (now or time.time()) - self.heartbeat < self.lease_seconds

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        beat = max(0.0, time.time() - self.heartbeat)
        who = "a job launched" if self.detached else f"pid {self.pid}"
        return (f"attempt {self.attempt} (`kdaug {self.command}`, {who} on {self.host}, started {started}, "
                f"last heartbeat {beat:.0f} s ago)")


@dataclass
class DamagedClaim:
    """A claim file kdaug cannot read. It counts as live for one lease after it was last written (a
    writer's claim is never half-written: `Store.write` is atomic), then as dead, so it never locks an
    output for good."""

    attempt: str
    path: str
    problem: str
    written: float
    lease_seconds: float = LEASE_SECONDS

    def live(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.written < self.lease_seconds

    def describe(self) -> str:
        until = time.strftime("%H:%M:%S UTC", time.gmtime(self.written + self.lease_seconds))
        return (f"an unreadable claim {self.path} ({self.problem}), which counts as a live writer until {until}; "
                "delete it if no kdaug run is writing this output")


def _claim_path(attempt: str) -> str:
    return f"{CLAIMS_DIR}/{attempt}.json"


def claims(store: Store) -> list[Claim | DamagedClaim]:
    """Every claim on the output (files named `<attempt id>.json`; other names are not kdaug's and are
    ignored)."""
    found: list[Claim | DamagedClaim] = []
    for name in store.children(CLAIMS_DIR):
        attempt = name[:-5]
        if not (name.endswith(".json") and ATTEMPT_ID.fullmatch(attempt)):
            continue
        rel = _claim_path(attempt)
        try:
            data = store.read(rel, limit=MARKER_BYTES * 4)
            if data is None:  # released meanwhile
                continue
            found.append(Claim.parse(data, attempt))
        except (_Bad, DamagedState) as err:
            written = store.fs.get_file_info(store._path(rel)).mtime
            found.append(DamagedClaim(attempt, store.uri(rel), str(err)[:200], written.timestamp() if written else time.time()))
    return found


def live_claim(store: Store, besides: str | None = None) -> Claim | DamagedClaim | None:
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
        check_state_dir(self.store)
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
            if time.time() - self.claim.heartbeat >= self.claim.lease_seconds:
                return  # this process was paused past its lease: another writer may hold it now
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
    try:
        claim = store.read_state(_claim_path(attempt.attempt), lambda data: Claim.parse(data, attempt.attempt), MARKER_BYTES * 4)
    except DamagedState:
        return  # not ours to repair: the publish's fence refuses it
    if claim is not None:
        claim.heartbeat = time.time()
        store.write_json(_claim_path(attempt.attempt), asdict(claim))


def fence(store: Store, attempt: str) -> float:
    """Refuse (LeaseLost) unless `attempt` still holds the only live claim; return the seconds its lease
    has left by its last heartbeat."""
    try:
        own = store.read_state(_claim_path(attempt), lambda data: Claim.parse(data, attempt), MARKER_BYTES * 4)
    except DamagedState:
        own = None
    other = live_claim(store, besides=attempt)
    left = own.lease_seconds - (time.time() - own.heartbeat) if own is not None else 0.0
    if own is None or left <= 0 or other is not None:
        holder = f"; {other.describe()} holds it now" if other else ""
        raise LeaseLost(f"attempt {attempt} lost its lease on {store.root}{holder}: not publishing")
    return left


class Fence:
    """A publisher's guard, called before each step that changes the output.

    Under the output's lock (`Store.exclusive`, local disks) one proof of the lease suffices: nobody
    can take the output over while the lock is held, however long the holder is paused. Without it
    (object stores) the guard re-proves the lease from storage whenever half of what it had left at
    the last proof has passed, by the monotonic or the wall clock, whichever ran further: a process
    paused past its lease (SIGSTOP, a long GC, a VM migration) finds out at its first step after
    resuming. (What remains there is the moment between a check and the step it guards: closing it
    needs conditional writes, which pyarrow's filesystems do not offer.)"""

    def __init__(self, store: Store, attempt: str, exclusive: bool = False):
        self.store, self.attempt, self.exclusive = store, attempt, exclusive
        self._until: tuple[float, float] | None = None  # (monotonic, wall) deadlines of the last proof

    def __call__(self, force: bool = False) -> None:
        if self._until and (self.exclusive or not force and time.monotonic() < self._until[0] and time.time() < self._until[1]):
            return
        self._until = None
        left = fence(self.store, self.attempt) / 2
        self._until = (time.monotonic() + left, time.time() + left)


# --- what a published output owns ------------------------------------------------------------------


def read_manifest(store: Store, rel: str = MANIFEST_FILE) -> dict | None:
    """The manifest at `rel`, checked by the gate (`parse_manifest`); None when there is none."""
    return store.read_state(rel, parse_manifest)


def read_journal(store: Store) -> Journal | None:
    return store.read_state(JOURNAL_FILE, parse_journal)


def manifest_files(manifest: dict) -> list[str]:
    """The relative paths of the data files a published manifest owns."""
    if "files" not in manifest:
        raise CommitError("its manifest lists no files: it was written by an older kdaug; regenerate it")
    return [f["path"] for f in manifest["files"]]


def _run_names(store: Store) -> list[str]:
    """Run directory names under ROOT/runs, oldest first (names start with a UTC timestamp); names not
    shaped like kdaug's are not runs (a writer refuses them as foreign files)."""
    return [name for name in store.children(RUNS_DIR) if RUN_NAME.fullmatch(name)]


def latest(store: Store) -> str | None:
    """The run LATEST names, or None before the first published run."""
    return store.read_state(LATEST_FILE, parse_latest, MARKER_BYTES)


def marker(store: Store, rel: str = SUCCESS_FILE) -> str | None:
    """The attempt id a `_SUCCESS` file holds (its text, shown safely when it is not an id); None when
    there is none."""
    data = store.read(rel, MARKER_BYTES)
    if data is None:
        return None
    text = data.decode("utf-8", "replace").strip()
    return text if ATTEMPT_ID.fullmatch(text) else repr(text[:40])


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
    manifest = read_manifest(store)
    if manifest is not None:
        ours.update(manifest_files(manifest))
    journal = read_journal(store)
    if journal is not None:
        ours.update(dst for _, dst in journal.moves)
    for name in _run_names(store):
        run_manifest = read_manifest(store, f"{RUNS_DIR}/{name}/{MANIFEST_FILE}")
        listed = manifest_files(run_manifest) if run_manifest else []
        ours.update(f"{RUNS_DIR}/{name}/{rel}" for rel in [*listed, *OWN_FILES])
    outside_state = [rel for rel in store.files() if not rel.startswith(STATE_DIR + "/")]
    return sorted({rel for rel in outside_state if rel not in ours} | set(store.links(outside_state)))


def output_kind(store: Store) -> str | None:
    """The kind of kdaug output the directory holds (a manifest's `kind`; "sweep" for a sweep's
    results), or None when it holds none."""
    head = latest(store)
    manifest = read_manifest(store, f"{RUNS_DIR}/{head}/{MANIFEST_FILE}" if head else MANIFEST_FILE)
    if manifest is not None:
        return manifest["kind"]
    return "sweep" if store.exists("results.csv") else None


def enclosing_output(path: str) -> str | None:
    """The kdaug output (a published or publishing directory, or a root of versioned runs) that `path`
    would lie inside, if any: its readers would then mix runs, and its next run refuse the stranger."""
    store = Store(path)
    parent = posixpath.dirname(os.path.realpath(store.base) if store.local else store.base)
    while parent and parent != posixpath.dirname(parent):
        outer = Store(parent if store.local else f"{store.root.split('://')[0]}://{parent}")
        if any(outer.exists(rel) for rel in (MANIFEST_FILE, SUCCESS_FILE, LATEST_FILE, JOURNAL_FILE)):
            return outer.root
        parent = posixpath.dirname(parent)
    return None


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
            raise TargetRefused(f"--output {output} and input {path} overlap: an output may not lie inside an input "
                              "or hold one (its files would be read as input, or the input overwritten); choose another --output")
    if outer := enclosing_output(output):
        raise TargetRefused(f"--output {output} lies inside the kdaug output {outer}: its readers would mix the two; "
                            "choose a directory outside it")
    check_state_dir(store)
    if versioned and store.exists(MANIFEST_FILE):
        raise TargetRefused(f"{output} holds a plain output (it has {MANIFEST_FILE}); use another root for --versioned runs")
    if not versioned and (store.exists(LATEST_FILE) or _run_names(store)):
        raise TargetRefused(f"{output} is a root of versioned runs; pass --versioned or write elsewhere")
    if kind is not None:
        check_kind(store, kind)
    foreign = foreign_files(store)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TargetRefused(f"--output {output} holds files kdaug did not write ({shown}): kdaug never deletes or "
                          "mixes them with its output; move them away or choose another --output")


def check_kind(store: Store, kind: str) -> None:
    """Refuse an output that holds another kind of kdaug output than `kind` (a manifest kind, or "sweep")."""
    found = output_kind(store)
    if found is not None and KINDS.get(found, found) != KINDS.get(kind, kind):
        raise TargetRefused(f"{store.root} holds {KINDS.get(found, f'a kdaug {found!r} output')} and this command "
                            f"writes {KINDS.get(kind, kind)}: kdaug never replaces one kind of output by another; "
                            "choose another output directory")


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

    def __init__(self, output: str, command: str, versioned: bool = False, keep: int | None = None,
                 lease_seconds: float = LEASE_SECONDS, log=None, detached: bool = False):
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
        self.attempt = Attempt(self.store.root, self.lease.attempt, self.versioned, self.keep, run_name, self.detached,
                               self.lease.claim.lease_seconds)
        return self.attempt

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.detached and exc is None:  # the job holds the lease now; its publish releases it
            self.lease.stop_beating()
            return
        if exc is not None and self.attempt is not None and not _already_published(self.store, self.attempt):
            staging = self.attempt.staging
            if disk_full(exc) or not self.store.files(staging):  # nothing worth keeping, or room needed now
                self.store.delete_tree(staging)
            kept = self.store.files(staging)
            self.log(f"{self.store.root}: nothing was published, the previous output is unchanged"
                     + (f"; this attempt's files stay in {self.attempt.staging_uri} until the next run on it" if kept else "")
                     + ("; the disk is full: its staged files were removed, free space and run again" if disk_full(exc) else ""))
        self.lease.release()


def write(output: str, command: str, inputs: Iterable[str], stage_and_publish, versioned: bool = False,
          keep: int | None = None, log=None, detached: bool = False):
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


def publish(attempt: Attempt, manifest: dict, files: list[dict]) -> dict:
    """Publish the attempt (rule 4). `files`: one ``{"path", "staged"[, "rows"]}`` per published
    file, `path` relative to the published directory, `staged` relative to the output. The manifest
    gets the attempt id, the publish time and the file list (with sizes). Returns the published
    manifest; repeating it (a retried step) changes nothing. Every step is guarded by the lease
    (`Fence`); after writing its journal the publisher proves the lease once more, and withdraws
    the journal if it lost it meanwhile."""
    store = Store(attempt.output)
    with store.exclusive(LOCK_WAIT) as exclusive:
        published = _publish(store, attempt, manifest, files, Fence(store, attempt.attempt, exclusive))
    if attempt.detached:
        release(store, attempt.attempt)
    return published


def _publish(store: Store, attempt: Attempt, manifest: dict, files: list[dict], guard: Fence) -> dict:
    if _already_published(store, attempt):
        return _published_manifest(store, attempt)
    guard(force=True)
    moves = {f["path"]: f["staged"] for f in files}
    listed = [{k: v for k, v in f.items() if k != "staged"} | {"bytes": store.size(f["staged"])}
              for f in sorted(files, key=lambda f: f["path"])]
    manifest = dict(manifest, attempt=attempt.attempt, files=listed,
                    published_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if attempt.versioned:
        manifest["run"] = attempt.run_name
        _publish_run(store, attempt, manifest, moves, guard)
    else:
        store.write_json(f"{attempt.staging}/{MANIFEST_FILE}", manifest)
        journal = Journal(attempt.attempt, tuple(sorted((src, dst) for dst, src in moves.items())),
                          f"{attempt.staging}/{MANIFEST_FILE}", tuple(_owned(store)))
        other = read_journal(store)
        if other is not None and other.attempt != attempt.attempt:
            raise LeaseLost(f"{store.root}: attempt {other.attempt} journaled a publish while attempt {attempt.attempt} "
                            "held the lease (it had lost its own): not publishing; run again")
        store.write_json(JOURNAL_FILE, journal.to_json())  # the commit point
        try:
            guard(force=True)
        except LeaseLost:
            if (read_journal(store) or journal).attempt == attempt.attempt:
                store.delete(JOURNAL_FILE)
            if _already_published(store, attempt):  # the new holder rolled it forward meanwhile
                return _published_manifest(store, attempt)
            raise
        apply_journal(store, journal, guard)
    return manifest


def publish_dir(attempt: Attempt, manifest: dict) -> dict:
    """Publish every file the attempt staged, under the same relative path (a model directory
    that `save_pretrained` wrote into the staging area, a report)."""
    store = Store(attempt.output)
    prefix = attempt.staging + "/"
    files = [{"path": rel[len(prefix):], "staged": rel} for rel in store.files(attempt.staging)]
    return publish(attempt, manifest, files)


def _already_published(store: Store, attempt: Attempt) -> bool:
    if attempt.versioned:
        return latest(store) == attempt.run_name
    return marker(store) == attempt.attempt


def _published_manifest(store: Store, attempt: Attempt) -> dict:
    base = f"{RUNS_DIR}/{attempt.run_name}/" if attempt.versioned else ""
    return read_manifest(store, base + MANIFEST_FILE)


def _owned(store: Store) -> list[str]:
    """The files the plain output's published run owns (what the next publish may delete)."""
    manifest = read_manifest(store)
    if manifest is None:
        return []
    return [*manifest_files(manifest), *OWN_FILES]


def _staged_sizes(store: Store, journal: Journal) -> dict[str, int]:
    """{published path: bytes} as the journal's attempt recorded them in its manifest (staged, or already
    moved in): what a roll-forward checks before it assumes a move was already made."""
    for rel in (journal.manifest, MANIFEST_FILE):
        manifest = read_manifest(store, rel)
        if manifest is not None and manifest["attempt"] == journal.attempt:
            sizes = {f["path"]: f["bytes"] for f in manifest["files"]}
            if all(dst in sizes for _, dst in journal.moves):
                return sizes
    raise DamagedState(f"{store.uri(JOURNAL_FILE)} names attempt {journal.attempt}, but no manifest of that attempt "
                       f"lists its files: refused, nothing was touched; {REMEDY[JOURNAL_FILE]}")


def apply_journal(store: Store, journal: Journal, guard: Callable[[], None] = lambda: None) -> None:
    """Carry out a plain publish from its journal: the old run's files out, the new ones in, the
    manifest, `_SUCCESS` last. Safe to repeat after a crash at any step. `guard()` runs before each
    step (the lease holder's `Fence`); a move found already made is checked against the size the
    attempt's manifest lists before it is trusted."""
    sizes = _staged_sizes(store, journal)
    guard()
    store.delete(SUCCESS_FILE)
    incoming = {dst for _, dst in journal.moves} | {MANIFEST_FILE}
    gone = [rel for rel in journal.remove if rel not in incoming]
    for rel in gone:
        guard()
        store.delete(rel)
    store.remove_empty_dirs(posixpath.dirname(rel) for rel in gone if "/" in rel)
    for src, dst in journal.moves:
        guard()
        if store.exists(src):
            store.move(src, dst)
        elif store.size(dst) != sizes[dst]:
            raise CommitError(f"cannot finish publishing attempt {journal.attempt} of {store.root}: {src} is gone and "
                              f"{dst} is {'missing' if store.size(dst) is None else 'not the file it staged'}")
    guard()
    if store.exists(journal.manifest):
        store.move(journal.manifest, MANIFEST_FILE)
    guard()
    store.write(SUCCESS_FILE, journal.attempt.encode())
    store.delete(JOURNAL_FILE)
    store.delete_tree(f"{ATTEMPTS_DIR}/{journal.attempt}")


def _publish_run(store: Store, attempt: Attempt, manifest: dict, moves: dict[str, str], guard: Fence) -> None:
    run = f"{RUNS_DIR}/{attempt.run_name}"

    def refuse_older():
        head = latest(store)
        if head is not None and head > attempt.run_name:
            raise CommitError(f"{store.root}: LATEST already names a newer run ({head}); run {attempt.run_name} is "
                              "not published (LATEST never moves back in time)")

    refuse_older()
    store.write_json(f"{run}/{MANIFEST_FILE}", manifest)  # first: it says which files the run owns
    for dst, src in sorted(moves.items()):
        guard()
        if store.exists(src):
            store.move(src, f"{run}/{dst}")
    store.write(f"{run}/{SUCCESS_FILE}", attempt.attempt.encode())
    guard(force=True)
    refuse_older()
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
    store.refuse_links(run)
    manifest = read_manifest(store, f"{run}/{MANIFEST_FILE}")
    listed = manifest_files(manifest) if manifest else []
    store.delete(f"{run}/{SUCCESS_FILE}")
    for rel in listed:
        store.delete(f"{run}/{rel}")
    for rel in (METRICS_FILE, MANIFEST_FILE):
        store.delete(f"{run}/{rel}")
    store.remove_empty_dirs(posixpath.dirname(f"{run}/{rel}") for rel in [*listed, "x"])


def recover(store: Store, attempt: str, log, guard: Fence) -> None:
    """As the lease holder (so every other attempt is dead): finish a journaled publish, delete
    other attempts' staging areas (empty ones too), temporary files of killed writes and versioned
    runs that were never published. Names kdaug did not make are left alone."""
    journal = read_journal(store)
    if journal is not None and journal.attempt != attempt:
        log(f"finishing the publish of attempt {journal.attempt}, interrupted after its commit point")
        apply_journal(store, journal, guard)
    for name in store.children(ATTEMPTS_DIR):
        if ATTEMPT_ID.fullmatch(name) and name != attempt:
            store.delete_tree(f"{ATTEMPTS_DIR}/{name}")
    for name in store.children(TEMP_DIR):  # temporary files of writes killed mid-way (never one being written)
        found = TEMP_NAME.fullmatch(name)
        rel = f"{TEMP_DIR}/{name}"
        if found is None or store.size(rel) is None:  # not a name or a plain file kdaug made
            continue
        mine = found["host"] == socket.gethostname()
        if (mine and not _process_alive(int(found["pid"]), None)) or (not mine and _age(store, rel) > 3600):
            store.delete(rel)
    head = latest(store)
    if head is not None and not store.exists(f"{RUNS_DIR}/{head}/{SUCCESS_FILE}"):
        raise DamagedState(f"{store.uri(LATEST_FILE)} names run {head}, which is not a published run there: refused, "
                           f"no run was removed; {REMEDY[LATEST_FILE]}")
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

    @property
    def rels(self) -> list[str]:
        """The data files relative to `dir`."""
        prefix = Store(self.dir).root.rstrip("/") + "/"
        return [f[len(prefix):] for f in self.files]

    def check_current(self) -> None:
        """Raise when the run read was replaced or pruned since `published` returned it: rows read
        before and after would belong to different runs."""
        if not self.finished:
            return
        store = Store(self.dir)
        if marker(store) != self.attempt or store.exists(JOURNAL_FILE):
            raise CommitError(f"{self.dir} changed while it was being read (run {self.attempt} was replaced or "
                              "deleted); read it again, or use a --versioned root when readers overlap regeneration")


def published(path: str, allow_unfinished: bool = False) -> Published:
    """The published run at `path` (a plain output, or a versioned root through LATEST).

    Refuses (UnfinishedOutput) what is not one whole run, saying why and who is writing it, and
    (DamagedState) state that is not as kdaug writes it. Every listed file must be there, a plain
    file of its listed size. `allow_unfinished` (forensics) reads whatever Parquet files the
    directory holds instead.
    """
    path = os.fspath(path)
    store = Store(path)
    if not store.is_dir(""):
        raise UnfinishedOutput(f"{path}: no such output directory")
    head = latest(store)
    if head is not None:
        run = f"{RUNS_DIR}/{head}"
        store.refuse_links(run, DamagedState)
        if not store.is_dir(run):
            raise UnfinishedOutput(f"{path}: LATEST names run {head}, which is not there (deleted by hand, or by a "
                                   "tool other than kdaug); regenerate the output")
        return published(store.uri(run), allow_unfinished)
    if _run_names(store) and not allow_unfinished:
        raise UnfinishedOutput(f"{path} is a root of versioned runs but no run has been published yet{_writing(store)}")
    problem = unfinished(store)
    if problem is None:
        manifest = read_manifest(store)
        return Published(store.root, manifest, [store.uri(rel) for rel in manifest_files(manifest)])
    if not allow_unfinished:
        raise UnfinishedOutput(f"{path}: {problem}; pass --allow-unfinished to read it anyway (forensics)")
    data = [rel for rel in store.files() if rel.endswith(".parquet") and not rel.startswith("_")]
    return Published(store.root, None, [store.uri(rel) for rel in data if not store.links([rel])], finished=False)


def unfinished(store: Store) -> str | None:
    """Why the plain output at `store` is not one whole published run, or None: a publish journaled,
    no `_SUCCESS`, no manifest or one of another run, or a listed file not there as it was published."""
    journal = read_journal(store)
    if journal is not None:
        return (f"attempt {journal.attempt} is publishing it{_writing(store)}, or was interrupted doing so "
                "(the next kdaug run on it, or `kdaug recover`, finishes that publish)")
    done = marker(store)
    if done is None:
        return f"it has no {SUCCESS_FILE}: no run of it has finished{_writing(store)}"
    manifest = read_manifest(store)
    if manifest is None:
        return f"it has {SUCCESS_FILE} but no {MANIFEST_FILE}: it is not a kdaug output, or a damaged one"
    if manifest["attempt"] != done:
        return (f"its {SUCCESS_FILE} (attempt {done[:40] or '?'}) and {MANIFEST_FILE} (attempt "
                f"{manifest['attempt']}) belong to different runs")
    for entry in manifest["files"]:
        size = store.size(entry["path"])
        if size != entry["bytes"]:
            what = ("is missing" if size is None and not store.links([entry["path"]]) else
                    "is a symbolic link" if size is None else f"has {size:,} bytes, not the {entry['bytes']:,} it was published with")
            return (f"{entry['path']} {what}: run {manifest['attempt']} lists it, so it was changed or deleted after "
                    "the run was published (by hand, or by a tool other than kdaug); regenerate the output")
    return None


def _writing(store: Store) -> str:
    claim = live_claim(store)
    return "" if claim is None else f" ({claim.describe()} is writing it)"


def recover_output(output: str, log=print) -> None:
    """`kdaug recover`: take the lease and finish or clean up what dead writers left (kdaug outputs only),
    then check the output is one whole run again: damage that no kdaug run made is an error, never
    "nothing left to recover"."""
    store = Store(output)
    if not store.is_dir(""):
        raise CommitError(f"{output}: no such output directory")
    if not any(store.exists(rel) for rel in (STATE_DIR, MANIFEST_FILE, SUCCESS_FILE, LATEST_FILE, RUNS_DIR)):
        raise TargetRefused(f"{output} is not a kdaug output (no {STATE_DIR}/, {MANIFEST_FILE} or {LATEST_FILE}): "
                            "nothing to recover")
    with store.exclusive(LOCK_WAIT) as exclusive:
        lease = Lease(store, "recover").acquire()
        try:
            recover(store, lease.attempt, log, Fence(store, lease.attempt, exclusive))
        finally:
            lease.release()
    head = latest(store)
    run = Store(store.uri(f"{RUNS_DIR}/{head}")) if head else store
    if (head or store.exists(MANIFEST_FILE) or store.exists(SUCCESS_FILE)) and (problem := unfinished(run)):
        raise CommitError(f"{run.root}: {problem}; kdaug cannot repair what no kdaug run did: regenerate the output "
                          "(into a new directory, or after moving this one away)")
