"""People's decisions: submitted in the app or imported from a file, checked against the criteria,
comments on held-out items encrypted."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from ..errors import HoldoutError
from .specs import model_preference

FLAGS = ("ambiguous", "broken")


SEALED = "sealed:"  # a comment column holding base64 of an encrypted comment


def comment_sealer(cipher, run_id: str):
    """For a held-out run, how a reviewer's comment is stored: encrypted like outputs (it may quote
    the item), as text (base64), which both backends' text column holds as it is."""
    if cipher is None:
        return None
    return lambda assignment_id, text: (
        SEALED
        + base64.b64encode(
            cipher.encrypt_output(run_id, "review-comment", assignment_id, text)
        ).decode("ascii")
    )


def opened_comment(cipher, run_id: str, assignment_id: str, stored):
    """A held-out run's stored comment, decrypted (Sealed); raw bytes as earlier versions kept
    them in SQLite."""
    blob = base64.b64decode(stored[len(SEALED) :]) if isinstance(stored, str) else stored
    return cipher.decrypt_output(run_id, "review-comment", assignment_id, blob)


def submit(
    db,
    reviewer: str,
    assignment_id: str,
    *,
    scores: dict,
    criteria: list[dict],
    flag: str | None,
    comment: str,
    seal=None,
) -> None:
    """Validate and save a decision; only the assigned reviewer may submit it. With `seal` (held-out
    runs) the comment is stored encrypted."""
    row = db.execute(
        "SELECT reviewer, done FROM assignments WHERE id=?", (assignment_id,)
    ).fetchone()
    if not row or row[0] != reviewer:
        raise PermissionError("not your assignment")
    if row[1] is not None:
        raise ValueError("already submitted")
    clean = {}
    for c in criteria:
        lo, hi = c["scale"]
        v = scores.get(c["name"])
        try:
            v = int(v)
        except (TypeError, ValueError):
            if flag:
                continue  # a flagged item may be left unscored
            raise ValueError(f"{c['name']}: expected a whole number from {lo} to {hi}") from None
        if not lo <= v <= hi:
            raise ValueError(f"{c['name']}: expected a whole number from {lo} to {hi}, got {v}")
        clean[c["name"]] = v
    if flag and flag not in FLAGS:
        raise ValueError(f"flag: expected one of {', '.join(FLAGS)}")
    if len(comment) > 2000:
        raise ValueError("comment: at most 2000 characters")
    if (
        "preference" in clean
        and db.execute("SELECT baseline FROM assignments WHERE id=?", (assignment_id,)).fetchone()[
            0
        ]
    ):
        clean["model_preference"] = model_preference(assignment_id, clean["preference"])
    stored = seal(assignment_id, comment) if seal is not None and comment else comment
    db.execute(
        "UPDATE assignments SET done=?, scores=?, flag=?, comment=? WHERE id=?",
        (time.time(), json.dumps(clean), flag, stored, assignment_id),
    )


def import_decisions(db, run_id: str, path: Path, *, criteria: list[dict], seal=None) -> int:
    """Decisions made in another tool: {"reviewer", "model", "item_id", "epoch"?, "scores", "flag"?,
    "comment"?} per line. Every line is validated first; nothing is saved unless all are good."""
    todo, errors = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            key = (run_id, obj["model"], obj["item_id"], obj.get("epoch", 0), obj["reviewer"])
        except (ValueError, KeyError, TypeError):
            errors.append(
                f"{path}:{n}: expected a JSON object with reviewer, model, item_id and scores"
            )
            continue
        row = db.execute(
            "SELECT id, reviewer FROM assignments WHERE run_id=? AND model=? AND item_id=? AND "
            "epoch=? "
            "AND reviewer=?",
            key,
        ).fetchone()
        if not row:
            errors.append(
                f"{path}:{n}: item {obj['item_id']!r} of {obj['model']!r} is not assigned to "
                f"{obj['reviewer']!r}"
            )
            continue
        todo.append((n, row[1], row[0], obj))
    if errors:
        raise HoldoutError(
            f"{path}: {len(errors)} bad decision(s); nothing was imported:\n"
            + "\n".join(errors[:20])
        )
    with db:
        db.execute("BEGIN IMMEDIATE")
        for n, reviewer, aid, obj in todo:
            try:
                submit(
                    db,
                    reviewer,
                    aid,
                    scores=obj.get("scores") or {},
                    criteria=criteria,
                    flag=obj.get("flag"),
                    comment=obj.get("comment", ""),
                    seal=seal,
                )
            except ValueError as e:
                raise HoldoutError(f"{path}:{n}: {e}; nothing was imported") from None
    return len(todo)
