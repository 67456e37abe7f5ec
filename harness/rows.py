"""The records the run store keeps, as the engine and the commands see them: a call, a grade, what
a deletion removed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CallRow:
    run_id: str
    model: str
    item_id: str
    epoch: int
    ok: bool
    output: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float | None
    cost_usd: float
    attempts: int
    error_kind: str | None
    error: str | None
    finished: float
    # digest of the item content the call was made from (model calls only)
    item_sha: str | None = None
    served: str | None = None  # the model id the provider says answered (its response's `model`)


@dataclass(slots=True)
class Output:
    """What the safeguards read of a call: its answer (str or Sealed; None: the call failed) and
    how it ended."""

    item_id: str
    text: object
    finish_reason: str | None = None
    error_kind: str | None = None


@dataclass(slots=True)
class GradeRow:
    """One grade: a number (or a status) and labels, never text."""

    run_id: str
    grader: str
    model: str
    item_id: str
    epoch: int
    status: str  # ok | skipped | error
    score: float | None
    detail: dict
    grader_sha: str | None = None  # digest of the grader's settings the grade was made with


@dataclass
class Deleted:
    calls: int = 0
    grades: int = 0
    judge_calls: int = 0
    assignments: int = 0


CALL_FIELDS = tuple(CallRow.__dataclass_fields__)
# A successful call is final: a later write for the same key replaces only a failed one.
UPSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_FIELDS)}) VALUES ({', '.join('?' * len(CALL_FIELDS))}) "
    "ON CONFLICT(run_id, model, item_id, epoch) DO UPDATE SET "
    + ", ".join(f"{f}=excluded.{f}" for f in CALL_FIELDS[4:])
    + " WHERE calls.ok=0"
)


# A provider may put anything in its finish reason; the store keeps only these words (plaintext is
# safe).
FINISH_REASONS = frozenset(
    {
        "stop",
        "length",
        "content_filter",
        "tool_calls",
        "function_call",
        "refusal",
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "eos",
    }
)


def finish_reason_word(value) -> str | None:
    """The provider's finish reason if it is a known word, else 'other'."""
    if value is None:
        return None
    return value if value in FINISH_REASONS else "other"
