"""Files under one root, by relative path, never through a symbolic link; an attempt's paths."""

from __future__ import annotations

import fcntl
import json
import os
import posixpath
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow.fs as pafs

from kdaug.commit.gate import REMEDY, STATE_BYTES, _Bad, _object
from kdaug.commit.layout import (
    ATTEMPTS_DIR,
    CLAIMS_DIR,
    JOURNAL_FILE,
    LEASE_SECONDS,
    MANIFEST_FILE,
    RUNS_DIR,
    STATE_DIR,
    TEMP_DIR,
    CommitError,
    DamagedState,
    OutputBusy,
    TargetRefused,
)

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
            raise DamagedState(
                f"{self.uri(rel)} is not a file of at most {limit:,} bytes as kdaug writes it: refused. "
                + REMEDY.get(rel, "Move it away")
            )
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
            remedy = REMEDY.get(rel, REMEDY[MANIFEST_FILE])  # a run's manifest, or a claim: the manifest's advice
            raise DamagedState(
                f"{self.uri(rel)} is not as kdaug writes it: {err}. kdaug read, moved and deleted "
                f"nothing through it; {remedy}"
            ) from None

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
        return sorted({f[len(prefix) :].split("/")[0] for f in self.files(rel)})

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
            raise error(
                f"{self.uri(link)} is a symbolic link: kdaug never reads, deletes or moves through one; "
                "remove the link (or choose another output)"
            )

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
                        raise OutputBusy(
                            f"{self.root} is being recovered or published by another kdaug process (it "
                            "holds the output's lock: it may be paused or stuck); wait for it, or stop it"
                        ) from None
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
    entries += [
        f"{d}/{name}"
        for d in (CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR)
        for name in (os.listdir(store._path(d)) if os.path.isdir(store._path(d)) and not store._link_in(d) else ())
    ]
    for rel in entries:
        path = store._path(rel)
        if os.path.islink(path):
            raise TargetRefused(
                f"{store.uri(rel)} is a symbolic link: kdaug keeps its state in plain folders and never "
                "writes through a link; remove it (nothing was written)"
            )
        if rel in (STATE_DIR, CLAIMS_DIR, ATTEMPTS_DIR, TEMP_DIR) and os.path.exists(path) and not os.path.isdir(path):
            raise TargetRefused(
                f"{store.uri(rel)} is a file where kdaug keeps a folder; remove it (nothing was written)"
            )


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
