"""Request bodies of the control-plane API: one strict JSON object, bounded in size and nesting.

Every JSON endpoint reads its body here, and an endpoint that takes no body refuses one here
(:func:`require_no_body`): one parser, one set of answers.

* larger than :data:`MAX_BODY_BYTES` (UTF-8): ``413 request_too_large``;
* a ``Content-Type`` other than ``application/json`` (a ``charset`` of ``utf-8`` allowed; no
  header at all is read as JSON): ``415 unsupported_media_type``;
* anything else that is not one JSON object of the operation's fields: ``400 invalid_request``.

Python's ``json`` accepts what a strict reader refuses and fails on what a caller may send:
``NaN``/``Infinity`` (not JSON), a repeated key (the last one silently wins, so two readers of
the same body can disagree on what it says), and a deeply nested document (about 1,000 levels
exhaust the interpreter's recursion limit: a ``RecursionError``, which used to be a 500). Every
one of these is refused here, before the parser runs deep.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import NoReturn

from preview_tokens.errors import InvalidRequestError, RequestTooLargeError, UnsupportedMediaTypeError

# The API's bodies are flat objects of short fields; API Gateway's own limit (10 MB) is far above.
MAX_BODY_BYTES = 16 * 1024
MAX_NESTING_DEPTH = 32
JSON_MEDIA_TYPE = "application/json"


def _not_json(_: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise InvalidRequestError("The request body repeats a field.")
    return document


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _body_size(body: str) -> int:
    return len(body.encode("utf-8", errors="surrogatepass"))


def check_media_type(content_type: str | None) -> None:
    """``application/json`` (``charset=utf-8`` allowed) or no header; anything else is a 415."""
    if content_type is None:
        return
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != JSON_MEDIA_TYPE:
        raise UnsupportedMediaTypeError()
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() != "charset" or value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeError()


def parse_json_object(
    body: str | None, content_type: str | None = None, fields: Collection[str] | None = None
) -> dict[str, object] | None:
    """The body's JSON object; ``None`` for an absent or empty body (whitespace alone is a body,
    and not a JSON object: it is checked like any other).

    ``fields``: the names the operation takes; any other is a 400 (``None``: not checked here).
    """
    if body is None or body == "":
        return None
    if _body_size(body) > MAX_BODY_BYTES:
        raise RequestTooLargeError()
    check_media_type(content_type)
    if nesting_depth(body) > MAX_NESTING_DEPTH:
        raise InvalidRequestError("The request body is nested too deeply.")
    try:
        document = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_not_json)
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, an integer of over 4,300 digits
        raise InvalidRequestError("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    if fields is not None and set(document) - set(fields):
        raise InvalidRequestError(f"The request body takes only the fields {', '.join(sorted(fields))}.")
    return document


def require_no_body(body: str | None) -> None:
    """An operation without a request body refuses one (a 413 if it is too large to read)."""
    if body is None or body == "":
        return
    if _body_size(body) > MAX_BODY_BYTES:
        raise RequestTooLargeError()
    raise InvalidRequestError("This operation takes no request body.")
