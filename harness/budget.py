"""The dollar budget: a call starts only if its worst-case cost fits in what is left.

The worst case of a call is its input at one token per UTF-8 byte and its output at the cap sent
with it, so while providers bill within the cap, spend never passes the limit. A provider that bills
past the cap can overshoot by at most what the calls already in flight bill; nothing starts after.
"""

from __future__ import annotations


class Budget:
    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit = limit_usd
        self.spent = spent_usd  # settled cost, this attempt and earlier ones of the same run
        self.reserved = 0.0  # worst-case cost of calls in flight

    def reserve(self, worst_case_usd: float) -> bool:
        if self.limit is None:
            return True
        if self.spent + self.reserved + worst_case_usd > self.limit:
            return False
        self.reserved += worst_case_usd
        return True

    def hold(self, worst_case_usd: float) -> None:
        """Count what is already committed (a batch in flight from an earlier process), whether
        or not it fits: nothing more starts until it is settled."""
        if self.limit is not None:
            self.reserved += worst_case_usd

    def exhausted_by_spend(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        if self.limit is not None:
            self.reserved -= reserved_usd
        self.spent += actual_usd
