"""The origin assertion: signed by the data plane, verified by the fleet's ``preview_origin``.

Signing uses the real module with in-memory keys; verification the real verifier with a JWKS
built from the same keys, so every test is one end of the contract against the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preview_origin import (
    AssertionRejectedError,
    HttpJwks,
    JwksUnavailableError,
    OriginAssertionVerifier,
    StaticJwks,
)
from preview_tokens.data_plane.origin_assertion import (
    OriginAssertionSigner,
    PublishedOriginKey,
    assertion_claims,
    origin_jwks,
    public_key_of,
    sign_origin_assertion,
)
from preview_tokens.keys.signing_keys import ACTIVE, RETIRED, SigningKeyProvider, StoredSigningKey
from preview_tokens.keys.tokens import PreviewClaims, Scope

NOW = 1_800_000_000
AUDIENCE = "https://ingress.sandboxes.internal.example.com"
SANDBOX = "sbx-a"
SEEDS = {"oa1": bytes(range(32)), "oa2": bytes(range(100, 132))}


def claims_for(
    sandbox_id: str = SANDBOX,
    *,
    scope: Scope = Scope.READ,
    expires_at: int = NOW + 600,
    jti: str = "t-1",
    credential_id: str = "key_abc",
) -> PreviewClaims:
    return PreviewClaims(
        sandbox_id=sandbox_id,
        tenant_id="acme",
        host=f"{sandbox_id}.sandboxes.example.com",
        scope=scope,
        issued_at=NOW - 5,
        expires_at=expires_at,
        token_id=jti,
        credential_id=credential_id,
    )


def jwks(*kids: str) -> dict[str, Any]:
    return origin_jwks(PublishedOriginKey(kid, public_key_of(SEEDS[kid])) for kid in kids)


def verifier(*kids: str, now: float = NOW, audience: str = AUDIENCE) -> OriginAssertionVerifier:
    return OriginAssertionVerifier(StaticJwks(jwks(*(kids or ("oa1",)))), audience, clock=lambda: now)


def signed(claims: PreviewClaims | None = None, kid: str = "oa1", audience: str = AUDIENCE) -> str:
    return sign_origin_assertion(claims or claims_for(), audience, kid, SEEDS[kid])


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(document: Mapping[str, Any]) -> str:
    return b64(json.dumps(document).encode())


def rejection(
    assertion: str | None, sandbox_id: str = SANDBOX, check: OriginAssertionVerifier | None = None
) -> str:
    with pytest.raises(AssertionRejectedError) as rejected:
        (check or verifier()).verify(assertion, sandbox_id)
    return rejected.value.reason


# ----------------------------------------------------------------------------- accepted
def test_an_assertion_signed_by_the_data_plane_verifies_for_its_sandbox() -> None:
    accepted = verifier().verify(signed(claims_for(scope=Scope.INTERACT)), SANDBOX)

    assert accepted.sandbox_id == SANDBOX
    assert accepted.scope == "interact"
    assert accepted.expires_at == NOW + 600
    assert accepted.token_id == "t-1"
    assert accepted.kid == "oa1"
    assert (accepted.tenant_id, accepted.credential_id, accepted.issued_at) == ("acme", "key_abc", NOW - 5)


def test_a_token_without_a_credential_claim_asserts_an_empty_one() -> None:
    accepted = verifier().verify(signed(claims_for(credential_id="")), SANDBOX)

    assert (accepted.tenant_id, accepted.credential_id) == ("acme", "")


def test_its_claims_are_exactly_the_contract() -> None:
    header, payload, _ = signed().split(".")

    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "EdDSA", "kid": "oa1", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {
        "aud": AUDIENCE,
        "sub": SANDBOX,
        "scope": "read",
        "exp": NOW + 600,
        "jti": "t-1",
        "iat": NOW - 5,
        "tid": "acme",
        "cid": "key_abc",
    }


def resigned(change: Mapping[str, Any], drop: tuple[str, ...] = ()) -> str:
    """The default assertion with its claims changed, validly signed with ``oa1``."""
    header, payload, _ = signed().split(".")
    claims = {**json.loads(base64.urlsafe_b64decode(payload + "==")), **change}
    for name in drop:
        del claims[name]
    signing_input = f"{header}.{segment(claims)}"
    key = Ed25519PrivateKey.from_private_bytes(SEEDS["oa1"])
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


@pytest.mark.parametrize("missing", ["tid", "cid", "jti", "iat"])
def test_an_assertion_missing_a_claim_is_refused(missing: str) -> None:
    assert rejection(resigned({}, drop=(missing,))) == "malformed"


@pytest.mark.parametrize(
    "change",
    [{"extra": "x"}, {"tid": ""}, {"tid": 7}, {"cid": None}, {"cid": ["key_abc"]}],
    ids=["unknown-claim", "empty-tenant", "numeric-tenant", "null-credential", "list-credential"],
)
def test_an_assertion_with_other_claims_or_bad_ids_is_refused(change: Mapping[str, Any]) -> None:
    assert rejection(resigned(change)) == "malformed"


def test_the_tenants_frame_ancestors_are_accepted_and_returned() -> None:
    ancestors = "https://app.acme.example https://*.acme.dev"

    accepted = verifier().verify(resigned({"fa": ancestors}), SANDBOX)

    assert accepted.frame_ancestors == ancestors
    assert verifier().verify(signed(), SANDBOX).frame_ancestors is None, "fa is optional"


@pytest.mark.parametrize(
    "ancestors",
    ["", 7, ["https://a.example"], "https://a.example; script-src *", "https://a.example, *", "a\r\nb"],
    ids=["empty", "number", "list", "semicolon", "comma", "newline"],
)
def test_frame_ancestors_that_could_break_out_of_the_directive_are_refused(ancestors: object) -> None:
    assert rejection(resigned({"fa": ancestors})) == "malformed"


def test_the_data_plane_signs_the_tenants_frame_ancestors_when_asked() -> None:
    claims = claims_for()

    assert assertion_claims(claims, AUDIENCE, "https://app.acme.example")["fa"] == "https://app.acme.example"
    assert "fa" not in assertion_claims(claims, AUDIENCE)


# ------------------------------------------------------------------------------ expiry
def test_an_expired_assertion_is_refused() -> None:
    assertion = signed(claims_for(expires_at=NOW - 60))

    assert rejection(assertion) == "expired"


def test_the_leeway_is_a_few_seconds_at_most() -> None:
    assertion = signed(claims_for(expires_at=NOW))

    assert verifier(now=NOW + 4).verify(assertion, SANDBOX).sandbox_id == SANDBOX
    assert rejection(assertion, check=verifier(now=NOW + 5)) == "expired"
    with pytest.raises(ValueError, match="leeway"):
        OriginAssertionVerifier(StaticJwks(jwks("oa1")), AUDIENCE, leeway_seconds=300)


def test_an_assertion_issued_in_the_future_is_refused() -> None:
    assertion = signed()

    assert rejection(assertion, check=verifier(now=NOW - 60)) == "not_yet_valid"


# ---------------------------------------------------------------------------- audience
def test_an_assertion_for_another_audience_is_refused() -> None:
    assert rejection(signed(audience="https://another-fleet.example.com")) == "audience"


def test_an_audience_list_is_not_an_audience() -> None:
    header, payload, _ = signed().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["aud"] = [AUDIENCE]
    key = Ed25519PrivateKey.from_private_bytes(SEEDS["oa1"])
    signing_input = f"{header}.{segment(claims)}"

    assert rejection(f"{signing_input}.{b64(key.sign(signing_input.encode()))}") == "audience"


# ----------------------------------------------------------------------------- sandbox
def test_an_assertion_for_another_sandbox_is_refused() -> None:
    stolen = signed(claims_for("sbx-b"))

    assert rejection(stolen, sandbox_id=SANDBOX) == "wrong_sandbox"
    assert rejection(signed(), sandbox_id="") == "wrong_sandbox"


# --------------------------------------------------------------------------- algorithm
def test_alg_none_is_refused() -> None:
    _, payload, _ = signed().split(".")

    assert rejection(f"{segment({'alg': 'none', 'kid': 'oa1'})}.{payload}.") == "algorithm"


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: an HMAC keyed with the published public key must not pass as EdDSA."""
    _, payload, _ = signed().split(".")
    public_key = base64.urlsafe_b64decode(jwks("oa1")["keys"][0]["x"] + "=")
    header = segment({"alg": "HS256", "kid": "oa1", "typ": "JWT"})
    mac = hmac.new(public_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()

    assert rejection(f"{header}.{payload}.{b64(mac)}") == "algorithm"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "eddsa", "Ed25519"])
def test_any_other_algorithm_is_refused(alg: str) -> None:
    _, payload, signature = signed().split(".")

    assert (
        rejection(f"{segment({'alg': alg, 'kid': 'oa1', 'typ': 'JWT'})}.{payload}.{signature}") == "algorithm"
    )


def test_a_header_with_more_than_alg_kid_typ_is_refused() -> None:
    _, payload, signature = signed().split(".")
    header = segment({"alg": "EdDSA", "kid": "oa1", "jku": "https://attacker.example/jwks"})

    assert rejection(f"{header}.{payload}.{signature}") == "algorithm"


def test_a_duplicate_alg_name_is_refused() -> None:
    _, payload, signature = signed().split(".")
    header = b64(b'{"alg":"none","alg":"EdDSA","kid":"oa1"}')

    assert rejection(f"{header}.{payload}.{signature}") == "malformed"


# --------------------------------------------------------------------------------- kid
def test_an_unknown_kid_is_refused() -> None:
    assert rejection(signed(kid="oa2"), check=verifier("oa1")) == "unknown_kid"


def test_a_known_kid_with_another_keys_signature_is_refused() -> None:
    header, payload, _ = signed(kid="oa1").split(".")
    _, _, other_signature = signed(kid="oa2").split(".")

    assert rejection(f"{header}.{payload}.{other_signature}", check=verifier("oa1", "oa2")) == "signature"


def test_after_rotation_both_published_keys_verify() -> None:
    check = verifier("oa1", "oa2")

    assert check.verify(signed(kid="oa1"), SANDBOX).kid == "oa1"
    assert check.verify(signed(kid="oa2"), SANDBOX).kid == "oa2"


# --------------------------------------------------------------------------- tampering
@pytest.mark.parametrize("part", [0, 1, 2])
def test_changing_any_character_is_refused(part: int) -> None:
    parts = signed().split(".")
    middle = len(parts[part]) // 2
    parts[part] = (
        parts[part][:middle] + ("A" if parts[part][middle] != "A" else "B") + parts[part][middle + 1 :]
    )

    assert rejection(".".join(parts)) in {"malformed", "algorithm", "signature", "unknown_kid"}


def test_a_payload_from_another_assertion_is_refused() -> None:
    header, _, signature = signed().split(".")
    _, other_payload, _ = signed(claims_for(scope=Scope.INTERACT)).split(".")

    assert rejection(f"{header}.{other_payload}.{signature}") == "signature"


def test_a_non_canonical_spelling_of_the_signature_is_refused() -> None:
    """64 bytes are 86 base64url characters; the last one carries 2 unused bits."""
    header, payload, signature = signed().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) + 1]

    assert base64.urlsafe_b64decode(respelled + "==") == base64.urlsafe_b64decode(signature + "==")
    assert rejection(f"{header}.{payload}.{respelled}") == "signature"


@pytest.mark.parametrize("assertion", [None, "", "a.b", "a.b.c.d", "é.é.é", "x" * 5000])
def test_no_or_malformed_assertion_is_refused(assertion: str | None) -> None:
    assert rejection(assertion) in {"missing", "malformed"}


# ---------------------------------------------------------------------- the JWKS over HTTP
class FakeJwksEndpoint:
    def __init__(self, document: object) -> None:
        self.document = document
        self.calls = 0
        self.failing = False

    def __call__(self, url: str, timeout: float) -> object:
        self.calls += 1
        if self.failing:
            raise OSError("connection refused")
        return self.document


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_jwks_is_cached_for_its_lifetime_then_fetched_again() -> None:
    endpoint, clock = FakeJwksEndpoint(jwks("oa1")), Clock()
    source = HttpJwks("https://api.example.com/v1/api/v1/origin-keys", clock=clock, fetch=endpoint)

    assert source.key("oa1") is not None
    clock.now = 299
    assert source.key("oa1") is not None
    assert endpoint.calls == 1
    clock.now = 300
    source.key("oa1")
    assert endpoint.calls == 2


def test_an_unknown_kid_refetches_at_once_but_at_most_every_ten_seconds() -> None:
    endpoint, clock = FakeJwksEndpoint(jwks("oa1")), Clock()
    source = HttpJwks("https://api.example.com/v1/api/v1/origin-keys", clock=clock, fetch=endpoint)
    source.key("oa1")
    endpoint.document = jwks("oa1", "oa2")  # rotated

    clock.now = 10
    assert source.key("oa2") is not None
    for made_up in ("x1", "x2", "x3"):
        assert source.key(made_up) is None
    assert endpoint.calls == 2  # the first fetch and the rotation; the made-up kids wait

    clock.now = 20
    for made_up in ("x4", "x5"):
        assert source.key(made_up) is None
    assert endpoint.calls == 3


def test_without_any_key_set_every_assertion_is_refused() -> None:
    endpoint = FakeJwksEndpoint(jwks("oa1"))
    endpoint.failing = True
    check = OriginAssertionVerifier(
        HttpJwks("https://api.example.com/keys", fetch=endpoint), AUDIENCE, clock=lambda: NOW
    )

    with pytest.raises(JwksUnavailableError):
        check.verify(signed(), SANDBOX)


def test_a_failing_endpoint_keeps_the_last_set_for_a_bounded_time() -> None:
    endpoint, clock = FakeJwksEndpoint(jwks("oa1")), Clock()
    source = HttpJwks("https://api.example.com/keys", clock=clock, fetch=endpoint, max_stale_seconds=3600)
    source.key("oa1")
    endpoint.failing = True

    clock.now = 1000
    assert source.key("oa1") is not None
    clock.now = 3600
    with pytest.raises(JwksUnavailableError):
        source.key("oa1")


# ---------------------------------------------------------------- the data plane's signer
class FakeOriginKeys:
    def __init__(self) -> None:
        self.keys: dict[str, StoredSigningKey] = {}

    def add(self, kid: str, created_at: str, status: str = ACTIVE) -> None:
        self.keys[kid] = StoredSigningKey(kid, kid.encode(), status, created_at)

    def load(self) -> list[StoredSigningKey]:
        return list(self.keys.values())


class FakeDecrypter:
    def __init__(self) -> None:
        self.contexts: list[Mapping[str, str]] = []

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        self.contexts.append(dict(context))
        return SEEDS[ciphertext.decode()]


def signer_with(
    store: FakeOriginKeys, clock: Clock | None = None
) -> tuple[OriginAssertionSigner, FakeDecrypter]:
    from preview_tokens.data_plane.origin_assertion import origin_key_context

    decrypter = FakeDecrypter()
    provider = SigningKeyProvider(
        store, decrypter, 60, clock=clock or Clock(), context_for=origin_key_context
    )
    return OriginAssertionSigner(provider, AUDIENCE), decrypter


def test_the_signer_signs_with_the_newest_key_decrypted_with_the_origin_purpose() -> None:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    store.add("oa2", "2026-02-01")
    signer, decrypter = signer_with(store)

    assertion = signer.assertion_for(claims_for())

    assert verifier("oa1", "oa2").verify(assertion, SANDBOX).kid == "oa2"
    assert {"purpose": "origin-assertion-signing", "kid": "oa2"} in decrypter.contexts


def test_the_signer_signs_once_per_token() -> None:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    signer, _ = signer_with(store)

    first = signer.assertion_for(claims_for())
    assert signer.assertion_for(claims_for()) is first
    assert signer.assertion_for(claims_for(jti="t-2")) != first


def test_the_exchanges_assertion_is_forwarded_as_is_when_it_is_this_tokens() -> None:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    signer, _ = signer_with(store)
    from_cookie = signed()

    assert signer.assertion_for(claims_for(), from_cookie) == from_cookie


@pytest.mark.parametrize(
    "presented",
    [
        "another.token.entirely",
        signed(claims_for(jti="t-2")),  # another session's
        signed(claims_for("sbx-b")),  # another sandbox's
        signed(claims_for(scope=Scope.INTERACT)),  # the scope raised
        signed(kid="oa2"),  # a key that is not active
    ],
)
def test_an_assertion_presented_for_something_else_is_replaced_by_ours(presented: str) -> None:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    signer, _ = signer_with(store)

    forwarded = signer.assertion_for(claims_for(), presented)

    assert forwarded != presented
    assert verifier("oa1").verify(forwarded, SANDBOX).token_id == "t-1"


def test_a_retired_origin_key_stops_signing_and_its_assertions_stop_being_forwarded() -> None:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    clock = Clock()
    signer, _ = signer_with(store, clock)
    old = signer.assertion_for(claims_for())
    store.add("oa2", "2026-02-01")
    store.add("oa1", "2026-01-01", RETIRED)

    clock.now = 60  # the next key refresh
    forwarded = signer.assertion_for(claims_for(), old)

    assert forwarded != old
    assert verifier("oa2").verify(forwarded, SANDBOX).kid == "oa2"


def test_no_origin_key_means_unavailable() -> None:
    from preview_tokens.keys.signing_keys import SigningKeyUnavailableError

    signer, _ = signer_with(FakeOriginKeys())

    with pytest.raises(SigningKeyUnavailableError):
        signer.assertion_for(claims_for())
