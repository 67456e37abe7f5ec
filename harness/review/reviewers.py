"""Reviewers: registration, one-time login links, sessions. Tokens and sessions are stored hashed,
in the run store (inside the boundary)."""

from __future__ import annotations

import hashlib
import secrets

from .. import clock
from ..sqlite import upgrade
from ..storeschema import STORE_SCHEMA


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


LINK_HOURS = 72  # a login link not used within this is dead


SESSION_HOURS = 12


def setup(db) -> None:
    """The review tables are the run store's (harness/store.py), at its schema version."""
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
                _hash(token),
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
    with db:
        db.execute("BEGIN IMMEDIATE")
        found = db.execute(
            "UPDATE reviewers SET token_hash=NULL, token_expires=NULL WHERE name=?", (name,)
        ).rowcount
        db.execute("DELETE FROM review_sessions WHERE reviewer=?", (name,))
    return bool(found)


def login(db, token: str) -> str | None:
    """Exchange a one-time token for a session id (the token is spent). None if it is unknown, spent
    or expired."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute(
            "SELECT name FROM reviewers WHERE token_hash=? AND token_expires>?",
            (_hash(token), clock.now()),
        ).fetchone()
        if not row:
            return None
        session = secrets.token_urlsafe(32)
        db.execute(
            "UPDATE reviewers SET token_hash=NULL, token_expires=NULL WHERE name=?", (row[0],)
        )
        db.execute(
            "INSERT INTO review_sessions VALUES (?,?,?)",
            (_hash(session), row[0], clock.now() + SESSION_HOURS * 3600),
        )
    return session


def logout(db, session: str | None) -> None:
    if session:
        db.execute("DELETE FROM review_sessions WHERE session_hash=?", (_hash(session),))


def reviewer_for(db, session: str | None) -> str | None:
    if not session:
        return None
    row = db.execute(
        "SELECT reviewer FROM review_sessions WHERE session_hash=? AND expires>?",
        (_hash(session), clock.now()),
    ).fetchone()
    return row[0] if row else None
