"""The identity provider's JWT signing keys (its JWKS), cached for a bounded time.

* The key set is fetched on first use and re-fetched once it is ``lifetime_seconds`` old (5
  minutes): a key the provider withdraws stops verifying within that time.
* A JWT whose ``kid`` is not in the cached set (the provider rotated) triggers a re-fetch, at most
  once per ``refetch_interval_seconds``: a stream of made-up ``kid`` values costs the provider one
  request per interval, not one per mint request.
* A fetch that fails is :class:`JwksUnavailableError` (the mint API answers 503); the set is never
  used past its lifetime. One attempt, bounded by :mod:`aws_timeouts`' connect + read timeouts.

Why not ``PyJWKClient``'s own caches: its per-``kid`` cache (``cache_keys``) is an ``lru_cache`` that
never expires, so a withdrawn key verified for the life of the process; and its re-fetch on an
unknown ``kid`` has no rate limit. It is still what fetches and parses the set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from preview_tokens.keys.aws_timeouts import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

JWKS_LIFETIME_SECONDS = 300.0
UNKNOWN_KID_REFETCH_SECONDS = 30.0


class JwksUnavailableError(Exception):
    """The JWKS endpoint cannot be read now."""


class UnknownSigningKeyError(Exception):
    """The JWT names a ``kid`` the provider does not publish (after a rate-limited re-fetch)."""


def fetch_jwks(url: str) -> Mapping[str, Any]:
    """The JWKS document at ``url``, in one bounded attempt."""
    client = jwt.PyJWKClient(
        url,
        cache_jwk_set=False,
        cache_keys=False,
        timeout=int(CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS),
    )
    try:
        document = client.fetch_data()
    except jwt.PyJWKClientError as error:
        raise JwksUnavailableError(type(error).__name__) from None
    if not isinstance(document, Mapping):
        raise JwksUnavailableError("not a JWKS document")
    return document


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        lifetime_seconds: float = JWKS_LIFETIME_SECONDS,
        refetch_interval_seconds: float = UNKNOWN_KID_REFETCH_SECONDS,
        fetch: Callable[[str], Mapping[str, Any]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._lifetime = lifetime_seconds
        self._refetch_interval = refetch_interval_seconds
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0

    def signing_key(self, token: str) -> jwt.PyJWK:
        """The key the token's header names; raises :class:`jwt.InvalidTokenError` for a bad header."""
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise UnknownSigningKeyError("the JWT names no kid")
        now = self._clock()
        if self._keys is None or now - self._fetched_at >= self._lifetime:
            self._refresh(now)
        keys = self._keys or {}
        if kid not in keys and now - self._fetched_at >= self._refetch_interval:
            self._refresh(now)
            keys = self._keys or {}
        if kid not in keys:
            raise UnknownSigningKeyError("the JWT names a kid the provider does not publish")
        return keys[kid]

    def _refresh(self, now: float) -> None:
        self._keys = None  # never used past its lifetime, even if this fetch fails
        document = self._fetch(self._url)
        try:
            key_set = jwt.PyJWKSet.from_dict(dict(document))
        except jwt.PyJWKSetError:  # no usable key at all: nothing verifies, but the provider answered
            key_set = None
        self._keys = {
            key.key_id: key
            for key in (key_set.keys if key_set else [])
            if key.key_id and key.public_key_use in (None, "sig")
        }
        self._fetched_at = now
