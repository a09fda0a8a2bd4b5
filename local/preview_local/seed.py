"""The demo data: two tenants, their sandboxes, API keys, a signing key and a JWT, seeded idempotently.

Everything goes through the layer's repositories and admin classes, exactly as the operator
CLI would do it. Each step first looks for what it would create. The API keys and the JWT are
kept in the state directory, so a restart (with a fresh, empty moto server) re-registers the
same keys and a developer's copied credentials keep working.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preview_tokens.control_plane.api_keys import PREVIEWS_WRITE, ApiKeyRepository
from preview_tokens.control_plane.sandboxes import SandboxRepository
from preview_tokens.control_plane.tenants import TenantRepository
from preview_tokens.data_plane.edge_store import EdgeStore, sandbox_tenant_entry
from preview_tokens.keys.signing_keys import ACTIVE
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

from preview_local.dev_idp import DevIdentityProvider
from preview_local.local_state import LocalState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

DEMO_TENANT = "tenant-demo"
OTHER_TENANT = "tenant-other"
DESKTOP_SANDBOX = "sbx-desktop"
# A tenant of its own whose mint rate limit is low, so a check can reach 429 without a flood
# and without touching the demo tenant's budget.
RATE_LIMITED_TENANT = "tenant-limited"
RATE_LIMITED_PER_MINUTE = 5
TENANT_NAMES = {DEMO_TENANT: "Demo Co", OTHER_TENANT: "Other Co", RATE_LIMITED_TENANT: "Limited Co"}
SANDBOXES = {
    DEMO_TENANT: ("sbx-demo", "sbx-demo-2", DESKTOP_SANDBOX),
    OTHER_TENANT: ("sbx-other",),
    RATE_LIMITED_TENANT: ("sbx-limited",),
}
READ_ONLY_SCOPE = "sandboxes:read"
CREDENTIALS_FILE = "credentials.json"
JWT_LIFETIME_SECONDS = 7 * 86_400
JWT_RENEW_BEFORE_SECONDS = 86_400

# name in credentials.json -> (tenant, scopes)
API_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "api_key": (DEMO_TENANT, (PREVIEWS_WRITE,)),
    "api_key_without_scope": (DEMO_TENANT, (READ_ONLY_SCOPE,)),
    "other_tenant_api_key": (OTHER_TENANT, (PREVIEWS_WRITE,)),
    "rate_limited_api_key": (RATE_LIMITED_TENANT, (PREVIEWS_WRITE,)),
}


@dataclass(frozen=True)
class DemoSeed:
    api_keys: Mapping[str, str] = field(repr=False)
    jwt: str = field(repr=False)
    signing_kid: str

    @property
    def sandbox_id(self) -> str:
        return SANDBOXES[DEMO_TENANT][0]

    @property
    def other_tenant_sandbox_id(self) -> str:
        return SANDBOXES[OTHER_TENANT][0]

    @property
    def rate_limited_sandbox_id(self) -> str:
        return SANDBOXES[RATE_LIMITED_TENANT][0]


def seed_demo(
    tables: Mapping[str, str],
    kms_key_id: str,
    state: LocalState,
    identity_provider: DevIdentityProvider,
    edge_store: EdgeStore,
    dynamodb: DynamoDBClient | None = None,
    kms: KMSClient | None = None,
    app_sandboxes: Iterable[str] = (),
) -> DemoSeed:
    """``tables`` by logical id (``TenantsTable``...) as :func:`ensure_resources` created them;
    ``app_sandboxes``: the developer's apps, each registered as a sandbox of the demo tenant."""
    tenants = TenantRepository(tables["TenantsTable"], dynamodb)
    sandboxes = SandboxRepository(tables["SandboxesTable"], dynamodb)
    extra = {DEMO_TENANT: tuple(app_sandboxes)}
    for tenant_id, name in TENANT_NAMES.items():
        if tenants.get(tenant_id) is None:
            tenants.put(tenant_id, name)
        for sandbox_id in (*SANDBOXES[tenant_id], *extra.get(tenant_id, ())):
            if sandboxes.find_in_tenant(tenant_id, sandbox_id) is None:
                sandboxes.put(tenant_id, sandbox_id)
            edge_store.put(sandbox_tenant_entry(sandbox_id), tenant_id)
    tenants.set_mint_rate_limit(RATE_LIMITED_TENANT, RATE_LIMITED_PER_MINUTE)
    credentials = state.read_json(CREDENTIALS_FILE)
    repository = ApiKeyRepository(tables["ApiKeysTable"], dynamodb)
    api_keys = {name: _api_key(repository, credentials.get(name), *spec) for name, spec in API_KEYS.items()}
    jwt = credentials.get("jwt")
    if not isinstance(jwt, str) or identity_provider.expires_at(jwt) < time.time() + JWT_RENEW_BEFORE_SECONDS:
        jwt = identity_provider.issue(DEMO_TENANT, [PREVIEWS_WRITE], JWT_LIFETIME_SECONDS)
    state.write_json(CREDENTIALS_FILE, {**api_keys, "jwt": jwt})
    admin = SigningKeyAdmin(tables["SigningKeysTable"], dynamodb, kms, edge_store=edge_store)
    active = [key for key in admin.list() if key.status == ACTIVE]
    signing_kid = active[-1].kid if active else admin.create(kms_key_id).kid
    origin_keys = OriginKeyAdmin(tables["SigningKeysTable"], dynamodb, kms)
    if not origin_keys.active():
        origin_keys.create(kms_key_id)
    return DemoSeed(api_keys=api_keys, jwt=jwt, signing_kid=signing_kid)


def _api_key(repository: ApiKeyRepository, kept: object, tenant_id: str, scopes: tuple[str, ...]) -> str:
    """The kept key if it is (or can again be) registered as specified, else a new one."""
    if isinstance(kept, str):
        found = repository.find_by_secret(kept)
        if found is not None:
            if found.tenant_id == tenant_id and found.scopes == frozenset(scopes) and not found.revoked:
                return kept
        else:
            try:
                return repository.create(tenant_id, scopes, secret=kept).secret
            except ValueError:
                pass  # not a key this layer accepts: issue a new one
    return repository.create(tenant_id, scopes).secret
