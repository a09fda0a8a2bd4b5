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

import argparse
import dataclasses
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from preview_tokens.data_plane.edge_store import LocalEdgeStore
from preview_tokens.operator.operator_cli import EDGE_STORE_FILE
from preview_tokens.settings import RevocationSettings

from preview_local import invocations
from preview_local.apps import (
    APP_CA_FILE_ENV,
    APPS_ENV,
    PRESERVE_HOST_ENV,
    AppSpecError,
    app_ca_file,
    parse_apps,
    preserve_host_ids,
)
from preview_local.aws_resources import ensure_resources
from preview_local.cfn_template import project_template
from preview_local.demo_app import DemoEmbeddingApp, SandboxChoice
from preview_local.deployment import deploy_locally
from preview_local.desktop import INSTALL_COMMAND, DesktopSandbox, missing_parts
from preview_local.dev_idp import AUDIENCE, TENANT_CLAIM, DevIdentityProvider
from preview_local.edge import PreviewEdge
from preview_local.fleet import FleetSettings, LocalFleet
from preview_local.front_door import FrontDoor, OriginTimeouts
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
from preview_local.origin import DESKTOP_STREAM_PATH, SandboxOrigin
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

PREVIEW_DOMAIN = "sandboxes.localhost"
CONTROL_PLANE_API = "ControlPlaneApi"
DATA_PLANE_API = "PreviewApi"
DEMO_FILE = "demo.json"
# The CloudFront KeyValueStore's stand-in (signing keys, frame ancestors, sandbox tenants).
EDGE_STORE_NAME = "edge-store.json"
DEFAULT_PORT = 3000
# Local-only knobs (docs/local-stack.md): the app behind the seeded sandboxes (default: the demo
# app), the fleet-ingress origin's response timeout, the moto server's address.
ORIGIN_URL_ENV = "PREVIEW_LOCAL_SANDBOX_ORIGIN_URL"
# The fleet-ingress origin's response timeout (OriginReadTimeout), shortened for tests of a hanging app.
ORIGIN_READ_TIMEOUT_ENV = "PREVIEW_LOCAL_ORIGIN_READ_TIMEOUT_SECONDS"
MOTO_HOST_ENV = "PREVIEW_LOCAL_MOTO_HOST"
# Sandbox ids whose fleet ingress CloudFront cannot reach (as if it were down or its security group
# closed): rehearse the smoke test's failure and the CloudFront 5xx runbook.
UNREACHABLE_INGRESS_ENV = "PREVIEW_LOCAL_UNREACHABLE_INGRESS"
ORIGIN_KEYS_PATH = "/api/v1/origin-keys"
# The shortest refresh the template allows: a retired key stops verifying within seconds here.
SIGNING_KEYS_REFRESH_SECONDS = "5"


LOCAL_MINT_RATE_LIMIT_PER_MINUTE = "10000"


def local_parameters(port: int, origin_url: str, identity_provider: DevIdentityProvider) -> dict[str, str]:
    """The template parameters of the local deployment (those the template declares)."""
    declared = project_template().get("Parameters") or {}
    wanted = {
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
    return {name: value for name, value in wanted.items() if name in declared}


def local_only_environment(port: int) -> dict[str, str]:
    """Function settings the template leaves at their AWS defaults, changed for plain local http."""
    return {
        "PREVIEW_URL_SCHEME": "http",
        "PREVIEW_URL_PORT": str(port),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


_PRESERVED = ", gets the viewer's Host"


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
    apps: Mapping[str, str] = field(default_factory=dict)
    """The developer's apps (``PREVIEW_LOCAL_APPS``, ``--app``): sandbox id -> upstream URL."""
    ingress: Mapping[str, int] = field(default_factory=dict)
    """Sandbox id -> the port of the fleet ingress in front of its app (the demo app's included)."""
    ingress_admin: Mapping[str, int] = field(default_factory=dict)
    """Sandbox id -> that ingress's admin port (``/healthz``, Prometheus ``/metrics``)."""
    app_ca_file: str | None = None
    """The CAs the apps' ``https`` certificates are checked against (``--app-ca-file``)."""
    preserve_host: frozenset[str] = frozenset()
    """The apps whose ingress keeps the viewer's ``Host`` (``--app-preserve-host``)."""

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
            # the demo tenant's sandboxes: the seeded ones, then the developer's apps
            "sandbox_ids": list(dict.fromkeys([*SANDBOXES[DEMO_TENANT], *self.apps])),
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
            "apps": dict(self.apps),
            "ingress_ports": dict(self.ingress),
            "ingress_admin_ports": dict(self.ingress_admin),
            "app_ca_file": self.app_ca_file,
            "preserve_host": sorted(self.preserve_host),
        }

    def _app_lines(self) -> list[str]:
        """One line per developer app: where it runs and the link that opens it in the demo page."""
        if not self.apps:
            return [f"  your own apps          {APPS_ENV}='sbx-app=http://127.0.0.1:5173' make run"]
        lines = [
            f"  app {sandbox_id} ({url}{_PRESERVED if sandbox_id in self.preserve_host else ''})"
            f"  open {self.api_url}/?sandbox={sandbox_id}"
            for sandbox_id, url in self.apps.items()
        ]
        if self.app_ca_file:
            lines.append(f"  https apps checked against the CAs in {self.app_ca_file}")
        return lines

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
                *self._app_lines(),
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


STOP_POLL_SECONDS = 0.5


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"preview-local: PORT must be a TCP port number, got {raw!r}")
    return int(raw)


def _reachable_ingress(
    port_of: Callable[[str], int | None], env: Mapping[str, str]
) -> Callable[[str], int | None]:
    """The ingress ports the front door connects to: for ``PREVIEW_LOCAL_UNREACHABLE_INGRESS``'s
    sandboxes, a port nothing listens on (CloudFront's 504 when the origin does not connect)."""
    unreachable = {item.strip() for item in env.get(UNREACHABLE_INGRESS_ENV, "").split(",") if item.strip()}
    if not unreachable:
        return port_of
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed_port: int = probe.getsockname()[1]
    return lambda sandbox_id: closed_port if sandbox_id in unreachable else port_of(sandbox_id)


def _origin_timeouts(env: Mapping[str, str]) -> OriginTimeouts:
    """The template's fleet-ingress timeouts; ``PREVIEW_LOCAL_ORIGIN_READ_TIMEOUT_SECONDS`` shortens
    the response timeout (CloudFront allows 1-60 s without a quota increase)."""
    timeouts = OriginTimeouts.from_template(project_template())
    raw = env.get(ORIGIN_READ_TIMEOUT_ENV, "").strip()
    if not raw:
        return timeouts
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 180:
        raise SystemExit(f"preview-local: {ORIGIN_READ_TIMEOUT_ENV} must be seconds in (0, 180], got {raw!r}")
    return dataclasses.replace(timeouts, read_seconds=seconds)


def run(
    port: int,
    state: LocalState,
    stop: threading.Event,
    apps: Mapping[str, str] | None = None,
    app_ca_file: str | None = None,
    preserve_host: frozenset[str] = frozenset(),
) -> None:
    with ExitStack() as running:
        try:
            front_server = LoopbackServer(port, "gateway")
        except OSError as error:
            raise SystemExit(f"preview-local: cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
        running.callback(front_server.stop)
        # The demo sandbox app (and the desktop's page and stream): an app like any other.
        origin_server = LoopbackServer(0, "origin", log_connections=True)
        running.callback(origin_server.stop)
        moto = MotoAws(host=os.environ.get(MOTO_HOST_ENV) or "127.0.0.1").start()
        running.callback(moto.stop)
        os.environ.update(moto.environment())
        demo_app_url = os.environ.get(ORIGIN_URL_ENV) or origin_server.url
        user_apps = dict(apps or {})
        # Every seeded sandbox is the demo app; the developer's apps come on top (and may replace one).
        served_apps = {
            sandbox_id: demo_app_url for sandboxes in SANDBOXES.values() for sandbox_id in sandboxes
        } | user_apps

        resources = ensure_resources()
        identity_provider = DevIdentityProvider.load_or_create(state.directory, front_server.url)
        physical_ids = {**resources.tables, "SigningKeyMasterKey": resources.kms_key_id}
        deployment = deploy_locally(local_parameters(port, demo_app_url, identity_provider), physical_ids)
        os.environ.update(deployment.combined_environment())
        os.environ.update(local_only_environment(port))
        edge_store = LocalEdgeStore(state.path(EDGE_STORE_NAME))
        edge_store.clear()  # moto starts empty, with new signing keys: so does the edge
        seed = seed_demo(
            resources.tables,
            resources.kms_key_id,
            state,
            identity_provider,
            edge_store,
            app_sandboxes=user_apps,
        )

        functions = {name: LambdaFunction(spec) for name, spec in deployment.functions.items()}
        desktop = _start_desktop(state.directory / "desktop")
        if desktop is not None:
            running.callback(desktop.stop)
        input_path_prefix = deployment.parameters["InputPathPrefix"]
        environment = deployment.combined_environment()
        # The fleet: the real ingress in front of each app, configured as a platform team's is.
        fleet = LocalFleet(
            FleetSettings(
                origin_keys_url=front_server.url + ORIGIN_KEYS_PATH,
                audience=environment["ORIGIN_ASSERTION_AUDIENCE"],
                revocations_table=RevocationSettings.from_env(environment).table,
                input_path_prefix=input_path_prefix,
                frame_ancestors=deployment.parameters["FrameAncestors"],
                upstream_ca_file=app_ca_file,
                preserve_host=preserve_host,
            ),
            default_upstream=demo_app_url,
        ).start(served_apps)
        running.callback(fleet.stop)
        origin = SandboxOrigin(input_path_prefix, desktop, DESKTOP_SANDBOX)
        sandboxes = [SandboxChoice(sandbox_id, sandbox_id) for sandbox_id in SANDBOXES[DEMO_TENANT]]
        sandboxes += [
            SandboxChoice(sandbox_id, f"{sandbox_id} (app {url})") for sandbox_id, url in user_apps.items()
        ]
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
        )
        # The edge reads key.<kid> from the edge store, as the CloudFront Function reads its
        # KeyValueStore: the signing-key commands write it.
        front_door = FrontDoor(
            preview_domain=PREVIEW_DOMAIN,
            control_plane=control_plane,
            data_plane=data_plane,
            demo=DemoEmbeddingApp(
                front_server.url, seed.api_keys["api_key"], sandboxes, PREVIEW_DOMAIN, port
            ),
            identity_provider=identity_provider,
            edge=PreviewEdge(edge_store.get, input_path_prefix),
            ingress_secret=fleet.settings.secret,
            ingress_port=_reachable_ingress(fleet.port, os.environ),
            origin_timeouts=_origin_timeouts(os.environ),
        )
        operator_environment = {
            **moto.environment(),
            **resources.environment(),
            "SIGNING_KEY_MASTER_KEY": resources.kms_key_id,
            EDGE_STORE_FILE: str(edge_store.path),
        }
        info = DemoInfo(
            port,
            seed,
            identity_provider,
            demo_app_url,
            operator_environment,
            desktop is not None,
            apps=user_apps,
            ingress={sandbox_id: fleet.port(sandbox_id) or 0 for sandbox_id in served_apps},
            ingress_admin={sandbox_id: fleet.admin_port(sandbox_id) or 0 for sandbox_id in served_apps},
            app_ca_file=app_ca_file,
            preserve_host=preserve_host,
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
        front_server.start(front_door.respond, front_door.take_over)
        print(info.banner(demo_path), flush=True)
        # A timed wait, not one without end: Python runs the SIGTERM handler in the main thread only
        # when that thread runs again, and a wait with no timeout may never wake for a signal another
        # thread of this process took (the signal module's docs, "Signals and threads").
        while not stop.wait(STOP_POLL_SECONDS):
            pass
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


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="preview-local",
        description="Run the whole preview service on this machine (no AWS account, no Docker): "
        "the mint API, the data plane behind a local CloudFront and the fleet ingress, the demo pages.",
        epilog="Also: `preview-local invoke <LogicalId> <event|->` invokes one function in-process "
        f"against the running stack. Environment: PORT (default {DEFAULT_PORT}), {APPS_ENV} "
        f"(id=URL,...), {APP_CA_FILE_ENV} (as --app-ca-file), {PRESERVE_HOST_ENV} (id,..., as "
        "--app-preserve-host), PREVIEW_LOCAL_STATE_DIR (default .local). "
        "See docs/local-stack.md.",
    )
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="ID=URL",
        help="serve the app at URL (e.g. a dev server on http://127.0.0.1:5173) as sandbox ID of the "
        "demo tenant, through the edge, the exchange and the fleet ingress; only the URL's scheme, host "
        "and port are used (a path or query, as in a printed http://localhost:8888/lab?token=..., is "
        "dropped: the viewer's path is forwarded as sent); repeatable",
    )
    parser.add_argument(
        "--app-ca-file",
        metavar="PEM",
        default=None,
        help="check https apps' certificates against the CAs in this PEM file instead of the system's "
        f"(a dev server's mkcert or self-signed certificate); default ${APP_CA_FILE_ENV}",
    )
    parser.add_argument(
        "--app-preserve-host",
        action="append",
        default=[],
        metavar="ID",
        help="send app ID the viewer's Host and Origin as they are (its ingress with --preserve-host), "
        "for an app whose checks use X-Forwarded-Host, as Rails' do; repeatable; default "
        f"${PRESERVE_HOST_ENV} (id,...)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "invoke":
        return invocations.main(argv[1:])
    arguments = _arguments(argv)  # --help: prints and exits 0; a usage error exits 2
    try:
        apps = parse_apps([os.environ.get(APPS_ENV, ""), *arguments.app])
        ca_file = app_ca_file(arguments.app_ca_file or os.environ.get(APP_CA_FILE_ENV, "").strip())
        preserve_host = preserve_host_ids(
            [os.environ.get(PRESERVE_HOST_ENV, ""), *arguments.app_preserve_host], apps
        )
    except AppSpecError as error:
        print(f"preview-local: {error}", file=sys.stderr)
        return 2
    taken = sorted(set(apps) & {s for tenant, ids in SANDBOXES.items() if tenant != DEMO_TENANT for s in ids})
    if taken:
        print(
            f"preview-local: {', '.join(taken)} belongs to another demo tenant; pick another id",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    run(_port(os.environ), LocalState.from_env(os.environ), stop, apps, ca_file, preserve_host)
    return 0
