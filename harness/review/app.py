"""The reviewers' web app: one assigned item at a time, server-rendered, no script.

Held-out text may be shown here, to the reviewer it is assigned to, and nowhere else: URLs carry
only opaque assignment ids, every response is `Cache-Control: no-store` with a strict CSP and no
version banner, there is no access log, and error pages (aiohttp's own parser refusals included)
say nothing about what failed. Models are never named. A login link only opens a landing page; its
POST spends the link. A form is accepted only with the token derived from the reviewer's own
session and, when the browser states one, the Origin reviewers use (`--public-url` behind a TLS
proxy, where the cookie is also `Secure`), so another site cannot act in a reviewer's name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import re
from urllib.parse import urlsplit

from aiohttp import web

from ..database import open_database
from ..sealed import reveal
from ..storeschema import STORE_SCHEMA
from . import decisions, reviewers, routing, specs

COOKIE = "holdout_review"
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Server": "holdout",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:1.5rem auto;"
    "padding:0 1rem;color:#1d2330}"
    "pre{white-space:pre-wrap;background:#f5f6f9;padding:.8rem;border-radius:6px}"
    "fieldset{border:1px solid #dde;margin:.6rem 0}"
    "label{margin-right:1rem}"
    ".err{color:#b3261e}"
    ".muted{color:#5a6275}"
    "button{font-size:1rem;padding:.4rem 1.2rem}"
    ".out{float:right}"
)
ASSIGNMENT = re.compile(r"/a/([\w-]{1,80})")
log = logging.getLogger("holdout.review")


def page(title: str, body: str, status: int = 200, *, css: str = CSS) -> web.Response:
    return web.Response(
        text="<!doctype html><html lang=en><head><meta "
        f"charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{css}</style></head><body>{body}</body></html>",
        content_type="text/html",
        status=status,
        headers=HEADERS,
    )


def see_other(where: str) -> web.Response:
    return web.Response(status=303, headers={**HEADERS, "Location": where})


NOT_AVAILABLE = ("Not available", "<p>Not available.</p>")


SHUTDOWN_GRACE_S = 3.0  # a page or a saved decision takes milliseconds


class _GuardedRequestHandler(web.RequestHandler):
    """aiohttp's own error pages (a request line or header over the limits, a malformed request)
    would answer without our headers, echo the start of the request and log it at ERROR: here they
    get the generic page and a log line with the status only."""

    def handle_error(
        self, request, status: int = 500, exc=None, message=None
    ) -> web.StreamResponse:
        log.warning("refused a malformed request (HTTP %d)", status)
        resp = page(*NOT_AVAILABLE, status=status if 400 <= status < 600 else 400)
        resp.force_close()
        return resp


class GuardedServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedApp:
    """What the reviewers' app and the maintainers' view share: aiohttp's low-level server (no
    access log), the subclass's `_route`, and our error pages for everything, with no detail of a
    failure reaching the page or the log."""

    name = "review"
    failure = "<p>Something went wrong; nothing was saved. Reload to try again.</p>"
    render = staticmethod(page)

    def server(self) -> web.Server:
        return GuardedServer(self.handle, access_log=None)

    async def serve(self, host: str, port: int) -> None:
        # on Ctrl-C or SIGTERM, a request still in progress gets this long, not aiohttp's 60 s
        runner = web.ServerRunner(self.server(), shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def handle(self, request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except web.HTTPException as e:
            return self.render(*NOT_AVAILABLE, status=e.status)
        except Exception:  # noqa: BLE001
            log.error("a %s page failed", self.name)
            return self.render("Error", self.failure, 500)

    async def _route(self, request) -> web.StreamResponse:
        raise NotImplementedError

    def _public(self, public_url: str | None) -> None:
        """Behind a TLS proxy: the origin browsers send, and whether cookies are `Secure`."""
        public = urlsplit(public_url) if public_url else None
        self.origin = f"{public.scheme}://{public.netloc}" if public else None
        self.secure = bool(public and public.scheme == "https")

    def _check_origin(self, request) -> None:
        # "null": how browsers say it under Referrer-Policy: no-referrer
        origin = request.headers.get("Origin", "null")
        expected = self.origin or f"{request.scheme}://{request.host}"
        if origin != "null" and origin != expected:
            raise web.HTTPForbidden()

    def _signed_in(self, cookie: str, session: str, *, to: str, hours: float) -> web.Response:
        """The redirect that sets a new session's cookie (http-only, same-site strict)."""
        resp = see_other(to)
        resp.set_cookie(
            cookie,
            session,
            httponly=True,
            samesite="Strict",
            max_age=int(hours * 3600),
            secure=self.secure,
            path="/",
        )
        return resp


class ReviewApp(GuardedApp):
    def __init__(
        self,
        location,
        contexts: dict,
        criteria: list[dict],
        *,
        seal_comment=None,
        public_url: str | None = None,
    ):
        self.db = open_database(location, STORE_SCHEMA)
        # run_id -> (items, outputs): sealed text, opened only to render a page
        self.contexts = contexts
        self.criteria = criteria
        self.seal_comment = seal_comment  # held-out runs: comments stored encrypted
        self._public(public_url)

    async def _route(self, request) -> web.StreamResponse:
        path, method = request.path, request.method
        get = method in ("GET", "HEAD")
        if path == "/login" and get:
            return self.landing(request)
        if path == "/login" and method == "POST":
            return await self.login(request)
        if path == "/logout" and method == "POST":
            return await self.logout(request)
        if path in ("/", "/next") and get:
            return self.next(request)
        m = ASSIGNMENT.fullmatch(path)
        if m and get:
            return self.show(request, m.group(1))
        if m and method == "POST":
            return await self.post(request, m.group(1))
        return page(*NOT_AVAILABLE, status=404)

    # -- pages --------------------------------------------------------------------
    def who(self, request) -> str:
        reviewer = reviewers.reviewer_for(self.db, request.cookies.get(COOKIE))
        if reviewer is None:
            raise web.HTTPUnauthorized()
        return reviewer

    @staticmethod
    def landing(request) -> web.Response:
        """What a login link opens. Nothing is spent here: mail scanners and link previewers fetch
        links, and only the reviewer's own click (a POST) exchanges the token for a session."""
        token = html.escape(request.query.get("token", ""), quote=True)
        return page(
            "Sign in",
            "<p>This is your one-time link to the review queue.</p>"
            f'<form method=post action=/login><input type=hidden name=token value="{token}">'
            "<button type=submit autofocus>Sign in</button></form>"
            "<p class=muted>The link works once and expires; ask the maintainers for a new one "
            "if it fails.</p>",
        )

    async def login(self, request) -> web.Response:
        form = await request.post()
        self._check_origin(request)
        session = reviewers.login(self.db, str(form.get("token", "")))
        if session is None:
            return page(
                "Login",
                "<p>This login link is not valid (used already, expired or revoked). "
                "Ask for a new one.</p>",
                401,
            )
        return self._signed_in(COOKIE, session, to="/next", hours=reviewers.SESSION_HOURS)

    async def logout(self, request) -> web.Response:
        form = await request.post()
        self._check_form(request, form)
        reviewers.logout(self.db, request.cookies.get(COOKIE))
        resp = page("Signed out", "<p>You are signed out. Use a new login link to come back.</p>")
        resp.del_cookie(COOKIE, path="/")
        return resp

    def next(self, request) -> web.Response:
        reviewer = self.who(request)
        a = routing.next_assignment(self.db, reviewer, self.contexts)
        if a is None:
            return page(
                "Done",
                f"<p>Thank you, {html.escape(reviewer)}: nothing is waiting for you.</p>"
                + self._logout_form(request),
            )
        return see_other(f"/a/{a['id']}")

    @staticmethod
    def csrf_token(request) -> str:
        """Only a page holding the session cookie can know it; nothing is stored."""
        return hashlib.sha256(
            b"holdout-review-form:" + request.cookies.get(COOKIE, "").encode()
        ).hexdigest()

    def _logout_form(self, request) -> str:
        return (
            "<form method=post action=/logout class=out><input type=hidden name=csrf "
            f"value={self.csrf_token(request)}>"
            "<button type=submit>Sign out</button></form>"
        )

    def _check_form(self, request, form) -> None:
        self._check_origin(request)
        if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf_token(request)):
            raise web.HTTPForbidden()

    def _mine(self, request, assignment_id: str) -> tuple[str, dict]:
        reviewer = self.who(request)
        row = self.db.execute(
            "SELECT id, run_id, model, item_id, epoch, done, baseline FROM assignments "
            "WHERE id=? AND reviewer=?",
            (assignment_id, reviewer),
        ).fetchone()
        # unknown, someone else's, another run: nothing shown
        if row is None or row[1] not in self.contexts:
            raise web.HTTPNotFound()
        return reviewer, dict(
            zip(("id", "run_id", "model", "item_id", "epoch", "done", "baseline"), row)
        )

    def _form(self, request, a: dict, error: str = "") -> web.Response:
        items, outputs = self.contexts[a["run_id"]]
        item = items[a["item_id"]]
        output = outputs.get((a["model"], a["item_id"], a["epoch"]))
        left = self.db.execute(
            "SELECT COUNT(*) FROM assignments WHERE reviewer=(SELECT reviewer FROM assignments "
            "WHERE id=?) "
            "AND done IS NULL",
            (a["id"],),
        ).fetchone()[0]
        fields = []
        for n, c in enumerate(self.criteria):
            lo, hi = c["scale"]
            radios = "".join(
                f'<label><input type=radio name="{c["name"]}" value="{v}" required'
                f"{' autofocus' if n == 0 and v == lo else ''}> {v}</label>"
                for v in range(lo, hi + 1)
            )
            fields.append(
                f"<fieldset><legend><b>{html.escape(c['name'])}</b> <span class=muted>"
                f"{html.escape(c.get('guide', ''))}</span></legend>{radios}</fieldset>"
            )
        body = (
            self._logout_form(request)
            + f"<p class=muted>{left} item(s) waiting for you</p>"
            + (f"<p class=err>{html.escape(error)}</p>" if error else "")
            + f"<h3>Request</h3><pre dir=auto>{html.escape(reveal(item.prompt))}</pre>"
            + self._responses(a, output, outputs)
            + f"<form method=post action='/a/{a['id']}'>"
            + f"<input type=hidden name=csrf value={self.csrf_token(request)}>{''.join(fields)}"
            + "<fieldset><legend>Something wrong with this item?</legend><label><input "
            "type=radio name=flag value='' checked> no</label>"
            + "<label><input type=radio name=flag value=ambiguous> ambiguous</label>"
            + "<label><input type=radio name=flag value=broken> broken</label><br>"
            + "<textarea name=comment rows=2 cols=60 maxlength=2000 placeholder='comment for the "
            "maintainers'></textarea></fieldset>"
            + "<button type=submit>Save and next (Enter)</button></form>"
        )
        return page("Review", body, 400 if error else 200)

    @staticmethod
    def _responses(a: dict, output, outputs: dict) -> str:
        shown = lambda o: html.escape(reveal(o) if o is not None else "(missing)")  # noqa: E731
        if not a.get("baseline"):
            return f"<h3>Response</h3><pre dir=auto>{shown(output)}</pre>"
        base = outputs.get((a["baseline"], a["item_id"], a["epoch"]))
        # order randomized, never named
        first, second = (output, base) if specs.swapped(a["id"]) else (base, output)
        return (
            f"<h3>Response 1</h3><pre dir=auto>{shown(first)}</pre><h3>Response 2</h3><pre "
            f"dir=auto>{shown(second)}</pre>"
        )

    def show(self, request, assignment_id: str) -> web.Response:
        _, a = self._mine(request, assignment_id)
        if a["done"] is not None:
            return see_other("/next")
        return self._form(request, a)

    async def post(self, request, assignment_id: str) -> web.Response:
        reviewer, a = self._mine(request, assignment_id)
        form = await request.post()
        self._check_form(request, form)
        scores = {c["name"]: form.get(c["name"]) for c in self.criteria}
        try:
            decisions.submit(
                self.db,
                reviewer,
                a["id"],
                scores=scores,
                criteria=self.criteria,
                flag=form.get("flag") or None,
                comment=str(form.get("comment", "")),
                seal=self.seal_comment,
            )
        except ValueError as e:
            return self._form(request, a, str(e))
        return see_other("/next")
