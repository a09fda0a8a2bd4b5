"""Hostile request bodies: what a black-box run throws at every operation of the control-plane API.

Each body is refused by every operation, whatever the operation takes: ``413`` when it is too
large, ``415`` when it is not sent as JSON (to an operation that reads a JSON body; an operation
that takes no body answers ``400``), ``400`` for everything else. Never a ``500``, never a ``2xx``:
the integration tests send the corpus to the handlers against moto, the e2e tests over HTTP to
the local stack, for every operation the OpenAPI document lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from preview_tokens.control_plane.request_body import MAX_BODY_BYTES

REFUSED = frozenset({400, 413, 415})
# Fields that no single operation takes all of: whichever operation reads the body, one is extra.
_EVERY_FIELD = '"token": "mp_x", "scope": "read", "expires_in": 60'


@dataclass(frozen=True)
class HostileBody:
    name: str
    body: bytes
    content_type: str | None = "application/json"
    too_large: bool = False
    not_json_media: bool = False

    def expected(self, takes_json_body: bool) -> int:
        """The status every operation answers this body with."""
        if self.too_large:
            return 413
        if self.not_json_media and takes_json_body:
            return 415
        return 400


def _text(name: str, body: str, **options: object) -> HostileBody:
    return HostileBody(name, body.encode("utf-8"), **options)  # type: ignore[arg-type]


CORPUS: tuple[HostileBody, ...] = (
    _text("arrays nested 5,000 deep", "[" * 5000 + "]" * 5000),
    _text("objects nested 2,500 deep", '{"a":' * 2500 + "1" + "}" * 2500),
    _text("a field nested 5,000 deep", '{"token": ' + "[" * 5000 + "]" * 5000 + "}"),
    _text("nested 33 deep", '{"scope": ' + "[" * 32 + "]" * 32 + "}"),
    _text("duplicate keys", '{"token": "mp_a", "token": "mp_b", "scope": "read", "scope": "interact"}'),
    _text("every field and one more", "{" + _EVERY_FIELD + ', "tenant_id": "someone-else"}'),
    _text("an unknown field only", '{"tenant_id": "someone-else"}'),
    _text("NaN", '{"expires_in": NaN, "token": NaN}'),
    _text("Infinity", '{"expires_in": Infinity, "token": -Infinity}'),
    _text("an integer of 5,000 digits", '{"expires_in": ' + "9" * 5000 + "}"),
    _text("a 1 MB body", '{"token": "' + "a" * (1024 * 1024) + '"}', too_large=True),
    _text("just over the limit", '{"token": "' + "a" * MAX_BODY_BYTES + '"}', too_large=True),
    _text("not JSON", "token=mp_x&scope=read"),
    _text("truncated JSON", '{"token": "mp_'),
    _text("a JSON array", '["mp_x", "read"]'),
    _text("a JSON string", '"mp_x"'),
    _text("JSON null", "null"),
    _text("a byte-order mark", '\ufeff{"token": "mp_x"}'),
    _text("a lone surrogate as a field name", '{"\\ud800": 1}'),
    HostileBody("invalid UTF-8 as a field name", b'{"\xff\xfe": 1}'),
    _text("JSON sent as text/plain", "{}", content_type="text/plain", not_json_media=True),
    _text(
        "JSON sent as a form",
        '{"token": "mp_x"}',
        content_type="application/x-www-form-urlencoded",
        not_json_media=True,
    ),
    _text(
        "JSON with a latin-1 charset",
        '{"scope": "read"}',
        content_type="application/json; charset=iso-8859-1",
        not_json_media=True,
    ),
)
