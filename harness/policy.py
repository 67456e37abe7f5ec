"""License separation: what may leave, to whom, for what. The one place these rules live.

Purposes: evaluation, research, training, license (a commercial data licence).
Items (per pool version), in order; the first rule that refuses is reported:
  draft_pool        a draft pool is a future held-out pool: never exported
  active_pool       an item of an active pool: never exported
  heldout_embargo   a held-out pool is releasable only once retired for `embargo_days`
  live_embargo      an item drawn from a live distribution: not within `embargo_days` of its
                    pool's retirement
  data_license      the source data's licence must allow the purpose (e.g. CC-BY-NC-4.0: not
                    `license`, not `training`)
Outputs (per call):
  output_terms      the provider's terms must allow the purpose (default: evaluation, research)
  other_lab         a lab receives only its own models' outputs
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

PURPOSES = ("evaluation", "research", "training", "license")
DEFAULT_EMBARGO_DAYS = 60
DAY = 86400.0

# what a source's data licence allows; unknown licences allow only evaluation and research
DATA_LICENSES = {
    "CC-BY-4.0": set(PURPOSES),
    "CC0-1.0": set(PURPOSES),
    "Apache-2.0": set(PURPOSES),
    "MIT": set(PURPOSES),
    "CC-BY-NC-4.0": {"evaluation", "research"},
    "CC-BY-NC-SA-4.0": {"evaluation", "research"},
    "unknown": {"evaluation", "research"},
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # the rule that refused, or "allowed"
    why: str


@dataclass(frozen=True)
class Embargo:
    """The embargo an export applies: the suite's, or a longer one; a shorter one only with a
    justification, which the export's signed manifest records."""

    days: float
    policy_days: float
    justification: str | None = None

    def record(self) -> dict:
        out = {"embargo_days": self.days, "policy_embargo_days": self.policy_days}
        if self.justification:
            out["embargo_shortened_because"] = self.justification
        return out


def choose_embargo(
    policy_days: float, override: float | None, justification: str | None, where: str
) -> Embargo:
    """`override` may lengthen the suite's embargo; shortening it needs a justification; negative or
    non-finite values are errors."""
    if override is None:
        return Embargo(policy_days, policy_days)
    if not math.isfinite(override) or override < 0:
        raise ConfigError(
            f"{where}: --embargo-days must be a number of days, 0 or more (got {override:g})"
        )
    if override < policy_days and not (justification and justification.strip()):
        raise ConfigError(
            f"{where}: --embargo-days {override:g} is shorter than the suite's embargo of "
            f"{policy_days:g} days; an override may only lengthen it, unless --justification "
            "says why "
            "(it is written into the export's signed manifest). Nothing was exported."
        )
    return Embargo(override, policy_days, justification.strip() if override < policy_days else None)


def allowed_by_data_license(license_name: str | None) -> set[str]:
    return DATA_LICENSES.get(license_name or "unknown", DATA_LICENSES["unknown"])


def decide_pool(
    manifest: dict, purpose: str, now: float, embargo_days: float = DEFAULT_EMBARGO_DAYS
) -> Decision:
    """Whether the items of one pool version may be exported for `purpose` at time `now`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    status, cls = manifest.get("status"), manifest.get("license_class")
    retired_at = manifest.get("retired_at")
    prov = manifest.get("provenance") or {}
    if status == "draft" and cls == "heldout":
        return Decision(False, "draft_pool", "a draft held-out pool is a future test set")
    if status == "active":
        return Decision(False, "active_pool", "items of an active pool never leave")
    if cls == "heldout":
        if retired_at is None:
            return Decision(
                False, "heldout_embargo", "a held-out pool is releasable only after retirement"
            )
        if now < retired_at + embargo_days * DAY:
            days = (retired_at + embargo_days * DAY - now) / DAY
            return Decision(
                False,
                "heldout_embargo",
                f"retired {(now - retired_at) / DAY:.0f} days ago; "
                f"releasable in {days:.0f} more days ({embargo_days:g}-day embargo)",
            )
    if (
        prov.get("distribution")
        and retired_at is not None
        and now < retired_at + embargo_days * DAY
    ):
        return Decision(
            False,
            "live_embargo",
            f"drawn from the live distribution {prov['distribution']!r}; "
            f"embargoed for {embargo_days:g} days after retirement",
        )
    if prov.get("distribution") and retired_at is None and cls != "public":
        return Decision(
            False,
            "live_embargo",
            f"drawn from the live distribution {prov['distribution']!r} and never retired",
        )
    data_license = prov.get("data_license")
    if purpose not in allowed_by_data_license(data_license):
        return Decision(
            False,
            "data_license",
            f"the source data licence {data_license or 'unknown'} does not allow "
            f"'{purpose}' (allows: {', '.join(sorted(allowed_by_data_license(data_license)))})",
        )
    return Decision(
        True,
        "allowed",
        f"{cls} pool, {status}; data licence {data_license or 'unknown'} allows '{purpose}'",
    )


def decide_output(
    output_terms: tuple[str, ...] | list[str],
    purpose: str,
    model_lab: str | None,
    requesting_lab: str | None,
) -> Decision:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    if requesting_lab is not None and model_lab != requesting_lab:
        return Decision(
            False,
            "other_lab",
            f"the output belongs to {'lab ' + model_lab if model_lab else 'no lab'}, "
            f"not {requesting_lab}",
        )
    if purpose not in output_terms:
        return Decision(
            False,
            "output_terms",
            f"the provider's terms allow its outputs for {', '.join(output_terms)}, "
            f"not '{purpose}'",
        )
    return Decision(True, "allowed", f"the provider's terms allow '{purpose}'")


def retention_days(value: str | None) -> float:
    """'zero' -> 0, '30d' -> 30, 'unknown' or None -> infinity (meets no requirement)."""
    if value in (None, "unknown"):
        return math.inf
    return 0.0 if value == "zero" else float(value.rstrip("d"))


def check_retention(
    config, pool_id: str, max_retention: str | None, *, models=None, what: str = "models"
) -> None:
    """Refuse to send a pool's items to a provider (of a model or a judge) that keeps prompts longer
    than allowed."""
    if not max_retention:
        return
    limit = retention_days(max_retention)
    for i, m in enumerate(config.models if models is None else models):
        if retention_days(m.provider.kept_for) > limit:
            where = (
                config.where("models", i, "provider")
                if models is None
                else f"{config.file}: judge '{m.name}'"
            )
            raise ConfigError(
                f"{where}: pool {pool_id} may only be sent to providers that keep "
                f"prompts at most {max_retention}; provider '{m.provider.name}' declares retention "
                f"'{m.provider.kept_for}'"
                + (" for its batch files (batch.retention)" if m.provider.mode == "batch" else "")
                + f" (model '{m.name}'). Nothing was sent."
            )
