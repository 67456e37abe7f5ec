"""The kinds of failed model call, one constant each, and what each one means for a run: stop the
provider, stop one model, or record the item's answer and go on. The values are what the store's
`calls.error_kind` holds and what reports count (a status the table does not name is `http_<N>`)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    # the network
    TIMEOUT = "timeout"  # no answer within the call's timeout
    HUNG = "hung"  # a model whose calls time out again and again
    CONNECTION = "connection"  # refused, reset or closed
    DNS = "dns"  # the host name does not resolve
    TLS = "tls"  # the server's certificate is not one this machine trusts
    REDIRECT = "redirect"  # a 3xx: never followed (a POST sent on carries the prompt elsewhere)
    # the key
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    QUOTA = "quota"  # the account is out of credit
    RATE_LIMITED = "rate_limited"
    LONG_WAIT = "long_wait"  # asked to wait longer than LONGEST_WAIT_S before asking again
    # the model
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"  # a 404 without a code, or no recorded answer (replay)
    # the request or the item
    BAD_REQUEST = "bad_request"
    REQUEST_ENCODING = "request_encoding"  # text that is not valid Unicode
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"  # the provider refused, or filtered the answer
    # the answer
    SERVER_ERROR = "server_error"
    BAD_RESPONSE = "bad_response"  # not what the API's schema says
    EMPTY = "empty"  # a completion with no text
    ERROR = "error"  # anything else


# about the key or the endpoint: no point sending more to any model of this provider
FATAL_KINDS = frozenset(
    {Kind.AUTH, Kind.FORBIDDEN, Kind.QUOTA, Kind.TLS, Kind.REDIRECT, Kind.LONG_WAIT}
)
# The longest Retry-After a call waits out. A provider that asks for more (a daily limit, or a
# header that says `inf`) is given up for the run: waiting would hold the run for hours, or
# forever, with nothing to show.
LONGEST_WAIT_S = 600.0
# about one model: no point sending more to it
LANE_FATAL_KINDS = frozenset({Kind.HUNG, Kind.MODEL_NOT_FOUND})
# about one item, not the provider: never a reason to stop; the answer is final (calling again
# would pay for the same refusal)
ITEM_KINDS = frozenset({Kind.CONTENT_FILTER, Kind.CONTEXT_LENGTH})
# never worth sending again as it is
NOT_RETRYABLE = frozenset(
    {
        Kind.MODEL_NOT_FOUND,
        Kind.CONTEXT_LENGTH,
        Kind.CONTENT_FILTER,
        Kind.AUTH,
        Kind.QUOTA,
        Kind.TLS,
        Kind.REDIRECT,
        Kind.LONG_WAIT,
    }
)


# What to do about a kind, said once at the end of a run or a grading
ADVICE = {
    "model_not_found": "check the model name in the config (the provider does not serve it under "
    "that name)",
    "context_length": "the prompt and max_tokens exceed the model's context window; these items "
    "are not retried "
    "(their ids are in the store: `holdout export` or `check`); lower max_tokens or drop them",
    "content_filter": "the provider refused them; recorded as refusals (shown apart from "
    "errors), not retried",
    "quota": "the key has no quota left (billing); nothing more was sent to that provider",
    "auth": "the key was refused; check the environment variable named by api_key_env",
    "redirect": "the server answered with a redirect, which Holdout never follows (a request sent "
    "on would carry the prompts to an address the config does not name); nothing more was sent to "
    "that provider. Write the address the server means in base_url (often https:// for http://)",
    "long_wait": f"the provider asked to wait more than {LONGEST_WAIT_S / 60:g} minutes before "
    "the next request (a "
    "daily limit, or a quota window); nothing more was sent to that provider. Run the same "
    "command later: what is done is kept",
    "tls": "the server's certificate is not one this machine trusts; nothing more was sent to "
    "that provider (for a private CA, point SSL_CERT_FILE at its certificate)",
}


def advice(error_kinds: dict, given_up: dict) -> list[str]:
    """One line per kind with advice that failed calls (`error_kinds`: kind -> calls) or gave a
    provider up without a call of its own (`given_up`: a Batch API's request)."""
    lines = []
    for kind, text in ADVICE.items():
        if error_kinds.get(kind):
            lines.append(f"{error_kinds[kind]} call(s) failed with {kind}: {text}")
        elif given_up.get(kind):
            lines.append(f"a batch was refused with {kind}: {text}")
    return lines
