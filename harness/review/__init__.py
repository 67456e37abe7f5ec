"""Human review, one module per concern: `reviewers` (registration, login, sessions), `specs` (the
`human:` grader), `routing` (what goes to whom), `decisions` (submitted or imported), `quality`
(agreement, gold accuracy), `push` (the held-out door to a suite's own tool), and `app` (the
reviewers' web app).

Tables live in the run store (inside the boundary). Tokens are stored hashed. Routing policy, from
the `human:` grader of the suite or run config:
    route: {sample: 0.05, when: [judge_disagreement, low_judge_confidence], gold: gold.jsonl,
            hooks: [mod:fn]}
    overlap: 3                 # reviewers per item, never the same one twice, matched on language
    rubric: same-as-judge      # or {criteria: [...]}
    compare: pairwise          # optional: people compare each output with the pairwise
                               # grader's baseline
    push: {hook: mod:fn, destination: name}   # send assignments to your own tool
Held-out text goes to a push hook only if the run config lists its destination under
`trusted_destinations`; otherwise the push is refused. Gold items (a JSONL of {"item_id", "model",
"scores": {criterion: value}}) are mixed in unannounced
and measure each reviewer. A hook is `fn(run_id, grades) -> [(model, item_id, epoch), ...]`.
"""

from .app import ReviewApp

__all__ = ["ReviewApp"]
