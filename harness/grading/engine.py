"""`holdout grade`: every output of a run scored by every grader, resumable like a run.

Judge calls are ordinary jobs for the same Runner (concurrency, retries, budget, exposure ledger,
resume), stored under the run id `<run>/grade/<grader>`: the judge model is the store's model, the
graded target is its item key (`item|model|epoch[|order]`, item first so an item's judge calls can
be found and deleted with it), and the attempt is its epoch. A malformed judge answer or a failed
call leads to a fresh call (the next attempt) up to `max_attempts` per `grade`; then the grade is
recorded as an error, never a guess, and the next `grade` tries again. Grading a fully graded run
makes no calls. Each grade records a digest of its grader's settings: grades made with other
settings are not mixed in (`grade --regrade NAME` replaces them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from rich.console import Console

from ..budget import Budget
from ..calling import calls
from ..callkinds import advice
from ..config import DEFAULT_KEY_ENV, ModelConfig, ProviderConfig, RunConfig, param_problems
from ..errors import ConfigError, HoldoutError
from ..jobs import Job
from ..lanes import lane_label
from ..pricing import Price, price_for
from ..progress import progress_for
from ..rows import GradeRow
from ..sharedbudget import budget_for
from ..store import Store
from ..yamlfile import key_path
from .judging import JudgeGrader, PairwiseGrader, RubricGrader
from .rules import RuleError, RuleGrader


def settings_digest(spec: dict) -> str:
    """A grader's settings as written (judges, criteria, rule), digested: grades made with other
    settings differ."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _judge_config(spec: dict, config: RunConfig, where: str) -> ModelConfig:
    pname = spec["provider"]
    provider = config.providers.get(pname)
    if provider is None and pname in DEFAULT_KEY_ENV:
        provider = ProviderConfig(name=pname, type=pname, api_key_env=DEFAULT_KEY_ENV[pname])
    if provider is None:
        raise ConfigError(
            f"{where}.provider: unknown provider '{pname}'; declare it under providers: in the "
            "run config "
            f"(declared: {', '.join(sorted(config.providers)) or 'none'})"
        )
    price = Price(**spec["price"]) if "price" in spec else price_for(provider.type, spec["model"])
    if price is None and config.budget_usd is not None:
        raise ConfigError(
            f"{where}: no price is known for judge model '{spec['model']}', so budget_usd "
            "cannot be "
            "enforced on its calls; add price: {input_per_mtok: ..., output_per_mtok: ...}"
        )
    judge = ModelConfig(
        name=spec.get("name", f"judge:{spec['model']}"),
        provider=provider,
        model=spec["model"],
        params={"temperature": 0, "max_tokens": 1024, **spec.get("params", {})},
        price=price,
    )
    problems = param_problems(judge)
    if problems:
        raise ConfigError("; ".join(f"{where}.params.{key}: {why}" for key, why in problems))
    if (
        (provider.type in ("openai", "anthropic") or provider.api_key_env)
        and provider.type != "replay"
        and not provider.api_key()
    ):
        raise ConfigError(
            f"{where}: judge '{judge.name}' needs an API key in the environment variable "
            f"{provider.api_key_env or '(none named: set api_key_env)'}, which is not set. "
            "Nothing was sent."
        )
    return judge


def build_graders(
    specs: list[dict], config: RunConfig, source: str, base_dir: Path | None = None
) -> list:
    """The graders of `specs` (from the file `source`, whose directory `base_dir` Python rules load
    from)."""
    graders, used = [], {}
    model_names = {m.name for m in config.models}
    for i, spec in enumerate(specs):
        kind = next(k for k in ("rules", "rubric", "pairwise", "human") if k in spec)
        used[kind] = used.get(kind, 0) + 1
        name = spec.get("name") or (kind if used[kind] == 1 else f"{kind}-{used[kind]}")
        where = f"{source}: {key_path(('graders', i, kind))}"
        if kind == "rules":
            g = RuleGrader(name, spec["rules"], base_dir=base_dir)
        elif kind in ("rubric", "pairwise"):
            body = spec[kind]
            judge_specs = body.get("judges") or ([body["judge"]] if "judge" in body else [])
            if not judge_specs:
                raise ConfigError(f"{where}: needs 'judge' or 'judges'")
            judges = [
                _judge_config(j, config, f"{where}.judges[{n}]") for n, j in enumerate(judge_specs)
            ]
            if kind == "rubric":
                g = RubricGrader(name, judges, body, body.get("max_attempts", 3))
                g.criteria = body["criteria"]
                for c in g.criteria:
                    if c["scale"][0] >= c["scale"][1]:
                        raise ConfigError(
                            f"{where}: criterion '{c['name']}': scale must be [low, high] with "
                            "low < high"
                        )
            else:
                g = PairwiseGrader(name, judges, body, body.get("max_attempts", 3))
                g.baseline = body["baseline"]
                if g.baseline not in model_names:
                    raise ConfigError(
                        f"{where}.baseline: '{g.baseline}' is not a model of this run "
                        f"(models: {', '.join(sorted(model_names))}); add it under models:"
                    )
        else:
            continue
        g.sha = settings_digest(spec)
        graders.append(g)
    return graders


def _collect_answers(
    store: Store, jrun: str, grader: JudgeGrader, *, answers: dict, errors: dict
) -> dict:
    """Parse the stored judge calls not answered yet: a valid answer goes to `answers`, else its
    cause to `errors`. Returns slot -> the next unused attempt number (epoch)."""
    next_epoch: dict = {}
    for row in store.calls(jrun):
        slot = (row.model, row.item_id)
        next_epoch[slot] = max(next_epoch.get(slot, 0), row.epoch + 1)
        if slot in answers:
            continue
        parsed = grader.parse(row.output) if row.ok else None
        if parsed is not None:
            answers[slot] = parsed
            errors.pop(slot, None)
        else:
            errors[slot] = (
                "malformed judge answer" if row.ok else f"judge call failed: {row.error_kind}"
            )
    return next_epoch


async def _run_judges(
    store: Store,
    run_id: str,
    grader: JudgeGrader,
    *,
    outputs: dict,
    items: dict,
    budget: Budget,
    on_sent,
    console: Console,
    quiet: bool,
) -> dict:
    """Rounds of judge calls until every slot has a parseable answer or this `grade` spent
    max_attempts on it. Attempts of earlier `grade`s are kept (and their answers used), so a judge
    outage costs a re-run, not the run."""
    jrun = f"{run_id}/grade/{grader.name}"
    graded = store.graded_keys(run_id, grader.name)
    todo = [t for t in grader.targets(outputs) if t not in graded]
    answers: dict = {}
    errors: dict = {}
    calls_made = 0
    judges = {j.name: j for j in grader.judges}
    store.begin_run(
        jrun,
        f"judge:{grader.name}",
        "judge",
        pool="judge",
        heldout=False,
        total=0,
        models=list(judges),
        config_file="",
    )
    # where this grade's attempts start
    first_epoch = _collect_answers(store, jrun, grader, answers=answers, errors=errors)
    for attempt in range(grader.max_attempts):
        if attempt:
            _collect_answers(store, jrun, grader, answers=answers, errors=errors)
        jobs = [
            Job(
                t[1],
                key,
                judge,
                first_epoch.get((judge.name, key), 0) + attempt,
                grader.messages(key, t, outputs, items),
            )
            for t in todo
            for judge, key in grader.slots(t)
            if (judge.name, key) not in answers
        ]
        if not jobs:
            break
        with progress_for(f"{grader.name} #{attempt + 1}", len(jobs), console, quiet=quiet) as bar:
            outcome = await calls(  # online, or by batch for a judge in batch mode
                jrun,
                lambda jobs=jobs: iter(jobs),
                list(judges.values()),
                store=store,
                budget=budget,
                progress=bar,
                on_sent=on_sent,
                role="judge",
            )
        calls_made += outcome.calls_made
        if outcome.interrupted or outcome.budget_stop or outcome.dead_providers:
            _collect_answers(store, jrun, grader, answers=answers, errors=errors)
            return {
                "answers": answers,
                "errors": errors,
                "todo": todo,
                "stopped": outcome,
                "calls": calls_made,
            }
    _collect_answers(
        store, jrun, grader, answers=answers, errors=errors
    )  # the last round's answers
    return {
        "answers": answers,
        "errors": errors,
        "todo": todo,
        "stopped": None,
        "calls": calls_made,
    }


def _grade_rules(
    store: Store, run_id: str, g: RuleGrader, *, items: dict, batch: int = 5000
) -> dict:
    """A rule over every successful call not graded yet, streamed from the store and written in
    batches."""
    done = store.graded_keys(run_id, g.name)
    rows, graded, failed = [], 0, 0
    for call in store.calls(run_id):
        t = (call.model, call.item_id, call.epoch)
        if not call.ok or t in done or call.item_id not in items:
            continue
        try:
            score, detail = g.grade(call.output, items[call.item_id])
            status = "ok" if score is not None else "skipped"
        except RuleError as e:
            score, detail, status = None, {"reason": str(e)}, "error"
            failed += 1
        rows.append(GradeRow(run_id, g.name, *t, status, score, detail, g.sha))
        if len(rows) >= batch:
            store.put_grades(rows)
            graded, rows = graded + len(rows), []
    store.put_grades(rows)
    graded += len(rows)
    return {
        "kind": "rules",
        "graded_now": graded - failed,
        "failed": failed,
        "calls": 0,
        "stopped": False,
    }


def _check_settings(
    store: Store, run_id: str, graders: list, *, regrade: set[str], source: str
) -> None:
    """Grades made with other settings are not mixed with new ones: refuse, or (--regrade) delete
    them first."""
    unknown = regrade - {g.name for g in graders}
    if unknown:
        raise HoldoutError(
            f"--regrade {', '.join(sorted(unknown))}: no such grader in {source} "
            f"(graders: {', '.join(g.name for g in graders)})"
        )
    digests = store.grader_digests(run_id)
    for g in graders:
        if g.name in regrade:
            store.delete_grader(run_id, g.name)
        elif digests.get(g.name, {g.sha}) != {g.sha}:
            raise HoldoutError(
                f"grader '{g.name}': its settings in {source} changed since its grades were "
                "made, so old "
                f"and new grades would be mixed. Nothing was graded. Re-grade it with "
                f"`holdout grade {run_id} --regrade {g.name}` (judge calls are paid again), or "
                "restore "
                "its settings."
            )


def grade(
    run_id: str,
    store: Store,
    config: RunConfig,
    *,
    specs: list[dict],
    source: str,
    items: dict,
    outputs,
    on_sent,
    console: Console,
    quiet: bool,
    pool_id: str = "",
    max_retention: str | None = None,
    base_dir: Path | None = None,
    regrade: set[str] = frozenset(),
) -> dict:
    """`outputs`: the run's outputs ((model, item, epoch) -> text), or a callable giving them; rules
    stream from the store instead, so a run graded by rules alone is never held in memory."""
    graders = build_graders(specs, config, source, base_dir)
    if not graders:
        raise HoldoutError(
            f"no graders: add `graders:` to the suite ({source}) or to the run config"
        )
    from ..policy import check_retention  # judges see held-out prompts too

    check_retention(
        config,
        pool_id,
        max_retention,
        models=[j for g in graders for j in getattr(g, "judges", [])],
    )
    _check_settings(store, run_id, graders, regrade=set(regrade), source=source)
    budget = budget_for(  # the run's calls and its judges' spend from one budget
        config.budget_usd,
        store=store,
        scope=f"{run_id}/graded",
        recount=(
            "SELECT COALESCE(SUM(cost_usd),0) FROM calls WHERE run_id=? OR substr(run_id, 1, ?)=?",
            (run_id, len(run_id) + 7, f"{run_id}/grade/"),
        ),
    )
    loaded: dict = {}

    def all_outputs() -> dict:
        if "outputs" not in loaded:
            loaded["outputs"] = outputs() if callable(outputs) else outputs
        return loaded["outputs"]

    summary = {}
    for g in graders:
        if isinstance(g, RuleGrader):
            summary[g.name] = _grade_rules(store, run_id, g, items=items)
            continue
        res = asyncio.run(
            _run_judges(
                store,
                run_id,
                g,
                outputs=all_outputs(),
                items=items,
                budget=budget,
                on_sent=on_sent,
                console=console,
                quiet=quiet,
            )
        )
        rows, failed = [], 0
        for t in res["todo"]:
            slots = g.slots(t)
            if all((j.name, k) in res["answers"] for j, k in slots):
                score, detail = g.combine(
                    t, {(j.name, k): res["answers"][(j.name, k)] for j, k in slots}, all_outputs()
                )
                rows.append(GradeRow(run_id, g.name, *t, "ok", score, detail, g.sha))
            elif res["stopped"] is None:
                reasons = sorted(
                    {
                        res["errors"].get((j.name, k), "no answer")
                        for j, k in slots
                        if (j.name, k) not in res["answers"]
                    }
                )
                rows.append(
                    GradeRow(
                        run_id, g.name, *t, "error", None, {"reason": "; ".join(reasons)}, g.sha
                    )
                )
                failed += 1
        store.put_grades(rows)
        summary[g.name] = {
            "kind": g.kind,
            "graded_now": len(rows) - failed,
            "failed": failed,
            "calls": res["calls"],
            "stopped": bool(res["stopped"]),
            "stop_reasons": _stop_reasons(res["stopped"]) if res["stopped"] else [],
            "not_graded": len(res["todo"]) - len(rows),
        }
    return summary


def _stop_reasons(outcome) -> list[str]:
    """Why a grading's judge calls stopped early, and what to do about it: one line each."""
    lines = [
        f"gave up on {lane_label(lane)}: {why}" for lane, why in outcome.dead_providers.items()
    ]
    if outcome.budget_stop:
        lines.append("the budget was reached")
    if outcome.interrupted:
        lines.append("interrupted")
    return lines + advice(outcome.error_kinds, outcome.given_up)
