"""Schemathesis hooks of `tests/it/schemathesis.rs` (loaded with SCHEMATHESIS_HOOKS).

The custom check `no_echo`: a response must not repeat a value the request submitted.
Every string of at least six characters in the request's body (JSON values at any
depth, form fields) or query is looked for in the response body, as sent and as a
client would read it (JSON strings decoded, HTML entities unescaped), case-insensitively.
Strings that occur in the OpenAPI document itself (enum values, constants, examples)
are not submitted values and are left out. An echo is how a page or an error message
turns into a reflection of someone's email address or phone number (and, in HTML,
into cross-site scripting), so the API never does it.
"""

import html
import json
import os
import urllib.parse
import urllib.request

import schemathesis

MIN_LENGTH = 6

_SPEC_TEXT = None


def _spec_text(case):
    """The OpenAPI document's text, lower-cased (fetched once)."""
    global _SPEC_TEXT
    if _SPEC_TEXT is None:
        url = os.environ.get("POLLY_OPENAPI_URL")
        text = ""
        if url:
            with urllib.request.urlopen(url, timeout=10) as resp:
                text = resp.read().decode("utf-8", "replace")
        else:
            raw = getattr(case.operation.schema, "raw_schema", None)
            text = json.dumps(raw) if raw is not None else ""
        _SPEC_TEXT = text.lower()
    return _SPEC_TEXT


def _strings(value):
    """Every string in a JSON-like value (dict values, list items, scalars)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")


def _submitted(case):
    """The strings the request submitted in its body and query."""
    out = set()
    body = getattr(case, "body", None)
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        media = (getattr(case, "media_type", None) or "").lower()
        if "x-www-form-urlencoded" in media:
            for _, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
                out.add(v)
        else:
            out.add(text)
    elif body is not None and not _is_not_set(body):
        out.update(_strings(body))
    query = getattr(case, "query", None) or {}
    out.update(_strings(query))
    return {s for s in out if len(s.strip()) >= MIN_LENGTH}


def _is_not_set(value):
    return type(value).__name__ == "NotSet"


def _readable(response):
    """The response body as sent, and as a client reads it."""
    raw = response.text or ""
    views = [raw, html.unescape(raw)]
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if decoded is not None:
        views.append("\n".join(_strings(decoded)))
    return "\n".join(views).lower()


@schemathesis.check
def no_echo(ctx, response, case):
    """No response repeats a string of >= 6 characters the request submitted."""
    submitted = _submitted(case)
    if not submitted:
        return None
    seen = _readable(response)
    spec = _spec_text(case)
    for value in sorted(submitted):
        needle = value.strip().lower()
        if needle in spec:
            continue
        if needle in seen:
            raise AssertionError(
                f"the response repeats a submitted value ({len(value)} characters): {value!r}"
            )
    return None
