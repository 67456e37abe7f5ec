"""The reviewers' web app: one assigned item at a time, server-rendered, no script.

Held-out text may be shown here, to the reviewer it is assigned to, and nowhere else: URLs carry
only opaque assignment ids, every response is `Cache-Control: no-store`, there is no access log,
and error pages say nothing about what failed. Models are never named. A form is accepted only
with the token derived from the reviewer's own session (and, when the browser states one, an
Origin of this server), so another site cannot submit scores in a reviewer's name.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import sqlite3

from aiohttp import web

from ..sealed import reveal
from . import queue

COOKIE = "holdout_review"
HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
CSS = ("body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:1.5rem auto;padding:0 1rem;color:#1d2330}"
       "pre{white-space:pre-wrap;background:#f5f6f9;padding:.8rem;border-radius:6px}fieldset{border:1px solid #dde;"
       "margin:.6rem 0}label{margin-right:1rem}.err{color:#b3261e}.muted{color:#5a6275}button{font-size:1rem;padding:.4rem 1.2rem}")


def page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
                        f"<style>{CSS}</style></head><body>{body}</body></html>", content_type="text/html",
                        status=status, headers=HEADERS)


@web.middleware
async def guard(request, handler):
    """No detail of a failure ever reaches the page or the log."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status in (302, 303):
            raise
        return page("Not available", "<p>Not available.</p>", e.status)
    except Exception:  # noqa: BLE001
        logging.getLogger("holdout.review").error("a review page failed")
        return page("Error", "<p>Something went wrong; nothing was saved. Reload to try again.</p>", 500)


class ReviewApp:
    def __init__(self, db_path, contexts: dict, criteria: list[dict], *, seal_comment=None):
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        queue.setup(self.db)
        self.contexts = contexts          # run_id -> (items, outputs): sealed text, opened only to render a page
        self.criteria = criteria
        self.seal_comment = seal_comment  # held-out runs: comments stored encrypted

    def app(self) -> web.Application:
        app = web.Application(middlewares=[guard])
        app.router.add_get("/login", self.login)
        app.router.add_get("/next", self.next)
        app.router.add_get("/a/{id}", self.show)
        app.router.add_post("/a/{id}", self.post)
        app.router.add_get("/", self.next)
        return app

    def who(self, request) -> str:
        reviewer = queue.reviewer_for(self.db, request.cookies.get(COOKIE))
        if reviewer is None:
            raise web.HTTPUnauthorized()
        return reviewer

    async def login(self, request):
        session = queue.login(self.db, request.query.get("token", ""))
        if session is None:
            return page("Login", "<p>This login link is not valid (or was used already). Ask for a new one.</p>", 401)
        resp = web.HTTPSeeOther("/next", headers=HEADERS)
        resp.set_cookie(COOKIE, session, httponly=True, samesite="Strict", max_age=12 * 3600)
        raise resp

    async def next(self, request):
        reviewer = self.who(request)
        a = queue.next_assignment(self.db, reviewer)
        if a is None:
            return page("Done", f"<p>Thank you, {html.escape(reviewer)}: nothing is waiting for you.</p>")
        raise web.HTTPSeeOther(f"/a/{a['id']}", headers=HEADERS)

    @staticmethod
    def csrf_token(request) -> str:
        """Only a page holding the session cookie can know it; nothing is stored."""
        return hashlib.sha256(b"holdout-review-form:" + request.cookies.get(COOKIE, "").encode()).hexdigest()

    def _check_form(self, request, form) -> None:
        origin = request.headers.get("Origin", "null")   # "null": how browsers say it under Referrer-Policy: no-referrer
        if origin != "null" and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden()
        if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf_token(request)):
            raise web.HTTPForbidden()

    def _mine(self, request) -> tuple[str, dict]:
        reviewer = self.who(request)
        row = self.db.execute("SELECT id, run_id, model, item_id, epoch, done, baseline FROM assignments "
                              "WHERE id=? AND reviewer=?", (request.match_info["id"], reviewer)).fetchone()
        if row is None:                      # unknown, or someone else's: the same answer, nothing shown
            raise web.HTTPNotFound()
        return reviewer, dict(zip(("id", "run_id", "model", "item_id", "epoch", "done", "baseline"), row))

    def _form(self, request, a: dict, error: str = "") -> web.Response:
        items, outputs = self.contexts[a["run_id"]]
        item = items[a["item_id"]]
        output = outputs.get((a["model"], a["item_id"], a["epoch"]))
        left = self.db.execute("SELECT COUNT(*) FROM assignments WHERE reviewer=(SELECT reviewer FROM assignments WHERE id=?) "
                               "AND done IS NULL", (a["id"],)).fetchone()[0]
        fields = []
        for n, c in enumerate(self.criteria):
            lo, hi = c["scale"]
            radios = "".join(f'<label><input type=radio name="{c["name"]}" value="{v}" required'
                             f'{" autofocus" if n == 0 and v == lo else ""}> {v}</label>' for v in range(lo, hi + 1))
            fields.append(f'<fieldset><legend><b>{html.escape(c["name"])}</b> <span class=muted>'
                          f'{html.escape(c.get("guide", ""))}</span></legend>{radios}</fieldset>')
        body = (f"<p class=muted>{left} item(s) waiting for you</p>"
                + (f"<p class=err>{html.escape(error)}</p>" if error else "")
                + f"<h3>Request</h3><pre>{html.escape(reveal(item.prompt))}</pre>"
                + self._responses(a, output, outputs)
                + f"<form method=post action='/a/{a['id']}'>"
                + f"<input type=hidden name=csrf value={self.csrf_token(request)}>{''.join(fields)}"
                + "<fieldset><legend>Something wrong with this item?</legend><label><input type=radio name=flag value='' checked> no</label>"
                + "<label><input type=radio name=flag value=ambiguous> ambiguous</label>"
                + "<label><input type=radio name=flag value=broken> broken</label><br>"
                + "<textarea name=comment rows=2 cols=60 maxlength=2000 placeholder='comment for the maintainers'></textarea></fieldset>"
                + "<button type=submit>Save and next (Enter)</button></form>")
        return page("Review", body, 400 if error else 200)

    @staticmethod
    def _responses(a: dict, output, outputs: dict) -> str:
        shown = lambda o: html.escape(reveal(o) if o is not None else "(missing)")  # noqa: E731
        if not a.get("baseline"):
            return f"<h3>Response</h3><pre>{shown(output)}</pre>"
        base = outputs.get((a["baseline"], a["item_id"], a["epoch"]))
        first, second = (output, base) if queue.swapped(a["id"]) else (base, output)   # order randomized, never named
        return f"<h3>Response 1</h3><pre>{shown(first)}</pre><h3>Response 2</h3><pre>{shown(second)}</pre>"

    async def show(self, request):
        _, a = self._mine(request)
        if a["done"] is not None:
            raise web.HTTPSeeOther("/next", headers=HEADERS)
        return self._form(request, a)

    async def post(self, request):
        reviewer, a = self._mine(request)
        form = await request.post()
        self._check_form(request, form)
        scores = {c["name"]: form.get(c["name"]) for c in self.criteria}
        try:
            queue.submit(self.db, reviewer, a["id"], scores, self.criteria, form.get("flag") or None,
                         str(form.get("comment", "")), seal=self.seal_comment)
        except ValueError as e:
            return self._form(request, a, str(e))
        raise web.HTTPSeeOther("/next", headers=HEADERS)
