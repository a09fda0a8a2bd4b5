"""``preview-tokens smoke``: after a deployment, confirm it works end to end, and leave nothing behind.

It mints an ``interact`` token with the API key it is given, exchanges it on the preview host
(the session cookie and its flags), loads a page and opens a WebSocket through the preview
host, checks that the origin assertion was verified on the fleet's side (pluggable:
:class:`OriginCheck`), that a request without a session gets the denial page with the tenant's
CSP ``frame-ancestors``, and that revoking the token cuts the session within
:data:`REVOCATION_LIMIT_SECONDS`. It prints one row per check, and revokes what it minted even
when a check failed. Exit code 0 when every check passed, 1 otherwise.

Targets: ``--stack NAME`` (the API URL and preview domain from the stack's outputs),
explicit ``--api-url --preview-domain --api-key``, or ``--demo .local/demo.json`` (the running
local stack). Nothing here is a credential in its output: tokens, keys and cookies are never
printed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from preview_tokens.data_plane.access import SESSION_COOKIE

REVOCATION_LIMIT_SECONDS = 5.0
TIMEOUT_SECONDS = 15.0
SESSION_FLAGS = ("secure", "httponly", "samesite=none", "partitioned", "path=/")
DEFAULT_LOCAL_WEBSOCKET_PATH = "/input/stream"
API_KEY_ENV = "PREVIEW_TOKENS_SMOKE_API_KEY"


class SmokeError(Exception):
    """A check failed; the message is its one-line reason (no credential in it)."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def error_code(self) -> str:
        """One line saying why: the API's error code, the denial reason, or the page's heading."""
        try:
            return str(self.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            pass
        text = self.body.decode("utf-8", "replace")
        reason = self.header("X-Preview-Denial")
        heading = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S | re.I)
        if heading:
            summary = re.sub(r"<[^>]+>|\s+", " ", heading.group(1)).strip()
        else:
            summary = " ".join(text.split())[:80]
        return f"{reason} ({summary})" if reason else summary or "(empty body)"


def _connect_host(host: str) -> str:
    """``*.localhost`` is loopback (as curl and browsers have it; not every resolver does)."""
    return "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host


def request(
    url: str, method: str = "GET", headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> Reply:
    """One HTTP request, redirects not followed."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    connection: http.client.HTTPConnection
    if parsed.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parsed.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(_connect_host(host), parsed.port, timeout=TIMEOUT_SECONDS)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        connection.request(method, path, body=body, headers={"Host": parsed.netloc, **(headers or {})})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    except OSError as error:
        raise SmokeError(f"{method} {parsed.scheme}://{parsed.netloc}{parsed.path}: {error}") from None
    finally:
        connection.close()


def _cookie_pair(set_cookie: str) -> tuple[str, str]:
    name, _, value = set_cookie.split(";", 1)[0].strip().partition("=")
    return name, value


def _flags(set_cookie: str) -> set[str]:
    return {part.strip().lower().replace(" ", "") for part in set_cookie.split(";")[1:]}


@dataclass
class Session:
    """What the smoke test holds of its preview: the token (to revoke it) and the cookies."""

    token: str = field(repr=False)
    preview_url: str
    cookies: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def origin(self) -> str:
        parsed = urllib.parse.urlsplit(self.preview_url)
        return f"{parsed.scheme}://{parsed.netloc}"

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def get(self, path: str, with_cookies: bool = True) -> Reply:
        headers = {"Cookie": self.cookie_header()} if with_cookies and self.cookies else {}
        return request(self.origin + path, headers=headers)


class OriginCheck(Protocol):
    """How the smoke test knows the fleet verified the origin assertion of its requests."""

    name: str

    def before(self, session: Session) -> None: ...

    def after(self, session: Session, sandbox_id: str) -> str:
        """A one-line detail when verified; raises :class:`SmokeError` otherwise."""
        ...


@dataclass
class SandboxStatusCheck:
    """The local demo app reports what its ingress verified (``GET /api/status``: the sandbox and
    scope of the assertion it accepted; it refuses any request without a valid one)."""

    path: str = "/api/status"
    name: str = "origin assertion (app status)"

    def before(self, session: Session) -> None:
        return None

    def after(self, session: Session, sandbox_id: str) -> str:
        reply = session.get(self.path)
        if reply.status != 200:
            raise SmokeError(f"{self.path} answered {reply.status}: {reply.error_code()}")
        status = reply.json()
        if (status.get("sandbox_id"), status.get("scope")) != (sandbox_id, "interact"):
            raise SmokeError(f"the app saw {status.get('sandbox_id')}/{status.get('scope')}")
        return f"verified for {sandbox_id} (interact), {status.get('page_loads')} page load(s)"


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


def prometheus_total(text: str, metric: str, labels: Callable[[dict[str, str]], bool]) -> float:
    """The sum of ``metric``'s samples whose labels pass ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match["name"] != metric:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        if labels(found):
            total += float(match["value"])
    return total


@dataclass
class IngressMetricsCheck:
    """The fleet ingress's Prometheus ``/metrics``: requests it answered with 2xx after verifying
    the assertion (``preview_ingress_requests_total``) went up by the smoke test's page loads."""

    metrics_url: str
    metric: str = "preview_ingress_requests_total"
    name: str = "origin assertion (ingress /metrics)"
    _before: float = 0.0

    def _allowed(self) -> float:
        reply = request(self.metrics_url)
        if reply.status != 200:
            raise SmokeError(f"{self.metrics_url} answered {reply.status}")
        text = reply.body.decode("utf-8", "replace")
        return prometheus_total(text, self.metric, lambda labels: labels.get("status", "").startswith("2"))

    def before(self, session: Session) -> None:
        self._before = self._allowed()

    def after(self, session: Session, sandbox_id: str) -> str:
        served = self._allowed() - self._before
        if served < 1:
            raise SmokeError(
                f"{self.metric} did not count the smoke test's page: the ingress did not serve it"
            )
        return f"the ingress verified and served {served:.0f} request(s)"


@dataclass(frozen=True)
class SmokeTarget:
    api_url: str
    api_key: str = field(repr=False)
    sandbox_id: str
    preview_domain: str | None
    websocket_path: str | None
    origin_check: OriginCheck | None


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "ok", "FAILED", "skipped", "not run"
    detail: str


class SmokeRun:
    def __init__(self, target: SmokeTarget) -> None:
        self.target = target
        self.results: list[CheckResult] = []
        self.session: Session | None = None
        self._revoked = False

    def check(self, name: str, action: Callable[[], str | None]) -> bool:
        try:
            detail = action()
        except SmokeError as error:
            self.results.append(CheckResult(name, "FAILED", str(error)))
            return False
        if detail is None:
            self.results.append(CheckResult(name, "skipped", "nothing to check against (see --help)"))
        else:
            self.results.append(CheckResult(name, "ok", detail))
        return True

    def _api(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        return request(
            self.target.api_url.rstrip("/") + path,
            method,
            {"Authorization": f"Bearer {self.target.api_key}", "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )

    def mint(self) -> str:
        reply = self._api(
            "POST",
            f"/api/v1/sandboxes/{self.target.sandbox_id}/preview-token",
            {"scope": "interact", "expires_in": 300},
        )
        if reply.status != 200:
            raise SmokeError(f"mint answered {reply.status}: {reply.error_code()}")
        minted = reply.json()
        host = urllib.parse.urlsplit(minted["url"]).hostname or ""
        expected = (
            f"{self.target.sandbox_id}.{self.target.preview_domain}" if self.target.preview_domain else None
        )
        if expected and host != expected:
            raise SmokeError(f"the preview URL's host is {host}, not {expected}")
        self.session = Session(minted["token"], minted["url"])
        return f"interact token for {self.target.sandbox_id}, preview host {host}"

    def exchange(self) -> str:
        session = self._session()
        reply = request(session.preview_url)
        if reply.status != 302:
            raise SmokeError(f"the ?mt= exchange answered {reply.status}, not 302")
        set_cookies = reply.all("Set-Cookie")
        for set_cookie in set_cookies:
            name, value = _cookie_pair(set_cookie)
            session.cookies[name] = value
        session_cookie = next((c for c in set_cookies if _cookie_pair(c)[0] == SESSION_COOKIE), None)
        if session_cookie is None:
            raise SmokeError(f"no {SESSION_COOKIE} cookie set")
        missing = [flag for flag in SESSION_FLAGS if flag not in _flags(session_cookie)]
        if missing:
            raise SmokeError(f"{SESSION_COOKIE} lacks {', '.join(missing)}")
        if "domain" in {flag.split("=")[0] for flag in _flags(session_cookie)}:
            raise SmokeError(f"{SESSION_COOKIE} has a Domain (it must be host-only)")
        location = reply.header("Location")
        for _ in range(3):  # the cookie check, then the page
            if not location.startswith("/__preview/"):
                break
            followed = session.get(location)
            if followed.status != 302:
                raise SmokeError(f"{location.split('?')[0]} answered {followed.status}, not 302")
            location = followed.header("Location")
        names = sorted(session.cookies)
        return f"302; {SESSION_COOKIE} {' '.join(SESSION_FLAGS)}; cookies {', '.join(names)}"

    def page(self) -> str:
        reply = self._session().get("/")
        if reply.status != 200:
            raise SmokeError(f"the page answered {reply.status}: {reply.error_code()}")
        if reply.header("Set-Cookie") and any(
            _cookie_pair(c)[0].startswith("__Host-mp_") for c in reply.all("Set-Cookie")
        ):
            raise SmokeError("the page's response set a __Host-mp_ cookie")
        return f"200 {reply.header('Content-Type').split(';')[0]} through {self._session().origin}"

    def websocket(self) -> str | None:
        path = self.target.websocket_path
        if not path:
            return None
        session = self._session()
        parsed = urllib.parse.urlsplit(session.origin)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {session.cookie_header()}\r\n"
            f"Origin: {session.origin}\r\n\r\n"
        )
        try:
            with socket.create_connection(
                (_connect_host(parsed.hostname or ""), port), timeout=TIMEOUT_SECONDS
            ) as raw:
                connection: socket.socket = raw
                if parsed.scheme == "https":
                    connection = ssl.create_default_context().wrap_socket(
                        raw, server_hostname=parsed.hostname
                    )
                connection.sendall(head.encode())
                received = b""
                while b"\r\n\r\n" not in received and len(received) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    received += chunk
        except OSError as error:
            raise SmokeError(f"WebSocket {path}: {error}") from None
        status_line = received.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in f"{status_line} ":
            raise SmokeError(f"WebSocket {path} answered {status_line or 'nothing'}")
        return f"101 on {path}"

    def denial_page(self) -> str:
        reply = self._session().get("/", with_cookies=False)
        if reply.status not in (401, 403):
            raise SmokeError(f"a request without a session answered {reply.status}, not 403")
        csp = reply.header("Content-Security-Policy")
        if "frame-ancestors" not in csp:
            raise SmokeError("the denial page has no CSP frame-ancestors")
        ancestors = csp.split("frame-ancestors", 1)[1].split(";", 1)[0].strip()
        return f"{reply.status}, frame-ancestors {ancestors}"

    def revocation(self) -> str:
        session = self._session()
        reply = self._api("POST", "/api/v1/preview-tokens/revoke", {"token": session.token})
        if reply.status != 200:
            raise SmokeError(f"revoke answered {reply.status}: {reply.error_code()}")
        self._revoked = True
        revoked_at = time.monotonic()
        while True:
            status = session.get("/").status
            waited = time.monotonic() - revoked_at
            if status in (401, 403):
                return f"session refused ({status}) {waited:.1f} s after the revocation"
            if waited > REVOCATION_LIMIT_SECONDS:
                raise SmokeError(f"still answered {status} {waited:.1f} s after the revocation")
            time.sleep(0.25)

    def cleanup(self) -> str:
        if self.session is None:
            return "nothing was minted"
        if not self._revoked:
            reply = self._api("POST", "/api/v1/preview-tokens/revoke", {"token": self.session.token})
            if reply.status != 200:
                raise SmokeError(f"could not revoke the smoke test's token: {reply.status}")
            self._revoked = True
        return "the smoke test's token is revoked"

    def _session(self) -> Session:
        if self.session is None:
            raise SmokeError("no session (the mint failed)")
        return self.session

    def run(self) -> list[CheckResult]:
        origin_check = self.target.origin_check
        steps: list[tuple[str, Callable[[], str | None]]] = [
            ("mint", self.mint),
            ("exchange", self.exchange),
        ]
        try:
            if all(self.check(name, action) for name, action in steps):
                ready = origin_check is None or self.check(
                    origin_check.name, lambda: _prepared(origin_check.before, self._session())
                )
                if ready and origin_check is not None:
                    self.results.pop()  # before() is a preparation, not a row of its own
                self.check("page", self.page)
                self.check("websocket", self.websocket)
                if origin_check is None:
                    self.check("origin assertion", lambda: None)
                elif ready:
                    self.check(
                        origin_check.name, lambda: origin_check.after(self._session(), self.target.sandbox_id)
                    )
                self.check("denial page", self.denial_page)
                self.check("revocation", self.revocation)
        finally:
            self.check("cleanup", self.cleanup)
        return self.results


def _prepared(before: Callable[[Session], None], session: Session) -> str:
    before(session)
    return "prepared"


def table(results: Sequence[CheckResult]) -> str:
    width = max(len(result.name) for result in results)
    lines = [f"{'check'.ljust(width)}  {'result'.ljust(7)}  detail"]
    lines += [f"{r.name.ljust(width)}  {r.status.ljust(7)}  {r.detail}" for r in results]
    return "\n".join(lines)


def summary(results: Sequence[CheckResult]) -> tuple[int, str]:
    failed = [result for result in results if result.status == "FAILED"]
    if failed:
        first = failed[0]
        return 1, f"smoke: FAILED: {first.name}: {first.detail}"
    passed = sum(result.status == "ok" for result in results)
    skipped = [result.name for result in results if result.status == "skipped"]
    note = f" ({', '.join(skipped)} skipped)" if skipped else ""
    return 0, f"smoke: passed, {passed} checks{note}"


def target_from_demo(path: Path, sandbox_id: str | None) -> SmokeTarget:
    """The local stack's ``demo.json``. The origin check is the fleet ingress's ``/metrics`` when
    the stack names it (``ingress_metrics_url``, or ``ingress_admin_ports``: sandbox id -> the
    admin port of the ingress in front of it), else the demo app's own report."""
    demo: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    sandbox = sandbox_id or demo["sandbox_id"]
    admin_port = (demo.get("ingress_admin_ports") or {}).get(sandbox)
    metrics_url = demo.get("ingress_metrics_url") or (
        f"http://127.0.0.1:{admin_port}/metrics" if admin_port else None
    )
    check: OriginCheck = IngressMetricsCheck(metrics_url) if metrics_url else SandboxStatusCheck()
    return SmokeTarget(
        api_url=demo["api_url"],
        api_key=demo["api_key"],
        sandbox_id=sandbox,
        preview_domain=demo["preview_domain"],
        websocket_path=demo.get("smoke_websocket_path", DEFAULT_LOCAL_WEBSOCKET_PATH),
        origin_check=check,
    )


def stack_outputs(stack: str) -> dict[str, str]:
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def add_parser(commands: Any) -> None:  # argparse's _SubParsersAction
    smoke = commands.add_parser(
        "smoke",
        help="check a deployment end to end (mint, exchange, page, WebSocket, denial, revocation)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="examples:\n"
        "  preview-tokens smoke --stack preview-tokens-prod --sandbox sbx-smoke --api-key-env SMOKE_KEY\n"
        "  preview-tokens smoke --api-url https://abc.execute-api.eu-west-1.amazonaws.com/v1 \\\n"
        "      --preview-domain preview.example.com --sandbox sbx-smoke\n"
        "  preview-tokens smoke --demo .local/demo.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = smoke.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--stack", dest="smoke_stack", help="read the API URL and preview domain from this stack"
    )
    where.add_argument("--api-url", help="the mint API's base URL (the stack's ControlPlaneApiUrl)")
    where.add_argument("--demo", type=Path, help="the local stack's demo.json (make run)")
    smoke.add_argument("--preview-domain", help="the preview domain (checked against the minted URL)")
    smoke.add_argument(
        "--api-key", help=f"a previews:write API key of a test tenant (better: ${API_KEY_ENV}, not in ps)"
    )
    smoke.add_argument(
        "--api-key-env",
        default=API_KEY_ENV,
        help=f"environment variable holding a previews:write API key (default {API_KEY_ENV})",
    )
    smoke.add_argument("--sandbox", help="a sandbox of the key's tenant, running (default: the demo's)")
    smoke.add_argument("--websocket-path", help="a path of that sandbox's app that accepts a WebSocket")
    smoke.add_argument("--ingress-metrics", help="the fleet ingress's Prometheus /metrics URL (admin port)")


def main(args: argparse.Namespace) -> int:
    try:
        target = _target(args)
    except SmokeError as error:
        print(f"preview-tokens smoke: {error}", file=sys.stderr)
        return 2
    results = SmokeRun(target).run()
    code, line = summary(results)
    print(table(results))
    print(line)
    return code


def _target(args: argparse.Namespace) -> SmokeTarget:
    if args.demo is not None:
        if not args.demo.exists():
            raise SmokeError(f"{args.demo} does not exist: start the local stack (make run)")
        target = target_from_demo(args.demo, args.sandbox)
        if args.websocket_path:
            target = SmokeTarget(**{**target.__dict__, "websocket_path": args.websocket_path})
        if args.ingress_metrics:
            target = SmokeTarget(
                **{**target.__dict__, "origin_check": IngressMetricsCheck(args.ingress_metrics)}
            )
        return target
    api_url, preview_domain = args.api_url, args.preview_domain
    if args.smoke_stack:
        outputs = stack_outputs(args.smoke_stack)
        api_url = outputs.get("ControlPlaneApiUrl", "")
        preview_domain = preview_domain or outputs.get("PreviewDomainName") or None
    api_key = args.api_key or os.environ.get(args.api_key_env, "")
    if not api_key.startswith("msk_"):
        raise SmokeError(
            f"export {args.api_key_env} with a previews:write API key (msk_...) of a test tenant"
        )
    if not args.sandbox:
        raise SmokeError("--sandbox: a running sandbox of that tenant is needed")
    return SmokeTarget(
        api_url=api_url,
        api_key=api_key,
        sandbox_id=args.sandbox,
        preview_domain=preview_domain,
        websocket_path=args.websocket_path,
        origin_check=IngressMetricsCheck(args.ingress_metrics) if args.ingress_metrics else None,
    )
