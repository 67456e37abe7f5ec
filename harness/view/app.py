"""The maintainers' web app: server-rendered, no script, in the reviewers' app's posture (sessions
from one-time links, no-store, strict CSP, no access log, generic error pages, a form accepted
only from its own origin). Only a signed-in maintainer sees a page: a reviewer's session gets 404
(the view does not exist for them), no session 401. Every held-out item page is logged (who, which
item, when) before it is sent (accesslog.py)."""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

from aiohttp import web

from .. import sessions
from ..database import open_database, store_location
from ..review.app import CSS, GuardedApp
from ..review.app import page as review_page
from ..review.decisions import opened_comment
from ..sealed import reveal
from ..storeschema import STORE_SCHEMA
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

    def __init__(self, workspace, contexts: dict, *, vault=None, public_url: str | None = None):
        """`contexts`: run id -> its RunContext (store, pool, items); `vault`: for held-out runs
        (the access log's MACs, exposure counts, reviewers' comments)."""
        self.db = open_database(store_location(workspace), STORE_SCHEMA)
        self.contexts = contexts
        self.items = {run: None for run in contexts}  # loaded on first use (and their strata)
        self.cache: dict = {}  # what -> (the runs' change counts, the figures)
        self.workspace = Path(workspace)
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
            return await self.compare(request)
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
    def _cached(self, what: tuple, runs, compute):
        """`compute()`, kept while none of `runs` has changed (`Store.changes`: a count of writes
        to a run's calls, grades and flags, so a login or a review leaves the figures be)."""
        version = tuple(self.contexts[r].store.changes(r) for r in runs)
        hit = self.cache.get(what)
        if hit is None or hit[0] != version:
            hit = self.cache[what] = (version, compute())
        return hit[1]

    def _runs(self) -> list[dict]:
        def compute():
            status = {r["run_id"]: r for r in next(iter(self.contexts.values())).store.status()}
            return [status[r] for r in self.contexts if r in status]

        return self._cached(("runs",), list(self.contexts), compute)

    def _items_of(self, run_id: str) -> dict:
        """The run's items, loaded once, with their strata in the store connection's temporary
        table."""
        if self.items[run_id] is None:
            ctx = self.contexts[run_id]
            self.items[run_id] = ctx.items()
            figures.load_strata(ctx.store.db, run_id, self.items[run_id], ctx.suite.strata)
        return self.items[run_id]

    def _shape(self, run_id: str) -> pages.Choices:
        """The run's graders, models, judges, error kinds, flags and strata: each a pass over
        the run's rows, so found once per change."""
        ctx = self.contexts[run_id]
        self._items_of(run_id)
        db, store = ctx.store.db, ctx.store

        def compute():
            graders = store.grader_names(run_id)
            return pages.Choices(
                graders=graders,
                models=store.models(run_id),
                strata=figures.stratum_values(db, run_id),
                error_kinds=queries.error_kinds(db, run_id),
                safeguards=queries.safeguard_detectors(db, run_id),
                judges={g: store.models(f"{run_id}/grade/{g}") for g in graders},
            )

        return self._cached(("shape", run_id), (run_id,), compute)

    def _run_figures(self, run_id: str) -> tuple[dict, dict]:
        """The run's calls and grades, and its model x stratum table per grader and key."""
        ctx = self.contexts[run_id]
        self._items_of(run_id)
        db = ctx.store.db

        def compute():
            tables = {
                (grader, key): figures.strata_table(db, run_id, grader, key)
                for grader in self._shape(run_id).graders
                for key in ctx.suite.strata
            }
            return figures.run_figures(db, run_id), tables

        return self._cached(("figures", run_id), (run_id,), compute)

    def warm(self) -> None:
        """Load every run's items and figures before the first maintainer asks."""
        self._runs()
        for run_id in self.contexts:
            self._run_figures(run_id)

    def run(self, run_id: str) -> web.Response:
        found, tables = self._run_figures(run_id)
        return page(run_id, pages.run(run_id, self.contexts[run_id].info, found, tables=tables))

    def items_page(self, request, run_id: str) -> web.Response:
        choices = self._shape(run_id)
        if not choices.graders:
            return page(run_id, "<p>Nothing graded yet.</p>")
        f = pages.filter_from(request.query, choices)
        if f is None:
            raise web.HTTPNotFound()
        listing = queries.grade_page(self.contexts[run_id].store.db, run_id, f)
        return page("Items", pages.items(run_id, f, choices=choices, listing=listing))

    async def compare(self, request) -> web.Response:
        """Two runs (or two pool versions) of the same models, item by item: `holdout runs diff`
        in a process of its own (its bootstrap's memory is not the server's, and other pages are
        served meanwhile), kept until either run changes."""
        q = request.query
        a, b = q.get("a"), q.get("b")
        runs = list(self.contexts)
        if a not in self.contexts or b not in self.contexts:
            return page("Compare", pages.compare_form(runs, a, b))
        grader = q.get("grader") or None
        what = ("compare", a, b, grader)
        version = tuple(self.contexts[r].store.changes(r) for r in (a, b))
        hit = self.cache.get(what)
        if hit is None or hit[0] != version:
            hit = self.cache[what] = (version, await _diff(self.workspace, a, b, grader))
        diff = hit[1]
        if isinstance(diff, str):  # why not: names runs and graders, never item text
            return page("Compare", pages.compare_form(runs, a, b, problem=diff))
        return page("Compare", pages.compare_form(runs, a, b) + pages.compare(diff))

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
        store, shape = ctx.store, self._shape(run_id)
        judge_calls = [  # each by its full key: index lookups, not a pass over the run
            c
            for g, judges in shape.judges.items()
            for j in judges
            for c in store.calls(f"{run_id}/grade/{g}", j, item=item_id)
        ]
        decisions = queries.decisions(store.db, run_id, item_id)
        for d in decisions:
            if heldout and d["comment"]:
                d["comment"] = reveal(
                    opened_comment(ctx.pool.cipher, run_id, d["id"], d["comment"])
                )
        exposure = self.vault.ledger.item_sends(ctx.info["pool"], item_id) if heldout else None
        return page(
            f"Item {item_id}",
            pages.item(
                run_id,
                item,
                outputs=[c for m in shape.models for c in store.calls(run_id, m, item=item_id)],
                grades=[
                    g
                    for grader in shape.graders
                    for m in shape.models
                    for g in store.iter_grades(run_id, grader, model=m, item=item_id)
                ],
                judge_calls=judge_calls,
                decisions=decisions,
                exposure=exposure,
            ),
        )


async def _diff(workspace, a: str, b: str, grader: str | None) -> dict | str:
    """`holdout runs diff A B --json` in a child process: its result, or why it could not
    compare (the command's error line)."""
    import asyncio
    import json
    import sys

    argv = [sys.executable, "-m", "harness.cli", "runs", "diff", a, b, "--json"]
    argv += ["--workspace", str(workspace)] + (["--grader", grader] if grader else [])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        return (lines[-1] if lines else "the comparison failed").removeprefix("error: ")
    return json.loads(out)
