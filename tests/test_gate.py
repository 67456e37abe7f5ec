"""The egress gate's scan, the second line of the boundary: every script, length and altered echo is
found and redacted, and ordinary text is left alone."""

from __future__ import annotations

import logging
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_leak import ECHO_FORMS, canary_items, echo, find_leaks, texts_of

from harness.egress import REDACTED, Gate
from harness.logsafety import reduce_record, safe_traceback

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "han": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会",
    "kana": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほ",
    "thai": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศสหอฮะาิีึืุู",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "devanagari": "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसहािीुूेैोौ",
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "hangul": "가나다라마바사아자차카타파하강남동린몽별송윤정찬탁편휘",
}


def gate_with(*texts: str) -> Gate:
    gate = Gate()
    for t in texts:
        gate.protect(t)
    return gate


def test_every_canary_kind_in_every_echo_form_is_redacted():
    items = canary_items()
    needles = [t for it in items for t in texts_of(it)]
    gate = gate_with(*needles)
    for it in items:
        for text in texts_of(it):
            for n, name in enumerate(ECHO_FORMS):
                out = gate.scan(f"log line: {echo(text, n)} (end)")
                assert not find_leaks({"out": out.encode()}, [text]), (it["id"], name, out)
                assert REDACTED in out


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(script=st.sampled_from(sorted(SCRIPTS)), data=st.data())
def test_texts_of_any_script_and_length_are_found_in_longer_text(script, data):
    alphabet = SCRIPTS[script]
    words = data.draw(
        st.lists(st.text(alphabet=alphabet, min_size=3, max_size=9), min_size=1, max_size=12)
    )
    sep = "" if script in ("han", "kana", "thai") else " "  # Korean is written with spaces
    text = sep.join(words)
    form = data.draw(st.sampled_from(sorted(ECHO_FORMS)))
    gate = gate_with(text)
    if not gate.armed:  # too short to register (below the documented minimum)
        return
    out = gate.scan("prefix words here " + ECHO_FORMS[form](text) + " suffix words")
    # the marker itself is ours: a held-out "held" or "text" is not leaked by the words of
    # "[held-out text redacted]"
    assert not find_leaks({"out": out.replace(REDACTED, " ").encode()}, [text]), (script, form, out)


def test_short_texts_match_whole_words_only():
    gate = gate_with("391", "Paris", "Define zorblat precisely.")
    assert gate.scan("the answer is 391.") == f"the answer is {REDACTED}."
    assert gate.scan("1391 and 3910 and comparison") == "1391 and 3910 and comparison"
    assert REDACTED in gate.scan("PARIS, of course") and REDACTED in gate.scan(
        "she said: define ZORBLAT precisely"
    )


def test_common_short_words_do_not_redact_everything():
    gate = gate_with("yes", "a", "no", "OK")
    assert not gate.armed
    line = "yes: a run of 12 items, no errors, OK"
    assert gate.scan(line) == line


def test_ordinary_output_is_left_alone():
    gate = gate_with(*[t for it in canary_items() for t in texts_of(it)])
    for line in (
        "run arena-nov: 15 items x 2 models x 1 epochs = 30 calls",
        '{"model": "echo-oa", "mean": 0.4213, "ci": [0.31, 0.52], "segments": {"category": '
        '{"coding": 5}}}',
        "provider 'oa': paced to 8.25 req/s by the provider's advertised limit; 1 429s answered",
        "中文日志：运行完成，没有错误。",
        "ภาษาไทยปกติ",
        "Résumé: tout va bien.",
    ):
        assert gate.scan(line) == line


def test_a_normalization_keeps_marks_that_carry_meaning():
    """दिल and दाल differ by a vowel sign only; registering one must not redact the other."""
    gate = gate_with("दिल की बात")
    assert REDACTED in gate.scan("दिल की बात")
    assert gate.scan("दाल की रात") == "दाल की रात"
    assert REDACTED in gate.scan(unicodedata.normalize("NFD", "दिल की बात"))


def test_third_party_log_records_keep_their_template_and_lose_their_bodies():
    secret = "Summarise the secret memo about project zorblat"
    record = logging.LogRecord(
        "openai._base_client",
        logging.DEBUG,
        __file__,
        1,
        "Request options: %s",
        ({"json_data": {"messages": [{"content": secret}]}},),
        None,
    )
    reduced = reduce_record(record)
    assert (
        reduced.startswith("Request options: ") and secret not in reduced and "<omitted>" in reduced
    )
    url = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        (
            "POST",
            "http://user:pw123@127.0.0.1:8080/v1/chat/completions?key=k",
            "HTTP/1.1",
            200,
            "OK",
        ),
        None,
    )
    assert (
        reduce_record(url)
        == 'HTTP Request: POST http://127.0.0.1:8080/v1/chat/completions "HTTP/1.1 200 OK"'
    )
    prebuilt = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, f"bad request line: {secret}", (), None
    )
    assert secret not in reduce_record(prebuilt)
    own = logging.LogRecord(
        "holdout.review", logging.ERROR, __file__, 1, "page %s failed", ("a1",), None
    )
    assert reduce_record(own) == "page a1 failed"


def test_tracebacks_withhold_foreign_messages_once_heldout_text_is_loaded():
    from harness.errors import HoldoutError

    quoted = "a prompt quoted by a bug"
    try:
        try:
            raise KeyError(quoted)
        except KeyError as inner:
            raise HoldoutError("item h123 failed") from inner
    except HoldoutError as e:
        shown = safe_traceback(e, show_messages=False)
        public = safe_traceback(e, show_messages=True)
    assert (
        "a prompt quoted by a bug" not in shown
        and "item h123 failed" in shown
        and "KeyError" in shown
    )
    assert "a prompt quoted by a bug" in public


def test_memory_per_registered_character_is_bounded():
    gate = Gate()
    text = " ".join(f"word{i} lorem ipsum dolor sit amet consectetur" for i in range(2000))
    gate.protect(text)
    # about 2/(W+1) fingerprints of 8 bytes per character
    assert gate.prints.nbytes <= 2.0 * len(text)


def test_a_short_heldout_text_equal_to_a_declared_label_leaves_the_label_readable():
    gate = gate_with("French", "Define zorblat precisely.")
    gate.allow_label("French")
    assert gate.scan('{"language": {"French": 12}}') == '{"language": {"French": 12}}'
    assert REDACTED in gate.scan("the answer: define zorblat precisely")


def test_json_through_the_gate_stays_json_when_a_heldout_text_resembles_its_syntax(tmp_path):
    """A held-out judge reply shaped like the card's own fields: the card is still JSON (it was cut
    through its quotes and newlines when the serialised text was scanned), and a held-out string in
    it is still redacted."""
    import json

    gate = Gate()
    reply = (
        '{"scores": {"quality": 4}, "reviews": 6, "rationale": "the answer names the capital '
        'correctly"}'
    )
    gate.protect(reply, short=False)
    card = {
        "human_review": {"reviews": 6, "mean_scores": {"quality": 2.33}},
        "scores": {"quality": 4},
        "note": "judge said " + reply,
    }
    path = gate.write_json(tmp_path / "card.json", card)
    written = json.loads(path.read_text())
    assert written["human_review"] == card["human_review"] and written["scores"] == {"quality": 4}
    assert REDACTED in written["note"] and "capital correctly" not in path.read_text()
