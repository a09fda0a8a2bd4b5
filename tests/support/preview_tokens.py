"""Building preview tokens (and forged variants of them) for the data plane's tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from preview_tokens.keys.tokens import PreviewClaims, Scope, new_token_id, sign_preview_token

from tests.support.deployment import PREVIEW_DOMAIN, SANDBOX, TENANT, Deployment


def host_of(sandbox_id: str) -> str:
    return f"{sandbox_id}.{PREVIEW_DOMAIN}"


def token_for(
    deployment: Deployment,
    *,
    sandbox_id: str = SANDBOX,
    scope: str = "read",
    expires_in: int = 600,
    kid: str | None = None,
) -> str:
    kid = kid or deployment.kid
    now = int(time.time())
    claims = PreviewClaims(
        sandbox_id=sandbox_id,
        tenant_id=TENANT,
        host=host_of(sandbox_id),
        scope=Scope(scope),
        issued_at=now - 1,
        expires_at=now + expires_in,
        token_id=new_token_id(),
    )
    return sign_preview_token(claims, kid, deployment.signing_secret(kid))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resigned(token: str, header: dict[str, Any], secret: bytes, digest: Any = hashlib.sha256) -> str:
    """The token's payload under another header, with a real HMAC over it (alg confusion tries)."""
    payload = token[3:].split(".")[1]
    signing_input = f"{b64(json.dumps(header).encode())}.{payload}"
    return f"mp_{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def change_char(token: str, part: int) -> str:
    """Flip one character in the middle of the header (0), payload (1) or signature (2)."""
    parts = token[3:].split(".")
    middle = len(parts[part]) // 2
    original = parts[part][middle]
    parts[part] = parts[part][:middle] + ("B" if original != "B" else "C") + parts[part][middle + 1 :]
    return "mp_" + ".".join(parts)
