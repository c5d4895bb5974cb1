"""Publishing an attempt (rule 4) and cleaning up after dead ones (rule 2)."""

from __future__ import annotations

import posixpath
import socket
import time
from collections.abc import Callable
from typing import cast

from kdaug.commit.gate import ATTEMPT_ID, REMEDY, TEMP_NAME, Journal
from kdaug.commit.layout import (
    ATTEMPTS_DIR,
    JOURNAL_FILE,
    LATEST_FILE,
    LOCK_WAIT,
    MANIFEST_FILE,
    METRICS_FILE,
    OWN_FILES,
    RUNS_DIR,
    RUNS_GUARD,
    RUNS_GUARD_TEXT,
    SUCCESS_FILE,
    TEMP_DIR,
    CommitError,
    DamagedState,
    LeaseLost,
    Manifest,
)
from kdaug.commit.lease import Fence, _process_alive, release
from kdaug.commit.read import _run_names, latest, manifest_files, marker, published_runs, read_journal, read_manifest
from kdaug.commit.storage import Attempt, Store


def publish(attempt: Attempt, manifest: dict, files: list[dict]) -> Manifest:
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


def _publish(store: Store, attempt: Attempt, manifest: dict, files: list[dict], guard: Fence) -> Manifest:
    if _already_published(store, attempt):
        return _published_manifest(store, attempt)
    guard(force=True)
    moves = {f["path"]: f["staged"] for f in files}
    listed = [
        {k: v for k, v in f.items() if k != "staged"} | {"bytes": store.size(f["staged"])}
        for f in sorted(files, key=lambda f: f["path"])
    ]
    manifest = dict(
        manifest, attempt=attempt.attempt, files=listed, published_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    if attempt.versioned:
        manifest["run"] = attempt.run_name
        _publish_run(store, attempt, manifest, moves, guard)
    else:
        store.write_json(f"{attempt.staging}/{MANIFEST_FILE}", manifest)
        journal = Journal(
            attempt.attempt,
            tuple(sorted((src, dst) for dst, src in moves.items())),
            f"{attempt.staging}/{MANIFEST_FILE}",
            tuple(_owned(store)),
        )
        other = read_journal(store)
        if other is not None and other.attempt != attempt.attempt:
            raise LeaseLost(
                f"{store.root}: attempt {other.attempt} journaled a publish while attempt {attempt.attempt} "
                "held the lease (it had lost its own): not publishing; run again"
            )
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
    return cast(Manifest, manifest)  # the caller's fields, and the attempt, files and time just added


def publish_dir(attempt: Attempt, manifest: dict) -> Manifest:
    """Publish every file the attempt staged, under the same relative path (a model directory
    that `save_pretrained` wrote into the staging area, a report)."""
    store = Store(attempt.output)
    prefix = attempt.staging + "/"
    files = [{"path": rel[len(prefix) :], "staged": rel} for rel in store.files(attempt.staging)]
    return publish(attempt, manifest, files)


def _already_published(store: Store, attempt: Attempt) -> bool:
    if attempt.versioned:
        return latest(store) == attempt.run_name
    return marker(store) == attempt.attempt


def _published_manifest(store: Store, attempt: Attempt) -> Manifest:
    base = f"{RUNS_DIR}/{attempt.run_name}/" if attempt.versioned else ""
    manifest = read_manifest(store, base + MANIFEST_FILE)
    assert manifest is not None  # once _already_published: the manifest goes in before _SUCCESS and LATEST
    return manifest


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
    raise DamagedState(
        f"{store.uri(JOURNAL_FILE)} names attempt {journal.attempt}, but no manifest of that attempt "
        f"lists its files: refused, nothing was touched; {REMEDY[JOURNAL_FILE]}"
    )


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
            raise CommitError(
                f"cannot finish publishing attempt {journal.attempt} of {store.root}: {src} is gone and "
                f"{dst} is {'missing' if store.size(dst) is None else 'not the file it staged'}"
            )
    guard()
    if store.exists(journal.manifest):
        store.move(journal.manifest, MANIFEST_FILE)
    guard()
    store.write(SUCCESS_FILE, journal.attempt.encode())
    store.delete(JOURNAL_FILE)
    store.delete_tree(f"{ATTEMPTS_DIR}/{journal.attempt}")


def _publish_run(store: Store, attempt: Attempt, manifest: dict, moves: dict[str, str], guard: Fence) -> None:
    run_name = attempt.run_name
    assert run_name is not None  # a versioned attempt is named its run when it starts
    run = f"{RUNS_DIR}/{run_name}"

    def refuse_older():
        head = latest(store)
        if head is not None and head > run_name:
            raise CommitError(
                f"{store.root}: LATEST already names a newer run ({head}); run {run_name} is "
                "not published (LATEST never moves back in time)"
            )

    refuse_older()
    store.write(RUNS_GUARD, RUNS_GUARD_TEXT)  # before a second run's first file is there to mix with
    store.write_json(f"{run}/{MANIFEST_FILE}", manifest)  # first: it says which files the run owns
    for dst, src in sorted(moves.items()):
        guard()
        if store.exists(src):
            store.move(src, f"{run}/{dst}")
    store.write(f"{run}/{SUCCESS_FILE}", attempt.attempt.encode())
    guard(force=True)
    refuse_older()
    store.write(LATEST_FILE, run_name.encode() + b"\n")  # the commit point
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
        raise DamagedState(
            f"{store.uri(LATEST_FILE)} names run {head}, which is not a published run there: refused, "
            f"no run was removed; {REMEDY[LATEST_FILE]}"
        )
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
