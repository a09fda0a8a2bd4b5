"""Request bodies of the mint API: one strict JSON object, bounded in size and nesting, or a 400.

Python's ``json`` accepts what a strict reader refuses and fails on what a caller may send:
``NaN``/``Infinity`` (not JSON), a repeated key (the last one silently wins, so two readers of
the same body can disagree on what it says), and a deeply nested document (about 1,000 levels
exhaust the interpreter's recursion limit: a ``RecursionError``, which used to be a 500). Every
one of these is an :class:`InvalidRequestError` here, before the parser runs deep.
"""

from __future__ import annotations

import json
from typing import NoReturn

from preview_tokens.errors import InvalidRequestError

# A mint body is one flat object of two short fields; the API's payload limit is far above this.
MAX_BODY_CHARACTERS = 16 * 1024
MAX_NESTING_DEPTH = 32


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


def parse_json_object(body: str | None) -> dict[str, object] | None:
    """The body's JSON object; ``None`` for an absent or blank body. Anything else is a 400."""
    if body is None or not body.strip():
        return None
    if len(body) > MAX_BODY_CHARACTERS:
        raise InvalidRequestError("The request body is too large.")
    if nesting_depth(body) > MAX_NESTING_DEPTH:
        raise InvalidRequestError("The request body is nested too deeply.")
    try:
        document = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_not_json)
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, an integer of over 4,300 digits
        raise InvalidRequestError("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return document
