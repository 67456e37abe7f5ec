"""Scorecards: build (numbers only), render (self-contained HTML), sign and verify (Ed25519)."""

from .build import build_leaderboard, build_scorecard, ranks
from .render import render_html
from .sign import sign, signing_key, vault_fingerprint, verify

__all__ = [
    "build_scorecard",
    "build_leaderboard",
    "ranks",
    "render_html",
    "sign",
    "signing_key",
    "vault_fingerprint",
    "verify",
]
