"""The ``?mt=`` token check with in-memory keys (host binding, cache, key retirement) and the access
rule's helpers the edge mirror and the fleet ingress decide with (scopes, paths, cookies)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from preview_tokens.data_plane.access import (
    AmbiguousPathError,
    HostMismatchError,
    PreviewGate,
    fallback_token,
    input_path_segments,
    normalize_host,
    read_scope_allows,
    split_preview_cookies,
)
from preview_tokens.keys.aws_json import AwsServiceError
from preview_tokens.keys.signing_keys import (
    ACTIVE,
    RETIRED,
    SigningKeyProvider,
    SigningKeyUnavailableError,
    StoredSigningKey,
)
from preview_tokens.keys.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    PreviewClaims,
    Scope,
    sign_preview_token,
)

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


INPUT = input_path_segments("/input")


def read_allows(method: str, path: str, overrides: tuple[str, ...] = ()) -> bool:
    return read_scope_allows(method, path, overrides, INPUT)


def test_a_valid_token_verifies_for_its_own_host_only(gate: PreviewGate) -> None:
    assert gate.verify(token(), HOST).sandbox_id == "sbx-a"
    assert gate.verify(token(), HOST.upper() + ":443").sandbox_id == "sbx-a"
    with pytest.raises(HostMismatchError):
        gate.verify(token(), "sbx-b.sandboxes.example.com")


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


def test_a_seen_token_is_not_verified_again_but_expiry_is_still_checked(
    gate: PreviewGate, clock: Clock
) -> None:
    value = token(ttl=10)
    gate.verify(value, HOST)
    clock.now += 10
    with pytest.raises(ExpiredTokenError):
        gate.verify(value, HOST)


def test_keys_are_decrypted_once_and_reread_on_the_refresh_timer(
    gate: PreviewGate, store: FakeKeyStore, decrypter: FakeDecrypter, clock: Clock
) -> None:
    for _ in range(5):
        gate.verify(token(ttl=600), HOST)
    assert (store.loads, decrypter.calls) == (1, 1)
    clock.now += 60
    gate.verify(token(ttl=600), HOST)
    assert (store.loads, decrypter.calls) == (2, 1)


def test_a_retired_key_stops_verifying_at_the_next_refresh_even_for_cached_tokens(
    gate: PreviewGate, store: FakeKeyStore, clock: Clock
) -> None:
    value = token(ttl=600)
    gate.verify(value, HOST)
    store.add("k2")
    store.keys["k1"] = StoredSigningKey("k1", b"k1", RETIRED, "2026-01-01")
    clock.now += 61
    with pytest.raises(InvalidTokenError):
        gate.verify(value, HOST)
    assert gate.verify(token(kid="k2", ttl=600), HOST).sandbox_id == "sbx-a"


def test_unreadable_keys_are_unavailable_not_a_refusal(gate: PreviewGate, store: FakeKeyStore) -> None:
    store.failing = True
    with pytest.raises(SigningKeyUnavailableError):
        gate.verify(token(), HOST)


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
def test_read_is_view_only(method: str, path: str, allowed: bool) -> None:
    assert read_allows(method, path) is allowed


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
    override: tuple[str, ...], allowed: bool
) -> None:
    assert read_allows("GET", "/", override) is allowed


def test_the_last_session_cookie_wins() -> None:
    cookies = split_preview_cookies(
        "a=1; __Host-mp_session=old; b=2; __Host-mp_session=new; __Host-mp_session_ends=1800000060"
    )
    assert cookies.session_token == "new"
    assert cookies.session_ends_at == 1_800_000_060


def test_a_malformed_key_item_is_unavailable(decrypter: FakeDecrypter, clock: Clock) -> None:
    class BrokenStore:
        def load(self) -> list[StoredSigningKey]:
            return [StoredSigningKey.from_json_item({"kid": {"S": "k1"}})]  # no ciphertext, no status

    gate = PreviewGate(SigningKeyProvider(BrokenStore(), decrypter, 60, clock=clock), "/input", clock=clock)
    with pytest.raises(SigningKeyUnavailableError):
        gate.verify(token(), HOST)
