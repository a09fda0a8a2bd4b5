"""The reverse proxy: admit a request, then relay it to the sandbox's app and back, streaming.

Admission, in order (any failure answers the styled denial page, never the app):

1. ``X-Preview-Ingress-Secret`` equals the configured secret (``hmac.compare_digest``): only
   CloudFront, which adds it as an origin custom header, knows it.
2. ``X-Preview-Assertion`` is a valid origin assertion for the sandbox served (``--sandbox``, or
   the ``Host`` header's first label): signature, audience, ``exp``, ``sub``; and it names the
   session the edge verified: its ``jti`` equals ``X-Preview-Token-Id``, which the edge sets from
   the session token (so a viewer cannot pair its session with another token's assertion).
3. Its token is not revoked, and the revocation feed is fresh (else 503).
4. ``read`` scope: safe methods only, no method-override header naming another, nothing under
   the input path prefix however it is spelled (:func:`~preview_tokens.data_plane.access.read_scope_allows`).

Two ways in, one rule: a body-less request comes from :class:`~preview_ingress.viewer.ViewerConnection`
(:meth:`IngressProxy.answer_now` or :meth:`IngressProxy.relay_simple`, written straight to the
socket), anything else from aiohttp's server (:meth:`IngressProxy.handle`); all admit with
:meth:`IngressProxy._admit`'s steps, rewrite headers the same way and register their streams alike.
HTTP goes to the app over :class:`~preview_ingress.upstream.UpstreamPool`, WebSockets over
aiohttp's client.

Relay: the method, path and query exactly as received, the headers minus hop-by-hop ones, our
two credentials and every ``__Host-mp_*`` cookie, plus ``X-Forwarded-For/-Proto/-Host`` and
``X-Preview-Scope`` (the verified scope, replacing any the viewer sent: an app such as a desktop
may enforce ``read`` itself too, x11vnc ``-viewonly``); the app gets its own ``Host`` and, from
the preview host's own pages, its own ``Origin``, as on localhost; bodies
stream both ways (a ``Content-Length`` is kept, else chunked); connections to the app are pooled
and kept alive. On every answer, whatever its status: no ``__Host-mp_*`` ``Set-Cookie``, no
``X-Frame-Options``, and ``Content-Security-Policy`` gets ``frame-ancestors`` from the
assertion's ``fa`` (or the default); the app's cookies are made host-only and partitioned for the
frame, and a ``Location`` on its own ``Host`` becomes a path. WebSockets relay both ways for
``interact``; for ``read`` every data frame the viewer sends is dropped. Streams (WebSockets and
response bodies still flowing) end at the assertion's ``exp``, and within one poll of a revocation.

On the fast path a ``Content-Length`` body of :data:`_RELAYED_BODY` or more, on plain TCP both
ways, goes from the app's socket to the viewer's through one reused buffer once its head is sent
(:mod:`preview_ingress.socket_relay`): no Python object per chunk, no transport's queue. The same
stream registration, end and log line as any body.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from preview_origin.verifier import TOKEN_ID_HEADER, AssertionRejectedError, OriginAssertion, names_session
from preview_tokens.data_plane.access import (
    METHOD_OVERRIDE_HEADERS,
    PREVIEW_COOKIE_PREFIX,
    DenialReason,
    input_path_segments,
    is_data_plane_cookie,
    read_scope_allows,
)
from preview_tokens.data_plane.denial_page import content_security_policy, denial_for, render_page
from preview_tokens.data_plane.frame_ancestors import merge_frame_ancestors
from yarl import URL

from preview_ingress import access_log, socket_relay
from preview_ingress.config import SANDBOX_LABEL, SECRET_HEADER, IngressConfig
from preview_ingress.metrics import IngressMetrics
from preview_ingress.revocations import UNAVAILABLE, RevocationWatch
from preview_ingress.socket_relay import SourceEndedError
from preview_ingress.upstream import (
    Origin,
    UpstreamBodyError,
    UpstreamPool,
    UpstreamResponse,
    UpstreamUnreachableError,
)
from preview_ingress.viewer import ViewerConnection, ViewerRequest, response_head

logger = logging.getLogger("preview_ingress")

ASSERTION_HEADER = "X-Preview-Assertion"
SCOPE_HEADER = "X-Preview-Scope"
REQUEST_ID_HEADER = "X-Amz-Cf-Id"
# RFC 9110 §7.6.1 hop-by-hop fields, plus what a proxy must not pass on either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# ``Expect: 100-continue`` is answered here (aiohttp does when the body is read), not passed on.
_NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "expect",
    SECRET_HEADER.lower(),
    ASSERTION_HEADER.lower(),
    TOKEN_ID_HEADER.lower(),
    SCOPE_HEADER.lower(),  # the verified scope is added; a viewer's own never passes
}
_DROPPED_FROM_ANSWERS = HOP_BY_HOP | {"x-frame-options"}
# What becomes of a header on its way through, by its name: decided once per spelling of a name
# (``Accept``, ``accept``) and remembered, up to _MAX_HEADER_NAMES spellings (a hostile viewer's
# made-up names are decided afresh past that). Sentinels, compared by identity.
_FORWARD, _DROP, _FORWARDED_FOR, _COOKIE, _ORIGIN = "forward", "drop", "forwarded-for", "cookie", "origin"
_CONNECTION, _POLICY, _SET_COOKIE, _LOCATION = "connection", "policy", "set-cookie", "location"
_MAX_HEADER_NAMES = 1024
_REQUEST_HEADER_ACTIONS: dict[str, str] = {}
_RESPONSE_HEADER_ACTIONS: dict[str, str] = {}


def _request_header_action(name: str) -> str:
    """What becomes of a viewer's header named ``name`` on its way to the app."""
    lower = name.lower()
    if lower in _NOT_FORWARDED:
        action = _DROP
    elif lower.startswith("x-forwarded-"):
        action = _FORWARDED_FOR if lower == "x-forwarded-for" else _DROP
    else:
        action = {"cookie": _COOKIE, "origin": _ORIGIN}.get(lower, _FORWARD)
    if len(_REQUEST_HEADER_ACTIONS) < _MAX_HEADER_NAMES:
        _REQUEST_HEADER_ACTIONS[name] = action
    return action


def _response_header_action(name: str) -> str:
    """What becomes of an app's header named ``name`` on its way to the viewer."""
    lower = name.lower()
    if lower == "connection":
        action = _CONNECTION
    elif lower in _DROPPED_FROM_ANSWERS:
        action = _DROP
    else:
        action = {"content-security-policy": _POLICY, "set-cookie": _SET_COOKIE, "location": _LOCATION}.get(
            lower, _FORWARD
        )
    if len(_RESPONSE_HEADER_ACTIONS) < _MAX_HEADER_NAMES:
        _RESPONSE_HEADER_ACTIONS[name] = action
    return action


_NOTHING: frozenset[str] = frozenset()
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
RENEWAL_LOOKAHEAD_SECONDS = 1.0
"""How long before a stream's ``exp`` the ingress reads the feed out of turn for its renewal (the
embed helper starts one at least 2 s ahead, and counts the session as ended 1 s ahead)."""
_CHUNK = 256 * 1024
# The client's read buffer: large enough that a fast download is not paused every 64 KiB.
_READ_BUFFER = 1 << 20
_SMALL_BODY = 64 * 1024
# A Content-Length body from this size on goes by the socket relay (socket_relay.py): below it the
# set-up (two dup'd fds, a buffer, a flush) costs more than the transports' copy.
_RELAYED_BODY = 1 << 20
_MAX_VERIFIED = 4096
_Copy = Callable[[Callable[[int], None]], Awaitable[None]]
"""How a response body goes to the viewer: ``copy(sent)`` calls ``sent(n)`` as bytes go."""
# ``read`` decisions remembered per (method, path, overrides): a pure function of them (the input
# prefix is fixed), and a page's subresources repeat. Long paths are decided afresh, unremembered.
_MAX_READ_DECISIONS = 4096
_MAX_REMEMBERED_PATH = 512
_VERIFIED_TTL_SECONDS = 60.0
_DENIAL_STATUS = {DenialReason.UNAVAILABLE: 503, DenialReason.ORIGIN_UNREACHABLE: 502}
_ASSERTION_REASONS = {
    "missing": DenialReason.NO_TOKEN,
    "expired": DenialReason.EXPIRED,
    "wrong_sandbox": DenialReason.WRONG_SANDBOX,
    "jwks_unavailable": DenialReason.UNAVAILABLE,
}


class ViewerRequestLike(Protocol):
    """What admission and the relay read: aiohttp's ``web.Request`` or a :class:`ViewerRequest`."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def scheme(self) -> str: ...


def _name_the_session(log: _Log, assertion: OriginAssertion | None) -> None:
    """A refusal after the assertion verified (read_only, revoked) names its session in the log line."""
    if assertion is not None:
        log.fields.update(sandbox=assertion.sandbox_id, scope=assertion.scope, token_id=assertion.token_id)


def _sends_a_body(headers: CIMultiDictProxy[str]) -> bool:
    """Whether the viewer sends a body: nothing a ``read`` viewer sends reaches the app, on a GET
    (or any read method) as on a WebSocket."""
    if "Transfer-Encoding" in headers:
        return True
    return any(length.strip() != "0" for length in headers.getall("Content-Length", []))


class RefusedError(Exception):
    """The request is not admitted: ``reason`` for the page, ``cause`` for the log and metrics."""

    def __init__(self, reason: DenialReason, cause: str, assertion: OriginAssertion | None = None) -> None:
        super().__init__(cause)
        self.reason = reason
        self.cause = cause
        self.assertion = assertion


@dataclass(eq=False)
class _Stream:
    """Something still flowing to a viewer: ended at ``exp`` (unless its session was renewed) or
    when a token of its session is revoked."""

    assertion: OriginAssertion
    """The latest token of the stream's session: the one it was opened on, or a renewal's."""
    task: asyncio.Task[Any] | None = None
    """Cancelled on close (a streamed body); a WebSocket waits on :attr:`end` instead."""
    end: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    earlier: list[OriginAssertion] = field(default_factory=list)
    """The tokens the session had before :attr:`assertion`: revoking any of them ends the stream."""

    def renew(self, successor: OriginAssertion) -> None:
        self.earlier.append(self.assertion)
        self.assertion = successor

    def close(self, why: str) -> None:
        if not self.end.done():
            self.end.set_result(why)
            if self.task is not None:
                self.task.cancel()


@dataclass(slots=True)
class _Log:
    kind: str
    method: str
    path: str
    request_id: str | None
    started: float = field(default_factory=time.monotonic)
    fields: dict[str, Any] = field(default_factory=dict)

    def write(self, sink: Callable[[str], None] | None) -> None:
        duration_ms = round((time.monotonic() - self.started) * 1000, 1)
        access_log.write_request(
            self.kind, self.method, self.path, self.request_id, duration_ms, self.fields, sink
        )


@dataclass(slots=True)
class _Simple:
    """A body-less request off the viewer's fast path, admitted: what answering it takes."""

    viewer: ViewerConnection
    request: ViewerRequest
    assertion: OriginAssertion
    origin: Origin
    log: _Log


class IngressProxy:
    def __init__(self, config: IngressConfig, watch: RevocationWatch, metrics: IngressMetrics) -> None:
        self._config = config
        self._watch = watch
        self._metrics = metrics
        self._secrets = tuple(
            secret.encode() for secret in (config.secret, config.next_secret) if secret is not None
        )
        self._input_prefix = input_path_segments(config.input_path_prefix)
        self._verified: dict[tuple[str, str], tuple[OriginAssertion, float]] = {}
        self._read_decisions: dict[tuple[str, str, tuple[str, ...]], bool] = {}
        self._streams: set[_Stream] = set()
        self._session: aiohttp.ClientSession | None = None
        self._upstreams: UpstreamPool | None = None
        self._origins: dict[str, Origin] = {}
        self._preserving: dict[str, bool] = {}
        """Whether each sandbox's app gets the viewer's Host (IngressConfig.preserves_host), remembered."""
        self.viewer_connections: set[ViewerConnection] = set()
        watch.on_poll = self.recheck_streams

    async def start(self) -> None:
        tls = self._config.upstream_tls()
        self._upstreams = UpstreamPool(
            self._config.upstream_pool_size, self._config.upstream_connect_timeout_seconds, tls
        )
        # WebSockets only: aiohttp's client does the upgrade and the frames.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._config.upstream_connect_timeout_seconds
            ),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.close("shutdown")
        for connection in list(self.viewer_connections):
            connection.close()
        if self._upstreams is not None:
            self._upstreams.close()
        if self._session is not None:
            await self._session.close()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def recheck_streams(self) -> None:
        """End every stream whose token expired (and was not renewed) or was revoked (after each poll,
        and twice a second). At ``exp``, a stream whose session was renewed in place carries on under
        the new token (a renewal link of the feed: same sandbox, tenant and scope). In the last
        :data:`RENEWAL_LOOKAHEAD_SECONDS` before ``exp``, a stream with no renewal known has the feed
        read once more, out of turn: a renewal completed by then keeps the stream whatever the poll
        interval (the embed helper renews at least 2 s ahead; one completed later may find it closed)."""
        now = time.time()
        for stream in list(self._streams):
            ends = stream.assertion.expires_at
            if (
                now < ends <= now + RENEWAL_LOOKAHEAD_SECONDS
                and self._watch.renewed(stream.assertion, ends) is None
            ):
                self._watch.poll_soon(written_by=ends - RENEWAL_LOOKAHEAD_SECONDS)
            if now >= ends:
                successor = self._watch.renewed(stream.assertion, now)
                if successor is None:
                    stream.close("expired")
                    continue
                stream.renew(successor)
                self._metrics.streams_renewed.inc()
            for assertion in (stream.assertion, *stream.earlier):
                why = self._watch.why_refused(assertion)
                if why is not None:
                    stream.close(why)
                    break

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.recheck_streams()

    # ---- admission -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        log = _Log("websocket" if websocket else "request", request.method, path, _request_id(request))
        try:
            assertion = await self._admit(request, path)
            base = self._base(assertion)
        except RefusedError as refused:
            self._metrics.denials.labels(reason=refused.cause).inc()
            _name_the_session(log, refused.assertion)
            response = self._denial(refused.reason, refused.assertion)
            return self._finish(log, "websocket" if websocket else "http", response, denied=refused.cause)
        log.fields.update(sandbox=assertion.sandbox_id, scope=assertion.scope, token_id=assertion.token_id)
        if websocket:
            return await self._relay_websocket(request, base, assertion, log)
        return await self._relay_http(request, base, assertion, log)

    async def _admit(self, request: ViewerRequestLike, path: str) -> OriginAssertion:
        presented, sandbox_id = self._presented(request)
        assertion = self._verified_before(presented, sandbox_id)
        if assertion is None:
            assertion = await self._verify(presented, sandbox_id)
        return self._authorized(request, path, assertion)

    def _admit_now(self, request: ViewerRequestLike, path: str) -> OriginAssertion | None:
        """:meth:`_admit` when nothing needs waiting for; ``None``: the assertion is to be verified first."""
        presented, sandbox_id = self._presented(request)
        assertion = self._verified_before(presented, sandbox_id)
        return None if assertion is None else self._authorized(request, path, assertion)

    def _presented(self, request: ViewerRequestLike) -> tuple[str | None, str]:
        """The assertion presented with our secret, and the sandbox it must be for."""
        presented = request.headers.getall(SECRET_HEADER, [])
        if len(presented) != 1 or not self._is_secret(presented[0].encode("latin-1")):
            raise RefusedError(DenialReason.INVALID_TOKEN, "secret")
        sandbox_id = self._sandbox_of(request)
        if sandbox_id is None:
            raise RefusedError(DenialReason.INVALID_TOKEN, "host")
        assertions = request.headers.getall(ASSERTION_HEADER, [])
        if len(assertions) > 1:
            raise RefusedError(DenialReason.INVALID_TOKEN, "assertion_malformed")
        return (assertions[0] if assertions else None), sandbox_id

    def _authorized(
        self, request: ViewerRequestLike, path: str, assertion: OriginAssertion
    ) -> OriginAssertion:
        """``assertion`` if it names the viewer's session, is live and its scope allows the request."""
        if not names_session(assertion, request.headers.getall(TOKEN_ID_HEADER, [])):
            raise RefusedError(DenialReason.INVALID_TOKEN, "assertion_other_session", assertion)
        why = self._watch.why_refused(assertion)
        if why == UNAVAILABLE:
            raise RefusedError(DenialReason.UNAVAILABLE, UNAVAILABLE, assertion)
        if why is not None:
            raise RefusedError(DenialReason.REVOKED, "revoked", assertion)
        if assertion.scope == "read":
            overrides = tuple(v for name in METHOD_OVERRIDE_HEADERS for v in request.headers.getall(name, []))
            if not self._read_allows(request.method, path, overrides) or _sends_a_body(request.headers):
                raise RefusedError(DenialReason.READ_ONLY, "read_only", assertion)
        return assertion

    def _read_allows(self, method: str, path: str, overrides: tuple[str, ...]) -> bool:
        key = (method, path, overrides)
        allowed = self._read_decisions.get(key)
        if allowed is None:
            allowed = read_scope_allows(method, path, overrides, self._input_prefix)
            if len(path) <= _MAX_REMEMBERED_PATH:
                if len(self._read_decisions) >= _MAX_READ_DECISIONS:
                    self._read_decisions.clear()
                self._read_decisions[key] = allowed
        return allowed

    def _is_secret(self, presented: bytes) -> bool:
        matches = [hmac.compare_digest(presented, secret) for secret in self._secrets]  # each compared
        return any(matches)

    def _sandbox_of(self, request: ViewerRequestLike) -> str | None:
        if self._config.sandbox_id is not None:
            return self._config.sandbox_id
        hosts = request.headers.getall("Host", [])
        if len(hosts) != 1:  # RFC 9112 §3.2: a request with more than one Host is a 400
            return None
        label = hosts[0].split(".", 1)[0].split(":", 1)[0].lower()
        return label if SANDBOX_LABEL.match(label) else None

    def _verified_before(self, presented: str | None, sandbox_id: str) -> OriginAssertion | None:
        """``presented`` as verified for ``sandbox_id`` within :data:`_VERIFIED_TTL_SECONDS`, unexpired."""
        if presented:
            known = self._verified.get((presented, sandbox_id))
            if known is not None:
                now = time.time()
                if now < known[1] and now < known[0].expires_at:
                    return known[0]
        return None

    async def _verify(self, presented: str | None, sandbox_id: str) -> OriginAssertion:
        now = time.time()
        try:
            # First sight of an assertion: an Ed25519 verify, and maybe a JWKS fetch (blocking I/O).
            assertion = await asyncio.to_thread(self._config.verifier.verify, presented, sandbox_id)
        except AssertionRejectedError as rejected:
            reason = _ASSERTION_REASONS.get(rejected.reason, DenialReason.INVALID_TOKEN)
            raise RefusedError(reason, f"assertion_{rejected.reason}") from None
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        assert presented is not None
        self._verified[(presented, sandbox_id)] = (assertion, now + _VERIFIED_TTL_SECONDS)
        return assertion

    def _denial(self, reason: DenialReason, assertion: OriginAssertion | None) -> web.Response:
        status, headers, page = self._denial_parts(reason, assertion)
        return web.Response(status=status, body=page, headers=headers)

    def _denial_parts(
        self, reason: DenialReason, assertion: OriginAssertion | None
    ) -> tuple[int, dict[str, str], bytes]:
        """The styled denial page: status, headers, body."""
        sandbox_id = assertion.sandbox_id if assertion is not None else None
        page = render_page(denial_for(reason, sandbox_id)).encode()
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "Content-Security-Policy": content_security_policy(self._frame_ancestors(assertion)),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return _DENIAL_STATUS.get(reason, 403), headers, page

    def _frame_ancestors(self, assertion: OriginAssertion | None) -> str:
        if assertion is not None and assertion.frame_ancestors:
            return assertion.frame_ancestors
        return self._config.default_frame_ancestors

    def _finish(
        self, log: _Log, route: str, response: web.StreamResponse, **fields: Any
    ) -> web.StreamResponse:
        self._logged(log, route, response.status, **fields)
        return response

    def _logged(self, log: _Log, route: str, status: int, **fields: Any) -> None:
        self._metrics.count_request(route, status)
        log.fields.update(status=status, **fields)
        log.write(self._config.access_log)

    # ---- HTTP ------------------------------------------------------------------------------

    def _upstream_request_headers(
        self, request: ViewerRequestLike, app: Origin, sandbox_id: str
    ) -> list[tuple[str, str]]:
        """The viewer's headers as ``app`` gets them: ours, hop-by-hop and ``X-Forwarded-*`` dropped,
        ``Host`` the app's own (or the viewer's, ``--preserve-host``) and an ``Origin`` of the preview
        host's own pages the app's own (:func:`_as_the_apps_origin`), ``X-Forwarded-*`` ours."""
        authority = app.authority
        viewer = request.headers
        named_by_connection = (
            {token.strip().lower() for value in viewer.getall("Connection") for token in value.split(",")}
            if "Connection" in viewer
            else _NOTHING
        )
        viewer_host = viewer.get("Host", "")
        proto = viewer.get("CloudFront-Forwarded-Proto", request.scheme)
        preserve_host = self._preserves_host(sandbox_id)
        headers = [("Host", viewer_host or authority if preserve_host else authority)]
        forwarded_for: list[str] = []
        actions = _REQUEST_HEADER_ACTIONS
        for name, value in viewer.items():
            action = actions.get(name)
            if action is None:
                action = _request_header_action(name)
            if named_by_connection and name.lower() in named_by_connection:
                continue
            if action is not _FORWARD:
                if action is _DROP:
                    continue
                if action is _FORWARDED_FOR:
                    forwarded_for.append(value)
                    continue
                if action is _COOKIE:
                    value = _without_preview_cookies(value)
                    if not value:
                        continue
                elif action is _ORIGIN and not preserve_host:
                    value = _as_the_apps_origin(value, viewer_host, app)
            headers.append((name, value))
        if request.remote:
            forwarded_for.append(request.remote)
        headers.append(("X-Forwarded-For", ", ".join(forwarded_for)))
        headers.append(("X-Forwarded-Proto", proto))
        headers.append(("X-Forwarded-Host", viewer_host))
        return headers

    def _response_headers(
        self,
        upstream_headers: Iterable[tuple[str, str]],
        assertion: OriginAssertion,
        app: Origin | None = None,
    ) -> CIMultiDict[str]:
        """:meth:`_answer_headers` for aiohttp's response."""
        return CIMultiDict(self._answer_headers(upstream_headers, assertion, app))

    def _answer_headers(
        self,
        upstream_headers: Iterable[tuple[str, str]],
        assertion: OriginAssertion,
        app: Origin | None = None,
    ) -> list[tuple[str, str]]:
        """The app's headers as the viewer gets them: no hop-by-hop, no ``X-Frame-Options``, no
        ``__Host-mp_*`` cookie, one ``Content-Security-Policy`` with the tenant's ``frame-ancestors``,
        and a ``Location`` on ``app``'s own origin a path of the preview host
        (:func:`_as_the_viewers_location`)."""
        actions = _RESPONSE_HEADER_ACTIONS
        named = [
            (name, value, actions.get(name) or _response_header_action(name))
            for name, value in upstream_headers
        ]
        named_by_connection = {
            token.strip().lower()
            for _, value, action in named
            if action is _CONNECTION
            for token in value.split(",")
        }
        policies: list[str] = []
        headers: list[tuple[str, str]] = []
        for name, value, action in named:
            if named_by_connection and name.lower() in named_by_connection:
                continue
            if action is not _FORWARD:
                if action is _DROP or action is _CONNECTION:
                    continue
                if action is _POLICY:
                    policies.append(value)
                    continue
                if action is _SET_COOKIE:
                    if is_data_plane_cookie(value):
                        continue
                    if not self._config.keep_app_cookies:
                        value = _for_the_frame(value)
                elif action is _LOCATION and app is not None:
                    value = _as_the_viewers_location(value, app)
            headers.append((name, value))
        headers.append(
            ("Content-Security-Policy", merge_frame_ancestors(policies, self._frame_ancestors(assertion)))
        )
        return headers

    def _preserves_host(self, sandbox_id: str) -> bool:
        preserves = self._preserving.get(sandbox_id)
        if preserves is None:
            preserves = self._config.preserves_host(sandbox_id)
            if len(self._preserving) >= _MAX_VERIFIED:
                self._preserving.clear()
            self._preserving[sandbox_id] = preserves
        return preserves

    def _base(self, assertion: OriginAssertion) -> str:
        base = self._config.upstream_for(assertion.sandbox_id)
        if base is None:
            raise RefusedError(DenialReason.ORIGIN_UNREACHABLE, "unknown_sandbox", assertion)
        return base

    def _origin_of(self, base: str) -> Origin:
        origin = self._origins.get(base)
        if origin is None:
            if len(self._origins) >= _MAX_VERIFIED:
                self._origins.clear()
            origin = self._origins[base] = Origin.of(base)
        return origin

    async def _relay_http(
        self, request: web.Request, base: str, assertion: OriginAssertion, log: _Log
    ) -> web.StreamResponse:
        body = _CountedBody(request.content, log) if request.body_exists else None
        try:
            upstream = await self._send_upstream(request, base, assertion, body)
        except UpstreamUnreachableError as error:
            return self._unreachable(log, assertion, str(error))
        try:
            answer = self._response_headers(upstream.headers, assertion, self._origin_of(base))
            length = upstream.content_length
            if length is not None and length <= _SMALL_BODY and _has_body(request.method, upstream.status):
                # A small body of known length: read it whole, answer headers and body in one write.
                try:
                    body_bytes = await upstream.read()
                except UpstreamBodyError as error:
                    return self._unreachable(log, assertion, str(error))
                whole = web.Response(status=upstream.status, reason=upstream.reason, body=body_bytes)
                answer.popall("Content-Length", None)
                whole.headers.extend(answer)
                log.fields["bytes_out"] = length
                return self._finish(log, "http", whole)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(answer)
            if length is None and request.method != "HEAD":
                response.enable_chunked_encoding()
            if request.transport is not None:
                request.transport.set_write_buffer_limits(high=_READ_BUFFER)
            await response.prepare(request)
            if await self._stream_body(_copying(upstream, response.write), assertion, log) is None:
                await response.write_eof()
            elif request.transport is not None:
                request.transport.close()
            return self._finish(log, "http", response)
        finally:
            upstream.release()

    def _unreachable(self, log: _Log, assertion: OriginAssertion, why: str) -> web.StreamResponse:
        self._metrics.denials.labels(reason="upstream_unreachable").inc()
        denial = self._denial(DenialReason.ORIGIN_UNREACHABLE, assertion)
        return self._finish(log, "http", denial, denied="upstream_unreachable", error=why)

    async def relay_simple(self, viewer: ViewerConnection, request: ViewerRequest) -> bool:
        """Admit and relay a body-less request off :class:`ViewerConnection`'s fast path.

        The same admission, headers, streaming and log line as :meth:`handle` and
        :meth:`_relay_http`, written straight to the socket. ``False``: close the connection."""
        path = request.raw_path.split("?", 1)[0]
        log = _Log("request", request.method, path, _request_id(request))
        keep_alive = request.keep_alive
        try:
            assertion = await self._admit(request, path)
            base = self._base(assertion)
        except RefusedError as refused:
            self._metrics.denials.labels(reason=refused.cause).inc()
            _name_the_session(log, refused.assertion)
            self._write_denial(viewer, refused.reason, refused.assertion, keep_alive)
            self._logged(log, "http", _DENIAL_STATUS.get(refused.reason, 403), denied=refused.cause)
            return keep_alive
        log.fields.update(sandbox=assertion.sandbox_id, scope=assertion.scope, token_id=assertion.token_id)
        try:
            upstream = await self._send_upstream(request, base, assertion)
        except UpstreamUnreachableError as error:
            return self._unreachable_simple(viewer, log, assertion, str(error), keep_alive)
        return await self._answer_simple(
            _Simple(viewer, request, assertion, self._origin_of(base), log), upstream
        )

    def answer_now(self, viewer: ViewerConnection, request: ViewerRequest) -> bool:
        """Start relaying a body-less request with no task of its own, when only the app is waited
        for: its assertion verified before, an idle connection to its app at hand. The answer is
        written from the app connection's callback (:meth:`_answered_now`) when it has no body or a
        small one already whole; any other answer goes on in a task (:meth:`_answer_simple`), and a
        request whose connection failed before an answer is relayed again by :meth:`relay_simple`.
        ``False``: nothing started (a denial, a first sight, no idle connection): the caller runs
        :meth:`relay_simple`. Saves a task and its wake-ups per small GET (``make bench``)."""
        path = request.raw_path.split("?", 1)[0]
        log = _Log("request", request.method, path, _request_id(request))
        try:
            assertion = self._admit_now(request, path)
            if assertion is None:
                return False
            origin = self._origin_of(self._base(assertion))
        except RefusedError:
            return False  # relay_simple answers it with the denial page
        headers = self._upstream_request_headers(request, origin, assertion.sandbox_id)
        headers.append((SCOPE_HEADER, assertion.scope))

        simple = _Simple(viewer, request, assertion, origin, log)

        def answered(answer: UpstreamResponse | UpstreamUnreachableError) -> None:
            self._answered_now(simple, answer)

        assert self._upstreams is not None
        if not self._upstreams.send_now(origin, request.method, request.raw_path, headers, answered):
            return False
        log.fields.update(sandbox=assertion.sandbox_id, scope=assertion.scope, token_id=assertion.token_id)
        return True

    def _answered_now(self, simple: _Simple, answer: UpstreamResponse | UpstreamUnreachableError) -> None:
        viewer, request = simple.viewer, simple.request
        if isinstance(answer, UpstreamUnreachableError):
            if viewer.gone:  # nobody to answer (the ingress closing, say): not sent again
                viewer.answered(False)
            else:
                viewer.answer_on_task(self.relay_simple(viewer, request))  # once more, as the pool does
            return
        upstream = answer
        has_body = _has_body(request.method, upstream.status)
        length = upstream.content_length
        body = upstream.whole() if has_body and length is not None and length <= _SMALL_BODY else None
        if has_body and body is None:
            viewer.answer_on_task(self._answer_simple(simple, upstream))
            return
        keep_alive = False
        try:
            keep_alive = self._write_whole(simple, upstream, body)
        except ConnectionError:  # the viewer went away meanwhile
            pass
        except Exception:
            logger.exception("the fast path failed on a request; its connection is closed")
        finally:
            upstream.release()
        viewer.answered(keep_alive)

    async def _answer_simple(self, simple: _Simple, upstream: UpstreamResponse) -> bool:
        """Relay the app's answer to the viewer; ``False``: close the connection."""
        viewer, request, assertion, log = simple.viewer, simple.request, simple.assertion, simple.log
        keep_alive = request.keep_alive
        try:
            length = upstream.content_length
            has_body = _has_body(request.method, upstream.status)
            if length is not None and length <= _SMALL_BODY and has_body:
                try:
                    body = await upstream.read()
                except UpstreamBodyError as error:
                    return self._unreachable_simple(viewer, log, assertion, str(error), keep_alive)
                return self._write_whole(simple, upstream, body)
            if not has_body:
                return self._write_whole(simple, upstream, None)
            answer = self._answer_headers(upstream.headers, assertion, simple.origin)
            chunked = length is None
            viewer.write(
                response_head(
                    upstream.status,
                    upstream.reason,
                    answer,
                    content_length=length,
                    chunked=chunked,
                    keep_alive=keep_alive,
                )
            )
            viewer.set_write_buffer(_READ_BUFFER)

            async def write(chunk: bytes) -> None:
                viewer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await viewer.drain()

            copy = _relaying(upstream, viewer) if (length or 0) >= _RELAYED_BODY else None
            why = await self._stream_body(copy or _copying(upstream, write), assertion, log)
            if why is None:
                if chunked:
                    viewer.write(b"0\r\n\r\n")
            else:
                keep_alive = False
            self._logged(log, "http", upstream.status)
            return keep_alive
        finally:
            upstream.release()

    def _write_whole(self, simple: _Simple, upstream: UpstreamResponse, body: bytes | None) -> bool:
        """The answer in one write: its head and its ``body`` (``None``: an answer without one)."""
        request = simple.request
        answer = self._answer_headers(upstream.headers, simple.assertion, simple.origin)
        head = response_head(
            upstream.status,
            upstream.reason,
            answer,
            content_length=upstream.content_length if body is None else len(body),
            chunked=False,
            keep_alive=request.keep_alive,
        )
        if body is None:
            simple.viewer.write(head)
        else:
            simple.viewer.write(head + body)
            simple.log.fields["bytes_out"] = len(body)
        self._logged(simple.log, "http", upstream.status)
        return request.keep_alive

    def _write_denial(
        self,
        viewer: ViewerConnection,
        reason: DenialReason,
        assertion: OriginAssertion | None,
        keep_alive: bool,
    ) -> None:
        status, headers, page = self._denial_parts(reason, assertion)
        head = response_head(
            status,
            HTTPStatus(status).phrase,
            headers.items(),
            content_length=len(page),
            chunked=False,
            keep_alive=keep_alive,
        )
        viewer.write(head + page)

    def _unreachable_simple(
        self, viewer: ViewerConnection, log: _Log, assertion: OriginAssertion, why: str, keep_alive: bool
    ) -> bool:
        self._metrics.denials.labels(reason="upstream_unreachable").inc()
        self._write_denial(viewer, DenialReason.ORIGIN_UNREACHABLE, assertion, keep_alive)
        self._logged(log, "http", 502, denied="upstream_unreachable", error=why)
        return keep_alive

    async def _send_upstream(
        self,
        request: ViewerRequestLike,
        base: str,
        assertion: OriginAssertion,
        body: AsyncIterator[bytes] | None = None,
    ) -> UpstreamResponse:
        """The request to the app (its headers rewritten, the verified scope added); its answer's head."""
        assert self._upstreams is not None
        origin = self._origin_of(base)
        headers = self._upstream_request_headers(request, origin, assertion.sandbox_id)
        headers.append((SCOPE_HEADER, assertion.scope))  # the verified scope, never the viewer's own header
        return await self._upstreams.request(origin, request.method, request.raw_path, headers, body)

    async def _stream_body(
        self,
        copy: _Copy,
        assertion: OriginAssertion,
        log: _Log,
    ) -> str | None:
        """Relay the body as a stream (``copy(sent)``, ``sent(n)`` as bytes go to the viewer),
        ended at ``exp`` or on revocation (which cancel only the copy); ``why`` it was ended,
        ``None`` when it ran to its end."""
        stream = _Stream(assertion, task=asyncio.current_task())
        self._streams.add(stream)
        copied = 0

        def sent(n: int) -> None:
            nonlocal copied
            copied += n

        why: str | None = None
        try:
            await copy(sent)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not stream.end.done() or task is None:
                raise
            task.uncancel()
            why = stream.end.result()
        except (UpstreamBodyError, SourceEndedError):
            why = "upstream_error"
        except ConnectionError:
            why = "viewer_gone"
        finally:
            self._streams.discard(stream)
            stream.task = None
        log.fields["bytes_out"] = copied
        if stream.earlier:
            log.fields["renewals"] = len(stream.earlier)
        if why is not None:
            log.fields["closed"] = why
            self._metrics.streams_closed.labels(why=why).inc()
        return why

    # ---- WebSocket -------------------------------------------------------------------------

    async def _relay_websocket(
        self, request: web.Request, base: str, assertion: OriginAssertion, log: _Log
    ) -> web.StreamResponse:
        assert self._session is not None
        origin = self._origin_of(base)
        target = URL(base + request.raw_path, encoded=True)
        target = target.with_scheme("wss" if target.scheme == "https" else "ws")
        headers = CIMultiDict(
            (name, value)
            for name, value in self._upstream_request_headers(request, origin, assertion.sandbox_id)
            if name.lower() not in _WS_HANDSHAKE
        )
        headers[SCOPE_HEADER] = assertion.scope  # the verified scope, never the viewer's own header
        protocols = [
            token.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for token in value.split(",")
            if token.strip()
        ]
        try:
            app = await self._session.ws_connect(
                target, protocols=protocols, headers=headers, autoping=True, max_msg_size=0, compress=0
            )
        except aiohttp.WSServerHandshakeError as refused:
            response = web.Response(
                status=refused.status if refused.status >= 400 else 502,
                headers=self._response_headers([], assertion),  # frame-ancestors on this one too
            )
            return self._finish(log, "websocket", response, upstream_refused=refused.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            self._metrics.denials.labels(reason="upstream_unreachable").inc()
            denial = self._denial(DenialReason.ORIGIN_UNREACHABLE, assertion)
            return self._finish(
                log, "websocket", denial, denied="upstream_unreachable", error=type(error).__name__
            )
        viewer = web.WebSocketResponse(
            protocols=(app.protocol,) if app.protocol else (), autoping=True, max_msg_size=0, compress=False
        )
        await viewer.prepare(request)
        self._metrics.streams_opened.inc()
        stream = _Stream(assertion)
        self._streams.add(stream)
        counts = {"to_app": 0, "to_viewer": 0, "dropped": 0}
        read_only = assertion.scope == "read"
        try:
            to_viewer = asyncio.ensure_future(_pump_app_to_viewer(app, viewer, counts))
            to_app = asyncio.ensure_future(_pump_viewer_to_app(viewer, app, counts, read_only))
            waiting: set[asyncio.Future[Any]] = {to_viewer, to_app, stream.end}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            why = stream.end.result() if stream.end in done else "ended"
            for task in (to_viewer, to_app):
                task.cancel()
            await asyncio.gather(to_viewer, to_app, return_exceptions=True)
            if why == "shutdown":  # the ingress stops (a deploy): the session is fine, reconnect elsewhere
                await viewer.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=why.encode())
            elif why != "ended":  # revoked, expired: the session ends
                await viewer.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=why.encode())
            elif to_viewer in done:  # the app closed: the viewer gets its code (not its reason)
                await viewer.close(code=_relayable(app.close_code))
            else:
                await viewer.close()
            await app.close()
        finally:
            self._streams.discard(stream)
        self._metrics.streams_closed.labels(why=why).inc()
        if stream.earlier:
            log.fields["renewals"] = len(stream.earlier)
        return self._finish(log, "websocket", viewer, closed=why, protocol=app.protocol, **counts)


async def _pump_app_to_viewer(
    app: aiohttp.ClientWebSocketResponse, viewer: web.WebSocketResponse, counts: dict[str, int]
) -> None:
    async for message in app:
        if message.type is aiohttp.WSMsgType.TEXT:
            await viewer.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await viewer.send_bytes(message.data)
        else:
            return
        counts["to_viewer"] += 1


async def _pump_viewer_to_app(
    viewer: web.WebSocketResponse,
    app: aiohttp.ClientWebSocketResponse,
    counts: dict[str, int],
    read_only: bool,
) -> None:
    async for message in viewer:
        if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return
        if read_only:
            counts["dropped"] += 1
            continue
        if message.type is aiohttp.WSMsgType.TEXT:
            await app.send_str(message.data)
        else:
            await app.send_bytes(message.data)
        counts["to_app"] += 1


def _copying(upstream: UpstreamResponse, write: Callable[[bytes], Awaitable[None]]) -> _Copy:
    """The body copied through the process as it arrives (any framing, any transport)."""

    async def copy(sent: Callable[[int], None]) -> None:
        async for chunk in upstream.chunks():
            sent(len(chunk))
            await write(chunk)

    return copy


def _relaying(upstream: UpstreamResponse, viewer: ViewerConnection) -> _Copy | None:
    """The rest of a ``Content-Length`` body moved socket to socket (:mod:`preview_ingress.socket_relay`),
    or ``None`` where that cannot be (TLS on either side, a failed exchange)."""
    if not socket_relay.AVAILABLE or viewer.transport is None:
        return None
    sink = socket_relay.plain_socket(viewer.transport)
    source = upstream.body_socket()
    if sink is None or source is None:
        return None

    async def copy(sent: Callable[[int], None]) -> None:
        received, to_come = upstream.hand_over_body()
        relay = socket_relay.SocketRelay(source, sink)
        try:
            if received:
                sent(len(received))
                viewer.write(received)
            await viewer.flushed()  # nothing of ours may follow the relayed bytes
            await relay.move(to_come, sent)
        finally:
            relay.close()
            viewer.set_write_buffer(_READ_BUFFER)
        upstream.body_relayed()

    return copy


class _CountedBody:
    """A viewer's request body as it arrives, its size so far in the log line's ``bytes_in``."""

    def __init__(self, content: aiohttp.StreamReader, log: _Log) -> None:
        self._content = content
        self._log = log
        self._received = 0

    def __aiter__(self) -> _CountedBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._content.read(_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        self._received += len(chunk)
        self._log.fields["bytes_in"] = self._received
        return chunk


def _relayable(code: int | None) -> int:
    """A close code that may be sent in a close frame (RFC 6455 §7.4), else 1000."""
    if code is not None and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    return int(aiohttp.WSCloseCode.OK)


def _has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status >= 200 and status not in (204, 304)


def _as_the_apps_origin(origin: str, viewer_host: str, app: Origin) -> str:
    """A viewer's ``Origin`` as the app would get it on localhost.

    The app gets its own ``Host`` (``app``'s authority), so a page of the preview host itself, the
    app's own page in the frame, comes as ``app``'s own origin (``http://127.0.0.1:8000``), what its
    pages send on localhost, whatever the viewer's scheme: an app that compares a WebSocket's or a
    form post's ``Origin`` with its ``Host`` (Tornado, Jupyter, Streamlit, code-server) or with its
    own scheme and ``Host`` (Django, stock: it does not trust ``X-Forwarded-Proto``) takes its own
    pages' requests. An app whose checks go by ``X-Forwarded-Host`` (Rails) needs ``--preserve-host``,
    where the ``Origin`` goes as sent. Any other ``Origin`` (another site, another sandbox's preview
    host, ``null``) reaches it as sent, and it refuses what it would refuse on localhost."""
    page_scheme, separator, page_host = origin.partition("://")
    if (
        separator
        and viewer_host
        and page_scheme.lower() in ("http", "https")
        and page_host.lower() == viewer_host.lower()
    ):
        return f"{app.scheme}://{app.authority}"
    return origin


def _as_the_viewers_location(location: str, app: Origin) -> str:
    """An app's absolute ``Location`` on its own ``Host`` (it builds them from the ``Host`` it gets,
    with ``http`` or, behind a proxy it trusts, ``X-Forwarded-Proto``'s ``https``) as a path of
    the preview host, relative so the viewer keeps its scheme (nginx's ``proxy_redirect
    default``); any other ``Location`` as the app sent it."""
    scheme, separator, _ = location.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return location
    own = f"{scheme}://{app.authority}"
    if location[: len(own)].lower() != own.lower():
        return location
    rest = location[len(own) :]
    if rest.startswith("/"):
        return rest
    if rest == "" or rest[0] in "?#":
        return "/" + rest
    return location  # http://127.0.0.1:5173.evil.example/..: another host


_FRAME_COOKIE_ATTRIBUTES = "Secure; SameSite=None; Partitioned"
_REPLACED_COOKIE_ATTRIBUTES = frozenset({"domain", "secure", "samesite", "partitioned"})


def _for_the_frame(set_cookie: str) -> str:
    """An app's cookie as one the browser keeps in a frame on another site: host-only (no
    ``Domain``: the preview host alone, never another sandbox's) and partitioned by the embedding
    site (CHIPS: ``Secure; SameSite=None; Partitioned``). A browser keeps no other kind in a
    cross-site frame (Chromium drops a ``Lax`` cookie there, and an unpartitioned ``None`` one when
    third-party cookies are blocked), and the preview is always in one. Its name, value, ``Path``,
    ``Expires``, ``Max-Age`` and ``HttpOnly`` are the app's."""
    pair, *attributes = set_cookie.split(";")
    kept = [
        attribute.strip()
        for attribute in attributes
        if attribute.strip() and attribute.split("=", 1)[0].strip().lower() not in _REPLACED_COOKIE_ATTRIBUTES
    ]
    return "; ".join([pair.strip(), *kept, _FRAME_COOKIE_ATTRIBUTES])


def _without_preview_cookies(cookie_header: str) -> str:
    prefix = PREVIEW_COOKIE_PREFIX.lower()
    kept = [
        crumb.strip()
        for crumb in cookie_header.split(";")
        if crumb.strip() and not crumb.strip().lower().startswith(prefix)
    ]
    return "; ".join(kept)


def _request_id(request: ViewerRequestLike) -> str | None:
    value = request.headers.get(REQUEST_ID_HEADER)
    return value[:128] if value else None
