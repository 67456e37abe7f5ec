"""The maintainers' view: runs, items and their grades, looked at item by item in a web app that
only a signed-in maintainer can open (the third door for held-out text; every held-out item shown
is logged). Public surface: `ViewApp`, `accesslog`."""

from .app import ViewApp

__all__ = ["ViewApp"]
