"""Reviewers: registration, one-time login links, sessions. Tokens and sessions are stored hashed,
in the run store (inside the boundary)."""

from __future__ import annotations

import secrets

from .. import clock, sessions
from ..postgres import upgrade as pg_upgrade
from ..sqlite import upgrade
from ..storeschema import STORE_SCHEMA

LINK_HOURS = 72  # a login link not used within this is dead


SESSION_HOURS = sessions.REVIEWERS.session_hours


def setup(db) -> None:
    """The review tables are the run store's (harness/store.py), at its schema version."""
    if getattr(db, "kind", "sqlite") == "postgresql":
        pg_upgrade(db, STORE_SCHEMA)
    else:
        upgrade(db, STORE_SCHEMA, "the run store")


def add_reviewer(
    db,
    name: str,
    languages: list[str],
    *,
    country: str | None = None,
    age_band: str | None = None,
    education: str | None = None,
    link_hours: float = LINK_HOURS,
) -> str:
    """Register (or re-issue) a reviewer; returns a one-time login token (only its hash is stored),
    valid for `link_hours`. Re-issuing ends the reviewer's open sessions and any earlier link."""
    setup(db)
    token = secrets.token_urlsafe(24)
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO reviewers (name, token_hash, languages, country, age_band, education, "
            "created, "
            "token_expires) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
            "token_hash=excluded.token_hash, token_expires=excluded.token_expires, "
            "languages=excluded.languages, "
            "country=excluded.country",
            (
                name,
                sessions.digest(token),
                ",".join(languages),
                country,
                age_band,
                education,
                clock.now(),
                clock.now() + link_hours * 3600,
            ),
        )
        db.execute("DELETE FROM review_sessions WHERE reviewer=?", (name,))
    return token


def revoke(db, name: str) -> bool:
    """Kill a reviewer's login link and sessions (their decisions stay). False: no such reviewer."""
    setup(db)
    return sessions.revoke(db, sessions.REVIEWERS, name)


def login(db, token: str) -> str | None:
    """Exchange a one-time token for a session id (the token is spent). None if it is unknown, spent
    or expired."""
    return sessions.login(db, sessions.REVIEWERS, token)


def logout(db, session: str | None) -> None:
    sessions.logout(db, sessions.REVIEWERS, session)


def reviewer_for(db, session: str | None) -> str | None:
    return sessions.person_for(db, sessions.REVIEWERS, session)
