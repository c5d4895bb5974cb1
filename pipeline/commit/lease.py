"""The lease: one live claim per output, its heartbeat, and the fence a publisher proves."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from kdaug.commit.gate import ATTEMPT_ID, MARKER_BYTES, MAX_LEASE, _Bad, _number, _object, _shape, _text
from kdaug.commit.layout import ATTEMPTS_DIR, CLAIMS_DIR, LEASE_SECONDS, TEMP_DIR, DamagedState, LeaseLost, OutputBusy
from kdaug.commit.storage import Attempt, Store, check_state_dir

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
        return cls(
            attempt,
            _text(value.get("command"), "command"),
            _text(value.get("host"), "host"),
            value["pid"],
            pid_start,
            _number(value.get("started"), "started"),
            _number(value.get("heartbeat"), "heartbeat"),
            _number(value.get("lease_seconds", LEASE_SECONDS), "lease_seconds", 1e-3, MAX_LEASE),
            value.get("detached", False),
        )

    def live(self, now: float | None = None) -> bool:
        if not self.detached and self.host == socket.gethostname() and not _process_alive(self.pid, self.pid_start):
            return False
        return -self.lease_seconds < (now or time.time()) - self.heartbeat < self.lease_seconds

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        beat = max(0.0, time.time() - self.heartbeat)
        who = "a job launched" if self.detached else f"pid {self.pid}"
        return (
            f"attempt {self.attempt} (`kdaug {self.command}`, {who} on {self.host}, started {started}, "
            f"last heartbeat {beat:.0f} s ago)"
        )


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
        return (
            f"an unreadable claim {self.path} ({self.problem}), which counts as a live writer until {until}; "
            "delete it if no kdaug run is writing this output"
        )


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
            found.append(
                DamagedClaim(attempt, store.uri(rel), str(err)[:200], written.timestamp() if written else time.time())
            )
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
            raise OutputBusy(
                f"{self.store.root} is being written by another kdaug run: {other.describe()}. "
                "Wait for it to finish or write elsewhere (one writer per output; a killed run's "
                f"lease ends when its process is gone, or {other.lease_seconds:.0f} s after its last heartbeat)."
            )
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
        claim = store.read_state(
            _claim_path(attempt.attempt), lambda data: Claim.parse(data, attempt.attempt), MARKER_BYTES * 4
        )
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
        if self._until and (
            self.exclusive or not force and time.monotonic() < self._until[0] and time.time() < self._until[1]
        ):
            return
        self._until = None
        left = fence(self.store, self.attempt) / 2
        self._until = (time.monotonic() + left, time.time() + left)
