"""People who sign in to one of Holdout's web apps (reviewers, maintainers): one-time login links
and sessions, stored hashed in the run store (inside the boundary). A realm names its tables, so
a reviewer's session never opens a maintainer's page."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from . import clock


@dataclass(frozen=True)
class Realm:
    people: str  # table: name, token_hash, token_expires, ...
    sessions: str  # table: session_hash, <person>, expires
    person: str  # the sessions table's column naming the person
    session_hours: float = 12


REVIEWERS = Realm("reviewers", "review_sessions", "reviewer")
MAINTAINERS = Realm("maintainers", "maintainer_sessions", "maintainer")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_link(db, realm: Realm, name: str, *, hours: float) -> str:
    """A new one-time login token for `name` (created if new), valid for `hours`; ends their
    sessions and any earlier link. Only its hash is stored."""
    token = secrets.token_urlsafe(24)
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            f"INSERT INTO {realm.people} (name, token_hash, token_expires, created) "
            "VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET token_hash=excluded.token_hash, "
            "token_expires=excluded.token_expires",
            (name, digest(token), clock.now() + hours * 3600, clock.now()),
        )
        db.execute(f"DELETE FROM {realm.sessions} WHERE {realm.person}=?", (name,))
    return token


def revoke(db, realm: Realm, name: str) -> bool:
    """Kill a person's login link and sessions. False: no such person."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        found = db.execute(
            f"UPDATE {realm.people} SET token_hash=NULL, token_expires=NULL WHERE name=?", (name,)
        ).rowcount
        db.execute(f"DELETE FROM {realm.sessions} WHERE {realm.person}=?", (name,))
    return bool(found)


def login(db, realm: Realm, token: str) -> str | None:
    """Exchange a one-time token for a session id (the token is spent). None if it is unknown,
    spent or expired."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute(
            f"SELECT name FROM {realm.people} WHERE token_hash=? AND token_expires>?",
            (digest(token), clock.now()),
        ).fetchone()
        if not row:
            return None
        session = secrets.token_urlsafe(32)
        db.execute(
            f"UPDATE {realm.people} SET token_hash=NULL, token_expires=NULL WHERE name=?",
            (row[0],),
        )
        db.execute(
            f"INSERT INTO {realm.sessions} VALUES (?,?,?)",
            (digest(session), row[0], clock.now() + realm.session_hours * 3600),
        )
    return session


def logout(db, realm: Realm, session: str | None) -> None:
    if session:
        db.execute(f"DELETE FROM {realm.sessions} WHERE session_hash=?", (digest(session),))


def person_for(db, realm: Realm, session: str | None) -> str | None:
    if not session:
        return None
    row = db.execute(
        f"SELECT {realm.person} FROM {realm.sessions} WHERE session_hash=? AND expires>?",
        (digest(session), clock.now()),
    ).fetchone()
    return row[0] if row else None
