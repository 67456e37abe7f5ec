"""The `human:` grader as a suite or run config writes it, and what follows from it: the criteria
people score, the pairwise baseline they compare with (and which side it is shown on), gold
items."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ConfigError, HoldoutError


def human_spec(graders: list[dict]) -> dict:
    spec = next((g["human"] for g in graders if "human" in g), None)
    if spec is None:
        raise HoldoutError(
            "no `human:` grader in the suite or run config; nothing routes items to review"
        )
    return spec


PREFERENCE = {
    "name": "preference",
    "scale": [1, 5],
    "guide": "1: response 1 much better, 2: better, 3: tie, 4: response 2 better, 5: much better",
}


def pairwise_baseline(spec: dict, graders: list[dict]) -> str | None:
    if spec.get("compare") != "pairwise":
        return None
    pair = next((g["pairwise"] for g in graders if "pairwise" in g), None)
    if pair is None:
        raise ConfigError(
            "human.compare: pairwise, but there is no pairwise grader to take the baseline from"
        )
    return pair["baseline"]


def swapped(assignment_id: str) -> bool:
    """Whether the model's output is shown first: fixed per assignment, random across
    assignments."""
    return int(hashlib.sha256(assignment_id.encode()).hexdigest(), 16) % 2 == 1


def model_preference(assignment_id: str, answer: int) -> float:
    """A 1-5 answer about (response 1, response 2) as the model's preference in [0, 1] against the
    baseline."""
    toward_2 = (answer - 1) / 4  # 0: response 1 much better ... 1: response 2 much better
    return 1 - toward_2 if swapped(assignment_id) else toward_2


def criteria_for(spec: dict, graders: list[dict]) -> list[dict]:
    if spec.get("compare") == "pairwise":
        return [PREFERENCE]
    rubric = spec.get("rubric", "same-as-judge")
    if rubric == "same-as-judge":
        judge = next((g["rubric"] for g in graders if "rubric" in g), None)
        if judge is None:
            raise ConfigError(
                "human.rubric: same-as-judge, but there is no rubric grader to copy criteria from"
            )
        return judge["criteria"]
    return rubric["criteria"]


def load_gold(path: Path | None) -> dict[tuple, dict]:
    if not path:
        return {}
    gold = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                obj = json.loads(line)
                gold[(obj["model"], obj["item_id"], obj.get("epoch", 0))] = obj["scores"]
            except (ValueError, KeyError, TypeError):
                raise ConfigError(
                    f'{path}:{n}: expected {{"item_id", "model", "scores": {{criterion: value}}}}'
                ) from None
    return gold
