"""How well `report --across` links versions: simulated tournaments with known strengths on three
versions of different difficulty (two anchors on all), the linked 95% CIs' coverage of the true
values, and how often a model on the easy version is ordered right against one on the scale
version, linked and by raw means. `python bench/linking_coverage.py [SIMS] [SEED]`."""

import sys

import numpy as np

from harness.linking import VersionScores, link

THETA = np.array([0.50, 0.40, 0.30, 0.20, 0.35, 0.25, 0.45, 0.15])
MU = (0.30, -0.20, 0.0)  # v1 easy, v2 hard, v3 (the scale)
ON = ([0, 1, 2, 3], [0, 1, 4, 5], [0, 1, 6, 7])


def tournament(rng, n_items=100):
    return [
        VersionScores(
            f"s@v{v + 1}",
            "active" if v == 2 else "retired",
            [f"m{k}" for k in models],
            rng.normal(mu, 0.15, n_items)[:, None]
            + THETA[models][None, :]
            + rng.normal(0, 0.3, (n_items, len(models))),
        )
        for v, (mu, models) in enumerate(zip(MU, ON))
    ]


def main(sims: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    covered = linked_right = raw_right = 0
    for sim in range(sims):
        out = link(tournament(rng), scale="s@v3", n_boot=400, seed=sim)
        for k in range(len(THETA)):
            e = out.models[f"m{k}"]
            covered += e["ci_low"] <= THETA[k] + MU[2] <= e["ci_high"]
        linked_right += out.models["m2"]["score"] < out.models["m6"]["score"]
        raw_right += out.models["m2"]["versions"]["s@v1"] < out.models["m6"]["versions"]["s@v3"]
    print(
        f"{sims} tournaments: linked 95% CI coverage {covered / (sims * len(THETA)):.3f} (ideal "
        f"0.950); m2 (easy v1) below m6 (v3), as true: linked {linked_right / sims:.2f}, raw "
        f"means {raw_right / sims:.2f}"
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 600,
        int(sys.argv[2]) if len(sys.argv) > 2 else 99,
    )
