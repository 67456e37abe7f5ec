"""The maintainers' view's pages as HTML, from data the app gathered: every value escaped, text
shown `dir=auto` (Arabic and Hebrew read right to left), nothing but links and one form of
filters."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from ..sealed import reveal
from .queries import PAGE, SHOWS, SORTS, Filter


def e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def runs(rows: list[dict]) -> str:
    body = "".join(
        f"<tr><td><a href='/r/{e(r['run_id'])}'>{e(r['run_id'])}</a></td><td>{e(r['suite'])}</td>"
        f"<td>{e(r['pool'])}</td><td>{r['done']}/{r['total']}</td><td>{r['errors']}</td>"
        f"<td>{r['cost_usd']:.4f}</td></tr>"
        for r in rows
    )
    return (
        "<h1>Runs</h1><table><tr><th>run</th><th>suite</th><th>pool</th><th>done</th>"
        f"<th>errors</th><th>cost $</th></tr>{body}</table>"
        "<p><a href='/compare'>compare two runs</a></p>"
    )


def run(run_id: str, info: dict, figures: dict, *, tables: dict) -> str:
    """The run's calls and grades, and per (grader, stratum key) its model x stratum table."""
    models = "".join(
        f"<tr><td>{e(m)}</td><td>{f['calls']}</td><td>{e(_errors(f['errors']))}</td>"
        f"<td>{f['cost_usd']:.4f}</td><td>{f.get('retries', 0)}</td>"
        f"<td>{_num(f.get('latency_s'), 2)}</td><td>{_num(f.get('per_second'), 1)}</td></tr>"
        for m, f in sorted(figures["models"].items())
    )
    graders = "".join(
        f"<tr><td>{e(g)}</td><td>{e(m)}</td><td>{f['ok']}</td><td>{f['other']}</td>"
        f"<td>{_num(f['mean'])}</td><td><a href='/r/{e(run_id)}/items?"
        f"{e(urlencode({'grader': g, 'model': m}))}'>items</a> · <a href='/r/{e(run_id)}/items?"
        f"{e(urlencode({'grader': g, 'model': m, 'show': 'disagree'}))}'>disagreements</a></td>"
        "</tr>"
        for g, per_model in sorted(figures["graders"].items())
        for m, f in sorted(per_model.items())
    )
    return (
        f"<p><a href='/'>runs</a></p><h1>{e(run_id)}</h1><p class=muted>suite {e(info['suite'])}, "
        f"pool {e(info['pool'])}, {info['total']} calls planned</p>"
        "<h2>Calls</h2><table><tr><th>model</th><th>calls</th><th>errors by kind</th>"
        "<th>cost $</th><th>retries</th><th>mean latency s</th><th>calls/s</th></tr>"
        f"{models}</table>"
        "<h2>Grades</h2><table><tr><th>grader</th><th>model</th><th>graded</th><th>not graded</th>"
        f"<th>mean</th><th></th></tr>{graders}</table>"
        + "".join(_strata(run_id, g, key, t) for (g, key), t in tables.items())
    )


def _strata(run_id: str, grader: str, key: str, table: dict) -> str:
    models = sorted({m for per_model in table.values() for m in per_model})
    head = "".join(f"<th>{e(m)}</th>" for m in models)

    def cell(value: str, model: str) -> str:
        c = table[value].get(model)
        if c is None:
            return "<td>-</td>"
        link = f"/r/{e(run_id)}/items?" + e(
            urlencode({"grader": grader, "model": model, "stratum": f"{key}={value}"})
        )
        score = (
            ("not graded" if not c["n"] else f"n={c['n']} (fewer than 10 items)")
            if c.get("suppressed")
            else f"{c['mean']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] n={c['n']}"
        )
        errors = c.get("error_rate")
        return (
            f"<td><a href='{link}'>{score}</a>"
            + (f"<br><span class=muted>errors {errors * 100:.1f}%</span>" if errors else "")
            + "</td>"
        )

    rows = "".join(
        f"<tr><td dir=auto>{e(v)}</td>{''.join(cell(v, m) for m in models)}</tr>" for v in table
    )
    return (
        f"<h2>{e(grader)} by {e(key)}</h2><p class=muted>mean [95% CI over items] n, and the "
        f"model calls' error rate</p><table class=strata><tr><th>{e(key)}</th>{head}</tr>{rows}"
        "</table>"
    )


def _errors(kinds: dict) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"


@dataclass
class Choices:
    """What the items page's filters offer for a run."""

    graders: list
    models: list
    strata: dict  # key -> values
    error_kinds: list
    safeguards: list
    judges: dict  # grader -> its judge models (the item page's lookups)


def _number(text: str | None) -> float | None:
    try:
        v = float(text or "")
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _after(text: str, sort: str) -> tuple | None:
    """The key of the page before's last row, as the next-page link wrote it; None if bad."""
    score = None
    if sort != "item":
        score_text, _, text = text.partition("|")
        score = _number(score_text)
        if score is None:
            return None
    parts = text.rsplit("|", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    key = (parts[0], parts[1], int(parts[2]))
    return key if score is None else (score, *key)


def filter_from(q, c: Choices) -> Filter | None:
    """The filter a query asks for; a choice that is not the run's is dropped; a malformed page
    key gives None (404)."""
    key, _, value = q.get("stratum", "").partition("=")
    sort = q.get("sort") if q.get("sort") in SORTS else "item"
    after = None
    if q.get("after"):
        after = _after(q["after"], sort)
        if after is None:
            return None
    size = int(q["size"]) if q.get("size", "").isdigit() else PAGE
    return Filter(
        grader=q.get("grader") if q.get("grader") in c.graders else c.graders[0],
        model=q.get("model") if q.get("model") in c.models else None,
        show=q.get("show") if q.get("show") in SHOWS else "all",
        stratum=(key, value) if value in c.strata.get(key, ()) else None,
        score_min=_number(q.get("min")),
        score_max=_number(q.get("max")),
        error_kind=q.get("error") if q.get("error") in c.error_kinds else None,
        safeguard=q.get("safeguard") if q.get("safeguard") in c.safeguards else None,
        sort=sort,
        after=after,
        size=min(max(size, 1), 500),
    )


def _query(f: Filter) -> dict:
    """The filter as the form's fields (what a next-page link carries)."""
    return {
        "grader": f.grader,
        "model": f.model or "",
        "show": f.show,
        "stratum": "=".join(f.stratum) if f.stratum else "",
        "min": "" if f.score_min is None else f.score_min,
        "max": "" if f.score_max is None else f.score_max,
        "error": f.error_kind or "",
        "safeguard": f.safeguard or "",
        "sort": f.sort,
        "size": f.size,
    }


def _select(name: str, values, chosen, *, any_label: str | None = "all") -> str:
    options = "".join(
        f"<option{' selected' if v == chosen else ''}>{e(v)}</option>" for v in values
    )
    blank = f"<option value=''>{any_label}</option>" if any_label else ""
    return f"{name} <select name={name}>{blank}{options}</select> "


def items(run_id: str, f: Filter, *, choices: Choices, listing) -> str:
    strata = [f"{k}={v}" for k, vs in choices.strata.items() for v in vs]
    q = _query(f)
    form = (
        f"<form method=get action='/r/{e(run_id)}/items'>"
        + _select("grader", choices.graders, f.grader, any_label=None)
        + _select("model", choices.models, f.model)
        + _select("show", list(SHOWS), f.show, any_label=None)
        + _select("stratum", strata, q["stratum"])
        + _select("error", choices.error_kinds, f.error_kind)
        + _select("safeguard", choices.safeguards, f.safeguard)
        + f"score from <input name=min size=4 value='{e(q['min'])}'> to <input name=max size=4 "
        f"value='{e(q['max'])}'> "
        + _select("sort", list(SORTS), f.sort, any_label=None)
        + "<button>filter</button></form>"
    )
    rows = "".join(
        f"<tr><td><a href='/r/{e(run_id)}/i/{e(r['item_id'])}'>{e(r['item_id'])}</a></td>"
        f"<td>{e(r['model'])}</td><td>{r['epoch']}</td><td>{e(_status(r))}</td>"
        f"<td>{_num(r['score'])}</td><td>{e(_disagreement(r['detail']))}</td></tr>"
        for r in listing.rows
    )
    more = ""
    if listing.next_after:
        after = {**q, "after": "|".join(map(str, listing.next_after))}
        more = f"<p><a rel=next href='/r/{e(run_id)}/items?{e(urlencode(after))}'>next page</a></p>"
    hint = (
        "<p class=muted>No safeguard flags recorded: run <code>holdout check</code> first.</p>"
        if not choices.safeguards
        else ""
    )
    return (
        f"<p><a href='/'>runs</a> · <a href='/r/{e(run_id)}'>{e(run_id)}</a></p><h1>Items</h1>"
        f"{form}{hint}<table id=items><tr><th>item</th><th>model</th><th>epoch</th><th>status</th>"
        f"<th>score</th><th>judges</th></tr>{rows or '<tr><td colspan=6>none</td></tr>'}"
        f"</table>{more}"
    )


def compare_form(runs: list, a: str | None, b: str | None, *, problem: str = "") -> str:
    return (
        "<p><a href='/'>runs</a></p><h1>Compare two runs</h1><form method=get action=/compare>"
        + _select("a", runs, a, any_label=None)
        + _select("b", runs, b, any_label=None)
        + "<button>compare</button></form>"
        + (f"<p class=problem>{e(problem)}</p>" if problem else "")
    )


def compare(diff: dict) -> str:
    """Per model: b minus a on the items both runs scored, with its paired CI; the items whose
    score changed most (links to both runs' item pages)."""
    a, b = diff["run_a"], diff["run_b"]
    rows, changed = "", ""
    for model, d in diff["models"].items():
        rows += (
            f"<tr><td>{e(model)}</td><td>{d['n']}</td><td>{d['mean_a']:.3f}</td>"
            f"<td>{d['mean_b']:.3f}</td><td>{d['difference']:+.3f}"
            f"{' *' if d['separated'] else ''}</td><td>[{d['ci_low']:+.3f}, "
            f"{d['ci_high']:+.3f}]</td><td>{d['better']}</td><td>{d['worse']}</td></tr>"
        )
        changed += "".join(
            f"<tr><td>{e(model)}</td><td>{e(c['item_id'])}</td><td>{_num(c['a'])}</td>"
            f"<td>{_num(c['b'])}</td><td><a href='/r/{e(a)}/i/{e(c['item_id'])}'>in {e(a)}</a> · "
            f"<a href='/r/{e(b)}/i/{e(c['item_id'])}'>in {e(b)}</a></td></tr>"
            for c in d["changed"]
        )
    notes = ""
    if diff["pool_a"] != diff["pool_b"]:
        notes += (
            f"<p>Pools differ ({e(diff['pool_a'])}, {e(diff['pool_b'])}): shared items only.</p>"
        )
    if diff["edited_between_runs"]:
        notes += f"<p>{diff['edited_between_runs']} item(s) edited between the runs left out.</p>"
    return (
        f"<h2>{e(b)} minus {e(a)}, grader {e(diff['grader'])}</h2>{notes}<table id=compare><tr>"
        f"<th>model</th><th>items</th><th>{e(a)}</th><th>{e(b)}</th><th>difference</th>"
        "<th>paired 95% CI</th><th>up</th><th>down</th></tr>"
        f"{rows}</table><h2>Items that changed most</h2><table id=changed><tr><th>model</th>"
        f"<th>item</th><th>{e(a)}</th><th>{e(b)}</th><th></th></tr>{changed}</table>"
    )


def _status(row: dict) -> str:
    if row["call_error"]:
        return f"call failed: {row['call_error']}"
    return row["status"] or "not graded"


def _disagreement(detail: dict) -> str:
    if "consistent" in detail:
        return "consistent" if detail["consistent"] else "flips with the order"
    if "disagreement" in detail:
        return f"gap {detail['disagreement']:.2f}"
    return ""


def item(
    run_id: str,
    item,
    *,
    outputs: list,
    grades: list,
    judge_calls: list,
    decisions: list,
    exposure: int | None,
) -> str:
    conversation = "".join(
        f"<h3>{e(role)}</h3><pre dir=auto>{e(reveal(text))}</pre>" for role, text in item.messages
    )
    reference = (
        f"<h3>reference</h3><pre dir=auto>{e(reveal(item.reference))}</pre>"
        if item.reference is not None
        else ""
    )
    cells = "".join(
        f"<td><b>{e(o.model)}</b> (epoch {o.epoch}){'' if o.ok else ' error: ' + e(o.error_kind)}"
        f"<pre dir=auto>{e(reveal(o.output)) if o.ok and o.output is not None else ''}</pre></td>"
        for o in outputs
    )
    grade_rows = "".join(
        f"<tr><td>{e(g['grader'])}</td><td>{e(g['model'])}</td><td>{g['epoch']}</td>"
        f"<td>{e(g['status'])}</td><td>{_num(g['score'])}</td>"
        f"<td><pre>{e(_verdicts(g['detail']))}</pre></td></tr>"
        for g in grades
    )
    judges = "".join(
        f"<tr><td>{e(c.run_id.rsplit('/', 1)[-1])}</td><td>{e(c.model)}</td>"
        f"<td>{e(c.item_id)}</td><td><pre dir=auto>{_answer(c)}</pre></td></tr>"
        for c in judge_calls
    )
    people = "".join(
        f"<tr><td>{e(d['reviewer'])}</td><td>{e(d['model'])}</td><td>{e(d['scores'])}</td>"
        f"<td>{e(d['flag'] or '')}</td><td><pre dir=auto>{e(d['comment'] or '')}</pre></td></tr>"
        for d in decisions
    )
    return (
        f"<p><a href='/'>runs</a> · <a href='/r/{e(run_id)}'>{e(run_id)}</a> · "
        f"<a href='/r/{e(run_id)}/items'>items</a></p><h1>Item {e(item.id)}</h1>"
        + (
            f"<p class=muted>sent to providers {exposure} time(s) (exposure ledger)</p>"
            if exposure is not None
            else ""
        )
        + conversation
        + reference
        + f"<h2>Outputs</h2><table id=outputs><tr>{cells}</tr></table>"
        + "<h2>Grades</h2><table id=grades><tr><th>grader</th><th>model</th><th>epoch</th>"
        "<th>status</th><th>score</th><th>verdicts (both orders) or criteria</th></tr>"
        f"{grade_rows}</table>"
        + "<h2>Judges' answers</h2><table id=judges><tr><th>grader</th><th>judge</th><th>key</th>"
        f"<th>answer</th></tr>{judges}</table>"
        + "<h2>Human review</h2><table><tr><th>reviewer</th><th>model</th><th>scores</th>"
        f"<th>flag</th><th>comment</th></tr>{people or '<tr><td colspan=5>none</td></tr>'}</table>"
    )


def _verdicts(detail: dict) -> str:
    shown = detail.get("verdicts") or detail.get("criteria") or {}
    return json.dumps(shown, ensure_ascii=False)


def _answer(call) -> str:
    if call.ok and call.output is not None:
        return e(reveal(call.output))
    return e(call.error_kind or "")
