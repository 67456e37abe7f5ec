"""The review push hook, a door for held-out text: assignments (prompt and output in the clear)
handed to the reviewers' tool a suite names, only if the run config lists its destination under
`trusted_destinations`."""

from __future__ import annotations

from ..errors import ConfigError
from ..hooks import load_hook


def push(
    db,
    run_id: str,
    spec: dict,
    *,
    trusted: tuple[str, ...],
    heldout: bool,
    items: dict,
    outputs: dict,
    criteria: list[dict],
) -> int:
    """Hand open assignments to the team's own tool via `human.push.hook(destination, rows)`.
    Held-out text is released only to a destination the run config declares trusted."""
    cfg = spec.get("push")
    if not cfg:
        return 0
    destination = cfg.get("destination", "")
    if heldout and destination not in trusted:
        raise ConfigError(
            f"human.push: destination {destination!r} is not in the run config's "
            "trusted_destinations; "
            "refusing to send held-out text to it"
        )
    hook = load_hook(cfg.get("hook", ""), what="human.push.hook")
    from ..sealed import reveal

    rows = []
    for aid, model, item_id, epoch, reviewer in db.execute(
        "SELECT id, model, item_id, epoch, reviewer FROM assignments WHERE run_id=? AND done IS "
        "NULL",
        (run_id,),
    ):
        output = outputs.get((model, item_id, epoch))
        rows.append(
            {
                "assignment": aid,
                "reviewer": reviewer,
                "item_id": item_id,
                "criteria": criteria,
                "prompt": reveal(items[item_id].prompt),
                "output": reveal(output) if output is not None else None,
            }
        )
    hook(destination, rows)
    return len(rows)
