"""The identity provider's JWT signing keys (its JWKS), cached for a bounded time.

* The key set is fetched on first use and re-fetched once it is ``lifetime_seconds`` old (5
  minutes): a key the provider withdraws stops verifying within that time, while the provider
  answers.
* A JWT whose ``kid`` is not in the cached set (the provider rotated) triggers a re-fetch, at most
  once per ``refetch_interval_seconds`` (30 s): a stream of made-up ``kid`` values costs the
  provider one request per interval, not one per mint request.
* A fetch that fails keeps the keys already held (stale-if-error, up to ``max_stale_seconds``, 1
  hour): an outage of the provider, even with forged ``kid`` values sent during it, does not stop
  mints with valid JWTs. After a failure the next attempt waits, with backoff (5 s, doubling, at
  most 60 s); until then no request reaches the provider.
* With no usable keys (never fetched, or older than ``max_stale_seconds``) a failed fetch is
  :class:`JwksUnavailableError` (the mint API answers 503). One attempt, bounded by
  :mod:`aws_timeouts`' connect + read timeouts.

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
JWKS_MAX_STALE_SECONDS = 3600.0
FAILED_FETCH_BACKOFF_SECONDS = 5.0
FAILED_FETCH_BACKOFF_MAX_SECONDS = 60.0


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
        max_stale_seconds: float = JWKS_MAX_STALE_SECONDS,
        fetch: Callable[[str], Mapping[str, Any]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._lifetime = lifetime_seconds
        self._refetch_interval = refetch_interval_seconds
        self._max_stale = max_stale_seconds
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._retry_at = 0.0
        self._failures = 0

    def signing_key(self, token: str) -> jwt.PyJWK:
        """The key the token's header names; raises :class:`jwt.InvalidTokenError` for a bad header."""
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise UnknownSigningKeyError("the JWT names no kid")
        now = self._clock()
        if (
            self._keys is None
            or now - self._fetched_at >= self._lifetime
            or (
                kid not in self._keys
                and (self._attempted_at is None or now - self._attempted_at >= self._refetch_interval)
            )
        ):
            self._refresh(now)
        if self._keys is None or now - self._fetched_at >= self._max_stale:
            raise JwksUnavailableError("no key set fetched within the stale limit")
        if kid not in self._keys:
            raise UnknownSigningKeyError("the JWT names a kid the provider does not publish")
        return self._keys[kid]

    def _refresh(self, now: float) -> None:
        """One fetch unless a failed one is backing off; a failure keeps the keys already held."""
        if now < self._retry_at:
            return
        self._attempted_at = now
        try:
            document = self._fetch(self._url)
        except JwksUnavailableError:
            self._failures += 1
            backoff = FAILED_FETCH_BACKOFF_SECONDS * 2 ** (self._failures - 1)
            self._retry_at = now + min(backoff, FAILED_FETCH_BACKOFF_MAX_SECONDS)
            if self._keys is None or now - self._fetched_at >= self._max_stale:
                raise
            return
        self._failures = 0
        self._retry_at = 0.0
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
