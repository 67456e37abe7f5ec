"""Human review: reviewers, routing and assignment (`queue`), and the reviewers' web app (`app`)."""

from . import queue
from .app import ReviewApp

__all__ = ["queue", "ReviewApp"]
