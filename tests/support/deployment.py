"""A seeded deployment on a moto server: tenants, keys, sandboxes and a signing key."""

from __future__ import annotations

from dataclasses import dataclass, field

from preview_local.aws_resources import LocalResources
from preview_origin import OriginAssertionVerifier, StaticJwks
from preview_tokens.control_plane.api_keys import PREVIEWS_WRITE, ApiKeyRepository
from preview_tokens.control_plane.sandboxes import SandboxRepository
from preview_tokens.control_plane.tenants import TenantRepository
from preview_tokens.keys.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

TENANT = "acme"
OTHER_TENANT = "globex"
SANDBOX = "sbx-abc123"
OTHER_SANDBOX = "sbx-other"
PREVIEW_DOMAIN = "sandboxes.example.com"
ORIGIN_AUDIENCE = "https://ingress.sandboxes.internal.example.com"


@dataclass
class Deployment:
    resources: LocalResources
    api_key: str = field(repr=False, default="")
    api_key_id: str = ""
    api_key_without_scope: str = field(repr=False, default="")
    other_tenant_api_key: str = field(repr=False, default="")
    kid: str = ""
    origin_kid: str = ""

    @property
    def tenants(self) -> TenantRepository:
        return TenantRepository(self.resources.tables["TenantsTable"])

    @property
    def api_keys(self) -> ApiKeyRepository:
        return ApiKeyRepository(self.resources.tables["ApiKeysTable"])

    @property
    def sandboxes(self) -> SandboxRepository:
        return SandboxRepository(self.resources.tables["SandboxesTable"])

    @property
    def signing_keys(self) -> SigningKeyAdmin:
        return SigningKeyAdmin(self.resources.tables["SigningKeysTable"], edge_store=None)

    @property
    def origin_keys(self) -> OriginKeyAdmin:
        return OriginKeyAdmin(self.resources.tables["SigningKeysTable"])

    def seed(self) -> Deployment:
        self.tenants.put(TENANT, "Acme")
        self.tenants.put(OTHER_TENANT, "Globex")
        self.sandboxes.put(TENANT, SANDBOX)
        self.sandboxes.put(OTHER_TENANT, OTHER_SANDBOX)
        issued = self.api_keys.create(TENANT, [PREVIEWS_WRITE])
        self.api_key, self.api_key_id = issued.secret, issued.key.key_id
        self.api_key_without_scope = self.api_keys.create(TENANT, ["sandboxes:read"]).secret
        self.other_tenant_api_key = self.api_keys.create(OTHER_TENANT, [PREVIEWS_WRITE]).secret
        self.kid = self.signing_keys.create(self.resources.kms_key_id).kid
        self.origin_kid = self.origin_keys.create(self.resources.kms_key_id)["kid"]
        return self

    def signing_secret(self, kid: str) -> bytes:
        """The plaintext of a signing key, decrypted the way the functions do it."""
        provider = SigningKeyProvider(
            DynamoDbSigningKeyStore(self.resources.tables["SigningKeysTable"]), KmsKeyDecrypter(), 60
        )
        return provider.key_ring().secrets_by_kid[kid]


def fleet_verifier(deployment: Deployment) -> OriginAssertionVerifier:
    """The sandbox fleet's verifier, with the deployment's published origin keys."""
    return OriginAssertionVerifier(StaticJwks(deployment.origin_keys.jwks()), ORIGIN_AUDIENCE)
