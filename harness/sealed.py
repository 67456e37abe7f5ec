"""Sealed text: held-out prompt text that cannot be printed, logged, serialized or pickled by
accident.

Only `reveal` opens it. The modules that may call it are listed in tests/test_architecture.py, each
with its reason: the doors where held-out text leaves the process (the model and judge requests, the
reviewers' page and push hook, allowed exports) and the computations inside it that write nothing
(digests, token estimates, rule grades, safeguard signals). Everything else sees `<sealed item-id>`.
"""

from __future__ import annotations


class SealedError(TypeError):
    """Raised when code tries to serialize sealed text. The message never contains the text."""


class Sealed:
    __slots__ = ("_text", "label")

    def __init__(self, text: str, label: str = "") -> None:
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "label", label)

    def __setattr__(self, name, value):
        raise SealedError("sealed text is immutable")

    def __repr__(self) -> str:
        return f"<sealed {self.label}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):
        raise SealedError(f"{self!r} cannot be pickled or copied out of the vault")

    __reduce_ex__ = lambda self, protocol: self.__reduce__()  # noqa: E731
    __getstate__ = __reduce__

    def __eq__(self, other) -> bool:
        return isinstance(other, Sealed) and other._text == self._text

    def __hash__(self) -> int:
        return hash(("sealed", self._text))

    def into(self, template: str, placeholder: str = "{prompt}") -> "Sealed":
        """The template with this text in place of the placeholder, still sealed."""
        return Sealed(template.replace(placeholder, self._text), self.label)


def reveal(value: "str | Sealed") -> str:
    """The plain text. Call only where held-out text is meant to leave: a model/judge request, a
    review page."""
    return value._text if isinstance(value, Sealed) else value


def seal_like(value: "str | Sealed", text: str) -> "str | Sealed":
    """`text` sealed if `value` was sealed: keeps derived text (e.g. a filled template) inside the
    boundary."""
    return Sealed(text, value.label) if isinstance(value, Sealed) else text
