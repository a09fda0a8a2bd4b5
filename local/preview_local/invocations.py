"""Ready Lambda events for the running stack, and ``preview-local invoke``: SAM local invocations.

At start-up the stack writes into its state directory (``.local/``):

* ``events/mint.json``, ``events/authorizer.json``, ``events/exchange.json``,
  ``events/cookie_check.json``: the events the local gateway would send each function, with the
  stack's demo API key and a fresh preview token (minted by the stack's own mint function, valid
  for a day) filled in. ``sam local invoke <LogicalId> -e <event>`` and ``preview-local invoke``
  take them as they are.
* ``sam-env.json``: ``sam local invoke --env-vars`` values for each function: its environment
  as the local stack deploys it (the moto server's table names and key), with
  ``AWS_ENDPOINT_URL`` pointing at the moto server through ``host.docker.internal``. SAM only
  overrides variables the template declares, hence the ``LocalAwsEndpointUrl`` parameter.
* ``invoke.json``: what ``preview-local invoke`` needs to run a function against this stack
  (parameters, physical ids, the moto endpoint). No credential of any value: moto's fake keys.

``preview-local invoke <LogicalId> <event.json | ->`` reads the function's handler and
environment from ``template.yaml`` (through :func:`~preview_local.deployment.deploy_locally`),
imports and invokes it in this process (:class:`~preview_local.lambda_runtime.LambdaFunction`)
and prints the result on stdout as ``sam local invoke`` does, the function's logs and the
START/END/REPORT lines on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from preview_tokens.data_plane.access import SESSION_COOKIE
from preview_tokens.data_plane.exchange import COOKIE_CHECK_PATH
from preview_tokens.observability import SERVICE

from preview_local.deployment import LocalDeployment, LocalDeploymentError, deploy_locally
from preview_local.edge import DENIAL_HEADER, DENIED_PATH, viewer_request
from preview_local.gateway import RestApiGateway
from preview_local.http_messages import HttpRequest
from preview_local.lambda_runtime import LambdaFunction
from preview_local.local_state import LocalState

EVENTS_DIR = "events"
SAM_ENV_FILE = "sam-env.json"
INVOKE_FILE = "invoke.json"
MINT_FUNCTION = "MintFunction"
EVENT_TOKEN_SECONDS = 86_400
DOCKER_HOST = "host.docker.internal"
_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0"


class InvokeError(RuntimeError):
    """``preview-local invoke`` cannot run as asked (no stack state, unknown function, bad event)."""


@dataclass(frozen=True)
class InvocationSetup:
    """The running stack as ``invoke.json`` records it."""

    parameters: Mapping[str, str]
    physical_ids: Mapping[str, str]
    environment: Mapping[str, str]
    """Process environment beside each function's own: the moto endpoint, local-only settings."""

    def as_json(self) -> dict[str, Any]:
        return {
            "parameters": dict(self.parameters),
            "physical_ids": dict(self.physical_ids),
            "environment": dict(self.environment),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> InvocationSetup:
        return cls(document["parameters"], document["physical_ids"], document["environment"])


# ------------------------------------------------------------------------ at start-up


def sam_env_vars(deployment: LocalDeployment, moto_endpoint: str) -> dict[str, dict[str, str]]:
    """``--env-vars`` for each function: its deployed environment, AWS reached through the host."""
    port = urlsplit(moto_endpoint).port
    container_endpoint = f"http://{DOCKER_HOST}:{port}"
    return {
        name: {**function.environment, "AWS_ENDPOINT_URL": container_endpoint}
        for name, function in sorted(deployment.functions.items())
    }


def ready_events(
    control_plane: RestApiGateway,
    data_plane: RestApiGateway,
    mint: LambdaFunction,
    api_key: str,
    sandbox_id: str,
    preview_host: str,
    api_host: str,
) -> dict[str, dict[str, Any]]:
    """The ready events (mint, exchange, cookie check; the denial page and the exchange's ``?mt=``
    authorizer when the template has them); a fresh token for the data-plane ones from the stack's
    mint function."""
    mint_request = HttpRequest(
        "POST",
        f"/api/v1/sandboxes/{sandbox_id}/preview-token",
        "",
        (
            ("Host", api_host),
            ("Authorization", f"Bearer {api_key}"),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("User-Agent", "tenant-backend/1.0"),
        ),
        json.dumps({"scope": "read", "expires_in": 3600}).encode(),
    )
    _, mint_event = control_plane.lambda_events(mint_request)
    if mint_event is None:
        raise RuntimeError("the template's mint route changed: update the ready events")
    token = _fresh_token(mint, mint_event)
    document = (("Host", preview_host), ("Accept", "text/html"), ("User-Agent", _BROWSER))
    exchange_request = viewer_request(HttpRequest("GET", "/", f"mt={token}", document))
    exchange_authorizer, exchange_event = _lambda_events(data_plane, exchange_request)
    check_request = HttpRequest(
        "GET", COOKIE_CHECK_PATH, "", (*document, ("Cookie", f"{SESSION_COOKIE}={token}"))
    )
    _, check_event = _lambda_events(data_plane, check_request)
    if exchange_event is None or check_event is None:
        raise RuntimeError("the template's data-plane routes changed: update the ready events")
    events = {"mint": mint_event, "exchange": exchange_event, "cookie_check": check_event}
    # The denial page's route (PreviewEdge's "denied"), when the template has it.
    denied_request = HttpRequest("GET", DENIED_PATH, "", (*document, (DENIAL_HEADER, "expired")))
    _, denied_event = _lambda_events(data_plane, denied_request)
    if denied_event is not None:
        events["denied"] = denied_event
    # The exchange route's ?mt= authorizer (PreviewAuthorizerFunction), when the template has it.
    if exchange_authorizer is not None:
        events["authorizer"] = exchange_authorizer
    return events


def _lambda_events(
    gateway: RestApiGateway, request: HttpRequest
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The gateway's events for ``request``; ``(None, None)`` when it is no route of the API."""
    try:
        return gateway.lambda_events(request)
    except ValueError:
        return None, None


def _fresh_token(mint: LambdaFunction, mint_event: dict[str, Any]) -> str:
    """A token for the ready events, minted before the banner: the mint's log line is not printed
    (it is the stack preparing itself, not a request anyone made; issue 15)."""
    event = {**mint_event, "body": json.dumps({"scope": "interact", "expires_in": EVENT_TOKEN_SECONDS})}
    function_logger = logging.getLogger(SERVICE)
    was_disabled = function_logger.disabled
    function_logger.disabled = True
    try:
        result = mint.invoke(event)
    finally:
        function_logger.disabled = was_disabled
    body = json.loads(result["body"]) if isinstance(result, dict) else {}
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        raise RuntimeError(f"the local mint function did not mint (status {result.get('statusCode')})")
    token: str = body["token"]
    return token


def write_invocation_files(
    state: LocalState,
    events: Mapping[str, Mapping[str, Any]],
    env_vars: Mapping[str, Mapping[str, str]],
    setup: InvocationSetup,
) -> Path:
    """Write ``events/*.json``, ``sam-env.json`` and ``invoke.json``; the events directory."""
    events_dir = state.path(EVENTS_DIR)
    events_dir.mkdir(mode=0o700, exist_ok=True)
    for name, event in events.items():
        state.write_json(f"{EVENTS_DIR}/{name}.json", event)
    state.write_json(SAM_ENV_FILE, env_vars)
    state.write_json(INVOKE_FILE, setup.as_json())
    return events_dir


# ------------------------------------------------------------------- preview-local invoke


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="preview-local invoke",
        description="Invoke a function of template.yaml in-process against the running local stack, "
        "printing its result as `sam local invoke` does.",
    )
    parser.add_argument(
        "function",
        metavar="LogicalId",
        help="e.g. MintFunction, PreviewAuthorizerFunction (the ?mt= authorizer)",
    )
    parser.add_argument(
        "event", nargs="?", help="event JSON file, or - for stdin (e.g. .local/events/mint.json)"
    )
    parser.add_argument("-e", "--event", dest="event_option", help="the same, as sam local invoke spells it")
    arguments = parser.parse_args(argv)
    if (arguments.event is None) == (arguments.event_option is None):
        parser.error("give the event once: a file, or - for stdin")
    return arguments


def _read_event(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as error:
        raise InvokeError(f"cannot read the event {source}: {error.strerror}") from None
    except ValueError:
        raise InvokeError(f"the event {source} is not JSON") from None


def _load_setup(state: LocalState) -> InvocationSetup:
    document = state.read_json(INVOKE_FILE)
    if not document:
        raise InvokeError(f"{state.path(INVOKE_FILE)} is missing: start the local stack first (make run)")
    setup = InvocationSetup.from_json(document)
    endpoint = setup.environment.get("AWS_ENDPOINT_URL", "")
    # Is it listening? (Not /moto-api/data.json: it serialises every table, slow once they fill up.)
    address = urlsplit(endpoint)
    try:
        with socket.create_connection((address.hostname or "", address.port or 80), timeout=5):
            pass
    except (OSError, ValueError):
        raise InvokeError(
            f"the local stack's moto server ({endpoint}) does not answer: is make run running?"
        ) from None
    return setup


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr (loggers created earlier hold ``sys.stdout`` itself)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def invoke(function_name: str, event: Any, setup: InvocationSetup) -> tuple[Any, bool]:
    """The function's result, and whether it raised (the result is then Lambda's error document)."""
    deployment = deploy_locally(setup.parameters, setup.physical_ids)
    spec = deployment.functions.get(function_name)
    if spec is None:
        known = ", ".join(sorted(deployment.functions))
        raise InvokeError(f"template.yaml has no function {function_name} (it has {known})")
    os.environ.update(spec.environment)
    os.environ.update(setup.environment)
    function = LambdaFunction(spec)
    started = time.monotonic()
    print(f"Invoking {spec.handler} ({function_name}) in-process", file=sys.stderr)
    with _stdout_to_stderr():  # the function's log lines, as SAM shows them
        try:
            return function.invoke(event), False
        except Exception as error:
            return {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }, True
        finally:
            elapsed = (time.monotonic() - started) * 1000
            print(f"REPORT Function: {function_name}\tDuration: {elapsed:.2f} ms", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    arguments = _arguments(argv)
    try:
        event = _read_event(arguments.event or arguments.event_option)
        setup = _load_setup(LocalState.from_env(os.environ))
        result, failed = invoke(arguments.function, event, setup)
    except (InvokeError, LocalDeploymentError) as error:
        print(f"preview-local invoke: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 1 if failed else 0
