"""Errors a person reads. The CLI prints these without a traceback."""


class HoldoutError(Exception):
    """A problem the user can fix; the message says what and where."""


class ConfigError(HoldoutError):
    """A config, suite or pool file is wrong. The message names file, line and key path."""
