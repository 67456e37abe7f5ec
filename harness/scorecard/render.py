"""The scorecard as one self-contained HTML page: inline SVG plots, no external assets, opens
offline."""

from __future__ import annotations

import html
import json

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:980px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.3rem}
.meta{color:#5a6275}table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #eef;text-align:right}
th:first-child,td:first-child{text-align:left}td,th,h1,p{unicode-bidi:plaintext}.note{color:#5a6275;font-size:12px}svg text{font:12px system-ui,sans-serif}
.flag{color:#b3261e;font-size:12px}.sig{font-family:ui-monospace,monospace;font-size:12px;color:#5a6275;word-break:break-all}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f}"


def _score_chart(card: dict) -> str:
    grader, metric = card["primary"]["grader"], card["primary"]["metric"]
    if not grader:
        return "<p class=note>No grader results yet.</p>"
    rows = [
        (m, e["graders"].get(grader)) for m, e in card["models"].items() if e["graders"].get(grader)
    ]
    field = card["field"].get(grader, {})
    width, left, row_h = 820, 220, 34
    height = 40 + row_h * len(rows)
    x = lambda v: left + v * (width - left - 30)  # noqa: E731  scores and win rates live in [0, 1]
    parts = [
        '<svg id="score-chart" role="img" aria-label="scores with 95% confidence intervals" '
        f'width="{width}" height="{height}">'
    ]
    for t in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{x(t)}" y1="20" x2="{x(t)}" y2="{height - 10}" stroke="#eef"/>'
            f'<text x="{x(t)}" y="14" text-anchor="middle" fill="#889">{t:g}</text>'
        )
    for label, key, color, anchor, dx in (
        ("field median", "median", "#9aa3b5", "end", -4),
        ("field best", "best", "#d08a2e", "start", 4),
    ):
        if key in field:
            parts.append(
                f'<line x1="{x(field[key])}" y1="20" x2="{x(field[key])}" y2="{height - 10}" '
                f'stroke="{color}" '
                f'stroke-dasharray="4 3"/><text x="{x(field[key]) + dx}" y="{height - 12}" '
                f'text-anchor="{anchor}" '
                f'fill="{color}">{label}</text>'
            )
    for i, (m, g) in enumerate(rows):
        y = 34 + i * row_h
        v, lo, hi = g.get(metric), g.get("ci_low"), g.get("ci_high")
        parts.append(f'<text x="{left - 10}" y="{y + 4}" text-anchor="end">{_e(m)}</text>')
        if v is not None:
            parts.append(
                f'<rect x="{x(0)}" y="{y - 8}" width="{x(v) - x(0)}" height="16" fill="#4b7bd1" '
                'opacity=".8"/>'
                f'<line x1="{x(lo)}" y1="{y}" x2="{x(hi)}" y2="{y}" stroke="#1d2330" '
                'stroke-width="2"/>'
                f'<line x1="{x(lo)}" y1="{y - 6}" x2="{x(lo)}" y2="{y + 6}" stroke="#1d2330"/>'
                f'<line x1="{x(hi)}" y1="{y - 6}" x2="{x(hi)}" y2="{y + 6}" stroke="#1d2330"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _heat(v: float) -> str:
    """White to blue for 0..1."""
    r, g, b = (int(255 - (255 - c) * v) for c in (45, 100, 200))
    return f"rgb({r},{g},{b})"


def _heatmap(card: dict) -> str:
    grader = card["primary"]["grader"]
    blocks = []
    for m, e in card["models"].items():
        segs = (e["graders"].get(grader) or {}).get("segments") or {}
        for key, values in segs.items():
            cells = "".join(
                '<td style="background:#eee" '
                f'title="suppressed">n&lt;{card["min_segment_size"]}</td>'
                if s.get("suppressed")
                else f'<td style="background:{_heat(s["mean"])};color:{"#fff" if s["mean"] > 0.6 else "#1d2330"}" '
                f'title="n={s["n"]}, 95% CI '
                f'{s["ci_low"]:.2f}-{s["ci_high"]:.2f}">{s["mean"]:.2f}</td>'
                for s in values.values()
            )
            head = "".join(f"<th>{_e(v)}</th>" for v in values)
            blocks.append(
                f"<table class=heatmap><tr><th>{_e(m)} by "
                f"{_e(key)}</th>{head}</tr><tr><td>score</td>{cells}</tr></table>"
            )
    return (
        "".join(blocks)
        or "<p class=note>No segments (the suite declares no strata, or nothing was graded).</p>"
    )


def _frontier(card: dict) -> str:
    grader, metric = card["primary"]["grader"], card["primary"]["metric"]
    pts = [
        (m, e["cost"]["per_1k_items_usd"] or 0.0, (e["graders"].get(grader) or {}).get(metric))
        for m, e in card["models"].items()
    ]
    pts = [p for p in pts if p[2] is not None]
    if not pts:
        return "<p class=note>No scores to plot.</p>"
    width, height, pad = 760, 300, 50
    max_cost = max(c for _, c, _ in pts) or 1.0
    x = lambda c: pad + c / max_cost * (width - 2 * pad)  # noqa: E731
    y = lambda s: height - pad + 10 - s * (height - 2 * pad)  # noqa: E731
    parts = [
        f'<svg id="frontier" role="img" aria-label="cost versus score" width="{width}" '
        f'height="{height}">',
        f'<line x1="{pad}" y1="{y(0)}" x2="{width - pad}" y2="{y(0)}" stroke="#889"/>',
        f'<line x1="{pad}" y1="{y(0)}" x2="{pad}" y2="{y(1)}" stroke="#889"/>',
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" fill="#5a6275">cost per 1k '
        f"items ($), max {max_cost:.3g}</text>",
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
        'text-anchor="middle" fill="#5a6275">score</text>',
    ]
    field = card["field"].get(grader, {})
    if "best" in field:
        parts.append(
            f'<line x1="{pad}" y1="{y(field["best"])}" x2="{width - pad}" '
            f'y2="{y(field["best"])}" stroke="#d08a2e" '
            f'stroke-dasharray="4 3"/><text x="{width - pad}" y="{y(field["best"]) - 4}" '
            'text-anchor="end" fill="#d08a2e">field best</text>'
        )
    for m, c, s in pts:
        parts.append(
            f'<circle cx="{x(c)}" cy="{y(s)}" r="6" fill="#4b7bd1"/><text x="{x(c) + 9}" '
            f'y="{y(s) + 4}">{_e(m)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _human(card: dict) -> str:
    rows = []
    for m, e in card["models"].items():
        h = e.get("human_review")
        if not h:
            continue
        for c, mean in h["mean_scores"].items():
            a = (h["judge_human"].get(c) or {}).get("krippendorff_alpha")
            segs = "; ".join(
                f"{_e(k.split('/')[0])} {_e(v)}: "
                + ("n&lt;min" if s.get("suppressed") else f"{s['mean']:.2f}")
                for k, vals in h["segments"].items()
                if k.endswith("/" + c)
                for v, s in vals.items()
            )
            rows.append(
                f"<tr><td>{_e(m)}</td><td>{_e(c)}</td><td>{mean:.2f}</td><td>{'-' if a is None else f'{a:.2f}'}</td>"
                f"<td style='text-align:left'>{segs or '-'}</td></tr>"
            )
    if not rows:
        return "<p class=note>No human review in this run.</p>"
    return (
        "<table><tr><th>model</th><th>criterion</th><th>people's mean</th><th>judge vs people "
        "(alpha)</th>"
        f"<th>by reviewer profile</th></tr>{''.join(rows)}</table>"
    )


def _exposure(pool: dict) -> str:
    if not pool.get("heldout"):
        return "<p class=note>A public pool: exposure is not tracked.</p>"
    rows = "".join(
        f"<tr><td>{_e(p)}</td><td>{v['items']}</td><td>{v['sends']}</td></tr>"
        for p, v in (pool.get("exposure") or {}).items()
    )
    return f"<table><tr><th>provider</th><th>items seen</th><th>sends</th></tr>{rows}</table>"


def _all_graders(card: dict) -> str:
    """Every grader's result for every model: the headline is one of them, not the only one."""
    rows = []
    for m, e in card["models"].items():
        for name, g in e["graders"].items():
            pairwise = g["kind"] == "pairwise"
            v = g.get("win_rate" if pairwise else "mean")
            n = g.get("n") if pairwise else g.get("graded")
            lc = (
                f"{_pct(g.get('lc_win_rate'))} ± {_pct(g.get('lc_se'))}"
                if g.get("lc_win_rate") is not None
                else "-"
            )
            bt = g.get("bradley_terry") or {}
            rating = f"{bt['rating']:.0f} [{bt['ci_low']:.0f}, {bt['ci_high']:.0f}]" if bt else "-"
            score = (
                f"{_pct(v)} [{_pct(g.get('ci_low'))}, {_pct(g.get('ci_high'))}]"
                if v is not None
                else f"- (all {g.get('grade_errors')} grades failed)"
                if g.get("grade_errors")
                else "-"
            )
            head = " (headline)" if name == card["primary"]["grader"] else ""
            rows.append(
                f"<tr><td>{_e(m)}</td><td>{_e(name)}{head}</td><td>{'win rate vs ' + _e(g.get('baseline', '')) if pairwise else 'mean score'}"
                f"</td><td>{score}</td><td>{lc}</td><td>{rating}</td><td>{_e(n)}</td>"
                f"<td>{_e(g.get('grade_errors', 0) if not pairwise else '-')}</td></tr>"
            )
    if not rows:
        return "<p class=note>No grader results yet.</p>"
    return (
        '<table id="all-graders"><tr><th>model</th><th>grader</th><th>measure</th><th>%, 95% '
        "CI</th>"
        "<th>length-controlled</th><th>BT rating</th><th>n</th><th>grade "
        f"errors</th></tr>{''.join(rows)}</table>"
    )


def _own_compared(card: dict) -> str:
    """The lab's own models against each other, on the same items (paired CIs)."""
    rows = [
        f"<tr><td>{_e(grader)}</td><td>{_e(p['model'])}</td><td>{_e(p['versus'])}</td>"
        f"<td>{_pct(p['difference'])}{' *' if p['separated'] else ''}</td>"
        f"<td>[{_pct(p['ci_low'])}, {_pct(p['ci_high'])}]</td><td>{_e(p['n'])}</td></tr>"
        for grader, pairs in (card.get("own_models_compared") or {}).items()
        for p in pairs
        if p["n"]
    ]
    if not rows:
        return "<p class=note>Fewer than two of your models were scored on the same items.</p>"
    return (
        "<p class=note>Differences in points of %, on the items both models scored; * = the "
        "paired 95% CI leaves out 0 (the order is certain even where the two CIs overlap).</p>"
        '<table id="own-compared"><tr><th>grader</th><th>model</th><th>versus</th>'
        f"<th>difference</th><th>95% CI</th><th>items</th></tr>{''.join(rows)}</table>"
    )


def _awaiting(card: dict) -> str:
    """Calls of the lab's models still in batches at the provider: the card is not final."""
    waiting = card.get("awaiting_batches") or {}
    if not waiting:
        return ""
    listed = ", ".join(f"{_e(m)} ({n} calls)" for m, n in sorted(waiting.items()))
    return (
        f"<p class=note><b>Not final:</b> calls of {listed} were still in batches at the "
        "provider when this card was made; its figures leave them out.</p>"
    )


def _history(card: dict) -> str:
    """The lab's models on every pool version, on the card's version's scale."""
    h = card.get("history")
    rows = [
        f"<tr><td>{_e(model)}</td><td>{_e(pool)}</td><td>{_e(v['status'])}</td>"
        f"<td>{_pct(e['versions'][pool])}</td><td>{_pct(v['score'])} [{_pct(v['ci_low'])}, "
        f"{_pct(v['ci_high'])}]</td></tr>"
        for model, e in (h or {}).get("models", {}).items()
        for pool, v in e["by_version"].items()
    ]
    if not rows:
        return "<p class=note>No other pool version to compare with.</p>"
    retired = [m for m, e in h["models"].items() if e["only_retired"]]
    return (
        f"<p class=note>Each version's mean brought onto {_e(h['scale'])}'s scale through the anchor "
        f"models ({_e(h['grader'])}; 95% CI). Raw means of different versions do not compare."
        + (f" Seen only on retired versions: {_e(', '.join(retired))}." if retired else "")
        + '</p><table id="history"><tr><th>model</th><th>version</th><th>status</th>'
        f"<th>raw mean %</th><th>on the scale %</th></tr>{''.join(rows)}</table>"
    )


def _software(card: dict) -> str:
    sw = (card.get("provenance") or {}).get("software") or {}
    if not sw:
        return "-"
    sdks = ", ".join(f"{k} {v}" for k, v in (sw.get("sdks") or {}).items() if v)
    return (
        f"holdout {sw.get('holdout') or '?'}"
        + (f" ({sw['commit']})" if sw.get("commit") else "")
        + f", Python {sw.get('python')}"
        + (f", {sdks}" if sdks else "")
    )


def render_html(card: dict) -> str:
    grader, metric = card["primary"]["grader"], card["primary"]["metric"]
    rows = []
    for m, e in card["models"].items():
        g = e["graders"].get(grader) or {}
        r = e.get("rank") or {}
        rank = f"{r['rank']} ({r['best']}-{r['worst']} of {r['of']})" if r else "-"
        lc = (
            f"{_pct(g.get('lc_win_rate'))} ± {_pct(g.get('lc_se'))}"
            if g.get("lc_win_rate") is not None
            else "-"
        )
        flagged = [d.replace("_", " ") for d, r in e.get("safeguards", {}).items() if r["flagged"]]
        flag = (
            ' <span class=flag title="flagged by the gaming checks">⚑ '
            f"{_e(', '.join(flagged))}</span>"
            if flagged
            else ""
        )
        prov = ((card.get("provenance") or {}).get("models") or {}).get(m) or {}
        if prov.get("served_differs"):
            flag += (
                f' <span class=flag title="the provider said another model answered">⚑ served as '
                f"{_e(', '.join(sorted(prov['served'])))}</span>"
            )
        rows.append(
            f"<tr><td>{_e(m)}{flag}</td><td>{_pct(g.get(metric))} [{_pct(g.get('ci_low'))}, "
            f"{_pct(g.get('ci_high'))}]</td>"
            f"<td>{lc}</td><td>{rank}</td><td>{_pct(e['error_rate'])}%</td><td>{_pct(e['refusal_rate'])}%</td>"
            f"<td>${e['cost']['total_usd']:.4f}</td><td>{e['latency_s']['p50'] or 0:.2f} / "
            f"{e['latency_s']['p95'] or 0:.2f}</td></tr>"
        )
    crit = []
    for m, e in card["models"].items():
        for name, g in e["graders"].items():
            for c, v in (g.get("criteria") or {}).items():
                crit.append(
                    f"<tr><td>{_e(m)}</td><td>{_e(name)}</td><td>{_e(c)}</td><td>{v:.2f}</td></tr>"
                )
    field = "".join(
        f"<tr><td>{_e(n)}</td><td>{f['models']}</td>"
        + (
            f"<td colspan=2>not shown: {_e(f['reason'])}</td></tr>"
            if f.get("suppressed")
            else f"<td>{_pct(f['median'])}</td><td>{_pct(f['best'])}</td></tr>"
        )
        for n, f in card["field"].items()
    )
    sig = card.get("signature", {})
    data = json.dumps(card, ensure_ascii=False).replace("</", "<\\/")
    pool = card.get("pool") or {}
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>Scorecard: {_e(card["lab"])} on {_e(card["run_id"])}</title>
<style>{CSS}</style></head><body>
<h1>Scorecard for {_e(card["lab"])}</h1>
<p class=meta>run {_e(card["run_id"])} · pool {_e(pool.get("id", "-"))} ({_e(pool.get("items", "-"))} items) · generated {_e(card["generated"])} ·
primary measure: {_e(grader)} ({_e(metric)}, %)</p>
{_awaiting(card)}<table><tr><th>model</th><th>score, 95% CI</th><th>length-controlled</th><th>rank (range)</th><th>errors</th><th>refusals</th><th>cost</th><th>latency p50/p95 s</th></tr>{"".join(rows)}</table>
<p class=note>Ranks: models whose confidence intervals overlap share a rank range. Errors are counted apart from scores, never as wrong answers.</p>
<h2>Every grader</h2>{_all_graders(card)}
<h2>Your models compared</h2>{_own_compared(card)}
<h2>Scores with 95% confidence intervals</h2>{_score_chart(card)}
<h2>Across pool versions</h2>{_history(card)}
<h2>Segments</h2><p class=note>Segments with fewer than {card["min_segment_size"]} items are suppressed.</p>{_heatmap(card)}
<h2>Cost and score</h2>{_frontier(card)}
<h2>Criteria</h2><table><tr><th>model</th><th>grader</th><th>criterion</th><th>mean</th></tr>{"".join(crit) or "<tr><td colspan=4>none</td></tr>"}</table>
<h2>Human review</h2>{_human(card)}
<h2>The field</h2><p class=note>Other models in the run appear only as aggregates.</p>
<table><tr><th>grader</th><th>models</th><th>median %</th><th>best %</th></tr>{field}</table>
<h2>Exposure of the pool</h2>{_exposure(pool)}
<h2>Made with</h2><p class=sig>{_e(_software(card))}</p>
<h2>Signature</h2><p class=sig>{_e(sig.get("algorithm", "unsigned"))} {_e(sig.get("fingerprint", ""))}<br>
Check the JSON with <code>holdout verify scorecards/{_e(card["lab"])}.json</code>.</p>
<script type="application/json" id="scorecard">{data}</script>
</body></html>
"""
