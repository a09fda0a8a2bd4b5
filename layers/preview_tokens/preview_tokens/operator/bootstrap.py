"""``preview-tokens bootstrap``: after the first ``sam deploy``, everything a deployment needs before
its first preview, in one idempotent command.

1. The first token signing key, unless one is active; every active key is (re)written to the edge
   store, so a rerun repairs an edge store that lost a key (a failed write, a recreated store).
2. The first origin assertion key, unless one is active.
3. Prints, as JSON, what happened and what to configure on the fleet ingress: the keys URL, the
   audience, the revocation feed, and a ``preview-ingress`` command line.

Running it again changes nothing but the edge store's copy of the active keys (the same values).
No key material is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from preview_tokens.data_plane.edge_store import EdgeStore, publish_signing_key
from preview_tokens.keys.signing_keys import ACTIVE, StoredSigningKey, encryption_context
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

# Stack outputs the fleet ingress is configured from (docs/deploy.md "The ingress on the fleet").
FLEET_OUTPUTS = {
    "OriginKeysUrl": "--jwks-url",
    "OriginAssertionAudience": "--audience",
    "RevocationsTableName": "--revocations-table",
}


def publish_to_edge(key: StoredSigningKey, edge_store: EdgeStore, kms: Any) -> None:
    """Write an active key's secret to the edge store again (decrypted here, never printed)."""
    plaintext = kms.decrypt(CiphertextBlob=key.ciphertext, EncryptionContext=encryption_context(key.kid))[
        "Plaintext"
    ]
    publish_signing_key(edge_store, key.kid, plaintext)
    del plaintext


def bootstrap(
    names: dict[str, str], edge_store: EdgeStore, outputs: dict[str, str], kms: Any, dynamodb: Any
) -> dict[str, Any]:
    table, master_key = names["SIGNING_KEYS_TABLE"], names["SIGNING_KEY_MASTER_KEY"]
    signing = SigningKeyAdmin(table, dynamodb, kms, edge_store=edge_store)
    active = [key for key in signing.list() if key.status == ACTIVE]
    created_signing = not active
    if created_signing:
        active = [signing.create(master_key)]  # writes the edge store before storing the key
    else:
        for key in active:
            publish_to_edge(key, edge_store, kms)
    origin = OriginKeyAdmin(table, dynamodb, kms)
    origin_active = origin.active()
    created_origin = not origin_active
    origin_kid = str(origin.create(master_key)["kid"]) if created_origin else origin_active[-1].kid

    fleet = {flag: outputs.get(output, f"<stack output {output}>") for output, flag in FLEET_OUTPUTS.items()}
    secret_outputs = sorted(key for key in outputs if "IngressSecret" in key)
    command = " ".join(
        ["preview-ingress --upstream http://127.0.0.1:<app port> --sandbox <sandbox id>"]
        + [f"{flag} {value}" for flag, value in fleet.items()]
        + ["--secret-file <file holding the ingress secret>"]
    )
    return {
        "signing_key": {"kid": active[-1].kid, "created": created_signing},
        "edge_keys_written": [key.kid for key in active],
        "origin_key": {"kid": origin_kid, "created": created_origin},
        "fleet": {
            "configure": fleet,
            "ingress_secret": (
                f"the Secrets Manager secret of stack output {', '.join(secret_outputs)}"
                if secret_outputs
                else "the X-Preview-Ingress-Secret value in the stack's Secrets Manager secret"
            ),
            "command": command,
            "then": "preview-tokens smoke --stack <stack> --sandbox <sandbox id> (docs/operations.md)",
        },
    }


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bootstrap",
        help="after the first sam deploy: first signing and origin keys, edge keys, fleet settings",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example:\n  preview-tokens bootstrap --stack preview-tokens-prod",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", dest="bootstrap_stack", help="the stack to bootstrap (its outputs)")


def main(args: argparse.Namespace) -> int:
    import boto3

    from preview_tokens.operator.operator_cli import CommandError, Deployment

    stack = getattr(args, "bootstrap_stack", None) or args.stack
    try:
        deployment = Deployment.resolve(stack, os.environ)
        outputs: dict[str, str] = {}
        if stack:
            described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        names = {name: deployment[name] for name in ("SIGNING_KEYS_TABLE", "SIGNING_KEY_MASTER_KEY")}
        result = bootstrap(
            names, deployment.edge_store, outputs, boto3.client("kms"), boto3.client("dynamodb")
        )
    except CommandError as error:
        print(f"preview-tokens bootstrap: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"preview-tokens bootstrap: AWS call failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
