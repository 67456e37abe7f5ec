"""One pace per key across the processes of this machine.

Several `holdout run` processes on one key each see only their own requests; pacing alone, together
they send several times the key's limit (bench/shared_key.py). A key lane is a small file that all
of them reserve their send times from, under a lock: one schedule for the key (per lane: per model
id behind a gateway), so together they keep to the rate and a process that joins is paced at once.
It holds times and a count only, no text and no key: its name is a keyed hash of the key, the server
and the lane. Processes on other machines are still seen through the provider's counts of requests
left (limits.py).

The file: the next free send time and the last spacing (in the system-wide monotonic clock, which
every process of one boot shares), the count of requests reserved so far, and the boot's epoch
(wall-clock time less monotonic time): a file from before a reboot, or a wall clock that jumped, has
another, and its times are not obeyed."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# next free send time, the spacing it was reserved with, requests reserved, epoch
RECORD = struct.Struct("<ddqd")
NAMESPACE = b"holdout key lane v1"
SAME_BOOT_S = 1.0  # epochs this close are of one boot (the two clocks are read a moment apart)
LIVE_S = 1.0  # a schedule last pushed this recently is followed by a process that knows no rate
IDLE_LOOK_S = 0.25  # how long a process that knows no rate trusts that the schedule is idle
DIR_ENV = "HOLDOUT_LANES_DIR"


def lanes_dir() -> Path:
    """Where the lanes of this user live: $HOLDOUT_LANES_DIR, else the runtime or cache
    directory."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "holdout-lanes"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "holdout" / "lanes"


def _epoch() -> float:
    return time.time() - time.monotonic()


def lane_name(*, provider_type: str, base_url: str | None, api_key: str | None, lane: str) -> str:
    """A key lane's name: a keyed hash of the key, the server and the lane (no key in it)."""
    identity = "\0".join((provider_type, base_url or "", api_key or "", lane)).encode()
    return hmac.new(NAMESPACE, identity, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Slot:
    at: float  # when the request may be sent (time.monotonic())
    number: int  # its number among all requests reserved on the key lane


class KeyLane:
    """The shared schedule of one key (and lane). Reserve a send time for each request."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # a process that knows no rate, on a lane no one paces, sends at once: it looks at the file
        # again only after IDLE_LOOK_S (an unlimited key costs no lock per request), and adds the
        # requests it sent meanwhile to the file's count at that look
        self._idle_until = 0.0
        self._uncounted = 0
        self._last_number = 0

    @classmethod
    def for_key(
        cls, *, provider_type: str, base_url: str | None, api_key: str | None, lane: str
    ) -> KeyLane | None:
        """The lane of this key on this server, or None where it cannot be kept (no directory we may
        use)."""
        name = lane_name(provider_type=provider_type, base_url=base_url, api_key=api_key, lane=lane)
        try:
            return cls(lanes_dir() / f"{name}.lane")
        except OSError:
            # a read-only home: each process paces alone, as it would on another machine
            return None

    def reserve(self, spacing: float | None) -> Slot:
        """The next send time on the key, pushing the next one `spacing` seconds after it. With no
        spacing (this process knows no rate yet), the last one any process used, if the key's
        schedule is live."""
        if spacing is None and (now := time.monotonic()) < self._idle_until:
            self._uncounted += 1
            return Slot(at=now, number=self._last_number + self._uncounted)
        with self._locked() as (next_at, last_spacing, count):
            count, self._uncounted = count + self._uncounted, 0
            now = time.monotonic()
            if spacing is None and last_spacing > 0 and next_at > now - LIVE_S:
                spacing = last_spacing
            self._idle_until = now + IDLE_LOOK_S if spacing is None else 0.0
            at = max(now, next_at)
            self._write(at + (spacing or 0.0), spacing or last_spacing, count + 1)
        self._last_number = count + 1
        return Slot(at=at, number=count + 1)

    def hold_until(self, at: float) -> None:
        """No request on the key before this (monotonic) time: a 429's Retry-After, say."""
        with self._locked() as (next_at, spacing, count):
            count, self._uncounted = count + self._uncounted, 0
            self._write(max(at, next_at), spacing, count)
        self._idle_until = 0.0

    def close(self) -> None:
        if self._uncounted:
            with self._locked() as (next_at, spacing, count):
                self._write(next_at, spacing, count + self._uncounted)
        os.close(self.fd)

    # -- the file ----------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[tuple[float, float, int]]:
        """The record, read under an exclusive lock held until the block ends; a new or stale one as
        empty."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            data = os.pread(self.fd, RECORD.size, 0)
            next_at, spacing, count, epoch = (
                RECORD.unpack(data) if len(data) == RECORD.size else (0.0, 0.0, 0, 0.0)
            )
            if abs(epoch - _epoch()) > SAME_BOOT_S:
                next_at, spacing = 0.0, 0.0
            yield next_at, spacing, count
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _write(self, next_at: float, spacing: float, count: int) -> None:
        os.pwrite(self.fd, RECORD.pack(next_at, spacing, count, _epoch()), 0)
