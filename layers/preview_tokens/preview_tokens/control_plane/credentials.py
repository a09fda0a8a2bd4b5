"""Who is calling the mint API: an ``msk_`` API key or a JWT from the configured issuer.

The tenant always comes from the credential (the key's record, or the JWT's tenant claim),
never from the request body. Failures say nothing about which check failed beyond the status:
401 for a missing, malformed, unknown, revoked or expired credential; 403 for a valid one
whose tenant is not registered here or is disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from preview_tokens.control_plane.api_keys import API_KEY_PREFIX, PREVIEWS_WRITE, ApiKey, ApiKeyRepository
from preview_tokens.control_plane.tenants import Tenant, TenantRepository
from preview_tokens.errors import ForbiddenError, ServiceUnavailableError, UnauthorizedError
from preview_tokens.observability import logger
from preview_tokens.settings import JwtSettings

if TYPE_CHECKING:
    from preview_tokens.control_plane.jwks import JwksKeys

JWT_ALGORITHMS = ["RS256", "ES256"]
MAX_CREDENTIAL_LENGTH = 8192
JWT_CREDENTIAL_PREFIX = "jwt:"


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    scopes: frozenset[str]
    credential: Literal["api_key", "jwt"]
    credential_id: str = ""
    """Who is calling: the API key's ``key_id``, or ``jwt:`` + the JWT's ``sub`` (audit trail, token
    ``cid``, the list's ``created_by``). The prefix keeps the two apart: an identity provider's
    ``sub`` may be any string, an API key's id among them, and revoking that key with its tokens
    must not end the tokens a JWT with that ``sub`` minted."""

    def require_previews_write(self, operation: str) -> None:
        """403 unless the credential may mint and manage previews; checked before the body is read."""
        if PREVIEWS_WRITE not in self.scopes:
            logger.info(f"{operation} refused", extra={"reason": "missing previews:write"})
            raise ForbiddenError("This credential lacks the previews:write scope.")


def bearer_credential(authorization: str | None) -> str:
    """The credential of an ``Authorization: Bearer <credential>`` header."""
    if not authorization:
        raise UnauthorizedError()
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise UnauthorizedError()
    if len(credential) > MAX_CREDENTIAL_LENGTH or not credential.isascii():
        raise UnauthorizedError()
    return credential


def _jwt_scopes(claims: dict[str, object]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    found: set[str] = set()
    if isinstance(scope, str):
        found.update(scope.split())
    if isinstance(scp, str):
        found.update(scp.split())
    elif isinstance(scp, list):
        found.update(item for item in scp if isinstance(item, str))
    return frozenset(found)


class CredentialVerifier:
    def __init__(
        self,
        api_keys: ApiKeyRepository,
        tenants: TenantRepository,
        jwt_settings: JwtSettings | None,
        jwks: JwksKeys | None = None,
    ) -> None:
        self._api_keys = api_keys
        self._tenants = tenants
        self._jwt = jwt_settings
        self._jwks = jwks

    def authenticate(self, authorization: str | None) -> Caller:
        credential = bearer_credential(authorization)
        if is_api_key(credential):
            caller = self.caller_for_api_key(self._api_keys.find_by_secret(credential))
        elif credential.count(".") == 2:
            caller = self.caller_for_jwt(credential)
        else:
            logger.info("credential rejected", extra={"reason": "unrecognised format"})
            raise UnauthorizedError()
        require_active(self._tenants.get(caller.tenant_id))
        return caller

    @staticmethod
    def caller_for_api_key(key: ApiKey | None) -> Caller:
        """The caller an API key's record names; 401 for an unknown or revoked key."""
        if key is None or key.revoked:
            logger.info("credential rejected", extra={"reason": "api key unknown or revoked"})
            raise UnauthorizedError()
        return Caller(key.tenant_id, key.scopes, "api_key", key.key_id)

    def caller_for_jwt(self, credential: str) -> Caller:
        """The caller a JWT names, once its signature, issuer, audience and expiry verify."""
        if credential.count(".") != 2:
            logger.info("credential rejected", extra={"reason": "unrecognised format"})
            raise UnauthorizedError()
        if self._jwt is None:
            logger.info("credential rejected", extra={"reason": "jwt credentials are not configured"})
            raise UnauthorizedError()
        # Imported on the first JWT only: pyjwt loads `cryptography` (~0.2 s), which an API-key
        # mint never needs, and the mint's cold start is budgeted (README "Performance").
        import jwt

        from preview_tokens.control_plane.jwks import JwksKeys, JwksUnavailableError, UnknownSigningKeyError

        jwks = self._jwks = self._jwks or JwksKeys(self._jwt.jwks_url)
        try:
            signing_key = jwks.signing_key(credential)
            claims: dict[str, object] = jwt.decode(
                credential,
                signing_key,
                algorithms=JWT_ALGORITHMS,
                audience=self._jwt.audience,
                issuer=self._jwt.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except JwksUnavailableError as error:
            logger.warning("jwks unreachable", extra={"error_type": str(error)})
            raise ServiceUnavailableError() from None
        except (UnknownSigningKeyError, jwt.InvalidTokenError) as error:
            logger.info("credential rejected", extra={"reason": f"jwt: {type(error).__name__}"})
            raise UnauthorizedError() from None
        tenant_id = claims.get(self._jwt.tenant_claim)
        if not isinstance(tenant_id, str) or not tenant_id:
            logger.info("credential rejected", extra={"reason": "jwt has no tenant claim"})
            raise ForbiddenError()
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            logger.info("credential rejected", extra={"reason": "jwt sub is not a non-empty string"})
            raise UnauthorizedError()
        return Caller(tenant_id, _jwt_scopes(claims), "jwt", JWT_CREDENTIAL_PREFIX + subject)


def is_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)


def require_active(tenant: Tenant | None) -> Tenant:
    """403 unless the credential's tenant is registered here and active."""
    if tenant is None or not tenant.active:
        logger.info("credential refused", extra={"reason": "tenant unknown or disabled"})
        raise ForbiddenError()
    return tenant
