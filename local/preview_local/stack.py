"""``preview-local``: the whole system on this machine, with no AWS account and no Docker.

Starts a moto server (DynamoDB, KMS) with the template's tables and key, seeds the demo
tenants, starts the demo sandbox origin (which accepts only requests with a valid origin
assertion), deploys ``template.yaml`` locally (SAM transform, parameters, environment) and
serves on ``127.0.0.1:$PORT`` (default 3000): the mint API, the preview data plane on
``http://<sandbox-id>.sandboxes.localhost:$PORT``, the demo embedding page and a dev identity
provider. Writes ``.local/demo.json`` (``$PREVIEW_LOCAL_STATE_DIR``), ready Lambda events in
``.local/events/`` and ``sam local invoke`` env vars, and runs until SIGINT/SIGTERM.

    preview-local                                  run the stack (PORT, default 3000)
    preview-local invoke <LogicalId> <event|->     invoke one function in-process against it
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

from preview_origin import HttpJwks, OriginAssertionVerifier
from preview_tokens.control_plane.revocations import RevocationFeed, RevocationView
from preview_tokens.data_plane.edge_store import LocalEdgeStore
from preview_tokens.operator.operator_cli import EDGE_STORE_FILE
from preview_tokens.settings import RevocationSettings

from preview_local import invocations
from preview_local.aws_resources import ensure_resources
from preview_local.demo_app import DemoEmbeddingApp, SandboxChoice
from preview_local.deployment import deploy_locally
from preview_local.desktop import INSTALL_COMMAND, DesktopSandbox, missing_parts
from preview_local.dev_idp import AUDIENCE, TENANT_CLAIM, DevIdentityProvider
from preview_local.front_door import FrontDoor
from preview_local.gateway import RestApiGateway
from preview_local.http_server import LoopbackServer
from preview_local.invocations import (
    InvocationSetup,
    ready_events,
    sam_env_vars,
    write_invocation_files,
)
from preview_local.lambda_runtime import LambdaFunction
from preview_local.local_state import LocalState
from preview_local.moto_aws import MotoAws
from preview_local.origin import DESKTOP_STREAM_PATH, SandboxOrigin, StreamRevocations
from preview_local.rest_api import RestApi
from preview_local.seed import (
    DEMO_TENANT,
    DESKTOP_SANDBOX,
    OTHER_TENANT,
    RATE_LIMITED_PER_MINUTE,
    RATE_LIMITED_TENANT,
    SANDBOXES,
    DemoSeed,
    seed_demo,
)
from preview_local.stream_edge import StreamBehaviours, StreamEdge
from preview_local.viewer_response import ViewerResponse

PREVIEW_DOMAIN = "sandboxes.localhost"
CONTROL_PLANE_API = "ControlPlaneApi"
DATA_PLANE_API = "PreviewApi"
DEMO_FILE = "demo.json"
# The CloudFront KeyValueStore's stand-in (signing keys, frame ancestors, sandbox tenants).
EDGE_STORE_NAME = "edge-store.json"
DEFAULT_PORT = 3000
# Local-only knobs (README "Local stack"): the sandbox origin the gateway proxies to (default: the
# demo origin), its integration timeout (default API Gateway's 29 s), the moto server's address.
ORIGIN_URL_ENV = "PREVIEW_LOCAL_SANDBOX_ORIGIN_URL"
INTEGRATION_TIMEOUT_ENV = "PREVIEW_LOCAL_INTEGRATION_TIMEOUT_SECONDS"
MOTO_HOST_ENV = "PREVIEW_LOCAL_MOTO_HOST"
ORIGIN_KEYS_PATH = "/api/v1/origin-keys"
# The template's stream path (noVNC's /websockify) and the demo sandboxes' input stream, so that
# read tokens meet the input-path rule on a stream too.
STREAM_PATH_PATTERNS = f"{DESKTOP_STREAM_PATH}*,/input/stream*"
# The shortest refresh the template allows: a retired key stops verifying within seconds here.
SIGNING_KEYS_REFRESH_SECONDS = "5"


LOCAL_MINT_RATE_LIMIT_PER_MINUTE = "10000"


def local_parameters(port: int, origin_url: str, identity_provider: DevIdentityProvider) -> dict[str, str]:
    """The template parameters of the local deployment."""
    return {
        "PreviewDomain": PREVIEW_DOMAIN,
        "SandboxOriginUrl": origin_url,
        # Any local port: the demo page, and the integrator backend examples of docs/embed/.
        "FrameAncestors": "http://127.0.0.1:* http://localhost:*",
        "JwtIssuer": identity_provider.issuer,
        "JwtAudience": AUDIENCE,
        "JwtJwksUrl": identity_provider.jwks_url,
        "JwtTenantClaim": TENANT_CLAIM,
        "LogLevel": os.environ.get("LOG_LEVEL", "INFO"),
        "SigningKeysRefreshSeconds": SIGNING_KEYS_REFRESH_SECONDS,
        # A developer (and the e2e suite) mints far more than a tenant would: the default limit is
        # high here, and tenant-limited (5 a minute) is the one to try 429 with.
        "MintRateLimitPerMinute": LOCAL_MINT_RATE_LIMIT_PER_MINUTE,
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
    desktop_available: bool = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def as_json(self) -> dict[str, object]:
        return {
            "api_url": self.api_url,
            "mint_url_template": self.api_url + "/api/v1/sandboxes/{sandbox_id}/preview-token",
            "openapi_url": self.api_url + "/api/v1/openapi.json",
            "origin_keys_url": self.api_url + ORIGIN_KEYS_PATH,
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
            "desktop_sandbox_id": DESKTOP_SANDBOX,
            "desktop_available": self.desktop_available,
            "stream_path": DESKTOP_STREAM_PATH,
            "stream_path_patterns": STREAM_PATH_PATTERNS.split(","),
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
                f"  desktop sandbox       {DESKTOP_SANDBOX} (noVNC over {DESKTOP_STREAM_PATH}): "
                + (
                    "running" if self.desktop_available else f"not available, install with: {INSTALL_COMMAND}"
                ),
                f"  API key (previews:write, local demo only)  {api_key}",
                f"  all demo credentials (API keys, JWT) and URLs: {demo_path}",
                f"  ready Lambda events (preview-local invoke ...): {demo_path.parent / 'events'}",
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


def _integration_timeout(env: Mapping[str, str]) -> float | None:
    raw = env.get(INTEGRATION_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 29:
        raise SystemExit(f"preview-local: {INTEGRATION_TIMEOUT_ENV} must be seconds in (0, 29], got {raw!r}")
    return seconds


def run(port: int, state: LocalState, stop: threading.Event) -> None:
    with ExitStack() as running:
        try:
            front_server = LoopbackServer(port, "gateway")
        except OSError as error:
            raise SystemExit(f"preview-local: cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
        running.callback(front_server.stop)
        # The origin logs every connection it accepts: the tests prove refused streams never reach it.
        origin_server = LoopbackServer(0, "origin", log_connections=True)
        running.callback(origin_server.stop)
        moto = MotoAws(host=os.environ.get(MOTO_HOST_ENV) or "127.0.0.1").start()
        running.callback(moto.stop)
        os.environ.update(moto.environment())
        origin_url = os.environ.get(ORIGIN_URL_ENV) or origin_server.url
        integration_timeout = _integration_timeout(os.environ)

        resources = ensure_resources()
        identity_provider = DevIdentityProvider.load_or_create(state.directory, front_server.url)
        physical_ids = {**resources.tables, "SigningKeyMasterKey": resources.kms_key_id}
        deployment = deploy_locally(local_parameters(port, origin_url, identity_provider), physical_ids)
        os.environ.update(deployment.combined_environment())
        os.environ.update(local_only_environment(port))
        edge_store = LocalEdgeStore(state.path(EDGE_STORE_NAME))
        edge_store.clear()  # moto starts empty, with new signing keys: so does the edge
        seed = seed_demo(resources.tables, resources.kms_key_id, state, identity_provider, edge_store)

        functions = {name: LambdaFunction(spec) for name, spec in deployment.functions.items()}
        desktop = _start_desktop(state.directory / "desktop")
        if desktop is not None:
            running.callback(desktop.stop)
        input_path_prefix = deployment.parameters["InputPathPrefix"]
        # The demo fleet verifies origin assertions as a real one would: with the keys the
        # control plane publishes, fetched over HTTP, for the audience the data plane signs for.
        origin_verifier = OriginAssertionVerifier(
            HttpJwks(front_server.url + ORIGIN_KEYS_PATH),
            deployment.combined_environment()["ORIGIN_ASSERTION_AUDIENCE"],
        )
        # ...and is told of revocations as a real one is: it reads the revocation feed itself (on
        # AWS: dynamodb:Query on the RevocationsTableName output), for the streams it holds open.
        feed = RevocationSettings.from_env(deployment.combined_environment())
        stream_revocations = StreamRevocations(
            RevocationView(
                RevocationFeed(feed.table),
                refresh_seconds=feed.refresh_seconds,
                max_staleness_seconds=feed.max_staleness_seconds,
            )
        )
        origin = SandboxOrigin(
            input_path_prefix, origin_verifier, desktop, DESKTOP_SANDBOX, revocations=stream_revocations
        )
        # The stream edge reads key.<kid> from the edge store, as the CloudFront Function reads
        # its KeyValueStore: the signing-key commands write it.
        streams = StreamBehaviours(
            StreamEdge(edge_store.get, input_path_prefix),
            # StreamPathPatterns retired from the template (issue 13): the local stack keeps its own
            # stream paths until it runs on the PreviewEdge topology (preview_local.edge.PreviewEdge).
            tuple(STREAM_PATH_PATTERNS.split(",")),
            origin_server.port,
        )
        sandboxes = [SandboxChoice(sandbox_id, sandbox_id) for sandbox_id in SANDBOXES[DEMO_TENANT]]
        sandboxes += [
            SandboxChoice(sandbox_id, f"{sandbox_id} (another tenant's)")
            for sandbox_id in SANDBOXES[OTHER_TENANT]
        ]
        control_plane = RestApiGateway(
            RestApi.from_deployment(deployment.rest_apis[CONTROL_PLANE_API]), functions, port
        )
        data_plane = RestApiGateway(
            RestApi.from_deployment(deployment.rest_apis[DATA_PLANE_API]),
            functions,
            port,
            integration_timeout_seconds=integration_timeout,
        )
        front_door = FrontDoor(
            preview_domain=PREVIEW_DOMAIN,
            control_plane=control_plane,
            data_plane=data_plane,
            demo=DemoEmbeddingApp(
                front_server.url, seed.api_keys["api_key"], sandboxes, PREVIEW_DOMAIN, port
            ),
            identity_provider=identity_provider,
            viewer_response=ViewerResponse(edge_store.get, deployment.parameters["FrameAncestors"]),
            streams=streams,
        )
        operator_environment = {
            **moto.environment(),
            **resources.environment(),
            "SIGNING_KEY_MASTER_KEY": resources.kms_key_id,
            EDGE_STORE_FILE: str(edge_store.path),
        }
        info = DemoInfo(
            port, seed, identity_provider, origin_server.url, operator_environment, desktop is not None
        )
        demo_path = state.write_json(DEMO_FILE, info.as_json())
        events = ready_events(
            control_plane,
            data_plane,
            functions["MintFunction"],
            seed.api_keys["api_key"],
            seed.sandbox_id,
            preview_host=f"{seed.sandbox_id}.{PREVIEW_DOMAIN}:{port}",
            api_host=f"127.0.0.1:{port}",
        )
        write_invocation_files(
            state,
            events,
            sam_env_vars(deployment, moto.endpoint_url),
            InvocationSetup(
                deployment.parameters,
                physical_ids,
                {**moto.environment(), **local_only_environment(port)},
            ),
        )
        origin_server.start(origin.respond)
        front_server.start(front_door.respond)
        print(info.banner(demo_path), flush=True)
        stop.wait()
        print("preview-local: stopping", flush=True)


def _start_desktop(directory: Path) -> DesktopSandbox | None:
    """The desktop sandbox when this machine has its packages; else say how to get them."""
    missing = missing_parts()
    if missing:
        print(
            f"preview-local: the desktop sandbox needs {', '.join(missing)}; install with: {INSTALL_COMMAND}",
            flush=True,
        )
        return None
    try:
        return DesktopSandbox.start(directory)
    except (OSError, RuntimeError) as error:
        print(f"preview-local: the desktop sandbox did not start: {error}", flush=True)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "invoke":
        return invocations.main(argv[1:])
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
