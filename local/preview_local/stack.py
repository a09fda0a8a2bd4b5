"""``preview-local``: the whole system on this machine, with no AWS account and no Docker.

Starts a moto server (DynamoDB, KMS) with the template's tables and key, seeds the demo
tenants, starts the demo sandbox origin, deploys ``template.yaml`` locally (SAM transform,
parameters, environment) and serves on ``127.0.0.1:$PORT`` (default 3000): the mint API, the
preview data plane on ``http://<sandbox-id>.sandboxes.localhost:$PORT``, the demo embedding
page and a dev identity provider. Writes ``.local/demo.json`` (``$PREVIEW_LOCAL_STATE_DIR``)
and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from preview_local.aws_resources import ensure_resources
from preview_local.demo_app import DemoEmbeddingApp, SandboxChoice
from preview_local.deployment import deploy_locally
from preview_local.dev_idp import AUDIENCE, TENANT_CLAIM, DevIdentityProvider
from preview_local.front_door import FrontDoor
from preview_local.gateway import RestApiGateway
from preview_local.http_server import LoopbackServer
from preview_local.lambda_runtime import LambdaFunction
from preview_local.local_state import LocalState
from preview_local.moto_aws import MotoAws
from preview_local.origin import SandboxOrigin
from preview_local.rest_api import RestApi
from preview_local.seed import (
    DEMO_TENANT,
    OTHER_TENANT,
    RATE_LIMITED_PER_MINUTE,
    RATE_LIMITED_TENANT,
    SANDBOXES,
    DemoSeed,
    seed_demo,
)

PREVIEW_DOMAIN = "sandboxes.localhost"
CONTROL_PLANE_API = "ControlPlaneApi"
DATA_PLANE_API = "PreviewApi"
DEMO_FILE = "demo.json"
DEFAULT_PORT = 3000


def local_parameters(port: int, origin_url: str, identity_provider: DevIdentityProvider) -> dict[str, str]:
    """The template parameters of the local deployment."""
    return {
        "PreviewDomain": PREVIEW_DOMAIN,
        "SandboxOriginUrl": origin_url,
        "FrameAncestors": f"http://127.0.0.1:{port} http://localhost:{port}",
        "JwtIssuer": identity_provider.issuer,
        "JwtAudience": AUDIENCE,
        "JwtJwksUrl": identity_provider.jwks_url,
        "JwtTenantClaim": TENANT_CLAIM,
        "LogLevel": os.environ.get("LOG_LEVEL", "INFO"),
    }


def local_only_environment(port: int) -> dict[str, str]:
    """Function settings the template leaves at their AWS defaults, changed for plain local http."""
    return {
        "PREVIEW_URL_SCHEME": "http",
        "PREVIEW_URL_PORT": str(port),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


@dataclass(frozen=True)
class DemoInfo:
    """What a developer (and the e2e tests) need to use the running stack: ``demo.json``."""

    port: int
    seed: DemoSeed
    identity_provider: DevIdentityProvider
    origin_url: str
    operator_environment: Mapping[str, str]
    """What ``preview-tokens`` (the operator CLI) needs to manage this stack's moto server."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def as_json(self) -> dict[str, object]:
        return {
            "api_url": self.api_url,
            "mint_url_template": self.api_url + "/api/v1/sandboxes/{sandbox_id}/preview-token",
            "openapi_url": self.api_url + "/api/v1/openapi.json",
            "demo_url": self.api_url + "/",
            "preview_domain": PREVIEW_DOMAIN,
            "preview_url_example": f"http://{self.seed.sandbox_id}.{PREVIEW_DOMAIN}:{self.port}/",
            "port": self.port,
            "tenant_id": DEMO_TENANT,
            "other_tenant_id": OTHER_TENANT,
            "sandbox_id": self.seed.sandbox_id,
            "sandbox_ids": list(SANDBOXES[DEMO_TENANT]),
            "other_tenant_sandbox_id": self.seed.other_tenant_sandbox_id,
            "rate_limited_tenant_id": RATE_LIMITED_TENANT,
            "rate_limited_sandbox_id": self.seed.rate_limited_sandbox_id,
            "rate_limited_per_minute": RATE_LIMITED_PER_MINUTE,
            **self.seed.api_keys,
            "jwt": self.seed.jwt,
            "jwt_issuer": self.identity_provider.issuer,
            "jwt_audience": AUDIENCE,
            "jwks_url": self.identity_provider.jwks_url,
            "signing_kid": self.seed.signing_kid,
            "origin_url": self.origin_url,
            "operator_environment": dict(self.operator_environment),
        }

    def banner(self, demo_path: Path) -> str:
        api_key = self.seed.api_keys["api_key"]
        return "\n".join(
            [
                "",
                "preview-local is running (Ctrl-C stops it)",
                f"  demo embedding page   {self.api_url}/",
                f"  mint API              {self.api_url}/api/v1/sandboxes/{{id}}/preview-token",
                f"  previews              http://<sandbox-id>.{PREVIEW_DOMAIN}:{self.port}/?mt=...",
                f"  tenant {DEMO_TENANT}   sandboxes {', '.join(SANDBOXES[DEMO_TENANT])}",
                f"  tenant {OTHER_TENANT}  sandbox {self.seed.other_tenant_sandbox_id}",
                f"  tenant {RATE_LIMITED_TENANT}  sandbox {self.seed.rate_limited_sandbox_id} "
                f"(mint limit {RATE_LIMITED_PER_MINUTE}/min)",
                f"  API key (previews:write, local demo only)  {api_key}",
                f"  all demo credentials (API keys, JWT) and URLs: {demo_path}",
                "  try:",
                f"    curl -s -X POST -H 'Authorization: Bearer {api_key}' \\",
                "      -H 'Content-Type: application/json' -d '{\"scope\": \"read\"}' \\",
                f"      {self.api_url}/api/v1/sandboxes/{self.seed.sandbox_id}/preview-token",
                "",
            ]
        )


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"preview-local: PORT must be a TCP port number, got {raw!r}")
    return int(raw)


def run(port: int, state: LocalState, stop: threading.Event) -> None:
    with ExitStack() as running:
        try:
            front_server = LoopbackServer(port, "gateway")
        except OSError as error:
            raise SystemExit(f"preview-local: cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
        running.callback(front_server.stop)
        origin_server = LoopbackServer(0, "origin")
        running.callback(origin_server.stop)
        moto = MotoAws().start()
        running.callback(moto.stop)
        os.environ.update(moto.environment())

        resources = ensure_resources()
        identity_provider = DevIdentityProvider.load_or_create(state.directory, front_server.url)
        deployment = deploy_locally(
            local_parameters(port, origin_server.url, identity_provider),
            {**resources.tables, "SigningKeyMasterKey": resources.kms_key_id},
        )
        os.environ.update(deployment.combined_environment())
        os.environ.update(local_only_environment(port))
        seed = seed_demo(resources.tables, resources.kms_key_id, state, identity_provider)

        functions = {name: LambdaFunction(spec) for name, spec in deployment.functions.items()}
        origin = SandboxOrigin(deployment.parameters["InputPathPrefix"])
        sandboxes = [SandboxChoice(sandbox_id, sandbox_id) for sandbox_id in SANDBOXES[DEMO_TENANT]]
        sandboxes += [
            SandboxChoice(sandbox_id, f"{sandbox_id} (another tenant's)")
            for sandbox_id in SANDBOXES[OTHER_TENANT]
        ]
        front_door = FrontDoor(
            preview_domain=PREVIEW_DOMAIN,
            control_plane=RestApiGateway(
                RestApi.from_deployment(deployment.rest_apis[CONTROL_PLANE_API]), functions, port
            ),
            data_plane=RestApiGateway(
                RestApi.from_deployment(deployment.rest_apis[DATA_PLANE_API]), functions, port
            ),
            demo=DemoEmbeddingApp(
                front_server.url, seed.api_keys["api_key"], sandboxes, PREVIEW_DOMAIN, port
            ),
            identity_provider=identity_provider,
        )
        operator_environment = {
            **moto.environment(),
            **resources.environment(),
            "SIGNING_KEY_MASTER_KEY": resources.kms_key_id,
        }
        info = DemoInfo(port, seed, identity_provider, origin_server.url, operator_environment)
        demo_path = state.write_json(DEMO_FILE, info.as_json())
        origin_server.start(origin.respond)
        front_server.start(front_door.respond)
        print(info.banner(demo_path), flush=True)
        stop.wait()
        print("preview-local: stopping", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    run(_port(os.environ), LocalState.from_env(os.environ), stop)
    return 0
