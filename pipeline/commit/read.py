"""What a published output owns, and how readers find one whole run."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from kdaug.commit.gate import ATTEMPT_ID, MARKER_BYTES, RUN_NAME, Journal, parse_journal, parse_latest, parse_manifest
from kdaug.commit.layout import (
    JOURNAL_FILE,
    LATEST_FILE,
    MANIFEST_FILE,
    OWN_FILES,
    RUNS_DIR,
    RUNS_GUARD,
    STATE_DIR,
    SUCCESS_FILE,
    CommitError,
    DamagedState,
    Manifest,
    UnfinishedOutput,
)
from kdaug.commit.lease import live_claim
from kdaug.commit.storage import Store

# --- what a published output owns ------------------------------------------------------------------


def read_manifest(store: Store, rel: str = MANIFEST_FILE) -> Manifest | None:
    """The manifest at `rel`, checked by the gate (`parse_manifest`); None when there is none."""
    return store.read_state(rel, parse_manifest)


def read_journal(store: Store) -> Journal | None:
    return store.read_state(JOURNAL_FILE, parse_journal)


def manifest_files(manifest: Manifest) -> list[str]:
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
    published files and their own files, LATEST, the runs' guard and the runs' contents as their
    manifests list them.
    Inside its state (staging areas) kdaug deletes links as entries, never what they point to."""
    ours = {LATEST_FILE, RUNS_GUARD, *OWN_FILES}
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


# --- readers ----------------------------------------------------------------------------------------


@dataclass
class Published:
    """A published run as a reader sees it: its directory, manifest and data files."""

    dir: str
    manifest: Manifest | None
    files: list[str] = field(default_factory=list)  # URIs (local paths for a local output)
    finished: bool = True

    @property
    def attempt(self) -> str | None:
        return (self.manifest or {}).get("attempt")

    @property
    def rels(self) -> list[str]:
        """The data files relative to `dir`."""
        prefix = Store(self.dir).root.rstrip("/") + "/"
        return [f[len(prefix) :] for f in self.files]

    def check_current(self) -> None:
        """Raise when the run read was replaced or pruned since `published` returned it: rows read
        before and after would belong to different runs."""
        if not self.finished:
            return
        store = Store(self.dir)
        if marker(store) != self.attempt or store.exists(JOURNAL_FILE):
            raise CommitError(
                f"{self.dir} changed while it was being read (run {self.attempt} was replaced or "
                "deleted); read it again, or use a --versioned root when readers overlap regeneration"
            )


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
            raise UnfinishedOutput(
                f"{path}: LATEST names run {head}, which is not there (deleted by hand, or by a "
                "tool other than kdaug); regenerate the output"
            )
        return published(store.uri(run), allow_unfinished)
    if _run_names(store) and not allow_unfinished:
        raise UnfinishedOutput(f"{path} is a root of versioned runs but no run has been published yet{_writing(store)}")
    problem = unfinished(store)
    if problem is None:
        manifest = read_manifest(store)
        assert manifest is not None  # `unfinished` found it
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
        return (
            f"attempt {journal.attempt} is publishing it{_writing(store)}, or was interrupted doing so "
            "(the next kdaug run on it, or `kdaug recover`, finishes that publish)"
        )
    done = marker(store)
    if done is None:
        return f"it has no {SUCCESS_FILE}: no run of it has finished{_writing(store)}"
    manifest = read_manifest(store)
    if manifest is None:
        return f"it has {SUCCESS_FILE} but no {MANIFEST_FILE}: it is not a kdaug output, or a damaged one"
    if manifest["attempt"] != done:
        return (
            f"its {SUCCESS_FILE} (attempt {done[:40] or '?'}) and {MANIFEST_FILE} (attempt "
            f"{manifest['attempt']}) belong to different runs"
        )
    for entry in manifest["files"]:
        size = store.size(entry["path"])
        if size != entry["bytes"]:
            what = (
                "is missing"
                if size is None and not store.links([entry["path"]])
                else "is a symbolic link"
                if size is None
                else f"has {size:,} bytes, not the {entry['bytes']:,} it was published with"
            )
            return (
                f"{entry['path']} {what}: run {manifest['attempt']} lists it, so it was changed or deleted after "
                "the run was published (by hand, or by a tool other than kdaug); regenerate the output"
            )
    return None


def _writing(store: Store) -> str:
    claim = live_claim(store)
    return "" if claim is None else f" ({claim.describe()} is writing it)"
