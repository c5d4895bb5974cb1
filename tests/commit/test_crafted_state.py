"""Issue 20, "nothing outside OUT, ever": kdaug's own state files are data, never instructions.

A seeded, randomized test of crafted state. Built once per module: a 200-row input, a published plain
output (`augment --methods random --degrees 0.1,0.3 --copies 2`, seed 0), a versioned root with two
published runs, a labelled output (the tiny teacher of conftest) and the clean references of each
(published files' hashes, rows). Each case copies one of them to OUT (symlinks kept), sets a victim
beside it and a sentinel outside, plants crafted state in OUT, runs ONE kdaug command and checks the
invariants.

The victim: ``space/victim/`` beside ``space/out/`` (OUT): ``plain/``, a published seed-1 output (other
rows, same file names: a reader that strays there reads the wrong rows); ``state/_kdaug/``, hostile
state of its own (a journal whose `remove` names the sentinel, a dead claim, a dead attempt's staging
area, old temp files: what a link from OUT's ``_kdaug`` leads to); ``root/``, a versioned root of seed-1
runs named like OUT's. The sentinel: ``elsewhere/precious.parquet``, named by absolute path. Crafted
paths point at both.

Shapes generated (one to three families per case, one shape in each; `SHAPES` below lists them all):

* journal ``_kdaug/publish.json`` (on top of a real after-the-commit-point publish of a plain output,
  so a roll forward is what a clean recover would do): `remove`/`moves`/`manifest` entries that are
  absolute paths to the sentinel or into the victim, ``../`` paths, `..` inside a path, empty or NUL
  paths; wrong types (int, null, nested lists, dict instead of list, a string for a list, pairs of
  the wrong arity, a list/string/null document); attempt ids with slashes, `..`, absolute, int;
  truncated JSON, invalid UTF-8, unknown fields, missing keys;
* manifest (the published one, or an older run's in a versioned root): ``files[].path`` absolute,
  with `..`, into ``_kdaug``, empty, with NUL, a directory, a duplicate, not a string; ``files[].bytes``
  huge, negative, a string, off by one, float, bool, null; entries that are not objects or lack keys;
  ``files`` a dict/null/string; unknown fields; truncated JSON, invalid UTF-8, a list/null document;
  missing top-level keys; ``attempt`` mismatching ``_SUCCESS`` or not a string;
* ``_SUCCESS``: another attempt, empty, two lines, invalid UTF-8, huge, a directory, a symbolic link;
* claims ``_kdaug/claims/*.json``: a dead writer's (the control), truncated, extra field, string pid,
  negative/huge/infinite/string heartbeat, string lease, attempt with `..`, a list/null document,
  invalid UTF-8, non-.json names, a directory named ``*.json``, a link to the victim's claim;
* ``LATEST`` (versioned roots, and planted in plain outputs): ``../../victim/plain``,
  ``../../../elsewhere``, absolute, empty, several lines, a run that does not exist (later or
  earlier than every run), the older run (control), ``..``, ``.``, ``runs/<name>``, huge, invalid
  UTF-8, a directory, a symbolic link;
* ``_kdaug/`` trees: symbolic links at ``_kdaug``, ``_kdaug/attempts``, ``_kdaug/claims``,
  ``_kdaug/tmp``, ``_kdaug/attempts/<id>``, ``_kdaug/publish.json`` into the victim; stray files in
  ``_kdaug/tmp`` (odd names, a dead writer's, a link, a folder) and ``_kdaug/attempts`` (a file, a dead
  staging area, one holding a link out); a regular file where a folder is expected;
* symbolic links on every level: a partition folder, a degree folder, a listed shard (to the
  victim's, or the sentinel), ``_manifest.json`` and ``_SUCCESS``, ``runs/<name>``, ``runs``.

Commands (one per case, weighted so the default run stays fast; seeds 0-5 take each once): a re-run
of the same augment into OUT (``--versioned``, sometimes ``--keep 1``, for a root), ``kdaug recover
OUT``, ``kdaug inspect OUT``, ``schema.open_dataset(OUT).to_table()`` in process, ``kdaug label``
with the tiny teacher (OUT as ``--input``, or a labelled OUT as ``--output``), ``kdaug distill`` on a
labelled OUT (``--max-steps 2``). All in process through click's CliRunner.

Invariants after the command:

1. nothing outside OUT changed: every file of the victim and of ``elsewhere/`` has its hash (a link its
   target), every folder there its mtime (so a file made and removed again also counts), and nothing
   new appeared beside OUT;
2. the command either succeeded with a whole output (``commit.published`` works, LATEST is a regular
   file naming one run, ``_SUCCESS`` is a regular file equal to the manifest's attempt, every listed
   path is plain, relative, inside the run, outside ``_kdaug`` and free of links, and its file has the
   listed byte size, and the rows equal a clean run's; for ``distill`` the student is whole and trained
   on the clean rows), or failed with a kdaug error (a ``commit.CommitError``, a click usage error, a
   ``ShardError``, or a plain ValueError) shown as ONE line ``Error: …``: no traceback, no Python
   exception name or raw Python message (KeyError, TypeError, JSONDecodeError, "[Errno …", "not
   subscriptable" …) leaking;
3. a later clean run succeeds: with the planted files undone (each crafted file back to its pristine
   bytes, or removed if it was new; planted links removed), ``kdaug augment`` into OUT (``kdaug label``
   for a labelled OUT: kdaug never replaces one kind of output by another) exits 0 and publishes files
   identical (sha256) to the clean reference, and again nothing outside OUT changed.

``-m slow`` runs seeds 0-999. A failure message names the seed, OUT's kind, the command and the
mutations; rerun one with ``pytest 'tests/commit/test_crafted_state.py::test_crafted_state[seed-17]'``.
With KDAUG_CRAFTED_REPORT=FILE each case appends one JSON line (seed, command, mutations,
violations) to FILE, for tallying.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import socket
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from click.testing import CliRunner

from kdaug import cli as kdaug_cli
from kdaug import commit, schema
from kdaug.cli import main
from tests.commit.test_commit import published_files, write_input
from tests.helpers import invoke, sha

AUGMENT = ["--task", "sst2", "--methods", "random", "--degrees", "0.1,0.3", "--copies", "2", "--chunk-size", "100"]
#: `label`'s flags everywhere: one torch thread and one batch per chunk (fast on a shared 2-core machine;
#: the same everywhere, so the logits equal the reference's).
LABEL = ["--teacher-threads", "1", "--max-tokens", "65536"]
COMMANDS = ["augment", "recover", "inspect", "read", "label", "distill"]
WEIGHTS = [3, 3, 3, 3, 1.5, 1.5]
#: The kinds of OUT each command meets (drawn uniformly from the list: a labelled OUT costs a `label` for
#: its clean run, so readers meet it less often).
KINDS = {
    "augment": ["plain", "versioned"],
    "recover": ["plain", "plain", "versioned", "versioned", "labelled"],
    "inspect": ["plain", "plain", "versioned", "versioned", "labelled"],
    "read": ["plain", "plain", "versioned", "versioned", "labelled"],
    "label": ["plain", "versioned", "labelled"],
    "distill": ["labelled"],
}
RUN_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{12}")
STAGED = "0000cafe0001"  # the attempt of a crafted after-the-commit-point publish
HOST = socket.gethostname()
#: What a raw Python error looks like to a person: its type's name, or its stock message. (A JSON parser's
#: "Expecting value: line 1 column 5" inside kdaug's "… is not valid JSON (…)" is a framed message, not a
#: leak: a raw JSONDecodeError is caught by the class check and the traceback hint instead.)
LEAKS = (
    "Traceback",
    "KeyError",
    "TypeError",
    "AttributeError",
    "JSONDecodeError",
    "IndexError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "NotADirectoryError",
    "IsADirectoryError",
    "FileExistsError",
    "OverflowError",
    "RecursionError",
    "ArrowInvalid",
    "ArrowTypeError",
    "ArrowException",
    "OSError",
    "[Errno",
    "object has no attribute",
    "not subscriptable",
    "is not iterable",
    "unhashable type",
    "values to unpack",
    "invalid literal for int()",
    "embedded null",
    "maximum recursion depth",
    "unsupported operand",
    "got an unexpected keyword argument",
    "missing 1 required positional argument",
    "list indices must be",
)


def augment_argv(data, out, seed=0, *flags) -> list[str]:
    return ["augment", "--input", str(data), "--output", str(out), *AUGMENT, "--seed", str(seed), *flags]


def table_sha(table) -> str:
    rows = sorted(json.dumps(r, sort_keys=True) for r in table.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def rows_sha(base: Path, rels: list[str]) -> str:
    """The rows of the listed shard files under BASE (read here, not through kdaug's reader)."""
    shards = [str(base / rel) for rel in rels if schema.is_shard(rel)]
    return table_sha(ds.dataset(shards, format="parquet", schema=schema.SHARD_FILE_SCHEMA).to_table())


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text.splitlines()[0][:300] if text.strip() else type(err).__name__


# --- the world ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crafted_world(tmp_path_factory, tiny_teacher_dir):
    """Pristine outputs (plain, versioned with two runs, labelled, a seed-1 plain one for the victim),
    their references, and the victim's template."""
    root = tmp_path_factory.mktemp("crafted")
    data = write_input(root / "train.tsv", rows=200)
    pristine = {kind: root / "pristine" / kind for kind in ("plain", "versioned", "labelled", "seed1")}
    invoke(*augment_argv(data, pristine["plain"], 0))
    invoke(*augment_argv(data, pristine["seed1"], 1))
    invoke(*augment_argv(data, pristine["versioned"], 0, "--versioned"))
    invoke(*augment_argv(data, pristine["versioned"], 0, "--versioned"))
    invoke(
        "label", "--input", pristine["plain"], "--output", pristine["labelled"], "--teacher", tiny_teacher_dir, *LABEL
    )
    refs = {}
    for kind, path in pristine.items():
        run = commit.published(str(path))
        listed = [f["path"] for f in run.manifest["files"]]
        refs[kind] = {
            "files": published_files(path)[1],
            "rows": rows_sha(Path(run.dir), listed),
            "listed": listed,
            "attempt": run.manifest["attempt"],
            "base": Path(run.dir).relative_to(path).as_posix(),
        }
    assert refs["plain"]["files"] == refs["versioned"]["files"] and refs["plain"]["rows"] == refs["versioned"]["rows"]
    assert refs["seed1"]["listed"] == refs["plain"]["listed"] and refs["seed1"]["rows"] != refs["plain"]["rows"]
    runs = sorted(p.name for p in (pristine["versioned"] / "runs").glob("*/"))
    assert len(runs) == 2 and (pristine["versioned"] / "LATEST").read_text().strip() == runs[-1]

    student = root / "student-ref"  # what a distill of the clean labelled output trains on
    invoke(*distill_argv(pristine["labelled"], student, tiny_teacher_dir))
    train_rows = json.loads((student / "metrics.json").read_text())["train_rows"]

    victim = root / "victim-template"  # seed-1 data where OUT has seed-0 data, and hostile state of its own
    shutil.copytree(pristine["seed1"], victim / "plain")
    state = victim / "state" / "_kdaug"
    (state / "claims").mkdir(parents=True)
    (state / "claims" / "0000deadbeef.json").write_text(json.dumps(dead_claim("0000deadbeef")))
    staged = state / "attempts" / "0000deadbeef" / "random" / "0.30"
    staged.mkdir(parents=True)
    shutil.copy(victim / "plain" / refs["seed1"]["listed"][-1], staged / "part-0.parquet")
    (state / "tmp").mkdir()
    for name in (f"{HOST}-{dead_pid()}-{'0' * 32}", f"otherhost-7-{'1' * 32}"):
        (state / "tmp" / name).write_text("a dead writer's temporary file")
        os.utime(state / "tmp" / name, (time.time() - 7200, time.time() - 7200))
    for name in runs:
        shutil.copytree(pristine["seed1"], victim / "root" / "runs" / name)
    (victim / "root" / "LATEST").write_text(runs[-1] + "\n")
    return {
        "data": data,
        "pristine": pristine,
        "refs": refs,
        "runs": runs,
        "victim": victim,
        "teacher": tiny_teacher_dir,
        "train_rows": train_rows,
        "sentinel": pristine["seed1"] / refs["seed1"]["listed"][1],
    }


def distill_argv(data, output, teacher) -> list[str]:
    return [
        "distill",
        "--data",
        str(data),
        "--output",
        str(output),
        "--student",
        str(teacher),
        "--mode",
        "kd",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--seed",
        "0",
    ]


def dead_pid() -> int:
    """A pid no process has (above the kernel's pid_max)."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1000
    except OSError:
        return 4_194_304 + 1000


def dead_claim(attempt: str) -> dict:
    now = time.time()
    return {
        "attempt": attempt,
        "command": "augment",
        "host": HOST,
        "pid": dead_pid(),
        "pid_start": None,
        "started": now - 60,
        "heartbeat": now - 30,
        "lease_seconds": 300.0,
        "detached": False,
    }


# --- planting, and taking it back -----------------------------------------------------------------------


class Plant:
    """Crafted entries under OUT, recorded so that they can be undone; never written through a link."""

    def __init__(self, out: Path, pristine: Path):
        self.out, self.pristine = out, pristine
        self.records: list[tuple[str, str, bool]] = []  # (op, rel, restore from pristine)
        self.planted: dict[str, object] = {}  # rel -> what was planted there (bytes, a link target, or "folder")

    def _link_above(self, rel: str) -> bool:
        parts = rel.split("/")[:-1]
        return any(os.path.islink(self.out.joinpath(*parts[:i])) for i in range(1, len(parts) + 1))

    def _busy(self, rel: str) -> bool:
        return any(r == rel or r.startswith(rel + "/") for op, r, _ in self.records if op != "dir")

    def _parents(self, rel: str) -> bool:
        """Make the folders above REL (recorded); False where a link or a file is in the way."""
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            path = self.out.joinpath(*parts[:i])
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                return False
            if not path.exists():
                path.mkdir()
                self.records.append(("dir", "/".join(parts[:i]), False))
        return True

    def write(self, rel: str, data: bytes) -> bool:
        path = self.out / rel
        if not self._parents(rel) or path.is_symlink() or path.is_dir():
            return False
        if not any(r == rel for _, r, _ in self.records):
            self.records.append(("file", rel, path.exists()))
        path.write_bytes(data)
        self.planted[rel] = data
        return True

    def replace(
        self, rel: str, link_to: Path | str | None = None, data: bytes | None = None, folder: bool = False
    ) -> bool:
        """Put a link, a file or an empty folder where REL is (what was there comes back on undo)."""
        path = self.out / rel
        if self._busy(rel) or not self._parents(rel):
            return False
        swapped = os.path.lexists(path)
        if swapped:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        if link_to is not None:
            os.symlink(link_to, path)
            self.planted[rel] = str(link_to)
        elif folder:
            path.mkdir()
            self.planted[rel] = "folder"
        else:
            path.write_bytes(data or b"")
            self.planted[rel] = data or b""
        self.records.append(("swap", rel, swapped))
        return True

    def _still_planted(self, rel: str) -> bool:
        path, planted = self.out / rel, self.planted.get(rel)
        if path.is_symlink():
            return os.readlink(path) == planted
        if path.is_dir():
            return planted == "folder"
        return path.read_bytes() == planted

    def undo(self) -> None:
        for op, rel, restore in reversed(self.records):
            path = self.out / rel
            if self._link_above(rel):  # never through a link: the link itself is undone by its own record
                continue
            if op == "dir":
                try:
                    os.rmdir(path)
                except OSError:
                    pass
                continue
            if os.path.lexists(path) and not self._still_planted(rel):
                continue  # kdaug replaced it with its own (a published run's LATEST): the operator keeps that
            if os.path.lexists(path):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            if restore:
                source = self.pristine / rel
                if source.is_dir():
                    shutil.copytree(source, path, symlinks=True)
                elif os.path.lexists(source):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, path, follow_symlinks=False)


# --- the crafted state ----------------------------------------------------------------------------------


class Case:
    """One case's layout: tmp/space/out (OUT), tmp/space/victim, tmp/elsewhere/precious.parquet, tmp/work."""

    def __init__(self, world, tmp_path: Path, kind: str, rng: random.Random):
        self.world, self.kind, self.rng = world, kind, rng
        self.space, self.elsewhere, self.work = tmp_path / "space", tmp_path / "elsewhere", tmp_path / "work"
        self.out, self.victim = self.space / "out", self.space / "victim"
        self.pristine = world["pristine"][kind]
        shutil.copytree(self.pristine, self.out, symlinks=True)
        shutil.copytree(world["victim"], self.victim, symlinks=True)
        self.elsewhere.mkdir()
        self.sentinel = self.elsewhere / "precious.parquet"
        shutil.copy(world["sentinel"], self.sentinel)
        (self.elsewhere / "LATEST.txt").write_text(world["runs"][-1] + "\n")
        self.work.mkdir()
        # the victim's own journal: applied anywhere, it deletes the sentinel and one of the victim's files
        (self.victim / "state" / "_kdaug" / "publish.json").write_text(
            json.dumps(
                {
                    "attempt": "0000deadbeef",
                    "moves": [],
                    "manifest": "_kdaug/attempts/0000deadbeef/_manifest.json",
                    "remove": [str(self.sentinel), str(self.victim / "plain" / "_SUCCESS")],
                }
            )
        )
        self.plant = Plant(self.out, self.pristine)
        ref = world["refs"][kind]
        self.base, self.listed, self.attempt = ref["base"], ref["listed"], ref["attempt"]
        self.prefix = "" if self.base == "." else self.base + "/"
        self.depth = self.prefix.count("/")  # folders between OUT and the published run
        self.mutations: list[str] = []

    # paths the crafted state names
    def up(self) -> str:
        """`..` parts from the published run to the folder holding OUT (and the victim)."""
        return "../" * (self.depth + 1)

    def victim_shard(self) -> str:
        return f"victim/plain/{self.listed[-1]}"

    def shard(self) -> str:
        return self.rng.choice([p for p in self.listed if p.startswith("random/")])

    def staged_bytes(self, rel: str) -> bytes:
        return (self.pristine / self.prefix / rel).read_bytes()


def m_journal(c: Case, rng) -> str | None:
    """A journal of a publish after its commit point (a real one for a plain output: staged copies of
    the published files under attempt STAGED), then one crafted entry."""
    staging = f"_kdaug/attempts/{STAGED}"
    journal = {"attempt": STAGED, "moves": [], "manifest": f"{staging}/_manifest.json", "remove": []}
    if c.base == ".":
        for rel in c.listed:
            c.plant.write(f"{staging}/{rel}", c.staged_bytes(rel))
        manifest = json.loads((c.pristine / "_manifest.json").read_text()) | {"attempt": STAGED}
        c.plant.write(f"{staging}/_manifest.json", json.dumps(manifest).encode())
        journal["moves"] = sorted([f"{staging}/{rel}", rel] for rel in c.listed)
        journal["remove"] = [*c.listed, *commit.OWN_FILES]
    out_up = "../"  # from OUT to the folder holding it
    victim_abs = str(c.space / c.victim_shard())
    shape = rng.choice(SHAPES["journal"])
    if shape == "remove-abs-sentinel":
        journal["remove"].append(str(c.sentinel))
    elif shape == "remove-abs-victim":
        journal["remove"].append(victim_abs)
    elif shape == "remove-dotdot-victim":
        journal["remove"].append(out_up + c.victim_shard())
    elif shape == "remove-dotdot-elsewhere":
        journal["remove"].append("../../elsewhere/precious.parquet")
    elif shape == "remove-embedded-dotdot":
        journal["remove"].append("random/../../victim/plain/_manifest.json")
    elif shape == "remove-empty-path":
        journal["remove"].append("")
    elif shape == "remove-nul":
        journal["remove"].append("random/0.30/part\x00.parquet")
    elif shape == "move-src-abs-sentinel":
        journal["moves"].append([str(c.sentinel), "random/0.30/stolen.parquet"])
    elif shape == "move-src-abs-victim":
        journal["moves"].append([victim_abs, "random/0.10/stolen.parquet"])
    elif shape == "move-src-dotdot-victim":
        journal["moves"].append([out_up + c.victim_shard(), "random/0.10/stolen.parquet"])
    elif shape in ("move-dst-abs-elsewhere", "move-dst-dotdot-victim"):
        c.plant.write(f"{staging}/extra.parquet", c.sentinel.read_bytes())
        dst = (
            str(c.elsewhere / "planted.parquet")
            if shape.endswith("elsewhere")
            else out_up + "victim/plain/planted.parquet"
        )
        journal["moves"].append([f"{staging}/extra.parquet", dst])
    elif shape == "manifest-abs-victim":
        journal["manifest"] = str(c.victim / "plain" / "_manifest.json")
    elif shape == "manifest-dotdot-victim":
        journal["manifest"] = out_up + "victim/plain/_manifest.json"
    elif shape == "attempt-dotdot":
        journal["attempt"] = "../../../victim/plain"
    elif shape == "attempt-slash":
        journal["attempt"] = f"{STAGED}/random"
    elif shape == "attempt-abs":
        journal["attempt"] = str(c.victim / "plain")
    elif shape == "attempt-int":
        journal["attempt"] = 12
    elif shape == "attempt-null":
        journal["attempt"] = None
    elif shape == "moves-int":
        journal["moves"] = 7
    elif shape == "moves-null":
        journal["moves"] = None
    elif shape == "moves-dict":
        journal["moves"] = {f"{staging}/x.parquet": "random/0.30/x.parquet"}
    elif shape == "moves-nested":
        journal["moves"].append([[f"{staging}/x"], "random/x.parquet"])
    elif shape == "moves-arity":
        journal["moves"].append([f"{staging}/x.parquet"])
    elif shape == "remove-string":
        journal["remove"] = "random"
    elif shape == "remove-null":
        journal["remove"] = None
    elif shape == "remove-int-entry":
        journal["remove"].append(3)
    elif shape == "manifest-list":
        journal["manifest"] = ["_manifest.json"]
    elif shape == "missing-key":
        del journal[rng.choice(sorted(journal))]
    elif shape == "unknown-field":
        journal["then_remove"] = [str(c.sentinel)]
    data = json.dumps(journal).encode()
    if shape == "document-list":
        data = json.dumps([journal]).encode()
    elif shape == "document-string":
        data = json.dumps(str(c.sentinel)).encode()
    elif shape == "document-null":
        data = b"null"
    elif shape == "truncated":
        data = data[: rng.randint(1, len(data) - 1)]
    elif shape == "invalid-utf8":
        data = b'{"attempt": "\xff\xfe", ' + data[1:]
    return f"journal:{shape}" if c.plant.write("_kdaug/publish.json", data) else None


def m_manifest(c: Case, rng) -> str | None:
    """The published manifest (in a versioned root, sometimes the older run's) with one crafted entry."""
    prefix, up = c.prefix, c.up()
    where = ""
    if c.kind == "versioned" and rng.random() < 0.3:
        prefix, where = f"runs/{c.world['runs'][0]}/", "(older run)"
    rel = prefix + "_manifest.json"
    manifest = json.loads((c.pristine / rel).read_text())
    files = manifest["files"]
    i = rng.randrange(len(files))
    entry = files[i]
    shape = rng.choice(SHAPES["manifest"])
    if shape == "path-abs-sentinel":
        entry["path"] = str(c.sentinel)
    elif shape == "path-abs-victim":
        entry["path"] = str(c.space / c.victim_shard())
    elif shape == "path-dotdot-victim":
        entry["path"] = up + c.victim_shard()
    elif shape == "path-embedded-dotdot":
        entry["path"] = "random/../" + up + c.victim_shard()
    elif shape == "path-into-kdaug":
        c.plant.write(prefix + "_kdaug/attempts/0000cafe0002/part.parquet", c.sentinel.read_bytes())
        entry["path"] = "_kdaug/attempts/0000cafe0002/part.parquet"
    elif shape == "path-empty":
        entry["path"] = ""
    elif shape == "path-nul":
        entry["path"] = entry["path"] + "\x00"
    elif shape == "path-dir":
        entry["path"] = "random"
    elif shape == "path-duplicate":
        files.append(dict(entry))
    elif shape == "path-int":
        entry["path"] = 5
    elif shape == "path-own-file":
        entry["path"] = "_manifest.json"
    elif shape == "bytes-huge":
        entry["bytes"] = 10**18
    elif shape == "bytes-negative":
        entry["bytes"] = -1
    elif shape == "bytes-string":
        entry["bytes"] = str(entry["bytes"])
    elif shape == "bytes-off-by-one":
        entry["bytes"] += 1
    elif shape == "bytes-float":
        entry["bytes"] += 0.5
    elif shape == "bytes-bool":
        entry["bytes"] = True
    elif shape == "bytes-null":
        entry["bytes"] = None
    elif shape == "entry-not-object":
        files[i] = entry["path"]
    elif shape == "entry-missing-path":
        del entry["path"]
    elif shape == "entry-missing-bytes":
        del entry["bytes"]
    elif shape == "files-dict":
        manifest["files"] = {f["path"]: f for f in files}
    elif shape == "files-null":
        manifest["files"] = None
    elif shape == "files-string":
        manifest["files"] = "random"
    elif shape == "unknown-field":
        manifest["kdaug_then"] = {"remove": [str(c.sentinel)]}
        entry["mode"] = "0777"
    elif shape == "missing-key":
        manifest.pop(rng.choice(["attempt", "files", "kind", "config", "schema_version", "counts"]), None)
    elif shape == "attempt-mismatch":
        manifest["attempt"] = "ffffffffffff"
    elif shape == "attempt-int":
        manifest["attempt"] = 12
    data = json.dumps(manifest).encode()
    if shape == "truncated":
        data = data[: rng.randint(1, len(data) - 1)]
    elif shape == "invalid-utf8":
        data = b'{"kind": "\xff", ' + data[1:]
    elif shape == "document-list":
        data = json.dumps([manifest]).encode()
    elif shape == "document-null":
        data = b"null"
    return f"manifest{where}:{shape}" if c.plant.write(rel, data) else None


def m_success(c: Case, rng) -> str | None:
    rel = c.prefix + "_SUCCESS"
    shape = rng.choice(SHAPES["success"])
    data = {
        "other-attempt": b"ffffffffffff",
        "empty": b"",
        "two-lines": f"{c.attempt}\n{c.attempt}\n".encode(),
        "invalid-utf8": b"\xff\xfe",
        "huge": c.attempt.encode() + b" " * (4 << 20),
    }.get(shape)
    if data is not None:
        done = c.plant.write(rel, data)
    elif shape == "folder":
        done = c.plant.replace(rel, folder=True)
    else:  # a link to a file outside holding the right attempt
        (c.elsewhere / "SUCCESS.txt").write_text(c.attempt)
        done = c.plant.replace(rel, link_to=c.elsewhere / "SUCCESS.txt")
    return f"success:{shape}" if done else None


def m_claim(c: Case, rng) -> str | None:
    shape = rng.choice(SHAPES["claim"])
    claim = dead_claim("0000c1a1a000")
    name = "0000c1a1a000.json"
    if shape == "extra-field":
        claim["owner"] = "someone"
    elif shape == "string-pid":
        claim["pid"] = "123"
    elif shape == "heartbeat-negative":
        claim["heartbeat"] = -1e18
    elif shape == "heartbeat-huge":
        claim |= {"heartbeat": 1e300, "host": "otherhost"}
    elif shape == "heartbeat-string":
        claim["heartbeat"] = "now"
    elif shape == "lease-string":
        claim["lease_seconds"] = "300"
    elif shape == "attempt-dotdot":
        claim["attempt"] = "../../../victim/plain/_manifest"
    elif shape == "attempt-int":
        claim["attempt"] = 7
    elif shape == "not-json-name":
        name = rng.choice(["0000c1a1a000.json.tmp", "claim", "0000c1a1a000.JSON"])
    data = json.dumps(claim).encode()
    if shape == "heartbeat-infinite":
        data = data.replace(b'"heartbeat": ' + json.dumps(claim["heartbeat"]).encode(), b'"heartbeat": 1e400')
    elif shape == "truncated":
        data = data[: rng.randint(1, len(data) - 1)]
    elif shape == "document-list":
        data = json.dumps([claim]).encode()
    elif shape == "document-null":
        data = b"null"
    elif shape == "invalid-utf8":
        data = b'{"host": "\xff", ' + data[1:]
    if shape == "folder-named-json":
        done = c.plant.write("_kdaug/claims/0000c1a1a000.json/0000c1a1a001.json", data)
    elif shape == "link-to-victim":
        done = c.plant._parents("_kdaug/claims/x") and c.plant.replace(
            "_kdaug/claims/0000deadbeef.json", link_to=c.victim / "state/_kdaug/claims/0000deadbeef.json"
        )
    else:
        done = c.plant.write(f"_kdaug/claims/{name}", data)
    return f"claim:{shape}" if done else None


def m_latest(c: Case, rng) -> str | None:
    shape = rng.choice(SHAPES["latest"])
    older, newest = c.world["runs"]
    data = {
        "dotdot-victim": b"../../victim/plain\n",
        "dotdot-elsewhere": b"../../../elsewhere\n",
        "abs-victim": f"{c.victim / 'plain'}\n".encode(),
        "empty": b"",
        "two-lines": f"{newest}\n{older}\n".encode(),
        "missing-later-run": b"20991231T000000.000000Z-ffffffffffff\n",
        "missing-earlier-run": b"20000101T000000.000000Z-000000000000\n",
        "older-run": f"{older}\n".encode(),
        "dotdot": b"..\n",
        "dot": b".\n",
        "runs-path": f"runs/{newest}\n".encode(),
        "huge": b"x" * (4 << 20),
        "invalid-utf8": b"\xff\xfe\n",
    }.get(shape)
    if data is not None:
        done = c.plant.write("LATEST", data)
    elif shape == "folder":
        done = c.plant.replace("LATEST", folder=True)
    else:
        done = c.plant.replace("LATEST", link_to=c.elsewhere / "LATEST.txt")
    return f"latest:{shape}" if done else None


def m_tree(c: Case, rng) -> str | None:
    shape = rng.choice(SHAPES["tree"])
    vstate = c.victim / "state" / "_kdaug"
    tmp_name = f"{HOST}-{dead_pid()}-{'a' * 32}"
    links = {
        "link-kdaug": ("_kdaug", vstate),
        "link-attempts": ("_kdaug/attempts", vstate / "attempts"),
        "link-claims": ("_kdaug/claims", vstate / "claims"),
        "link-tmp": ("_kdaug/tmp", vstate / "tmp"),
        "link-attempt-dir": ("_kdaug/attempts/0000cafe0003", c.victim / "plain"),
        "link-journal": ("_kdaug/publish.json", vstate / "publish.json"),
        "tmp-link-to-sentinel": (f"_kdaug/tmp/{tmp_name}", c.sentinel),
        "attempt-holding-link": ("_kdaug/attempts/0000cafe0005/random", c.victim / "plain" / "random"),
    }
    if shape in links:
        rel, target = links[shape]
        done = c.plant._parents(rel) and c.plant.replace(rel, link_to=target)
    elif shape.startswith("file-as-"):
        rel = {
            "file-as-kdaug": "_kdaug",
            "file-as-attempts": "_kdaug/attempts",
            "file-as-claims": "_kdaug/claims",
            "file-as-tmp": "_kdaug/tmp",
            "file-as-runs": "runs",
        }[shape]
        if rel == "runs" and c.kind != "versioned":
            return None
        done = c.plant.replace(rel, data=b"not a folder")
    elif shape == "tmp-stray":
        name = rng.choice(
            [
                "garbage",
                "no-dashes-here",
                "host-notapid-x",
                f"{HOST}-1-{'b' * 32}",
                f"otherhost-7-{'c' * 32}",
                tmp_name,
                "a-b-c-d-e",
                "-1-",
            ]
        )
        done = c.plant.write(f"_kdaug/tmp/{name}", b"stray")
        if done and name.startswith("otherhost"):
            os.utime(c.out / f"_kdaug/tmp/{name}", (time.time() - 7200, time.time() - 7200))
        shape += f"({name})"
    elif shape == "tmp-folder":
        done = c.plant.write(f"_kdaug/tmp/{tmp_name}/inner", b"stray")
    elif shape == "attempts-stray-file":
        done = c.plant.write("_kdaug/attempts/stray.txt", b"stray")
    else:  # attempts-dead-staging: a dead writer's staging area (the control)
        done = c.plant.write("_kdaug/attempts/0000cafe0004/random/0.30/part.parquet", c.sentinel.read_bytes())
    return f"tree:{shape}" if done else None


def m_link(c: Case, rng) -> str | None:
    shape = rng.choice(SHAPES["link"])
    vplain = c.victim / "plain"
    if shape in ("run-dir", "runs") and c.kind != "versioned":
        shape = "partition-dir"
    if shape == "partition-dir":
        done = c.plant.replace(c.prefix + "random", link_to=vplain / "random")
    elif shape == "degree-dir":
        done = c.plant.replace(c.prefix + "random/0.30", link_to=vplain / "random/0.30")
    elif shape == "shard-to-victim":
        rel = c.shard()
        done = c.plant.replace(c.prefix + rel, link_to=vplain / rel)
    elif shape == "shard-to-sentinel":
        done = c.plant.replace(c.prefix + c.shard(), link_to=c.sentinel)
    elif shape == "manifest-and-success":
        done = c.plant.replace(c.prefix + "_manifest.json", link_to=vplain / "_manifest.json") and c.plant.replace(
            c.prefix + "_SUCCESS", link_to=vplain / "_SUCCESS"
        )
    elif shape == "run-dir":
        name = c.world["runs"][-1]
        done = c.plant.replace(f"runs/{name}", link_to=c.victim / "root" / "runs" / name)
    else:  # runs
        done = c.plant.replace("runs", link_to=c.victim / "root" / "runs")
    return f"link:{shape}" if done else None


SHAPES = {
    "journal": [
        "remove-abs-sentinel",
        "remove-abs-victim",
        "remove-dotdot-victim",
        "remove-dotdot-elsewhere",
        "remove-embedded-dotdot",
        "remove-empty-path",
        "remove-nul",
        "move-src-abs-sentinel",
        "move-src-abs-victim",
        "move-src-dotdot-victim",
        "move-dst-abs-elsewhere",
        "move-dst-dotdot-victim",
        "manifest-abs-victim",
        "manifest-dotdot-victim",
        "attempt-dotdot",
        "attempt-slash",
        "attempt-abs",
        "attempt-int",
        "attempt-null",
        "moves-int",
        "moves-null",
        "moves-dict",
        "moves-nested",
        "moves-arity",
        "remove-string",
        "remove-null",
        "remove-int-entry",
        "manifest-list",
        "missing-key",
        "unknown-field",
        "document-list",
        "document-string",
        "document-null",
        "truncated",
        "invalid-utf8",
    ],
    "manifest": [
        "path-abs-sentinel",
        "path-abs-victim",
        "path-dotdot-victim",
        "path-embedded-dotdot",
        "path-into-kdaug",
        "path-empty",
        "path-nul",
        "path-dir",
        "path-duplicate",
        "path-int",
        "path-own-file",
        "bytes-huge",
        "bytes-negative",
        "bytes-string",
        "bytes-off-by-one",
        "bytes-float",
        "bytes-bool",
        "bytes-null",
        "entry-not-object",
        "entry-missing-path",
        "entry-missing-bytes",
        "files-dict",
        "files-null",
        "files-string",
        "unknown-field",
        "missing-key",
        "attempt-mismatch",
        "attempt-int",
        "truncated",
        "invalid-utf8",
        "document-list",
        "document-null",
    ],
    "success": ["other-attempt", "empty", "two-lines", "invalid-utf8", "huge", "folder", "link-outside"],
    "claim": [
        "dead-writer",
        "extra-field",
        "string-pid",
        "heartbeat-negative",
        "heartbeat-huge",
        "heartbeat-infinite",
        "heartbeat-string",
        "lease-string",
        "attempt-dotdot",
        "attempt-int",
        "not-json-name",
        "truncated",
        "document-list",
        "document-null",
        "invalid-utf8",
        "folder-named-json",
        "link-to-victim",
    ],
    "latest": [
        "dotdot-victim",
        "dotdot-elsewhere",
        "abs-victim",
        "empty",
        "two-lines",
        "missing-later-run",
        "missing-earlier-run",
        "older-run",
        "dotdot",
        "dot",
        "runs-path",
        "huge",
        "invalid-utf8",
        "folder",
        "link-outside",
    ],
    "tree": [
        "link-kdaug",
        "link-attempts",
        "link-claims",
        "link-tmp",
        "link-attempt-dir",
        "link-journal",
        "tmp-link-to-sentinel",
        "attempt-holding-link",
        "file-as-kdaug",
        "file-as-attempts",
        "file-as-claims",
        "file-as-tmp",
        "file-as-runs",
        "tmp-stray",
        "tmp-folder",
        "attempts-stray-file",
        "attempts-dead-staging",
    ],
    "link": [
        "partition-dir",
        "degree-dir",
        "shard-to-victim",
        "shard-to-sentinel",
        "manifest-and-success",
        "run-dir",
        "runs",
    ],
}
#: Families in the order they are planted (those that replace folders last), and how often each is drawn.
FAMILIES = [
    ("claim", m_claim, 2),
    ("journal", m_journal, 4),
    ("manifest", m_manifest, 4),
    ("success", m_success, 1),
    ("latest", m_latest, 3),
    ("tree", m_tree, 3),
    ("link", m_link, 2),
]


def craft(c: Case, rng) -> None:
    weights = {name: w for name, _, w in FAMILIES}
    if c.kind != "versioned":
        weights["latest"] = 0.4
    count = rng.choice([1, 1, 2, 2, 3])
    chosen = set()
    while len(chosen) < count:
        chosen.add(rng.choices(list(weights), list(weights.values()))[0])
    for name, fn, _ in FAMILIES:
        if name in chosen and (done := fn(c, rng)):
            c.mutations.append(done)
    if not c.mutations:  # every drawn one was in another's way: a journal always applies
        c.mutations.append(m_journal(c, rng))


# --- the invariants -------------------------------------------------------------------------------------


def outside(c: Case) -> dict[str, object]:
    """Everything beside OUT and in elsewhere/: files by hash (links by target), folders by mtime."""
    found = {}
    for top in (c.space, c.elsewhere):
        for dirpath, dirnames, filenames in os.walk(top):
            if Path(dirpath) == c.space:
                dirnames[:] = [d for d in dirnames if d != "out"]
            found[dirpath] = ("folder", os.stat(dirpath).st_mtime_ns)
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                found[full] = ("link", os.readlink(full)) if os.path.islink(full) else ("file", sha(Path(full)))
    return found


def changed_outside(before: dict, after: dict) -> list[str]:
    return sorted(
        [f"{p} disappeared" for p in before.keys() - after.keys()]
        + [f"{p} appeared" for p in after.keys() - before.keys()]
        + [f"{p} changed ({before[p][0]})" for p in before.keys() & after.keys() if before[p] != after[p]]
    )


def whole(out: Path, rows: str | None) -> list[str]:
    """Why OUT is not one whole published run whose rows are ROWS (nothing when it is)."""
    try:
        run = commit.published(str(out))
    except Exception as err:  # noqa: BLE001 - whatever kdaug's reader raises is the finding
        return [f"readers refuse it ({one_line(err)})"]
    problems, base = [], out
    latest = out / "LATEST"
    if os.path.lexists(latest):
        if latest.is_symlink() or not latest.is_file():
            return ["LATEST is a link or not a file, yet it was read"]
        name = latest.read_bytes()[:200].decode("ascii", "replace").strip()
        if not RUN_NAME.fullmatch(name):
            return [f"LATEST holds {name[:60]!r}, not one run name, yet it was read"]
        base = out / "runs" / name
        if any(p.is_symlink() for p in (out / "runs", base)) or not base.is_dir():
            return [f"runs/{name} is a link or not a folder, yet it was read"]
    if Path(run.dir).resolve() != base.resolve():
        problems.append(f"the reader's run {run.dir} is not {base}")
    for own in ("_SUCCESS", "_manifest.json"):
        if (base / own).is_symlink() or not (base / own).is_file():
            return problems + [f"{own} is a link or not a file, yet it was read"]
    try:
        manifest = json.loads((base / "_manifest.json").read_bytes())
        marker = (base / "_SUCCESS").read_bytes().decode().strip()
        entries = [(f["path"], f["bytes"]) for f in manifest["files"]]
    except Exception as err:  # noqa: BLE001
        return problems + [f"its manifest or _SUCCESS is unreadable ({one_line(err)}), yet it was read"]
    if manifest.get("attempt") != marker:
        problems.append(f"_SUCCESS says {marker[:40]!r}, the manifest {manifest.get('attempt')!r}")
    paths = [p for p, _ in entries]
    if len(set(map(str, paths))) != len(paths):
        problems.append("the manifest lists a path twice")
    for path, size in entries:
        parts = path.split("/") if isinstance(path, str) else []
        if (
            not parts
            or path.startswith("/")
            or "\x00" in path
            or parts[0] == "_kdaug"
            or any(p in ("", ".", "..") for p in parts)
        ):
            problems.append(f"the manifest lists {path!r}: not a plain path inside the run")
            continue
        if any(base.joinpath(*parts[:i]).is_symlink() for i in range(1, len(parts) + 1)):
            problems.append(f"{path} is (or passes through) a link")
            continue
        full = base.joinpath(*parts)
        if not full.is_file():
            problems.append(f"{path} is listed but not a file")
        elif type(size) is not int or full.stat().st_size != size:
            problems.append(f"{path} has {full.stat().st_size} bytes, the manifest says {size!r}")
    listed = sorted(os.path.normpath(str(base / p)) for p in paths if isinstance(p, str))
    if sorted(os.path.normpath(f) for f in run.files) != listed:
        problems.append("the reader's files are not the listed ones")
    if rows is not None and not problems and rows_sha(base, paths) != rows:
        problems.append("its rows are not a clean run's")
    return problems


def kdaug_error(err: BaseException) -> bool:
    """Whether ERR (what reached the CLI's error handler, or an in-process reader) is one of kdaug's."""
    chain, e = [], err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(e, commit.CommitError) for e in chain) or type(err).__name__ in ("ShardError", "NoUsableRows"):
        return True
    if type(err) is ValueError:
        return True
    # a step's exception that Beam re-raised inside its own: the last "Name: message" line names it
    names = re.findall(r"^(?:[\w.]+\.)?(\w+): ", str(err), re.M)
    ours = {cls.__name__ for cls in subclasses(commit.CommitError)} | {"ShardError", "NoUsableRows"}
    return bool(names) and names[-1] in ours


def subclasses(cls) -> set[type]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= subclasses(sub)
    return found


def error_problems(output: str, caught: list[BaseException], uncaught: BaseException | None, code: int) -> list[str]:
    """What is wrong with how a failed command told a person (nothing when it is one clear line)."""
    problems = []
    if uncaught is not None:
        problems.append(f"an exception escaped the CLI: {one_line(uncaught)}")
    if code not in (1, 2):
        problems.append(f"exit code {code}")
    for err in caught:
        if not kdaug_error(err):
            problems.append(f"not a kdaug error: {one_line(err)}")
    lines = [error_start(line) for line in output.splitlines()]
    errors = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    if len(errors) != 1:
        problems.append(f"{len(errors)} 'Error:' lines")
    else:
        rest = [line for line in lines[errors[0] + 1 :] if line.strip()]
        hint = [line for line in rest if line.startswith("(for the traceback")]
        if hint and not all(type(e) is ValueError for e in caught):
            problems.append("the error carries the traceback hint of an unexpected error")
        if [line for line in rest if line not in hint]:
            problems.append(f"the error message spans {1 + len(rest) - len(hint)} lines")
    leaked = [word for word in LEAKS if word in output]
    if leaked:
        problems.append(f"leaks {', '.join(leaked)}")
    return problems


def error_start(line: str) -> str:
    """LINE from click's "Error: " on, when it follows an unfinished progress bar on the same line
    (`distill`'s bar, then the error, share a line in the captured output)."""
    at = line.find("Error: ")
    return line[at:] if at > 0 and "%|" in line[:at] and line[:at].endswith("]") else line


def error_line(output: str) -> str:
    lines = [error_start(line) for line in output.splitlines()]
    return next((line for line in lines if line.startswith("Error: ")), output.strip()[-200:])


# --- one case -------------------------------------------------------------------------------------------


def run_case(seed: int, world, tmp_path: Path, monkeypatch, test: str) -> None:
    rng = random.Random(seed)
    command = COMMANDS[seed] if seed < len(COMMANDS) else rng.choices(COMMANDS, WEIGHTS)[0]
    kind = rng.choice(KINDS[command])
    c = Case(world, tmp_path, kind, rng)
    craft(c, rng)
    monkeypatch.chdir(c.work)  # a relative path that escapes the checks lands here, not in the repository
    monkeypatch.delenv("KDAUG_DEBUG", raising=False)
    caught: list[BaseException] = []
    real_user_error = kdaug_cli.user_error
    monkeypatch.setattr(kdaug_cli, "user_error", lambda err: caught.append(err) or real_user_error(err))
    refs = world["refs"]

    argv, rows, target, flags = None, refs[kind]["rows"], c.out, []
    if command == "augment":
        flags = ["--versioned"] + (["--keep", "1"] if rng.random() < 0.4 else []) if kind == "versioned" else []
        argv = augment_argv(world["data"], c.out, 0, *flags)
        rows = refs["plain"]["rows"]
    elif command == "recover":
        argv = ["recover", c.out]
    elif command == "inspect":
        argv = ["inspect", c.out]
    elif command == "label" and kind == "labelled":  # the crafted OUT is the label's output
        shutil.copytree(world["pristine"]["plain"], c.work / "src", symlinks=True)
        argv = ["label", "--input", c.work / "src", "--output", c.out, "--teacher", world["teacher"], *LABEL]
    elif command == "label":
        argv = ["label", "--input", c.out, "--output", c.work / "lab", "--teacher", world["teacher"], *LABEL]
        target, rows = c.work / "lab", refs["labelled"]["rows"]
    elif command == "distill":
        argv = distill_argv(c.out, c.work / "student", world["teacher"])
        target = c.work / "student"
    shown = f"{command} (OUT: {kind})"
    before = outside(c)

    violations, outcome, said = [], "", ""
    if command == "read":
        try:
            table = schema.open_dataset(str(c.out)).to_table()
        except Exception as err:  # noqa: BLE001 - classified below
            outcome, said = "failed", one_line(err)
            if not kdaug_error(err):
                violations.append(f"not a kdaug error: {one_line(err)}")
            elif len(str(err).strip().splitlines()) != 1 or any(w in str(err) for w in LEAKS):
                violations.append(f"the error is not one clear line: {str(err)[:300]!r}")
        else:
            outcome = "succeeded"
            if table_sha(table) != rows:
                violations.append("read rows that are not a clean run's")
            violations += [f"read an output that is not whole: {p}" for p in whole(c.out, rows)]
    else:
        result = CliRunner().invoke(main, [str(a) for a in argv])
        uncaught = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
        if result.exit_code == 0 and uncaught is None:
            outcome = "succeeded"
            if command == "distill":
                problems = whole(target, None)
                if not problems:
                    metrics = json.loads((target / "metrics.json").read_text())
                    manifest = json.loads((target / "_manifest.json").read_text())
                    if metrics["train_rows"] != world["train_rows"] or manifest.get("source_attempt") != c.attempt:
                        problems.append(
                            f"trained on {metrics['train_rows']} rows of attempt {manifest.get('source_attempt')}, "
                            f"not {world['train_rows']} of {c.attempt}"
                        )
            else:
                problems = whole(target, rows)
            violations += [f"exit 0 but {target.name} is not whole: {p}" for p in problems]
        else:
            outcome, said = f"failed (exit {result.exit_code})", error_line(result.output)
            violations += error_problems(result.output, caught, uncaught, result.exit_code)
        if violations:
            said += "\n      output: " + result.output.strip()[-600:].replace("\n", "\n      | ")
    violations += [f"outside OUT: {d}" for d in changed_outside(before, outside(c))]

    # invariant 3: the planted state undone, a clean run publishes the clean files
    c.plant.undo()
    if kind == "labelled":  # kdaug never replaces a labelled output by an augmented one: its clean run is a label
        if not (c.work / "src").exists():
            shutil.copytree(world["pristine"]["plain"], c.work / "src", symlinks=True)
        clean = ["label", "--input", c.work / "src", "--output", c.out, "--teacher", world["teacher"], *LABEL]
    else:
        clean = augment_argv(world["data"], c.out, 0, *(["--versioned"] if kind == "versioned" else []))
    caught.clear()
    result = CliRunner().invoke(main, [str(a) for a in clean])
    if result.exit_code != 0:
        violations.append(f"the later clean run failed: {error_line(result.output)}")
    else:
        found = published_files(c.out)
        if found is None or found[1] != refs[kind]["files"]:
            violations.append("the later clean run did not publish the clean files")
    violations += [f"outside OUT (after the clean run): {d}" for d in changed_outside(before, outside(c))]

    if path := os.environ.get("KDAUG_CRAFTED_REPORT"):
        with open(path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "seed": seed,
                        "command": command,
                        "kind": kind,
                        "mutations": c.mutations,
                        "outcome": outcome,
                        "said": said.split("\n")[0],
                        "violations": violations,
                    }
                )
                + "\n"
            )
    assert not violations, (
        f"seed {seed}: kdaug {shown} after {'; '.join(c.mutations)}\n  -> {outcome}: {said}\n"
        + "\n".join(f"  * {v}" for v in violations)
        + f"\n  rerun: pytest 'tests/commit/test_crafted_state.py::{test}[seed-{seed}]'"
    )


@pytest.mark.parametrize("seed", range(24), ids=lambda s: f"seed-{s}")
def test_crafted_state(seed, crafted_world, tmp_path, monkeypatch):
    run_case(seed, crafted_world, tmp_path, monkeypatch, "test_crafted_state")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000), ids=lambda s: f"seed-{s}")
def test_crafted_state_many(seed, crafted_world, tmp_path, monkeypatch):
    run_case(seed, crafted_world, tmp_path, monkeypatch, "test_crafted_state_many")
