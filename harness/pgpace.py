"""One pace per key across machines: the key lane (keylane.py) kept in the shared PostgreSQL store.

The file lane holds one machine's processes to one schedule; workers on several machines meet only
in the store, so there the schedule is a row of `key_lanes`: the next free send time, the spacing
last used, and the count reserved. Each reservation is one UPDATE under the row's lock, timed by
the server's clock (machines need not agree on the time), and turned into this machine's monotonic
clock by the difference the server reported in the same answer. The row's name is a keyed hash of
the key, the server and the lane, as the file's is: no key, no text.

A worker that knows no rate yet, on a lane no one has used in the last second, does not ask the
server (an unlimited key costs no round trip per request); it looks again a quarter second later,
and adds the requests it sent meanwhile to the row's count then (as keylane.py does)."""

from __future__ import annotations

import time

from .keylane import IDLE_LOOK_S, LIVE_S, Slot, lane_name
from .postgres import PgDatabase

NOW = "(SELECT extract(epoch from clock_timestamp()))"


class PgKeyLane:
    def __init__(self, dsn: str, name: str):
        self.db = PgDatabase(dsn)
        # a schedule is worth nothing after a crash: no wait for the disk on each reservation
        self.db.execute("SET synchronous_commit TO off")
        self.name = name
        self.db.execute(
            "INSERT INTO key_lanes (lane, next_at, spacing, reserved) VALUES (?, 0, 0, 0) "
            "ON CONFLICT (lane) DO NOTHING",
            (name,),
        )
        self._idle_until = 0.0  # monotonic: until then, no schedule to follow without a rate
        self._last_number = 0
        self._uncounted = 0  # sent while idle, not yet in the row's count

    @classmethod
    def for_key(
        cls, dsn: str, *, provider_type: str, base_url: str | None, api_key: str | None, lane: str
    ) -> PgKeyLane:
        name = lane_name(provider_type=provider_type, base_url=base_url, api_key=api_key, lane=lane)
        return cls(dsn, name)

    def reserve(self, spacing: float | None) -> Slot:
        """The next send time on the key, pushing the next one `spacing` seconds after it (None:
        the spacing the schedule has, if it is live)."""
        local = time.monotonic()
        if spacing is None and local < self._idle_until:
            self._uncounted += 1
            return Slot(at=local, number=self._last_number + self._uncounted)
        # a schedule is live when someone paced it (a spacing) in the last LIVE_S
        live = f"(old.spacing > 0 AND old.next_at > n.t - {LIVE_S})"
        at, server_now, number, was_live = self.db.execute(
            f"WITH n AS (SELECT {NOW} AS t), old AS (SELECT next_at, spacing FROM key_lanes "
            "WHERE lane=? FOR UPDATE) "
            "UPDATE key_lanes k SET next_at = GREATEST(old.next_at, n.t) + COALESCE(?, CASE WHEN "
            f"{live} THEN old.spacing ELSE 0 END), spacing = COALESCE(?, old.spacing), "
            "reserved = k.reserved + 1 + ? FROM n, old WHERE k.lane=? "
            f"RETURNING GREATEST(old.next_at, n.t), n.t, k.reserved, {live}",
            (self.name, spacing, spacing, self._uncounted, self.name),
        ).fetchone()
        self._uncounted = 0
        if spacing is None and not was_live:
            self._idle_until = local + IDLE_LOOK_S
        self._last_number = number
        # the server's clock to ours as of its answer: late by the way back, never early by a wait
        # for the row's lock
        return Slot(at=time.monotonic() + (at - server_now), number=number)

    def hold_until(self, at: float) -> None:
        """No request on the key before this (monotonic) time: a 429's Retry-After, say."""
        self.db.execute(
            f"UPDATE key_lanes SET next_at = GREATEST(next_at, {NOW} + ?) WHERE lane=?",
            (at - time.monotonic(), self.name),
        )
        self._idle_until = 0.0

    def close(self) -> None:
        if self._uncounted:
            self.db.execute(
                "UPDATE key_lanes SET reserved = reserved + ? WHERE lane=?",
                (self._uncounted, self.name),
            )
        self.db.close()
