"""The maintainers' web app: server-rendered, no script, in the reviewers' app's posture (sessions
from one-time links, no-store, strict CSP, no access log, generic error pages, a form accepted
only from its own origin). Only a signed-in maintainer sees a page: a reviewer's session gets 404
(the view does not exist for them), no session 401. Every held-out item page is logged (who, which
item, when) before it is sent (accesslog.py)."""

from __future__ import annotations

import html
import logging
import re
import sqlite3

from aiohttp import web

from .. import sessions
from ..review.app import CSS, GuardedApp
from ..review.app import page as review_page
from ..review.reviewers import setup
from ..sealed import reveal
from . import accesslog, figures, pages, queries

COOKIE = "holdout_view"
REVIEW_COOKIE = "holdout_review"
RUN = re.compile(r"/r/([A-Za-z0-9][\w.:@-]{0,127})")
ITEM = re.compile(r"/r/([A-Za-z0-9][\w.:@-]{0,127})/i/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})")
log = logging.getLogger("holdout.view")


TABLES = "table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.2rem .5rem}"


def page(title: str, body: str, status: int = 200) -> web.Response:
    return review_page(title, body, status, css=CSS + TABLES)


class ViewApp(GuardedApp):
    name = "view"
    failure = "<p>Something went wrong.</p>"
    render = staticmethod(page)

    def __init__(self, db_path, contexts: dict, *, vault=None, public_url: str | None = None):
        """`contexts`: run id -> its RunContext (store, pool, items); `vault`: for held-out runs
        (the access log's MACs, exposure counts, reviewers' comments)."""
        self.db = sqlite3.connect(
            db_path, isolation_level=None, check_same_thread=False, timeout=30
        )
        setup(self.db)
        self.contexts = contexts
        self.items = {run: None for run in contexts}  # loaded on first use (and their strata)
        self.vault = vault
        self._public(public_url)

    async def _route(self, request) -> web.StreamResponse:
        path, method = request.path, request.method
        get = method in ("GET", "HEAD")
        if path == "/login" and get:
            token = html.escape(request.query.get("token", ""), quote=True)
            return page(
                "Sign in",
                "<p>Your one-time link to the maintainers' view.</p><form method=post "
                f'action=/login><input type=hidden name=token value="{token}"><button '
                "type=submit autofocus>Sign in</button></form>",
            )
        if path == "/login" and method == "POST":
            return await self.login(request)
        if not get:
            raise web.HTTPNotFound()
        who = self.who(request)
        if path == "/":
            return page("Runs", pages.runs(self._runs()))
        if path == "/compare":
            return self.compare(request)
        m = ITEM.fullmatch(path)
        if m:
            return self.item(who, *m.groups())
        m = RUN.fullmatch(path.removesuffix("/items"))
        if m and m.group(1) in self.contexts:
            return (
                self.items_page(request, m.group(1))
                if path.endswith("/items")
                else self.run(m.group(1))
            )
        raise web.HTTPNotFound()

    def who(self, request) -> str:
        name = sessions.person_for(self.db, sessions.MAINTAINERS, request.cookies.get(COOKIE))
        if name is not None:
            return name
        if sessions.person_for(self.db, sessions.REVIEWERS, request.cookies.get(REVIEW_COOKIE)):
            raise web.HTTPNotFound()  # for a reviewer, the view does not exist
        raise web.HTTPUnauthorized()

    async def login(self, request) -> web.Response:
        form = await request.post()
        self._check_origin(request)
        session = sessions.login(self.db, sessions.MAINTAINERS, str(form.get("token", "")))
        if session is None:
            return page("Sign in", "<p>This link is not valid (used, expired or revoked).</p>", 401)
        return self._signed_in(COOKIE, session, to="/", hours=sessions.MAINTAINERS.session_hours)

    # -- pages --------------------------------------------------------------------
    def _runs(self) -> list[dict]:
        status = {r["run_id"]: r for r in next(iter(self.contexts.values())).store.status()}
        return [status[r] for r in self.contexts if r in status]

    def _items_of(self, run_id: str) -> dict:
        """The run's items, loaded once, with their strata in the store connection's temporary
        table."""
        if self.items[run_id] is None:
            ctx = self.contexts[run_id]
            self.items[run_id] = ctx.items()
            figures.load_strata(ctx.store.db, run_id, self.items[run_id], ctx.suite.strata)
        return self.items[run_id]

    def run(self, run_id: str) -> web.Response:
        ctx = self.contexts[run_id]
        self._items_of(run_id)
        db = ctx.store.db
        found = figures.run_figures(db, run_id)
        tables = {
            (grader, key): figures.strata_table(db, run_id, grader, key)
            for grader in ctx.store.grader_names(run_id)
            for key in ctx.suite.strata
        }
        return page(run_id, pages.run(run_id, ctx.info, found, tables=tables))

    def items_page(self, request, run_id: str) -> web.Response:
        ctx = self.contexts[run_id]
        graders = ctx.store.grader_names(run_id)
        if not graders:
            return page(run_id, "<p>Nothing graded yet.</p>")
        self._items_of(run_id)
        db = ctx.store.db
        choices = pages.Choices(
            graders=graders,
            models=ctx.store.models(run_id),
            strata=figures.stratum_values(db, run_id),
            error_kinds=queries.error_kinds(db, run_id),
            safeguards=queries.safeguard_detectors(db, run_id),
        )
        f = pages.filter_from(request.query, choices)
        if f is None:
            raise web.HTTPNotFound()
        listing = queries.grade_page(db, run_id, f)
        return page("Items", pages.items(run_id, f, choices=choices, listing=listing))

    def compare(self, request) -> web.Response:
        """Two runs (or two pool versions) of the same models, item by item: `paired.diff_runs`."""
        from ..errors import HoldoutError
        from ..paired import diff_runs

        q = request.query
        a, b = q.get("a"), q.get("b")
        if a not in self.contexts or b not in self.contexts:
            return page("Compare", pages.compare_form(list(self.contexts), a, b))
        try:
            diff = diff_runs(self.contexts[a].store, a, b, grader=q.get("grader") or None)
        except HoldoutError as e:  # says which runs and graders, never item text
            return page("Compare", pages.compare_form(list(self.contexts), a, b, problem=str(e)))
        return page("Compare", pages.compare_form(list(self.contexts), a, b) + pages.compare(diff))

    def item(self, who: str, run_id: str, item_id: str) -> web.Response:
        ctx = self.contexts.get(run_id)
        if ctx is None:
            raise web.HTTPNotFound()
        item = self._items_of(run_id).get(item_id)
        if item is None:
            raise web.HTTPNotFound()
        heldout = ctx.pool.heldout
        if heldout:  # the view is recorded before anything is sent
            accesslog.record(self.db, self.vault, maintainer=who, run_id=run_id, item_id=item_id)
        judge_calls = [
            c
            for g in ctx.store.grader_names(run_id)
            for c in ctx.store.calls(f"{run_id}/grade/{g}", item=item_id)
        ]
        decisions = queries.decisions(ctx.store.db, run_id, item_id)
        for d in decisions:
            if heldout and d["comment"]:
                d["comment"] = reveal(
                    ctx.pool.cipher.decrypt_output(run_id, "review-comment", d["id"], d["comment"])
                )
        exposure = self.vault.ledger.item_sends(ctx.info["pool"], item_id) if heldout else None
        return page(
            f"Item {item_id}",
            pages.item(
                run_id,
                item,
                outputs=list(ctx.store.calls(run_id, item=item_id)),
                grades=list(ctx.store.iter_grades(run_id, item=item_id)),
                judge_calls=judge_calls,
                decisions=decisions,
                exposure=exposure,
            ),
        )
