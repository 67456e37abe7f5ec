"""Holdout: an evaluation harness for private, rotating, held-out suites.

The package's public surface: load a config (`config`), run it (`run`), read the store (`store`).
Everything that leaves the trust boundary passes `egress.GATE`.
"""

__version__ = "0.1.0"
