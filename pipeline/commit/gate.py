"""The gate: every journal, manifest, claim and LATEST kdaug reads is parsed here, strictly,
before anything it names is read, moved or deleted."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import cast

from kdaug.commit.layout import ATTEMPTS_DIR, JOURNAL_FILE, LATEST_FILE, MANIFEST_FILE, OWN_FILES, STATE_DIR, Manifest

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


def parse_manifest(data: bytes) -> Manifest:
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
    return cast(Manifest, manifest)


@dataclass(frozen=True)
class Journal:
    """A plain output's publish as its writer recorded it at the commit point."""

    attempt: str
    moves: tuple[tuple[str, str], ...]  # (staged, published); staged inside the attempt's own staging area
    manifest: str  # the attempt's staged manifest
    remove: tuple[str, ...]  # the previous run's files

    def to_json(self) -> dict:
        return {
            "attempt": self.attempt,
            "moves": [list(m) for m in self.moves],
            "manifest": self.manifest,
            "remove": list(self.remove),
        }


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
