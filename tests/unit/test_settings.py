"""Settings fail loudly when missing or malformed, and never fall back silently."""

from __future__ import annotations

import pytest
from preview_tokens.settings import (
    DataPlaneSettings,
    JwtSettings,
    MintSettings,
    PreviewUrlSettings,
    SettingsError,
)

MINT_ENV = {
    "TENANTS_TABLE": "t",
    "API_KEYS_TABLE": "k",
    "SANDBOXES_TABLE": "s",
    "SIGNING_KEYS_TABLE": "sk",
    "PREVIEW_DOMAIN": "Sandboxes.Example.com",
    "PREVIEW_TOKENS_TABLE": "pt",
    "MINT_COUNTERS_TABLE": "mc",
    "REVOCATIONS_TABLE": "rv",
    "AUDIT_TABLE": "au",
}


def test_a_complete_mint_environment_loads() -> None:
    settings = MintSettings.from_env(MINT_ENV)
    assert settings.previews.domain == "sandboxes.example.com"
    assert settings.jwt is None
    assert settings.signing_keys.refresh_seconds == 60


@pytest.mark.parametrize("missing", sorted(MINT_ENV))
def test_each_missing_mint_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in MINT_ENV.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        MintSettings.from_env(env)


def test_half_configured_jwt_settings_are_an_error() -> None:
    with pytest.raises(SettingsError, match="JWT_AUDIENCE"):
        JwtSettings.from_env(
            {"JWT_ISSUER": "https://idp", "JWT_JWKS_URL": "https://idp/jwks", "JWT_TENANT_CLAIM": "t"}
        )


@pytest.mark.parametrize("domain", ["https://x.com", "x_y.com", "a..b", "-a.com"])
def test_a_preview_domain_must_be_a_domain_name(domain: str) -> None:
    with pytest.raises(SettingsError):
        PreviewUrlSettings.from_env({"PREVIEW_DOMAIN": domain})


def test_the_preview_url_is_https_by_default_and_http_with_a_port_locally() -> None:
    assert (
        PreviewUrlSettings.from_env({"PREVIEW_DOMAIN": "p.io"}).url_for("sbx", "mp_t")
        == "https://sbx.p.io?mt=mp_t"
    )
    local = PreviewUrlSettings.from_env(
        {"PREVIEW_DOMAIN": "sandboxes.localhost", "PREVIEW_URL_SCHEME": "http", "PREVIEW_URL_PORT": "3000"}
    )
    assert local.url_for("sbx", "mp_t") == "http://sbx.sandboxes.localhost:3000?mt=mp_t"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INPUT_PATH_PREFIX", "input"),
        ("FRAME_ANCESTORS", "a; script-src *"),
        ("ORIGIN_ASSERTION_AUDIENCE", " "),
    ],
)
def test_data_plane_settings_are_validated(name: str, value: str) -> None:
    env = {
        "SIGNING_KEYS_TABLE": "sk",
        "PREVIEW_DOMAIN": "p.io",
        "INPUT_PATH_PREFIX": "/input",
        "FRAME_ANCESTORS": "https:",
        "ORIGIN_ASSERTION_AUDIENCE": "https://ingress.example.com",
        "REVOCATIONS_TABLE": "rv",
    }
    DataPlaneSettings.from_env(env)
    with pytest.raises(SettingsError, match=name):
        DataPlaneSettings.from_env({**env, name: value})


def test_revocation_freshness_defaults_and_refuses_a_staleness_below_the_refresh() -> None:
    env = {**MINT_ENV}
    settings = MintSettings.from_env(env)
    assert (settings.revocations.refresh_seconds, settings.revocations.max_staleness_seconds) == (2.0, 10.0)
    assert settings.default_mint_rate_per_minute == 60
    assert settings.audit.retention_days == 90
    with pytest.raises(SettingsError, match="REVOCATIONS_MAX_STALENESS_SECONDS"):
        MintSettings.from_env(
            {**env, "REVOCATIONS_REFRESH_SECONDS": "5", "REVOCATIONS_MAX_STALENESS_SECONDS": "2"}
        )
    with pytest.raises(SettingsError, match="REVOCATIONS_REFRESH_SECONDS"):
        MintSettings.from_env({**env, "REVOCATIONS_REFRESH_SECONDS": "soon"})
