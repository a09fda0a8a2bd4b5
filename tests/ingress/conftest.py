"""The ingress tier: the real ingress in front of real aiohttp apps, all on loopback, in-process.

Each test talks to the ingress as CloudFront would (the secret header, an assertion the data
plane's key signed) and looks at what the viewer gets and what the app saw.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import preview_ingress
import pytest
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preview_ingress import IngressConfig, RunningIngress, compiled, start_in_thread
from preview_origin.verifier import OriginAssertionVerifier, StaticJwks
from preview_tokens.control_plane.revocations import Revocation, RevocationKind
from preview_tokens.data_plane.origin_assertion import (
    RENEWAL_TYPE,
    PublishedOriginKey,
    b64url,
    header_segment,
    origin_jwks,
    public_key_of,
)


def pytest_report_header() -> str:
    form = "compiled by mypyc" if compiled() else "pure Python"
    return f"preview_ingress: {form}, from {os.path.dirname(preview_ingress.__file__ or '')}"


def pytest_configure(config: pytest.Config) -> None:
    # make test runs this suite against the wheel users install (Makefile: WITH_COMPILED_INGRESS):
    # were the pure package imported instead, every test would pass and say nothing of the wheel.
    if os.environ.get("PREVIEW_INGRESS_UNDER_TEST") == "compiled" and not compiled():
        raise pytest.UsageError(
            f"the compiled ingress was asked for, but {preview_ingress.__file__} has pure Python modules"
        )


SECRET = "cloudfront-only-0123456789abcdef"
AUDIENCE = "https://ingress.fleet.example"
SANDBOX = "sbx-one"
KID = "oa-test"
SEED = bytes(range(32))
TENANT_FA = "https://tenant.example https://*.tenant.example"
PATTERN = hashlib.sha256(b"preview-ingress").digest() * 2048  # 64 KiB of known bytes


def sign(claims: dict[str, Any], seed: bytes = SEED, kid: str = KID, typ: str = "JWT") -> str:
    payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header_segment(kid, typ)}.{payload}"
    return (
        f"{signing_input}.{b64url(Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode()))}"
    )


def assertion(
    *,
    sandbox: str = SANDBOX,
    scope: str = "interact",
    expires_in: int = 600,
    jti: str = "tok-1",
    fa: str | None = TENANT_FA,
    seed: bytes = SEED,
    tenant: str = "acme",
) -> str:
    return sign(_claims(sandbox, scope, expires_in, jti, fa, tenant), seed)


def renewal_link(previous_jti: str, *, seed: bytes = SEED, **new_token: Any) -> str:
    """The data plane's renewal link: the session of ``previous_jti`` continues under the token
    ``new_token`` describes (as :func:`assertion`'s arguments)."""
    settings: dict[str, Any] = {
        "sandbox": SANDBOX,
        "scope": "interact",
        "expires_in": 600,
        "jti": "tok-renewed",
        "fa": TENANT_FA,
        "tenant": "acme",
        **new_token,
    }
    claims = _claims(**settings)
    return sign({**claims, "prev": previous_jti}, seed, typ=RENEWAL_TYPE)


def _claims(
    sandbox: str, scope: str, expires_in: int, jti: str, fa: str | None, tenant: str
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "cid": "key-1",
        "exp": now + expires_in,
        "iat": now - 1,
        "jti": jti,
        "scope": scope,
        "sub": sandbox,
        "tid": tenant,
    }
    if fa is not None:
        claims["fa"] = fa
    return claims


AS_THE_EDGE = "the assertion's own jti"


def cloudfront(
    token: str | None, secret: str | None = SECRET, token_id: str | None = AS_THE_EDGE, **extra: str
) -> dict[str, str]:
    """The headers CloudFront adds: the origin custom header, the assertion from the cookie and the
    session's token id (the edge's; by default the one the assertion names, as for a real session)."""
    headers = dict(extra)
    if secret is not None:
        headers["X-Preview-Ingress-Secret"] = secret
    if token is not None:
        headers["X-Preview-Assertion"] = token
    if token_id == AS_THE_EDGE:
        token_id = jti_of(token)
    if token_id is not None:
        headers["X-Preview-Token-Id"] = token_id
    return headers


def jti_of(token: str | None) -> str | None:
    """The ``jti`` an assertion's payload names, ``None`` when it has none (not a JWS)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")) if token else None
    except (IndexError, ValueError):
        return None
    jti = payload.get("jti") if isinstance(payload, dict) else None
    return jti if isinstance(jti, str) else None


class MemoryFeed:
    """The revocation feed (the RevocationsTable's entries) and its renewal links, in memory."""

    def __init__(self) -> None:
        self._entries: list[Revocation] = []
        self._links: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self.reads = 0
        """How many times the revocations were read (one per poll)."""

    def renew(self, link: str) -> None:
        with self._lock:
            self._links.append((int(time.time() * 1000), link))

    def renewal_links_since(self, since_ms: int | None, now: int) -> list[str]:
        with self._lock:
            return [link for at, link in self._links if since_ms is None or at > since_ms]

    def revoke_token(self, jti: str) -> None:
        with self._lock:
            now = time.time()
            self._entries.append(Revocation(RevocationKind.TOKEN, jti, int(now) + 3600, int(now * 1000)))

    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]:
        with self._lock:
            self.reads += 1
            return [e for e in self._entries if since_ms is None or e.recorded_at_ms > since_ms]


@dataclass
class AppState:
    """What the sandbox's app saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    ws_received: list[str] = field(default_factory=list)
    ws_closed: threading.Event = field(default_factory=threading.Event)
    ws_peers: list[web.WebSocketResponse] = field(default_factory=list)
    sse_release: asyncio.Event | None = None
    download_release: asyncio.Event = field(default_factory=asyncio.Event)
    """A ``/download?stall_after=N`` waits on this after its first N bytes."""


def sandbox_app(state: AppState) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen = {
            "method": request.method,
            "path": request.raw_path,
            "headers": {name: value for name, value in request.headers.items()},
            "scope_headers": request.headers.getall("X-Preview-Scope", []),
            "body_length": len(body),
            "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
        }
        state.requests.append(seen)
        return web.json_response(seen)

    async def with_our_cookies(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "404"))
        response = web.Response(status=status, text="app says no")
        response.headers.add("Set-Cookie", "__Host-mp_session=planted; Path=/; Secure; HttpOnly")
        response.headers.add("Set-Cookie", "__host-MP_origin=planted; Path=/; Secure")
        response.headers.add("Set-Cookie", "app_cookie=kept; Path=/")
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors *"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def events(request: web.Request) -> web.StreamResponse:
        state.sse_release = asyncio.Event()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await state.sse_release.wait()
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    async def release(request: web.Request) -> web.Response:
        assert state.sse_release is not None
        state.sse_release.set()
        return web.Response(text="released")

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["bytes"])
        stall_after = int(request.query.get("stall_after", size))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        sent = size if request.method == "HEAD" else 0
        while sent < size:
            if sent == stall_after:
                await state.download_release.wait()
            up_to = stall_after if sent < stall_after else size
            chunk = PATTERN[: min(len(PATTERN), up_to - sent)]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        received = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            digest.update(chunk)
            received += len(chunk)
        return web.json_response(
            {
                "sha256": digest.hexdigest(),
                "bytes": received,
                "content_length": request.headers.get("Content-Length"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
            }
        )

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("vite-hmr",))
        await ws.prepare(request)
        state.ws_peers.append(ws)
        await ws.send_str("hello from the app")
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    state.ws_received.append(message.data)
                    await ws.send_str(f"got {message.data}")
        finally:
            state.ws_closed.set()
        return ws

    async def push(request: web.Request) -> web.Response:
        for peer in state.ws_peers:
            if peer.closed:
                continue
            if "close" in request.query:
                await peer.close(code=int(request.query["close"]), message=b"app says bye")
            else:
                await peer.send_str(request.query.get("text", "pushed"))
        return web.Response(text="pushed")

    async def redirect(request: web.Request) -> web.Response:
        """A redirect as frameworks build it: absolute, on the Host the app got (``?to=`` a path),
        or to ``?away=`` as given."""
        target = request.query.get("away") or f"{request.scheme}://{request.host}{request.query['to']}"
        return web.Response(status=302, headers={"Location": target})

    async def set_cookies(request: web.Request) -> web.Response:
        """Each ``?c=`` as a ``Set-Cookie`` of its own."""
        response = web.Response(text="cookies set")
        for cookie in request.query.getall("c"):
            response.headers.add("Set-Cookie", cookie)
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/set-cookies", set_cookies)
    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_route("*", "/input{tail:.*}", echo)
    app.router.add_get("/cookies", with_our_cookies)
    app.router.add_get("/sse", events)
    app.router.add_post("/sse/release", release)
    app.router.add_get("/download", download)
    app.router.add_post("/upload", upload)
    app.router.add_get("/ws", socket)
    app.router.add_post("/ws/push", push)
    return app


class LoopThread:
    """An event loop on a thread: runs the sandbox's app the way a separate process would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class Sandbox:
    url: str
    state: AppState


@contextmanager
def serving_sandbox(tls: ssl.SSLContext | None = None) -> Iterator[Sandbox]:
    """The sandbox's app on loopback, over ``https`` with ``tls``."""
    state = AppState()
    thread = LoopThread()
    runner = web.AppRunner(sandbox_app(state), access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        return int(runner.addresses[0][1])

    port = thread.run(start())
    yield Sandbox(f"{'https' if tls else 'http'}://127.0.0.1:{port}", state)

    async def stop() -> None:
        if state.sse_release is not None:
            state.sse_release.set()  # an event stream the ingress cut still waits in the app
        state.download_release.set()
        await runner.cleanup()
        if tls is not None:
            await asyncio.sleep(0.2)  # TLS connections close over a few turns of the loop (close_notify)

    thread.run(stop())
    thread.stop()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with serving_sandbox() as app:
        yield app


@dataclass
class Ingress:
    running: RunningIngress
    feed: MemoryFeed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.running.admin_port}"


def verifier() -> OriginAssertionVerifier:
    keys = origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))])
    return OriginAssertionVerifier(StaticJwks(keys), AUDIENCE)


@pytest.fixture
def make_ingress() -> Iterator[Callable[..., Ingress]]:
    started: list[RunningIngress] = []

    def make(**overrides: Any) -> Ingress:
        feed = MemoryFeed()
        settings: dict[str, Any] = {
            "secret": SECRET,
            "verifier": verifier(),
            "revocation_feed": feed,
            "revocation_poll_seconds": 0.2,
            "max_revocation_staleness_seconds": 10.0,
            **overrides,
        }
        running = start_in_thread(IngressConfig(**settings))
        started.append(running)
        return Ingress(running, feed)

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def ingress(make_ingress: Callable[..., Ingress], sandbox: Sandbox) -> Ingress:
    return make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX)


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])
