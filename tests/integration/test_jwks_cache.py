"""JWT credentials: the provider's keys are cached for a bounded time, and re-fetched on rotation.

The credential verifier runs against moto (API keys, tenants) and a real JWKS endpoint on
loopback; only the clock is simulated, so the 5-minute lifetime is shown without waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from preview_tokens.control_plane.api_keys import ApiKeyRepository
from preview_tokens.control_plane.credentials import CredentialVerifier
from preview_tokens.control_plane.jwks import (
    FAILED_FETCH_BACKOFF_SECONDS,
    JWKS_LIFETIME_SECONDS,
    JWKS_MAX_STALE_SECONDS,
    UNKNOWN_KID_REFETCH_SECONDS,
    JwksKeys,
)
from preview_tokens.control_plane.tenants import TenantRepository
from preview_tokens.errors import ServiceUnavailableError, UnauthorizedError
from preview_tokens.settings import JwtSettings

from tests.support.deployment import TENANT, Deployment
from tests.support.jwks import AUDIENCE, ISSUER, TENANT_CLAIM, IdentityProvider, identity_provider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with identity_provider() as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(deployment: Deployment, idp: IdentityProvider, clock: Clock) -> CredentialVerifier:
    tables = deployment.resources.tables
    return CredentialVerifier(
        ApiKeyRepository(tables["ApiKeysTable"]),
        TenantRepository(tables["TenantsTable"]),
        JwtSettings(ISSUER, AUDIENCE, idp.jwks_url, TENANT_CLAIM),
        JwksKeys(idp.jwks_url, clock=clock),
    )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_withdrawn_key_stops_verifying_once_the_cached_set_is_five_minutes_old(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    old_key_token = idp.token(TENANT)
    assert verifier.authenticate(bearer(old_key_token)).tenant_id == TENANT

    idp.rotate()  # the provider withdraws the key that signed old_key_token
    clock.now += JWKS_LIFETIME_SECONDS - 1
    still_cached = verifier.authenticate(bearer(old_key_token))
    clock.now += 1

    assert still_cached.tenant_id == TENANT
    with pytest.raises(UnauthorizedError):
        verifier.authenticate(bearer(old_key_token))
    assert len(idp.fetches) == 2


def test_a_new_kid_is_fetched_when_first_seen_at_most_once_per_interval(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    assert verifier.authenticate(bearer(idp.token(TENANT))).tenant_id == TENANT
    new_key = idp.rotate()
    clock.now += UNKNOWN_KID_REFETCH_SECONDS

    new_key_token = idp.token(TENANT, key=new_key, kid="rs256-next")

    assert verifier.authenticate(bearer(new_key_token)).tenant_id == TENANT
    assert len(idp.fetches) == 2


def test_made_up_kids_cost_the_provider_one_fetch_per_interval_not_one_per_request(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    forged = [idp.token(TENANT, kid=secrets.token_hex(4)) for _ in range(3)]

    for interval in range(3):
        for _ in range(10):
            for token in forged:
                with pytest.raises(UnauthorizedError):
                    verifier.authenticate(bearer(token))
        assert len(idp.fetches) == 1 + interval
        clock.now += UNKNOWN_KID_REFETCH_SECONDS


def test_jwt_mints_continue_on_cached_keys_through_an_outage_with_garbage_kids(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    # Given keys fetched while the provider was up
    assert verifier.authenticate(bearer(idp.token(TENANT))).tenant_id == TENANT
    # When the provider goes down and an unauthenticated caller sends JWTs with made-up kids
    idp.down = True
    for second in range(0, 600, 3):  # ten minutes of outage: past the 5-minute lifetime too
        clock.now += 3
        with pytest.raises(UnauthorizedError):
            verifier.authenticate(bearer(idp.token(TENANT, kid=f"garbage-{second}")))
        # Then a valid JWT still mints, on the keys already held
        assert verifier.authenticate(bearer(idp.token(TENANT))).tenant_id == TENANT
    # And the failed refetches were bounded: never two within the backoff's first step
    attempts = len(idp.fetches) - 1
    assert 1 <= attempts <= 600 / FAILED_FETCH_BACKOFF_SECONDS
    assert attempts <= 600 / UNKNOWN_KID_REFETCH_SECONDS + 1

    # And once the provider is back, the next refetch picks its keys up again
    idp.down = False
    clock.now += 60
    rotated = idp.rotate()
    assert verifier.authenticate(bearer(idp.token(TENANT, key=rotated, kid="rs256-next"))).tenant_id == TENANT


def test_with_no_key_set_held_an_outage_is_a_503_and_the_refetch_backs_off(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    idp.down = True
    for _ in range(20):
        with pytest.raises(ServiceUnavailableError):
            verifier.authenticate(bearer(idp.token(TENANT)))
    assert len(idp.fetches) == 1  # 20 mints in the same second: one request to the provider
    clock.now += FAILED_FETCH_BACKOFF_SECONDS
    with pytest.raises(ServiceUnavailableError):
        verifier.authenticate(bearer(idp.token(TENANT)))
    assert len(idp.fetches) == 2


def test_cached_keys_are_not_used_past_the_stale_limit(
    verifier: CredentialVerifier, idp: IdentityProvider, clock: Clock
) -> None:
    assert verifier.authenticate(bearer(idp.token(TENANT))).tenant_id == TENANT
    idp.down = True
    clock.now += JWKS_MAX_STALE_SECONDS - 1
    assert verifier.authenticate(bearer(idp.token(TENANT))).tenant_id == TENANT
    clock.now += 61  # past the stale limit, and past any backoff
    with pytest.raises(ServiceUnavailableError):
        verifier.authenticate(bearer(idp.token(TENANT)))
