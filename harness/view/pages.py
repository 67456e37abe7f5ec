"""The maintainers' view's pages as HTML, from data the app gathered: every value escaped, text
shown `dir=auto` (Arabic and Hebrew read right to left), nothing but links and one form of
filters."""

from __future__ import annotations

import html
import json
from urllib.parse import urlencode

from ..sealed import reveal
from .queries import SHOWS


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
    )


def run(run_id: str, info: dict, figures: dict) -> str:
    models = "".join(
        f"<tr><td>{e(m)}</td><td>{f['calls']}</td><td>{e(_errors(f['errors']))}</td>"
        f"<td>{f['cost_usd']:.4f}</td></tr>"
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
        f"<th>cost $</th></tr>{models}</table>"
        "<h2>Grades</h2><table><tr><th>grader</th><th>model</th><th>graded</th><th>not graded</th>"
        f"<th>mean</th><th></th></tr>{graders}</table>"
    )


def _errors(kinds: dict) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"


def items(run_id: str, *, grader: str, graders: list, models: list, query: dict, listing) -> str:
    options = lambda values, chosen: "".join(  # noqa: E731
        f"<option{' selected' if v == chosen else ''}>{e(v)}</option>" for v in values
    )
    form = (
        f"<form method=get action='/r/{e(run_id)}/items'>grader <select name=grader>"
        f"{options(graders, grader)}</select> model <select name=model><option value=''>all"
        f"</option>{options(models, query.get('model'))}</select> show <select name=show>"
        f"{options(list(SHOWS), query.get('show', 'all'))}</select> <button>filter</button></form>"
    )
    rows = "".join(
        f"<tr><td><a href='/r/{e(run_id)}/i/{e(r['item_id'])}'>{e(r['item_id'])}</a></td>"
        f"<td>{e(r['model'])}</td><td>{r['epoch']}</td><td>{e(r['status'])}</td>"
        f"<td>{_num(r['score'])}</td><td>{e(_disagreement(r['detail']))}</td></tr>"
        for r in listing.rows
    )
    more = ""
    if listing.next_after:
        after = {**query, "after": "|".join(map(str, listing.next_after))}
        more = f"<p><a rel=next href='/r/{e(run_id)}/items?{e(urlencode(after))}'>next page</a></p>"
    return (
        f"<p><a href='/'>runs</a> · <a href='/r/{e(run_id)}'>{e(run_id)}</a></p><h1>Items</h1>"
        f"{form}<table id=items><tr><th>item</th><th>model</th><th>epoch</th><th>status</th>"
        f"<th>score</th><th>judges</th></tr>{rows or '<tr><td colspan=6>none</td></tr>'}"
        f"</table>{more}"
    )


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
