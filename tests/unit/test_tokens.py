"""The token codec: what verifies, what does not, and that pyjwt agrees with it."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest
from preview_tokens.keys.tokens import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidTokenError,
    MalformedTokenError,
    PreviewClaims,
    Scope,
    UnknownKeyError,
    UnsupportedAlgorithmError,
    VerifiedTokenCache,
    sign_preview_token,
    verify_preview_token,
)

from tests.support.preview_tokens import b64, change_char, resigned

KEY = bytes(range(32))
NOW = 1_800_000_000
CLAIMS = PreviewClaims("sbx-a", "acme", "sbx-a.sandboxes.example.com", Scope.READ, NOW, NOW + 60, "jti-1")


def test_a_signed_token_verifies_to_its_claims() -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    assert token.startswith("mp_")
    assert verify_preview_token(token, {"k1": KEY}, NOW) == CLAIMS


def test_pyjwt_verifies_our_tokens_independently() -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    decoded = jwt.decode(
        token[3:],
        KEY,
        algorithms=["HS256"],
        audience=CLAIMS.host,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == CLAIMS.to_payload()
    assert jwt.get_unverified_header(token[3:]) == {"alg": "HS256", "kid": "k1", "typ": "JWT"}


def test_a_token_signed_by_pyjwt_with_our_claims_verifies() -> None:
    token = "mp_" + jwt.encode(CLAIMS.to_payload(), KEY, algorithm="HS256", headers={"kid": "k1"})
    assert verify_preview_token(token, {"k1": KEY}, NOW) == CLAIMS


def test_expiry_is_exclusive() -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    assert verify_preview_token(token, {"k1": KEY}, CLAIMS.expires_at - 1)
    with pytest.raises(ExpiredTokenError) as raised:
        verify_preview_token(token, {"k1": KEY}, CLAIMS.expires_at)
    assert raised.value.claims == CLAIMS


@pytest.mark.parametrize("part", [0, 1, 2])
def test_any_changed_character_fails(part: int) -> None:
    token = change_char(sign_preview_token(CLAIMS, "k1", KEY), part)
    with pytest.raises(InvalidTokenError):
        verify_preview_token(token, {"k1": KEY}, NOW)


def test_a_wrong_key_is_a_bad_signature() -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    with pytest.raises(BadSignatureError):
        verify_preview_token(token, {"k1": b"x" * 32}, NOW)


def test_an_unknown_kid_is_refused_before_any_signature_check() -> None:
    with pytest.raises(UnknownKeyError):
        verify_preview_token(sign_preview_token(CLAIMS, "k2", KEY), {"k1": KEY}, NOW)


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256", "ES256", "hs256"])
def test_only_hs256_is_accepted(alg: str) -> None:
    token = resigned(
        sign_preview_token(CLAIMS, "k1", KEY), {"alg": alg, "kid": "k1", "typ": "JWT"}, KEY, hashlib.sha512
    )
    with pytest.raises(UnsupportedAlgorithmError):
        verify_preview_token(token, {"k1": KEY}, NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mp_",
        "eyJ.eyJ.sig",
        "mp_a.b",
        "mp_a.b.c.d",
        "mp_!!.b.c",
        "mp_" + "A" * 5000,
        "mp_ä.b.c",
        "mp_=.=.=",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        verify_preview_token(token, {"k1": KEY}, NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"exp": "1800000060"},
        {"exp": True},
        {"scope": "admin"},
        {"sub": "sbx-b"},
        {"aud": "evil.test"},
        {"sub": "SBX-A"},
        {"tid": ""},
    ],
)
def test_well_signed_but_malformed_claims_are_refused(change: dict[str, object]) -> None:
    payload = {**CLAIMS.to_payload(), **change}
    header = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(payload).encode())}"
    import hmac

    token = f"mp_{signing_input}.{b64(hmac.new(KEY, signing_input.encode(), hashlib.sha256).digest())}"
    with pytest.raises(MalformedTokenError):
        verify_preview_token(token, {"k1": KEY}, NOW)


def test_the_verified_token_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = VerifiedTokenCache(max_entries=2)
    for name in ("a", "b", "c"):
        cache.put(name, CLAIMS)
    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("c") == CLAIMS


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def other_spellings(segment: str) -> list[str]:
    """The same bytes spelled with non-zero unused bits in the last character (base64url decoders
    that ignore them accept every one of these)."""
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    last = _B64URL.index(segment[-1])
    return [segment[:-1] + _B64URL[last | extra] for extra in range(1, 1 << unused_bits)]


@pytest.mark.parametrize("part", [0, 1, 2])
def test_only_the_canonical_base64url_spelling_of_a_token_verifies(part: int) -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    segments = token.removeprefix("mp_").split(".")
    if len(segments[part]) % 4 == 0:
        pytest.skip("this segment has no unused bits")
    variants = other_spellings(segments[part])

    assert verify_preview_token(token, {"k1": KEY}, NOW) == CLAIMS
    assert variants, "a segment of this length has unused bits"
    for variant in variants:
        spelled = "mp_" + ".".join(variant if i == part else s for i, s in enumerate(segments))
        with pytest.raises(InvalidTokenError):
            verify_preview_token(spelled, {"k1": KEY}, NOW)


def test_the_signature_of_a_token_has_unused_bits_so_the_malleability_test_bites() -> None:
    signature = sign_preview_token(CLAIMS, "k1", KEY).rsplit(".", 1)[1]
    assert len(signature) == 43  # 32 bytes: 2 unused bits in the last character
    assert len(other_spellings(signature)) == 3


@pytest.mark.parametrize("padding", ["=", "=="])
def test_padded_segments_are_refused(padding: str) -> None:
    token = sign_preview_token(CLAIMS, "k1", KEY)
    with pytest.raises(MalformedTokenError):
        verify_preview_token(token + padding, {"k1": KEY}, NOW)
