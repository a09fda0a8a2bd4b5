"""The data plane's decision with in-memory keys: host binding, scopes, cache, key retirement."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from preview_tokens.data_plane.access import (
    AmbiguousPathError,
    DenialReason,
    PreviewGate,
    PreviewRequest,
    fallback_token,
    input_path_segments,
    normalize_host,
    query_carries_token,
    split_preview_cookies,
)
from preview_tokens.keys.aws_json import AwsServiceError
from preview_tokens.keys.signing_keys import ACTIVE, RETIRED, SigningKeyProvider, StoredSigningKey
from preview_tokens.keys.tokens import PreviewClaims, Scope, sign_preview_token

NOW = 1_800_000_000
HOST = "sbx-a.sandboxes.example.com"


class FakeKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, StoredSigningKey] = {}
        self.loads = 0
        self.failing = False

    def add(self, kid: str, status: str = ACTIVE) -> None:
        self.keys[kid] = StoredSigningKey(kid, kid.encode(), status, f"2026-01-0{len(self.keys) + 1}")

    def load(self) -> list[StoredSigningKey]:
        self.loads += 1
        if self.failing:
            raise AwsServiceError("dynamodb", "Query", "ServiceUnavailable", 503)
        return list(self.keys.values())


class FakeDecrypter:
    """'Decrypts' a ciphertext by deriving a 32-byte key from it, checking the context."""

    def __init__(self) -> None:
        self.calls = 0

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        self.calls += 1
        assert context == {"purpose": "preview-token-signing", "kid": ciphertext.decode()}
        return ciphertext.ljust(32, b"#")


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeKeyStore:
    store = FakeKeyStore()
    store.add("k1")
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def decrypter() -> FakeDecrypter:
    return FakeDecrypter()


@pytest.fixture
def gate(store: FakeKeyStore, decrypter: FakeDecrypter, clock: Clock) -> PreviewGate:
    return PreviewGate(SigningKeyProvider(store, decrypter, 60, clock=clock), "/input", clock=clock)


def token(scope: Scope = Scope.READ, kid: str = "k1", sandbox: str = "sbx-a", ttl: int = 60) -> str:
    claims = PreviewClaims(sandbox, "acme", f"{sandbox}.sandboxes.example.com", scope, NOW, NOW + ttl, "j")
    return sign_preview_token(claims, kid, kid.encode().ljust(32, b"#"))


def request(
    value: str | None, method: str = "GET", path: str = "/", host: str = HOST, cookie: str = ""
) -> PreviewRequest:
    cookie_header = cookie if value is None else f"{cookie}; __Host-mp_session={value}".strip("; ")
    return PreviewRequest(method, path, host, cookie_header, None)


def test_a_valid_cookie_is_allowed_and_the_origin_gets_the_other_cookies(gate: PreviewGate) -> None:
    decision = gate.authorize(request(token(), cookie="theme=dark"))
    assert decision.allowed
    assert decision.claims is not None
    assert decision.claims.sandbox_id == "sbx-a"
    assert decision.origin_cookie == "theme=dark"


def test_the_edges_token_header_is_the_fallback_when_no_cookie_is_sent(gate: PreviewGate) -> None:
    assert gate.authorize(PreviewRequest("GET", "/", HOST, "", token())).allowed
    assert gate.authorize(PreviewRequest("GET", "/", HOST, "", None)).reason is DenialReason.NO_TOKEN


def test_the_session_cookie_wins_over_the_fallback_token(gate: PreviewGate) -> None:
    decision = gate.authorize(
        PreviewRequest("GET", "/", HOST, f"__Host-mp_session={token(sandbox='sbx-a')}", "garbage")
    )
    assert decision.allowed


def test_a_query_that_still_carries_mt_did_not_come_through_the_edge_and_is_denied(gate: PreviewGate) -> None:
    cookie = f"__Host-mp_session={token()}"
    decision = gate.authorize(PreviewRequest("GET", "/", HOST, cookie, None, query_carries_token=True))
    assert decision.allowed is False
    assert decision.reason is DenialReason.INVALID_TOKEN


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Preview-Token": "mp_a"}, "mp_a"),
        ({"x-preview-token": "mp_a"}, "mp_a"),
        ({"X-PREVIEW-TOKEN": "mp_a"}, None),  # neither CloudFront's spelling nor the canonical one
        ({"x-preview-token": ""}, None),
        ({"Cookie": "a=1"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_fallback_token_is_read_from_the_header_as_the_edge_spells_it(
    headers: Mapping[str, str] | None, expected: str | None
) -> None:
    assert fallback_token(headers) == expected


def test_api_gateways_decoded_query_names_tell_whether_mt_is_still_there() -> None:
    assert query_carries_token({"mt": ["x"]}) is True
    assert query_carries_token({"mt": [""]}) is True
    assert query_carries_token({"MT": ["x"], "m%74": ["x"], "lang": ["en"]}) is False
    assert query_carries_token(None) is False


def test_a_seen_token_is_not_verified_again_but_expiry_is_still_checked(
    gate: PreviewGate, clock: Clock
) -> None:
    value = token(ttl=10)
    assert gate.authorize(request(value)).allowed
    clock.now += 10
    assert gate.authorize(request(value)).reason is DenialReason.EXPIRED


def test_keys_are_decrypted_once_and_reread_on_the_refresh_timer(
    gate: PreviewGate, store: FakeKeyStore, decrypter: FakeDecrypter, clock: Clock
) -> None:
    for _ in range(5):
        gate.authorize(request(token()))
    assert (store.loads, decrypter.calls) == (1, 1)
    clock.now += 60
    gate.authorize(request(token()))
    assert (store.loads, decrypter.calls) == (2, 1)


def test_a_retired_key_stops_verifying_at_the_next_refresh_even_for_cached_tokens(
    gate: PreviewGate, store: FakeKeyStore, clock: Clock
) -> None:
    value = token(ttl=600)
    assert gate.authorize(request(value)).allowed
    store.add("k2")
    store.keys["k1"] = StoredSigningKey("k1", b"k1", RETIRED, "2026-01-01")
    clock.now += 61
    assert gate.authorize(request(value)).reason is DenialReason.INVALID_TOKEN
    assert gate.authorize(request(token(kid="k2", ttl=600))).allowed


def test_unreadable_keys_deny_as_unavailable(gate: PreviewGate, store: FakeKeyStore) -> None:
    store.failing = True
    assert gate.authorize(request(token())).reason is DenialReason.UNAVAILABLE


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/", True),
        ("HEAD", "/app.js", True),
        ("OPTIONS", "/api", True),
        ("get", "/", True),
        ("POST", "/", False),
        ("PUT", "/x", False),
        ("PATCH", "/x", False),
        ("DELETE", "/x", False),
        ("GET", "/input", False),
        ("GET", "/input/", False),
        ("GET", "/Input/keys", False),
        ("GET", "/a/../input/keys", False),
        ("GET", "//input", False),
        ("GET", "/%2569nput", False),
        ("GET", "/inputs", True),
        ("GET", "/static/input", True),
        # lookalikes of the input path (issue 8): each could reach the input channel somewhere
        ("GET", "/input;jsessionid=1/keys", False),
        ("GET", "/static/..;/input/keys", False),
        ("GET", "/input./keys", False),
        ("GET", "/input%2e/keys", False),
        ("GET", "/input%20/keys", False),
        ("GET", "/input%00/keys", False),
        ("GET", "/%00", False),
        ("GET", "/\uff49\uff4e\uff50\uff55\uff54/keys", False),  # fullwidth
        ("GET", "/%EF%BD%89nput/keys", False),  # fullwidth i, encoded
        ("GET", "/%25252569nput/keys", False),  # triple encoding
        ("GET", "/%2525252569nput/keys", False),  # a fourth layer: ambiguous
        ("GET", "/%C0%AFinput", False),  # overlong UTF-8: ambiguous
        ("GET", "/INPUT%5ckeys", False),
        ("GET", "/static/caf\u00e9.png", True),  # non-ASCII beside the input path is fine
        ("GET", "/static/a;b.css", True),
        ("GET", "/inputs./x", True),
        ("GET", "/%25", True),
    ],
)
def test_read_is_view_only(gate: PreviewGate, method: str, path: str, allowed: bool) -> None:
    decision = gate.authorize(request(token(Scope.READ), method=method, path=path))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is DenialReason.READ_ONLY


@pytest.mark.parametrize(("method", "path"), [("POST", "/input/keys"), ("DELETE", "/x"), ("GET", "/input")])
def test_interact_forwards_everything(gate: PreviewGate, method: str, path: str) -> None:
    assert gate.authorize(request(token(Scope.INTERACT), method=method, path=path)).allowed


@pytest.mark.parametrize(
    ("host", "normalized"),
    [("SBX-A.Example.COM", "sbx-a.example.com"), ("sbx-a.example.com:3000", "sbx-a.example.com"),
     ("sbx-a.example.com.", "sbx-a.example.com."), ("sbx-a.example.com:x", "sbx-a.example.com:x")],
)  # fmt: skip
def test_hosts_are_compared_lower_case_without_a_port(host: str, normalized: str) -> None:
    assert normalize_host(host) == normalized


def test_paths_are_read_as_the_most_lenient_server_would_before_prefix_checks() -> None:
    assert input_path_segments("/a/./b/../../INPUT//x") == ["input", "x"]
    assert input_path_segments("") == []
    assert input_path_segments("/a;b=c/d.. /\u00e9t\u00e9") == ["a", "d", None]
    with pytest.raises(AmbiguousPathError):
        input_path_segments("/a/%FF")


@pytest.mark.parametrize(
    ("override", "allowed"),
    [(("POST",), False), (("delete",), False), (("GET",), True), ((" head ",), True),
     (("GET", "PUT"), False), (("GET, POST",), False), (("",), False)],
)  # fmt: skip
def test_read_refuses_method_override_headers_naming_another_method(
    gate: PreviewGate, override: tuple[str, ...], allowed: bool
) -> None:
    read = dataclasses.replace(request(token(Scope.READ)), method_overrides=override)
    interact = dataclasses.replace(request(token(Scope.INTERACT)), method_overrides=override)

    assert gate.authorize(read).allowed is allowed
    assert gate.authorize(interact).allowed


def test_the_last_session_cookie_wins_and_the_rest_is_kept_in_order() -> None:
    cookies = split_preview_cookies(
        "a=1; __Host-mp_session=old; b=2; __Host-mp_session=new; __Host-mp_session_ends=1800000060"
    )
    assert cookies.session_token == "new"
    assert cookies.session_ends_at == 1_800_000_060
    assert cookies.origin_cookie == "a=1; b=2"


def test_after_the_session_cookie_is_gone_the_marker_says_expired(gate: PreviewGate, clock: Clock) -> None:
    marker = f"__Host-mp_session_ends={NOW + 60}"
    assert gate.authorize(request(None, cookie=marker)).reason is DenialReason.NO_TOKEN  # not yet ended
    clock.now = NOW + 60
    decision = gate.authorize(request(None, cookie=marker))
    assert decision.reason is DenialReason.EXPIRED
    assert decision.claims is None  # the marker proves no sandbox


@pytest.mark.parametrize("marker", ["x", "", "-5", "9" * 40])
def test_a_garbled_marker_is_just_no_token(gate: PreviewGate, marker: str) -> None:
    assert (
        gate.authorize(request(None, cookie=f"__Host-mp_session_ends={marker}")).reason
        is DenialReason.NO_TOKEN
    )


def test_the_origin_cookie_is_never_empty_so_the_clients_header_cannot_pass_through(
    gate: PreviewGate,
) -> None:
    value = token()
    decision = gate.authorize(request(value))  # the session cookie is the only cookie
    assert decision.allowed
    assert decision.origin_cookie == "mp_no_app_cookies=1"
    assert value not in decision.origin_cookie


def test_a_malformed_key_item_denies_as_unavailable(decrypter: FakeDecrypter, clock: Clock) -> None:
    class BrokenStore:
        def load(self) -> list[StoredSigningKey]:
            return [StoredSigningKey.from_json_item({"kid": {"S": "k1"}})]  # no ciphertext, no status

    gate = PreviewGate(SigningKeyProvider(BrokenStore(), decrypter, 60, clock=clock), "/input", clock=clock)
    assert gate.authorize(request(token())).reason is DenialReason.UNAVAILABLE
