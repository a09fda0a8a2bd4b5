"""``preview-tokens``: the operator's command line, against whatever AWS endpoint boto3 uses.

Table names, the KMS key and the edge store come from ``--stack NAME`` (read from the stack's
Outputs), or from the same environment variables the functions use (``TENANTS_TABLE``,
``API_KEYS_TABLE``, ``SANDBOXES_TABLE``, ``SIGNING_KEYS_TABLE``, ``SIGNING_KEY_MASTER_KEY``,
``EDGE_STORE_ARN``). The same commands work against a moto server (``AWS_ENDPOINT_URL``) and a
real account; the local stack, which has no CloudFront, names its edge store file in
``EDGE_STORE_FILE`` instead of ``EDGE_STORE_ARN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from preview_tokens.control_plane.api_keys import PREVIEWS_WRITE, ApiKeyRepository
from preview_tokens.control_plane.audit import OPERATOR, AuditTrail
from preview_tokens.control_plane.credentials import Caller
from preview_tokens.control_plane.sandboxes import SandboxIdTakenError, SandboxRepository
from preview_tokens.control_plane.tenants import ACTIVE, TenantRepository
from preview_tokens.control_plane.token_lifecycle import LifecycleTables, TokenLifecycle
from preview_tokens.data_plane.edge_store import (
    CloudFrontKeyValueStore,
    EdgeStore,
    EdgeStoreEntryError,
    LocalEdgeStore,
    frame_ancestors_entry,
    sandbox_tenant_entry,
)
from preview_tokens.data_plane.frame_ancestors import FrameAncestorsError, parse_frame_ancestors
from preview_tokens.errors import PreviewError, ServiceUnavailableError
from preview_tokens.keys.dynamodb import default_client
from preview_tokens.keys.signing_keys import ACTIVE as ACTIVE_KEY
from preview_tokens.operator import operations
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

_OUTPUT_ENV = {
    "TenantsTableName": "TENANTS_TABLE",
    "ApiKeysTableName": "API_KEYS_TABLE",
    "SandboxesTableName": "SANDBOXES_TABLE",
    "SigningKeysTableName": "SIGNING_KEYS_TABLE",
    "SigningKeyMasterKeyArn": "SIGNING_KEY_MASTER_KEY",
    "PreviewEdgeStoreArn": "EDGE_STORE_ARN",
    "PreviewTokensTableName": "PREVIEW_TOKENS_TABLE",
    "RevocationsTableName": "REVOCATIONS_TABLE",
    "AuditTableName": "AUDIT_TABLE",
    "AuditRetentionDays": "AUDIT_RETENTION_DAYS",
}
EDGE_STORE_FILE = "EDGE_STORE_FILE"
DEFAULT_AUDIT_RETENTION_DAYS = 90


class CommandError(Exception):
    """A command could not be carried out; the message says why, for the operator."""


@dataclass(frozen=True)
class Deployment:
    names: Mapping[str, str]

    def __getitem__(self, env_name: str) -> str:
        value = self.names.get(env_name, "")
        if not value:
            raise CommandError(f"{env_name} is not set: pass --stack NAME or export {env_name}")
        return value

    @property
    def edge_store(self) -> EdgeStore:
        """The deployed KeyValueStore, or the local stack's file; never neither."""
        if self.names.get("EDGE_STORE_ARN"):
            return CloudFrontKeyValueStore(self.names["EDGE_STORE_ARN"])
        if self.names.get(EDGE_STORE_FILE):
            return LocalEdgeStore(Path(self.names[EDGE_STORE_FILE]))
        raise CommandError("EDGE_STORE_ARN is not set: pass --stack NAME or export EDGE_STORE_ARN")

    @property
    def is_local(self) -> bool:
        """The local stack (plain http previews): its edge store is a file, not CloudFront's."""
        return not self.names.get("EDGE_STORE_ARN") and bool(self.names.get(EDGE_STORE_FILE))

    @classmethod
    def resolve(cls, stack: str | None, env: Mapping[str, str]) -> Deployment:
        if not stack:
            return cls({name: env.get(name, "") for name in [*_OUTPUT_ENV.values(), EDGE_STORE_FILE]})
        described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
        return cls({env_name: outputs.get(key, "") for key, env_name in _OUTPUT_ENV.items()})


def _lifecycle(deployment: Deployment) -> TokenLifecycle:
    retention = deployment.names.get("AUDIT_RETENTION_DAYS", "")
    return TokenLifecycle(
        LifecycleTables(
            tenants=deployment["TENANTS_TABLE"],
            api_keys=deployment["API_KEYS_TABLE"],
            sandboxes=deployment["SANDBOXES_TABLE"],
            preview_tokens=deployment["PREVIEW_TOKENS_TABLE"],
            revocations=deployment["REVOCATIONS_TABLE"],
            audit=deployment["AUDIT_TABLE"],
        ),
        int(retention) if retention.isdigit() else DEFAULT_AUDIT_RETENTION_DAYS,
        # Not written to the edge store: the fleet reads the revocation feed itself (README
        # "Streams and revocation"); edge keys would need a sweep, the store has no TTL.
        edge_put=None,
    )


def _request_id() -> str:
    """The id an operator command's audit entries carry (a CLI run has no API request id)."""
    return f"cli-{uuid.uuid4()}"


def _tenant_create(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    tenant = TenantRepository(deployment["TENANTS_TABLE"]).put(args.tenant_id, args.name or args.tenant_id)
    return {"tenant_id": tenant.tenant_id, "name": tenant.name, "status": tenant.status}


def _tenant_disable(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    """Disabling a tenant also ends every preview token it minted (within seconds)."""
    if not _lifecycle(deployment).disable_tenant(args.tenant_id, _request_id()):
        raise CommandError(f"no tenant {args.tenant_id}")
    return {"tenant_id": args.tenant_id, "status": "disabled", "tokens_revoked": True}


def _tenant_enable(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    tenants = TenantRepository(deployment["TENANTS_TABLE"])
    existing = tenants.get(args.tenant_id)
    if existing is None:
        raise CommandError(f"no tenant {args.tenant_id}")
    tenant = tenants.put(existing.tenant_id, existing.name, ACTIVE)
    return {"tenant_id": tenant.tenant_id, "status": tenant.status}


def _tenant_frame_ancestors(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    """Declare who may frame the tenant's previews: on the tenant item, then at the edge."""
    if args.clear == bool(args.origins):
        raise CommandError("give the origins that may frame the tenant's previews, or --clear")
    try:
        origins = () if args.clear else parse_frame_ancestors(args.origins, deployment.is_local)
    except FrameAncestorsError as error:
        raise CommandError(str(error)) from None
    edge_store = deployment.edge_store
    if not TenantRepository(deployment["TENANTS_TABLE"]).set_frame_ancestors(args.tenant_id, origins):
        raise CommandError(f"no tenant {args.tenant_id}")
    if origins:
        edge_store.put(frame_ancestors_entry(args.tenant_id), " ".join(origins))
    else:
        edge_store.delete(frame_ancestors_entry(args.tenant_id))
    return {
        "tenant_id": args.tenant_id,
        "frame_ancestors": list(origins),
        "note": "" if origins else "none declared: the stack's FrameAncestors default applies",
    }


def _tenant_set_rate_limit(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    per_minute = None if args.default else args.per_minute
    if per_minute is None and not args.default:
        raise CommandError("give --per-minute N or --default")
    if per_minute is not None and per_minute < 1:
        raise CommandError("--per-minute must be at least 1")
    if not TenantRepository(deployment["TENANTS_TABLE"]).set_mint_rate_limit(args.tenant_id, per_minute):
        raise CommandError(f"no tenant {args.tenant_id}")
    return {"tenant_id": args.tenant_id, "mint_rate_per_minute": per_minute or "default"}


def _api_key_create(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    if TenantRepository(deployment["TENANTS_TABLE"]).get(args.tenant) is None:
        raise CommandError(f"no tenant {args.tenant}: create it first")
    issued = ApiKeyRepository(deployment["API_KEYS_TABLE"]).create(
        args.tenant, args.scope or [PREVIEWS_WRITE]
    )
    return {
        "key_id": issued.key.key_id,
        "tenant_id": issued.key.tenant_id,
        "scopes": sorted(issued.key.scopes),
        "api_key": issued.secret,
        "note": "The api_key is shown once and stored only as a hash: keep it now.",
    }


def _api_key_revoke(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    with_tokens = bool(args.with_tokens or args.leaked)
    if with_tokens:
        revoked = _lifecycle(deployment).revoke_api_key(args.tenant, args.key_id, True, _request_id())
    else:
        revoked = ApiKeyRepository(deployment["API_KEYS_TABLE"]).revoke(args.tenant, args.key_id)
    if not revoked:
        raise CommandError(f"tenant {args.tenant} has no key {args.key_id}")
    result: dict[str, object] = {"key_id": args.key_id, "revoked": True}
    if with_tokens:
        result["tokens_revoked"] = True
    return result


def _api_key_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    keys = ApiKeyRepository(deployment["API_KEYS_TABLE"]).list_for_tenant(args.tenant)
    return {"keys": [{"key_id": k.key_id, "scopes": sorted(k.scopes), "revoked": k.revoked} for k in keys]}


def _sandbox_put(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    edge_store = deployment.edge_store
    try:
        sandbox = SandboxRepository(deployment["SANDBOXES_TABLE"]).put(args.tenant, args.sandbox_id)
    except (ValueError, SandboxIdTakenError) as error:
        raise CommandError(f"cannot put sandbox {args.sandbox_id}: {error}") from None
    # The edge finds the sandbox host's tenant (and so its frame ancestors) from this entry.
    edge_store.put(sandbox_tenant_entry(sandbox.sandbox_id), sandbox.tenant_id)
    return {"sandbox_id": sandbox.sandbox_id, "tenant_id": sandbox.tenant_id, "status": sandbox.status}


def _sandbox_delete(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    """Deleting a sandbox also ends every preview token minted for it (within seconds)."""
    edge_store = deployment.edge_store
    if not _lifecycle(deployment).delete_sandbox(args.tenant, args.sandbox_id, _request_id()):
        raise CommandError(f"tenant {args.tenant} has no sandbox {args.sandbox_id}")
    edge_store.delete(sandbox_tenant_entry(args.sandbox_id))
    return {"sandbox_id": args.sandbox_id, "deleted": True, "tokens_revoked": True}


def _sandbox_revoke_tokens(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    caller = Caller(args.tenant, frozenset({PREVIEWS_WRITE}), "api_key", OPERATOR)
    try:
        _lifecycle(deployment).revoke_sandbox_tokens(caller, args.sandbox_id, _request_id())
    except PreviewError as error:
        if isinstance(error, ServiceUnavailableError):
            raise
        raise CommandError(f"tenant {args.tenant} has no running sandbox {args.sandbox_id}") from None
    return {"sandbox_id": args.sandbox_id, "tokens_revoked": True}


def _audit_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    trail = AuditTrail(deployment["AUDIT_TABLE"], default_client())
    return {"entries": trail.list(args.tenant, args.sandbox)}


def _signing_key_create(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    admin = SigningKeyAdmin(deployment["SIGNING_KEYS_TABLE"], edge_store=deployment.edge_store)
    if args.action == "create" and any(key.status == ACTIVE_KEY for key in admin.list()):
        raise CommandError("an active signing key exists already: use 'signing-key rotate'")
    key = admin.create(args.kms_key_id or deployment["SIGNING_KEY_MASTER_KEY"])
    return {"kid": key.kid, "status": key.status, "created_at": key.created_at}


def _signing_key_retire(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    admin = SigningKeyAdmin(deployment["SIGNING_KEYS_TABLE"], edge_store=deployment.edge_store)
    if not admin.retire(args.kid):
        raise CommandError(f"no signing key {args.kid}")
    return {"kid": args.kid, "status": "retired"}


def _signing_key_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    keys = SigningKeyAdmin(deployment["SIGNING_KEYS_TABLE"], edge_store=None).list()
    return {"keys": [{"kid": k.kid, "status": k.status, "created_at": k.created_at} for k in keys]}


def _origin_key_create(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    admin = OriginKeyAdmin(deployment["SIGNING_KEYS_TABLE"])
    if args.action == "create" and admin.active():
        raise CommandError("an active origin key exists already: use 'origin-key rotate'")
    return dict(admin.create(args.kms_key_id or deployment["SIGNING_KEY_MASTER_KEY"]))


def _origin_key_retire(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    if not OriginKeyAdmin(deployment["SIGNING_KEYS_TABLE"]).retire(args.kid):
        raise CommandError(f"no origin key {args.kid}")
    return {"kid": args.kid, "status": "retired"}


def _origin_key_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    return {"keys": list(OriginKeyAdmin(deployment["SIGNING_KEYS_TABLE"]).rows())}


def _origin_key_jwks(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    return dict(OriginKeyAdmin(deployment["SIGNING_KEYS_TABLE"]).jwks())


COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Deployment], dict[str, object]]] = {
    ("tenant", "create"): _tenant_create,
    ("tenant", "disable"): _tenant_disable,
    ("tenant", "enable"): _tenant_enable,
    ("tenant", "set-rate-limit"): _tenant_set_rate_limit,
    ("tenant", "frame-ancestors"): _tenant_frame_ancestors,
    ("api-key", "create"): _api_key_create,
    ("api-key", "revoke"): _api_key_revoke,
    ("api-key", "list"): _api_key_list,
    ("sandbox", "put"): _sandbox_put,
    ("sandbox", "delete"): _sandbox_delete,
    ("sandbox", "revoke-tokens"): _sandbox_revoke_tokens,
    ("audit", "list"): _audit_list,
    ("signing-key", "create"): _signing_key_create,
    ("signing-key", "rotate"): _signing_key_create,
    ("signing-key", "retire"): _signing_key_retire,
    ("signing-key", "list"): _signing_key_list,
    ("origin-key", "create"): _origin_key_create,
    ("origin-key", "rotate"): _origin_key_create,
    ("origin-key", "retire"): _origin_key_retire,
    ("origin-key", "list"): _origin_key_list,
    ("origin-key", "jwks"): _origin_key_jwks,
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="preview-tokens", description=__doc__.split("\n")[0] if __doc__ else None
    )
    root.add_argument("--stack", help="read table names and the KMS key from this CloudFormation stack")
    resources = root.add_subparsers(dest="resource", required=True)

    tenant = resources.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    create = tenant.add_parser("create", help="create or update a tenant")
    create.add_argument("tenant_id")
    create.add_argument("--name")
    tenant.add_parser("disable", help="disable a tenant and end its preview tokens").add_argument("tenant_id")
    tenant.add_parser("enable", help="enable a tenant again").add_argument("tenant_id")
    rate = tenant.add_parser("set-rate-limit", help="override the tenant's mint rate limit")
    rate.add_argument("tenant_id")
    rate_value = rate.add_mutually_exclusive_group(required=True)
    rate_value.add_argument("--per-minute", type=int, help="mints per minute for this tenant")
    rate_value.add_argument("--default", action="store_true", help="back to the stack's default")
    ancestors = tenant.add_parser(
        "frame-ancestors", help="origins whose pages may frame the tenant's previews (CSP frame-ancestors)"
    )
    ancestors.add_argument("tenant_id")
    ancestors.add_argument(
        "origins", nargs="*", metavar="origin", help="https://host[:port] or https://*.host[:port]; <= 16"
    )
    ancestors.add_argument(
        "--clear", action="store_true", help="remove the declaration: the FrameAncestors default applies"
    )

    key = resources.add_parser("api-key", help="msk_ API keys").add_subparsers(dest="action", required=True)
    create = key.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scope", action="append", help=f"repeatable; default {PREVIEWS_WRITE}")
    revoke = key.add_parser("revoke", help="revoke a key by its key_id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id")
    revoke.add_argument("--with-tokens", action="store_true", help="also end every token the key minted")
    revoke.add_argument("--leaked", action="store_true", help="the key leaked: implies --with-tokens")
    key.add_parser("list", help="list a tenant's keys").add_argument("--tenant", required=True)

    sandbox = resources.add_parser("sandbox", help="sandboxes").add_subparsers(dest="action", required=True)
    for action, text in (
        ("put", "create a sandbox"),
        ("delete", "delete a sandbox and end its preview tokens"),
        ("revoke-tokens", "end every preview token of a sandbox"),
    ):
        sub = sandbox.add_parser(action, help=text)
        sub.add_argument("--tenant", required=True)
        sub.add_argument("sandbox_id")

    audit = resources.add_parser("audit", help="the audit trail").add_subparsers(dest="action", required=True)
    listing = audit.add_parser("list", help="a tenant's mints, first uses and revocations, oldest first")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--sandbox")

    signing = resources.add_parser("signing-key", help="token signing keys").add_subparsers(
        dest="action", required=True
    )
    for action, text in (("create", "create the first signing key"), ("rotate", "add a new signing key")):
        signing.add_parser(action, help=text).add_argument(
            "--kms-key-id", help="default: SIGNING_KEY_MASTER_KEY"
        )
    signing.add_parser("retire", help="stop accepting tokens signed by a key").add_argument("kid")
    signing.add_parser("list", help="list signing keys")

    origin = resources.add_parser("origin-key", help="origin assertion keys (Ed25519)").add_subparsers(
        dest="action", required=True
    )
    for action, text in (("create", "create the first origin key"), ("rotate", "add a new origin key")):
        origin.add_parser(action, help=text).add_argument(
            "--kms-key-id", help="default: SIGNING_KEY_MASTER_KEY"
        )
    origin.add_parser("retire", help="stop signing with and publishing a key").add_argument("kid")
    origin.add_parser("list", help="list origin keys")
    origin.add_parser("jwks", help="print the public keys as a JWKS, for the sandbox fleet's verifier")
    operations.add_parsers(resources)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.resource in operations.COMMANDS:  # smoke, bootstrap: their own options and output
        return operations.COMMANDS[args.resource](args)
    try:
        result = COMMANDS[(args.resource, args.action)](args, Deployment.resolve(args.stack, os.environ))
    except (CommandError, EdgeStoreEntryError) as error:
        print(f"preview-tokens: {error}", file=sys.stderr)
        return 2
    except (ServiceUnavailableError, ClientError, BotoCoreError) as error:
        print(f"preview-tokens: AWS call failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
