"""Integration tier: the real handlers against a moto server on loopback (DynamoDB and KMS)."""

from __future__ import annotations

from collections.abc import Iterator

import mint_api
import pytest
from preview_local.aws_resources import ensure_resources
from preview_local.moto_aws import MotoAws
from preview_tokens import settings
from preview_tokens.data_plane import wiring
from preview_tokens.keys import dynamodb

from tests.support.deployment import ORIGIN_AUDIENCE, PREVIEW_DOMAIN, Deployment


@pytest.fixture(scope="session")
def moto_aws() -> Iterator[MotoAws]:
    aws = MotoAws().start()
    yield aws
    aws.stop()


def clear_cold_start_caches() -> None:
    """What a new Lambda execution environment would not have: cached settings and clients."""
    settings.mint_settings.cache_clear()
    settings.data_plane_settings.cache_clear()
    dynamodb.default_client.cache_clear()
    settings.first_use_settings.cache_clear()
    mint_api.mint_service.cache_clear()
    mint_api.token_lifecycle.cache_clear()
    wiring.preview_gate.cache_clear()
    wiring.frame_ancestors.cache_clear()
    wiring.first_use_recorder.cache_clear()
    wiring.renewal_recorder.cache_clear()


@pytest.fixture
def deployment(moto_aws: MotoAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    """A fresh, seeded deployment and the environment its functions would run with."""
    moto_aws.reset()
    for name, value in moto_aws.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_TENANT_CLAIM"):
        monkeypatch.delenv(name, raising=False)
    clear_cold_start_caches()
    resources = ensure_resources()
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREVIEW_DOMAIN", PREVIEW_DOMAIN)
    monkeypatch.setenv("INPUT_PATH_PREFIX", "/input")
    monkeypatch.setenv("FRAME_ANCESTORS", "https://app.example.com")
    monkeypatch.setenv("ORIGIN_ASSERTION_AUDIENCE", ORIGIN_AUDIENCE)
    # Every data-plane call reads new revocations: a test revokes, then expects the next request
    # refused. The refresh throttle itself is a unit test (tests/unit/test_revocation_view.py).
    monkeypatch.setenv("REVOCATIONS_REFRESH_SECONDS", "0")
    yield Deployment(resources).seed()
    clear_cold_start_caches()
