"""Sealed text never yields its text through str, repr, format, JSON, pickle or copy."""

import copy
import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sealed import Sealed, SealedError, reveal


@given(st.text(min_size=1))
def test_no_way_out_but_reveal(text):
    s = Sealed(text, "item-1")
    assert reveal(s) == text
    shown = [str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, format(s, ">40")]
    for out in shown:
        assert out.strip() == "<sealed item-1>"
    with pytest.raises(TypeError) as e:
        json.dumps({"x": s})
    assert text not in str(e.value) or text in "Object of type Sealed is not JSON serializable"
    with pytest.raises(SealedError):
        pickle.dumps(s)
    with pytest.raises(SealedError):
        copy.deepcopy(s)


def test_template_keeps_it_sealed():
    s = Sealed("secret words", "q1").into("Answer: {prompt}")
    assert isinstance(s, Sealed) and reveal(s) == "Answer: secret words" and "secret" not in repr(s)


def test_exception_messages_built_from_sealed_text_are_safe():
    s = Sealed("the hidden prompt", "q9")
    err = KeyError(s)
    assert "hidden" not in str(err) and "hidden" not in repr(err)
