"""Deployment settings, read once from the environment and validated loudly.

Each function reads only the settings it needs. A missing or malformed setting raises
:class:`SettingsError` at the first use (the first invocation of a cold start), never falls
back silently. ``cache_clear()`` on the loaders resets them in tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

_DOMAIN_RE = re.compile(
    r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class SettingsError(RuntimeError):
    """A required setting is missing or malformed."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"setting {name} is required and is not set")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise SettingsError(f"setting {name} must be a positive integer, got {raw!r}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {name} must be a number of seconds, got {raw!r}") from None
    if not minimum <= value < 86_400:
        raise SettingsError(f"setting {name} must be at least {minimum} seconds, got {raw!r}")
    return value


def _preview_domain(env: Mapping[str, str]) -> str:
    domain = _required(env, "PREVIEW_DOMAIN").lower()
    if not _DOMAIN_RE.match(domain):
        raise SettingsError(f"setting PREVIEW_DOMAIN is not a domain name: {domain!r}")
    return domain


@dataclass(frozen=True)
class PreviewUrlSettings:
    """Where previews are served: ``<scheme>://<sandbox-id>.<domain>[:<port>]``."""

    domain: str
    scheme: str = "https"
    port: int | None = None

    def host_for(self, sandbox_id: str) -> str:
        """The sandbox's host, which every token is bound to (its ``aud``)."""
        return f"{sandbox_id}.{self.domain}"

    def url_for(self, sandbox_id: str, token: str) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host_for(sandbox_id)}{port}?mt={token}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PreviewUrlSettings:
        scheme = env.get("PREVIEW_URL_SCHEME", "https").strip() or "https"
        if scheme not in ("https", "http"):
            raise SettingsError(f"setting PREVIEW_URL_SCHEME must be https or http, got {scheme!r}")
        raw_port = env.get("PREVIEW_URL_PORT", "").strip()
        port = _positive_int(env, "PREVIEW_URL_PORT", 0) if raw_port else None
        return cls(domain=_preview_domain(env), scheme=scheme, port=port)


@dataclass(frozen=True)
class JwtSettings:
    """The identity provider whose JWTs the mint API accepts as credentials."""

    issuer: str
    audience: str
    jwks_url: str
    tenant_claim: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JwtSettings | None:
        """``None`` when no JWT issuer is configured: JWT credentials are then refused."""
        names = ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_TENANT_CLAIM")
        values = {name: env.get(name, "").strip() for name in names}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise SettingsError(f"JWT settings are partly configured; missing {', '.join(missing)}")
        if not values["JWT_JWKS_URL"].startswith(("https://", "http://")):
            raise SettingsError("setting JWT_JWKS_URL must be an http(s) URL")
        return cls(
            issuer=values["JWT_ISSUER"],
            audience=values["JWT_AUDIENCE"],
            jwks_url=values["JWT_JWKS_URL"],
            tenant_claim=values["JWT_TENANT_CLAIM"],
        )


@dataclass(frozen=True)
class SigningKeySettings:
    table: str
    refresh_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SigningKeySettings:
        return cls(
            table=_required(env, "SIGNING_KEYS_TABLE"),
            refresh_seconds=_positive_int(env, "SIGNING_KEYS_REFRESH_SECONDS", 60),
        )


@dataclass(frozen=True)
class RevocationSettings:
    """Where revocations are recorded, and how fresh the data plane's view of them must be."""

    table: str
    refresh_seconds: float
    max_staleness_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RevocationSettings:
        refresh = _seconds(env, "REVOCATIONS_REFRESH_SECONDS", 2.0)
        staleness = _seconds(env, "REVOCATIONS_MAX_STALENESS_SECONDS", 10.0, minimum=0.5)
        if staleness < refresh:
            raise SettingsError(
                "REVOCATIONS_MAX_STALENESS_SECONDS must not be below REVOCATIONS_REFRESH_SECONDS"
            )
        return cls(_required(env, "REVOCATIONS_TABLE"), refresh, staleness)


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail's table and how long its entries are kept (DynamoDB TTL)."""

    table: str
    retention_days: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuditSettings:
        return cls(_required(env, "AUDIT_TABLE"), _positive_int(env, "AUDIT_RETENTION_DAYS", 90))


@dataclass(frozen=True)
class MintSettings:
    tenants_table: str
    api_keys_table: str
    sandboxes_table: str
    signing_keys: SigningKeySettings
    previews: PreviewUrlSettings
    jwt: JwtSettings | None
    preview_tokens_table: str
    mint_counters_table: str
    default_mint_rate_per_minute: int
    revocations: RevocationSettings
    audit: AuditSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MintSettings:
        return cls(
            tenants_table=_required(env, "TENANTS_TABLE"),
            api_keys_table=_required(env, "API_KEYS_TABLE"),
            sandboxes_table=_required(env, "SANDBOXES_TABLE"),
            signing_keys=SigningKeySettings.from_env(env),
            previews=PreviewUrlSettings.from_env(env),
            jwt=JwtSettings.from_env(env),
            preview_tokens_table=_required(env, "PREVIEW_TOKENS_TABLE"),
            mint_counters_table=_required(env, "MINT_COUNTERS_TABLE"),
            default_mint_rate_per_minute=_positive_int(env, "MINT_RATE_LIMIT_PER_MINUTE", 60),
            revocations=RevocationSettings.from_env(env),
            audit=AuditSettings.from_env(env),
        )


@dataclass(frozen=True)
class FirstUseSettings:
    """What the exchange records when a token opens its first session (token record, audit trail)."""

    preview_tokens_table: str
    audit: AuditSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FirstUseSettings:
        return cls(_required(env, "PREVIEW_TOKENS_TABLE"), AuditSettings.from_env(env))


@dataclass(frozen=True)
class DataPlaneSettings:
    """Settings of the authorizer and the exchange: the preview host side."""

    signing_keys: SigningKeySettings
    preview_domain: str
    input_path_prefix: str
    frame_ancestors: str
    origin_audience: str
    """``aud`` of the origin assertions: who the fleet's verifier expects them to be for."""
    revocations: RevocationSettings
    tenants_table: str | None = None
    sandboxes_table: str | None = None
    """Both set (the exchange): the tenant's frame-ancestors go into the assertion (``fa``) and
    onto the denial page; unset (the authorizer): the assertion has no ``fa``."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DataPlaneSettings:
        prefix = _required(env, "INPUT_PATH_PREFIX")
        if not prefix.startswith("/") or prefix == "/":
            raise SettingsError("setting INPUT_PATH_PREFIX must be a path prefix such as /input")
        ancestors = _required(env, "FRAME_ANCESTORS")
        if any(ch in ancestors for ch in ';,"\\\r\n'):
            raise SettingsError("setting FRAME_ANCESTORS must be a space-separated source list")
        return cls(
            signing_keys=SigningKeySettings.from_env(env),
            preview_domain=_preview_domain(env),
            input_path_prefix=prefix,
            frame_ancestors=ancestors,
            origin_audience=_required(env, "ORIGIN_ASSERTION_AUDIENCE"),
            revocations=RevocationSettings.from_env(env),
            tenants_table=env.get("TENANTS_TABLE") or None,
            sandboxes_table=env.get("SANDBOXES_TABLE") or None,
        )


@cache
def mint_settings() -> MintSettings:
    return MintSettings.from_env(os.environ)


@cache
def data_plane_settings() -> DataPlaneSettings:
    return DataPlaneSettings.from_env(os.environ)


@cache
def first_use_settings() -> FirstUseSettings:
    return FirstUseSettings.from_env(os.environ)
