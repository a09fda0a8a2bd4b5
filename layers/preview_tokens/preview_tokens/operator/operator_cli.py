"""preview-tokens: the operator's command line, against whatever AWS endpoint boto3 uses.

Where it acts, first match wins:

1. ``--stack NAME``: the deployed stack's Outputs (table names, the KMS key, the edge store);
2. ``--demo PATH``: a local stack's ``demo.json``;
3. the environment variables the functions use (``TENANTS_TABLE``, ``API_KEYS_TABLE``,
   ``SANDBOXES_TABLE``, ``SIGNING_KEYS_TABLE``, ``SIGNING_KEY_MASTER_KEY``, ``EDGE_STORE_ARN`` or,
   for the local stack, ``EDGE_STORE_FILE``...), when any of them is set;
4. the running local stack (``make run``): ``.local/demo.json`` in this directory or a parent
   (``$PREVIEW_LOCAL_STATE_DIR/demo.json`` when that is set). Nothing to export.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from preview_tokens.control_plane.api_keys import API_KEY_SCOPES, PREVIEWS_WRITE, ApiKeyRepository
from preview_tokens.control_plane.audit import OPERATOR, AuditTrail, utc_iso
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
from preview_tokens.keys.tokens import MAX_TTL_SECONDS
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
DEMO_FILE = Path(".local") / "demo.json"
STATE_DIR_ENV = "PREVIEW_LOCAL_STATE_DIR"
NOTHING_CONFIGURED = (
    "no deployment to act on: pass --stack NAME (a deployed stack), or start the local stack with "
    "'make run' (found through .local/demo.json, nothing to export)"
)
# An origin key signs assertions until its successor signs (the next key refresh, at most
# SigningKeysRefreshSeconds' maximum of an hour); a session lives at most as long as its token.
ORIGIN_KEY_REFRESH_MARGIN = timedelta(hours=1)
LONGEST_SESSION = timedelta(seconds=MAX_TTL_SECONDS)


class CommandError(Exception):
    """A command could not be carried out; the message says why, for the operator."""


@dataclass(frozen=True)
class Deployment:
    names: Mapping[str, str]
    source: str = "the environment"

    def __getitem__(self, env_name: str) -> str:
        value = self.names.get(env_name, "")
        if not value:
            raise CommandError(
                f"{env_name} is not set in {self.source}: pass --stack NAME or export {env_name}"
            )
        return value

    @property
    def edge_store(self) -> EdgeStore:
        """The deployed KeyValueStore, or the local stack's file; never neither."""
        if self.names.get("EDGE_STORE_ARN"):
            return CloudFrontKeyValueStore(self.names["EDGE_STORE_ARN"])
        if self.names.get(EDGE_STORE_FILE):
            return LocalEdgeStore(Path(self.names[EDGE_STORE_FILE]))
        raise CommandError(
            f"no edge store in {self.source}: pass --stack NAME, or export EDGE_STORE_ARN "
            f"(a deployed stack) or {EDGE_STORE_FILE} (a local stack)"
        )

    @property
    def is_local(self) -> bool:
        """The local stack (plain http previews): its edge store is a file, not CloudFront's."""
        return not self.names.get("EDGE_STORE_ARN") and bool(self.names.get(EDGE_STORE_FILE))

    @classmethod
    def resolve(
        cls, stack: str | None, env: Mapping[str, str], demo: Path | None = None, cwd: Path | None = None
    ) -> Deployment:
        if stack:
            described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
            outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
            return cls(
                {env_name: outputs.get(key, "") for key, env_name in _OUTPUT_ENV.items()}, f"stack {stack}"
            )
        if demo is not None:
            return cls.from_demo_file(demo)
        names = {name: env.get(name, "") for name in [*_OUTPUT_ENV.values(), EDGE_STORE_FILE]}
        if any(names.values()):
            return cls(names)
        found = find_demo_file(env, cwd or Path.cwd())
        if found is None:
            raise CommandError(NOTHING_CONFIGURED)
        return cls.from_demo_file(found)

    @classmethod
    def from_demo_file(cls, path: Path) -> Deployment:
        """The local stack that wrote ``path``: its moto endpoint and tables, put in this process's
        environment for boto3. A stack that is not running (a stale file) is an error, not a hang."""
        try:
            environment: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))["operator_environment"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CommandError(f"{path} is not a local stack's demo.json: run 'make run'") from None
        endpoint = environment.get("AWS_ENDPOINT_URL", "")
        if not _answers(endpoint):
            raise CommandError(
                f"the local stack of {path} is not running (nothing answers on {endpoint}): "
                "start it with 'make run', or pass --stack NAME"
            )
        os.environ.update(environment)
        return cls(environment, f"the local stack ({path})")


def find_demo_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    """``$PREVIEW_LOCAL_STATE_DIR/demo.json``, else ``.local/demo.json`` here or in a parent."""
    if env.get(STATE_DIR_ENV):
        candidate = Path(env[STATE_DIR_ENV]) / "demo.json"
        return candidate if candidate.is_file() else None
    for directory in (cwd, *cwd.parents):
        if (directory / DEMO_FILE).is_file():
            return directory / DEMO_FILE
    return None


def _answers(endpoint: str) -> bool:
    """Whether something accepts connections at ``endpoint`` (loopback: the local moto server)."""
    parts = urlsplit(endpoint)
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


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
    _require_tenant(args.tenant, deployment)
    issued = ApiKeyRepository(deployment["API_KEYS_TABLE"]).create(
        args.tenant, args.scope or [PREVIEWS_WRITE], label=args.label or ""
    )
    return {
        "key_id": issued.key.key_id,
        "tenant_id": issued.key.tenant_id,
        "scopes": sorted(issued.key.scopes),
        "label": issued.key.label,
        "created_at": _utc(issued.key.created_at),
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
    _require_tenant(args.tenant, deployment)
    keys = ApiKeyRepository(deployment["API_KEYS_TABLE"]).list_for_tenant(args.tenant)
    return {
        "keys": [
            {
                "key_id": key.key_id,
                "label": key.label,
                "created_at": _utc(key.created_at),
                "scopes": sorted(key.scopes),
                "revoked": key.revoked,
            }
            for key in keys
        ]
    }


def _utc(iso_time: str) -> str:
    """A stored ISO 8601 time in the CLI's one format (UTC, milliseconds, ``Z``)."""
    if not iso_time:
        return ""
    return utc_iso(datetime.fromisoformat(iso_time.replace("Z", "+00:00")))


def _require_tenant(tenant_id: str, deployment: Deployment) -> None:
    if TenantRepository(deployment["TENANTS_TABLE"]).get(tenant_id) is None:
        raise CommandError(f"no tenant {tenant_id}: create it first (tenant create {tenant_id})")


def _sandbox_put(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    edge_store = deployment.edge_store
    _require_tenant(args.tenant, deployment)
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
    lifecycle = _lifecycle(deployment)
    live = lifecycle.count_live_tokens(args.tenant, args.sandbox_id)
    if not lifecycle.delete_sandbox(args.tenant, args.sandbox_id, _request_id()):
        raise CommandError(f"tenant {args.tenant} has no sandbox {args.sandbox_id}")
    edge_store.delete(sandbox_tenant_entry(args.sandbox_id))
    return {"sandbox_id": args.sandbox_id, "deleted": True, "tokens_revoked": live}


def _sandbox_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    _require_tenant(args.tenant, deployment)
    sandboxes = SandboxRepository(deployment["SANDBOXES_TABLE"]).list_for_tenant(args.tenant)
    return {
        "sandboxes": [{"sandbox_id": sandbox.sandbox_id, "status": sandbox.status} for sandbox in sandboxes]
    }


def _sandbox_revoke_tokens(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    """Ends every token of the sandbox; prints how many were still live (could open a preview)."""
    caller = Caller(args.tenant, frozenset({PREVIEWS_WRITE}), "api_key", OPERATOR)
    lifecycle = _lifecycle(deployment)
    live = lifecycle.count_live_tokens(args.tenant, args.sandbox_id)
    try:
        lifecycle.revoke_sandbox_tokens(caller, args.sandbox_id, _request_id())
    except PreviewError as error:
        if isinstance(error, ServiceUnavailableError):
            raise
        raise CommandError(f"tenant {args.tenant} has no running sandbox {args.sandbox_id}") from None
    return {"sandbox_id": args.sandbox_id, "tokens_revoked": live}


def parse_utc_time(text: str) -> datetime:
    """``--since``: ISO 8601 with a UTC designator or offset (``2026-12-07T09:30:00Z``)."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2026-12-07T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: end it with Z (UTC)")
    return moment.astimezone(UTC)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _audit_list(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    trail = AuditTrail(deployment["AUDIT_TABLE"], default_client())
    return {"entries": trail.list(args.tenant, args.sandbox, since=args.since, limit=args.limit)}


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


def origin_key_retirable_at(rows: Sequence[Mapping[str, str]], kid: str) -> datetime | None:
    """When retiring ``kid`` breaks no live session: 24 h (the longest session) and the longest key
    refresh after the next key was created. ``None`` when ``kid`` is the newest active key (it still
    signs: rotate first) or not an active key at all."""
    active = [row["kid"] for row in rows if row["status"] == ACTIVE_KEY]
    if kid not in active or active[-1] == kid:
        return None
    ordered = [row["kid"] for row in rows]
    successor = rows[ordered.index(kid) + 1]
    successor_created = datetime.fromisoformat(successor["created_at"].replace("Z", "+00:00"))
    return successor_created + LONGEST_SESSION + ORIGIN_KEY_REFRESH_MARGIN


def _origin_key_retire(args: argparse.Namespace, deployment: Deployment) -> dict[str, object]:
    admin = OriginKeyAdmin(deployment["SIGNING_KEYS_TABLE"])
    rows = admin.rows()
    row = next((row for row in rows if row["kid"] == args.kid), None)
    if row is None:
        raise CommandError(f"no origin key {args.kid}")
    if row["status"] == ACTIVE_KEY and not args.force:
        retirable_at = origin_key_retirable_at(rows, args.kid)
        if retirable_at is None:
            raise CommandError(
                f"origin key {args.kid} is the newest: it signs the sessions opened now. Run "
                "'origin-key rotate' first, then retire it once the sessions it signed have ended "
                "(25 h later), or pass --force"
            )
        if datetime.now(UTC) < retirable_at:
            raise CommandError(
                f"origin key {args.kid} may still sign live sessions (up to 24 h long) until "
                f"{utc_iso(retirable_at)}: their streams would get 403 unknown_kid. Retire it then, "
                "or pass --force (after a leak)"
            )
    if not admin.retire(args.kid):
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
    ("sandbox", "list"): _sandbox_list,
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


_PREFIX = "preview-tokens"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (line breaks kept)."""


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: Sequence[str],
    details: str = "",
) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in its parent's list), a description and examples."""
    example_lines = "\n".join(f"  {_PREFIX} {example}" for example in examples)
    return group.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + (f"\n\n{details}" if details else ""),
        epilog=f"examples:\n{example_lines}",
        formatter_class=_Formatter,
    )


def _resource(
    resources: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: Sequence[str],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return _command(resources, name, summary, examples).add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )


ROOT_DESCRIPTION = """Manage tenants, API keys, sandboxes, signing and origin keys, and read the audit trail.

Where it acts, first match wins: --stack NAME (a deployed stack's Outputs); --demo PATH (a local
stack's demo.json); the functions' environment variables (TENANTS_TABLE, ...) when any is set;
else the running local stack ('make run'), found through .local/demo.json in this directory or a
parent. Output is JSON on stdout; errors go to stderr (exit 2: refused, 1: AWS call failed)."""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=_PREFIX,
        description=ROOT_DESCRIPTION,
        epilog="examples:\n"
        f"  {_PREFIX} tenant create acme --name 'Acme Inc.'          # the local stack, nothing to export\n"
        f"  {_PREFIX} --stack preview-tokens-prod api-key list --tenant acme\n"
        f"  {_PREFIX} sandbox --help                                 # every command has its help",
        formatter_class=_Formatter,
    )
    where = root.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", metavar="NAME", help="act on this deployed CloudFormation stack (its Outputs)"
    )
    where.add_argument(
        "--demo", metavar="PATH", type=Path, help="act on the local stack that wrote this demo.json"
    )
    resources = root.add_subparsers(dest="resource", required=True, metavar="COMMAND")

    tenant = _resource(
        resources, "tenant", "tenants: create, disable, enable, limits, framing", ["tenant create acme"]
    )
    create = _command(
        tenant, "create", "create or update a tenant", ["tenant create acme --name 'Acme Inc.'"]
    )
    create.add_argument("tenant_id")
    create.add_argument("--name", help="display name (default: the id)")
    _command(
        tenant,
        "disable",
        "disable a tenant and end every preview token it minted",
        ["tenant disable acme"],
        "Its mints are refused at once (403); its open previews are refused within 5 s.",
    ).add_argument("tenant_id")
    _command(tenant, "enable", "enable a disabled tenant again", ["tenant enable acme"]).add_argument(
        "tenant_id"
    )
    rate = _command(
        tenant,
        "set-rate-limit",
        "override the tenant's mint rate limit",
        ["tenant set-rate-limit acme --per-minute 600", "tenant set-rate-limit acme --default"],
    )
    rate.add_argument("tenant_id")
    rate_value = rate.add_mutually_exclusive_group(required=True)
    rate_value.add_argument("--per-minute", type=int, help="mints per minute for this tenant")
    rate_value.add_argument("--default", action="store_true", help="back to the stack's default")
    ancestors = _command(
        tenant,
        "frame-ancestors",
        "set the origins whose pages may frame the tenant's previews (CSP frame-ancestors)",
        [
            "tenant frame-ancestors acme https://app.acme.com 'https://*.acme.dev'",
            "tenant frame-ancestors acme --clear",
        ],
    )
    ancestors.add_argument("tenant_id")
    ancestors.add_argument(
        "origins", nargs="*", metavar="origin", help="https://host[:port] or https://*.host[:port]; <= 16"
    )
    ancestors.add_argument(
        "--clear", action="store_true", help="remove the declaration: the FrameAncestors default applies"
    )

    key = _resource(
        resources, "api-key", "msk_ API keys: create, list, revoke", ["api-key list --tenant acme"]
    )
    create = _command(
        key,
        "create",
        "create an API key for a tenant (the key is printed once)",
        ["api-key create --tenant acme --label 'billing backend'"],
        "Only its hash is stored: keep the printed api_key now.",
    )
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--scope",
        action="append",
        choices=API_KEY_SCOPES,
        help=f"repeatable; one of: {', '.join(API_KEY_SCOPES)} (default {PREVIEWS_WRITE})",
    )
    create.add_argument("--label", help="what the key is for; shown by 'api-key list'")
    revoke = _command(
        key,
        "revoke",
        "revoke a key by its key_id (its mints are refused at once)",
        ["api-key revoke --tenant acme key_0123abcd", "api-key revoke --tenant acme key_0123abcd --leaked"],
    )
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id")
    revoke.add_argument("--with-tokens", action="store_true", help="also end every token the key minted")
    revoke.add_argument("--leaked", action="store_true", help="the key leaked: implies --with-tokens")
    _command(
        key,
        "list",
        "list a tenant's keys: id, label, creation time, scopes, revoked",
        ["api-key list --tenant acme"],
    ).add_argument("--tenant", required=True)

    sandbox = _resource(
        resources,
        "sandbox",
        "sandboxes: put, list, delete, revoke their tokens",
        ["sandbox list --tenant acme"],
    )
    for action, text, example in (
        (
            "put",
            "create a sandbox of a tenant (its id is its preview host's first label)",
            "sandbox put --tenant acme sbx-abc123",
        ),
        ("delete", "delete a sandbox and end its preview tokens", "sandbox delete --tenant acme sbx-abc123"),
        (
            "revoke-tokens",
            "end every preview token of a sandbox; prints how many were live",
            "sandbox revoke-tokens --tenant acme sbx-abc123",
        ),
    ):
        sub = _command(sandbox, action, text, [example])
        sub.add_argument("--tenant", required=True)
        sub.add_argument("sandbox_id")
    _command(
        sandbox, "list", "list a tenant's running sandboxes", ["sandbox list --tenant acme"]
    ).add_argument("--tenant", required=True)

    audit = _resource(resources, "audit", "the audit trail", ["audit list --tenant acme --limit 20"])
    listing = _command(
        audit,
        "list",
        "list a tenant's mints, first uses and revocations, oldest first",
        [
            "audit list --tenant acme --since 2026-12-07T09:00:00Z",
            "audit list --tenant acme --sandbox sbx-abc123 --limit 20",
        ],
        "Every time, in and out, is ISO 8601 UTC (2026-12-07T09:00:00.000Z).",
    )
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--sandbox", help="only this sandbox's entries")
    listing.add_argument(
        "--since",
        type=parse_utc_time,
        metavar="TIME",
        help="from this time on (ISO 8601 UTC: 2026-12-07T09:00:00Z)",
    )
    listing.add_argument("--limit", type=positive_int, metavar="N", help="only the N most recent entries")

    signing = _resource(
        resources,
        "signing-key",
        "preview token signing keys: create, rotate, retire, list",
        ["signing-key list"],
    )
    for action, text in (("create", "create the first signing key"), ("rotate", "add a new signing key")):
        _command(signing, action, text, [f"signing-key {action}"]).add_argument(
            "--kms-key-id", help="default: SIGNING_KEY_MASTER_KEY"
        )
    _command(
        signing,
        "retire",
        "stop accepting tokens signed by a key",
        ["signing-key retire k20261207-abc123"],
        "Retire a key once its tokens have expired (24 h after the rotation), or at once after a leak.",
    ).add_argument("kid")
    _command(signing, "list", "list signing keys", ["signing-key list"])

    origin = _resource(
        resources,
        "origin-key",
        "origin assertion keys (Ed25519): create, rotate, retire, list, jwks",
        ["origin-key list"],
    )
    for action, text in (("create", "create the first origin key"), ("rotate", "add a new origin key")):
        _command(origin, action, text, [f"origin-key {action}"]).add_argument(
            "--kms-key-id", help="default: SIGNING_KEY_MASTER_KEY"
        )
    retire = _command(
        origin,
        "retire",
        "stop signing with and publishing an origin key",
        ["origin-key retire o20261207-abc123", "origin-key retire o20261207-abc123 --force   # after a leak"],
        "Refused until the sessions the key signed can have ended: 24 h (the longest session) and\n"
        "1 h (the longest key refresh) after the next key was created. Retiring earlier breaks the\n"
        "streams of live sessions (403 unknown_kid).",
    )
    retire.add_argument("kid")
    retire.add_argument(
        "--force", action="store_true", help="retire now, live sessions or not (a leaked key)"
    )
    _command(origin, "list", "list origin keys", ["origin-key list"])
    _command(
        origin,
        "jwks",
        "print the public keys as a JWKS, for the sandbox fleet's verifier",
        ["origin-key jwks"],
    )
    operations.add_parsers(resources)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.resource in operations.COMMANDS:  # smoke, bootstrap: their own options and output
        return operations.COMMANDS[args.resource](args)
    try:
        deployment = Deployment.resolve(args.stack, os.environ, args.demo)
        result = COMMANDS[(args.resource, args.action)](args, deployment)
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
