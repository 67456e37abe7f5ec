"""`python -m harness.cli`."""

from . import entry

entry()
