"""Judge graders: a rubric grader scores each output on criteria; a pairwise grader compares it with
a baseline's output in both orders. Both share what a judged grader is: its judges, the calls a
target needs (one per judge and order), and the grade from their parsed answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .. import style
from ..config import ModelConfig
from ..sealed import reveal
from .judges import (
    model_score,
    pairwise_messages,
    parse_rubric,
    parse_verdict,
    rubric_messages,
    rubric_score,
)

Target = tuple  # (model, item_id, epoch)


def judge_key(t: Target) -> str:
    """The store key of a target's judge calls: the item id first (item ids never contain '|')."""
    return f"{t[1]}|{t[0]}|{t[2]}"


@dataclass
class JudgeGrader:
    """What rubric and pairwise graders share; `orders` are the calls per judge and target."""

    name: str
    judges: list[ModelConfig]
    spec: dict
    max_attempts: int = 3
    sha: str = ""  # digest of the grader's settings (set by build_graders)
    kind: ClassVar[str]
    orders: ClassVar[tuple[str, ...]]

    def slots(self, t: Target) -> list[tuple[ModelConfig, str]]:
        """(judge, key) of every judge call a target needs."""
        base = judge_key(t)
        return [(j, base + o) for j in self.judges for o in self.orders]


@dataclass
class RubricGrader(JudgeGrader):
    criteria: list = field(default_factory=list)
    kind: ClassVar[str] = "rubric"
    orders: ClassVar[tuple[str, ...]] = ("",)

    def targets(self, outputs: dict) -> list[Target]:
        return sorted(outputs)

    def messages(self, key: str, t: Target, outputs: dict, items: dict) -> list:
        item = items[t[1]]
        return rubric_messages(self.criteria, item.prompt, outputs[t], item.reference)

    def parse(self, text):
        return parse_rubric(text, self.criteria)

    def combine(self, t: Target, answers: dict, outputs: dict) -> tuple[float, dict]:
        """The grade of a target from its parsed judge answers (all present): the mean of the
        judges' weighted criteria, with each judge's and each criterion's mean."""
        per_judge = {j.name: answers[(j.name, k)] for j, k in self.slots(t)}
        scores = {name: rubric_score(a["scores"], self.criteria) for name, a in per_judge.items()}
        crit = {
            c["name"]: sum(a["scores"][c["name"]] for a in per_judge.values()) / len(per_judge)
            for c in self.criteria
        }
        conf = [a["confidence"] for a in per_judge.values() if "confidence" in a]
        detail = {
            "criteria": crit,
            "judges": scores,
            "judge_criteria": {n: a["scores"] for n, a in per_judge.items()},
            "disagreement": max(scores.values()) - min(scores.values()),
            "confidence": sum(conf) / len(conf) if conf else None,
        }
        return sum(scores.values()) / len(scores), detail


@dataclass
class PairwiseGrader(JudgeGrader):
    baseline: str | None = None
    kind: ClassVar[str] = "pairwise"
    orders: ClassVar[tuple[str, ...]] = ("|0", "|1")  # order 0: the baseline is A

    def targets(self, outputs: dict) -> list[Target]:
        return sorted(
            t for t in outputs if t[0] != self.baseline and self._baseline_key(t, outputs)
        )

    def _baseline_key(self, t: Target, outputs: dict):
        for key in ((self.baseline, t[1], t[2]), (self.baseline, t[1], 0)):
            if key in outputs:
                return key
        return None

    def messages(self, key: str, t: Target, outputs: dict, items: dict) -> list:
        item = items[t[1]]
        base_out = outputs[self._baseline_key(t, outputs)]
        a, b = (base_out, outputs[t]) if key.endswith("|0") else (outputs[t], base_out)
        return pairwise_messages(item.prompt, a, b)

    def parse(self, text):
        return parse_verdict(text)

    def combine(self, t: Target, answers: dict, outputs: dict) -> tuple[float, dict]:
        """The grade of a target from its parsed judge answers (all present): the model's mean
        preference over judges and both orders, with the games and style features ratings use."""
        verdicts, per_judge, consistent, games = {}, {}, True, []
        for j in self.judges:
            base = judge_key(t)
            v0, v1 = answers[(j.name, base + "|0")], answers[(j.name, base + "|1")]
            (s0, st0), (s1, st1) = model_score(v0, "B"), model_score(v1, "A")
            verdicts[j.name] = [v0, v1]
            per_judge[j.name] = (s0 + s1) / 2
            consistent &= not ({s0, s1} == {0.0, 1.0})
            games += [[s0, st0], [s1, st1]]
        mine = style.features(reveal(outputs[t]))
        theirs = style.features(reveal(outputs[self._baseline_key(t, outputs)]))
        detail = {
            "baseline": self.baseline,
            "verdicts": verdicts,
            "judges": per_judge,
            "consistent": consistent,
            "games": games,
            "style": {"model": mine, "baseline": theirs},
            "style_diff": {k: mine[k] - theirs[k] for k in mine},
        }
        return sum(per_judge.values()) / len(per_judge), detail
