"""Who gets through the ingress: CloudFront's secret AND a valid assertion for the sandbox, in scope."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tests.ingress.conftest import (
    SANDBOX,
    TENANT_FA,
    Ingress,
    Sandbox,
    assertion,
    cloudfront,
)


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    method: str, url: str, headers: Mapping[str, str] | None = None, data: bytes | None = None
) -> Answer:
    async def go() -> Answer:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
            ) as response,
        ):
            return Answer(response.status, response.headers, await response.read())

    return asyncio.run(go())


def test_a_request_from_cloudfront_with_a_valid_assertion_reaches_the_app_as_sent(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    answer = fetch(
        "GET",
        f"{ingress.url}/echo/@vite/client?x=%40a&y=1",
        cloudfront(assertion(), Cookie="__Host-mp_session=s; app=1; __Host-mp_origin=o", Origin="https://x"),
    )

    assert answer.status == 200
    assert answer.headers.getall("Content-Length") == [str(len(answer.body))]
    seen = answer.json()
    assert seen["path"] == "/echo/@vite/client?x=%40a&y=1"
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert "x-preview-ingress-secret" not in headers
    assert "x-preview-assertion" not in headers
    assert "x-preview-token-id" not in headers
    assert headers["cookie"] == "app=1"
    assert headers["x-preview-scope"] == "interact"
    assert headers["origin"] == "https://x"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"].startswith("127.0.0.1:")


def test_the_app_sees_its_own_host_unless_the_viewers_is_preserved(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    preview_host = {"Host": f"{SANDBOX}.preview.example"}
    default = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX)
    preserving = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, preserve_host=True)

    own = fetch("GET", f"{default.url}/echo", cloudfront(assertion(), **preview_host)).json()
    kept = fetch("GET", f"{preserving.url}/echo", cloudfront(assertion(), **preview_host)).json()

    assert own["headers"]["Host"] == sandbox.url.removeprefix("http://")
    assert own["headers"]["X-Forwarded-Host"] == f"{SANDBOX}.preview.example"
    assert kept["headers"]["Host"] == f"{SANDBOX}.preview.example"


def test_a_shared_ingress_preserves_the_viewers_host_for_the_sandboxes_named_only(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    """Rails beside Vite behind one ingress: the sandboxes whose id matches ``preserve_host_for`` get
    the viewer's Host and Origin, the others their own."""
    shared = make_ingress(upstream_resolver=lambda sandbox_id: sandbox.url, preserve_host_for=("sbx-rails*",))

    def seen_by_the_app(sandbox_id: str) -> tuple[str, str]:
        host = f"{sandbox_id}.preview.example"
        headers = cloudfront(assertion(sandbox=sandbox_id), Host=host, Origin=f"https://{host}")
        seen = fetch("GET", f"{shared.url}/echo", headers).json()["headers"]
        return seen["Host"], seen["Origin"]

    app = sandbox.url.removeprefix("http://")
    assert seen_by_the_app("sbx-rails-7") == (
        "sbx-rails-7.preview.example",
        "https://sbx-rails-7.preview.example",
    )
    assert seen_by_the_app("sbx-vite-7") == (app, sandbox.url)


@pytest.mark.parametrize(
    ("origin", "as_the_app_gets_it"),
    [
        (f"https://{SANDBOX}.preview.example", "http://{app}"),  # its own page: its own origin
        (f"http://{SANDBOX}.PREVIEW.example", "http://{app}"),
        ("https://sbx-other.preview.example", "https://sbx-other.preview.example"),  # another sandbox's
        (f"https://{SANDBOX}.preview.example.evil.test", f"https://{SANDBOX}.preview.example.evil.test"),
        ("https://embedder.example", "https://embedder.example"),
        ("null", "null"),
    ],
    ids=["own-page", "own-page-any-case", "another-sandbox", "lookalike", "another-site", "opaque"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_apps_own_pages_reach_it_with_its_own_origin_as_on_localhost(
    ingress: Ingress, sandbox: Sandbox, origin: str, as_the_app_gets_it: str, method: str
) -> None:
    headers = cloudfront(assertion(), Host=f"{SANDBOX}.preview.example", Origin=origin)

    seen = fetch(method, f"{ingress.url}/echo", headers, data=b"x=1" if method == "POST" else None).json()

    app = sandbox.url.removeprefix("http://")
    assert (seen["headers"]["Host"], seen["headers"]["Origin"]) == (app, as_the_app_gets_it.format(app=app))


def test_the_app_is_told_the_viewers_scheme_from_cloudfront_not_the_ingress_leg(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    own_page = f"https://{SANDBOX}.preview.example"
    headers = cloudfront(
        assertion(),
        Host=f"{SANDBOX}.preview.example",
        Origin=own_page,
        **{"CloudFront-Forwarded-Proto": "https"},
    )

    seen = fetch("GET", f"{ingress.url}/echo", headers).json()["headers"]

    # The scheme goes in X-Forwarded-Proto; the page's Origin is the app's own, as on localhost
    # (http://), so an app that does not trust X-Forwarded-Proto (Django, stock) takes its own post.
    assert (seen["X-Forwarded-Proto"], seen["Origin"]) == ("https", sandbox.url)


def test_with_the_viewers_host_preserved_the_origin_is_the_viewers_too(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    preserving = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, preserve_host=True)
    own_page = f"https://{SANDBOX}.preview.example"
    headers = cloudfront(assertion(), Host=f"{SANDBOX}.preview.example", Origin=own_page)

    seen = fetch("GET", f"{preserving.url}/echo", headers).json()

    assert seen["headers"]["Origin"] == own_page


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("to=/tree%3Fx%3D1", "/tree?x=1"),  # on the app's own origin: a path of the preview host
        ("to=", "/"),
        ("away=https://{app}/next", "/next"),  # built with X-Forwarded-Proto's scheme
        ("away=https://auth.example/login", "https://auth.example/login"),
        ("away=http://{app}.evil.test/", "http://{app}.evil.test/"),
    ],
    ids=["own-origin", "own-origin-bare", "own-host-https", "another-site", "lookalike"],
)
def test_a_redirect_the_app_builds_from_its_host_stays_on_the_preview_host(
    ingress: Ingress, sandbox: Sandbox, query: str, location: str
) -> None:
    app = sandbox.url.removeprefix("http://")

    answer = fetch("GET", f"{ingress.url}/redirect?{query.format(app=app)}", cloudfront(assertion()))

    assert (answer.status, answer.headers["Location"]) == (302, location.format(app=app))


def test_hop_by_hop_headers_stop_at_the_ingress(ingress: Ingress, sandbox: Sandbox) -> None:
    hop = {
        "Connection": "keep-alive, X-Per-Hop",
        "X-Per-Hop": "1",
        "TE": "trailers",
        "Keep-Alive": "timeout=5",
    }

    seen = fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(), **hop)).json()

    headers = {name.lower() for name in seen["headers"]}
    assert headers.isdisjoint({"x-per-hop", "te", "keep-alive"})


@pytest.mark.parametrize("secret", [None, "", "cloudfront-only-0123456789abcdeX", "wrong"])
def test_without_cloudfronts_secret_a_valid_assertion_is_refused(
    ingress: Ingress, sandbox: Sandbox, secret: str | None
) -> None:
    answer = fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(), secret=secret))

    assert answer.status == 403
    assert "Preview link invalid" in answer.text
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert sandbox.state.requests == []


def test_while_rotating_both_secrets_are_accepted(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    next_secret = "the-next-cloudfront-secret-0001"
    ingress = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, next_secret=next_secret)

    assert fetch("GET", f"{ingress.url}/echo", cloudfront(assertion())).status == 200
    assert fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(), secret=next_secret)).status == 200
    assert (
        fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(), secret=next_secret + "x")).status == 403
    )


@pytest.mark.parametrize(
    ("token", "title"),
    [
        (None, "Preview link invalid"),
        ("not.an.assertion", "Preview link invalid"),
        (assertion(sandbox="sbx-other"), "different sandbox"),
        (assertion(expires_in=-60), "Preview session expired"),
        (assertion(seed=bytes(32)), "Preview link invalid"),
    ],
    ids=["missing", "malformed", "other-sandbox", "expired", "bad-signature"],
)
def test_without_a_valid_assertion_for_this_sandbox_the_secret_alone_is_refused(
    ingress: Ingress, sandbox: Sandbox, token: str | None, title: str
) -> None:
    answer = fetch("GET", f"{ingress.url}/echo", cloudfront(token))

    assert answer.status == 403
    assert title in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert sandbox.state.requests == []


@pytest.mark.parametrize(
    "token_id",
    [None, "", "another-token", "tok-", "TOK-1"],
    ids=["none", "empty", "other", "prefix", "case"],
)
def test_an_assertion_of_another_session_than_the_one_the_edge_verified_is_refused(
    ingress: Ingress, sandbox: Sandbox, token_id: str | None
) -> None:
    """A viewer pairing its session with another token's assertion (an interact one beside a read
    session, a live one beside a revoked session) gets nothing: the edge passes on the verified
    session's ``jti`` in ``X-Preview-Token-Id`` and the assertion must name exactly that one."""
    other = cloudfront(assertion(jti="tok-1", scope="interact"), token_id=token_id)

    answer = fetch("POST", f"{ingress.url}/echo", other, data=b"input")

    assert answer.status == 403
    assert "Preview link invalid" in answer.text
    assert f"frame-ancestors {TENANT_FA}" in answer.headers["Content-Security-Policy"]
    assert sandbox.state.requests == []


def test_two_token_ids_are_refused_even_if_one_matches(ingress: Ingress, sandbox: Sandbox) -> None:
    headers = CIMultiDict(cloudfront(assertion(jti="tok-1")))
    headers.add("X-Preview-Token-Id", "another-token")

    answer = fetch("GET", f"{ingress.url}/echo", headers)

    assert answer.status == 403
    assert sandbox.state.requests == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_scope_blocks_unsafe_methods(ingress: Ingress, sandbox: Sandbox, method: str) -> None:
    answer = fetch(method, f"{ingress.url}/echo", cloudfront(assertion(scope="read")), data=b"x")

    assert answer.status == 403
    assert "view-only" in answer.text
    assert f"frame-ancestors {TENANT_FA}" in answer.headers["Content-Security-Policy"]
    assert sandbox.state.requests == []


@pytest.mark.parametrize(
    "path", ["/input", "/input/keys", "/INPUT", "/%69nput", "/echo/../input", "/input;x", "/%EF%BD%89nput"]
)
def test_read_scope_blocks_the_input_path_however_spelled(
    ingress: Ingress, sandbox: Sandbox, path: str
) -> None:
    answer = fetch("GET", f"{ingress.url}{path}", cloudfront(assertion(scope="read")))

    assert answer.status == 403
    assert sandbox.state.requests == []


def test_the_app_is_told_the_verified_scope_never_the_viewers(ingress: Ingress, sandbox: Sandbox) -> None:
    answer = fetch(
        "GET", f"{ingress.url}/echo", cloudfront(assertion(scope="read"), **{"X-Preview-Scope": "interact"})
    )

    assert answer.json()["scope_headers"] == ["read"]


def raw_request(ingress: Ingress, head: str) -> bytes:
    """The answer's status line to ``head`` sent as is: targets no HTTP client sends."""
    port = int(ingress.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        return connection.makefile("rb").readline()


@pytest.mark.parametrize(
    "target", ["/input#x", "/input#/../echo", "/echo#x", "http://sbx-one.preview.example/input", "*"]
)
def test_read_scope_refuses_a_fragment_or_a_target_not_in_origin_form(
    ingress: Ingress, sandbox: Sandbox, target: str
) -> None:
    """A server may read ``/input#x`` as ``/input``, and an absolute-form target by its path."""
    headers = "".join(f"{name}: {value}\r\n" for name, value in cloudfront(assertion(scope="read")).items())
    status = raw_request(
        ingress, f"GET {target} HTTP/1.1\r\nHost: sbx-one\r\n{headers}Connection: close\r\n\r\n"
    )

    assert status.split()[1] in (b"400", b"403")
    assert sandbox.state.requests == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
@pytest.mark.parametrize(
    "framing", ["Content-Length: 5\r\n\r\nhello", "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"]
)
def test_nothing_a_read_viewer_sends_in_a_body_reaches_the_app(
    ingress: Ingress, sandbox: Sandbox, method: str, framing: str
) -> None:
    headers = "".join(f"{name}: {value}\r\n" for name, value in cloudfront(assertion(scope="read")).items())
    status = raw_request(
        ingress, f"{method} /echo HTTP/1.1\r\nHost: sbx-one\r\n{headers}Connection: close\r\n{framing}"
    )

    assert status.split()[1] == b"403"
    assert sandbox.state.requests == []


def test_a_request_with_two_hosts_names_no_sandbox(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    shared = make_ingress(upstream_resolver={SANDBOX: sandbox.url}.get)
    headers = "".join(f"{name}: {value}\r\n" for name, value in cloudfront(assertion()).items())
    two_hosts = f"Host: {SANDBOX}.preview.example\r\nHost: {SANDBOX}.preview.example\r\n"

    status = raw_request(shared, f"GET /echo HTTP/1.1\r\n{two_hosts}{headers}Connection: close\r\n\r\n")

    assert status.split()[1] in (b"400", b"403")
    assert sandbox.state.requests == []


def test_read_scope_blocks_a_method_override(ingress: Ingress, sandbox: Sandbox) -> None:
    headers = cloudfront(assertion(scope="read"), **{"X-HTTP-Method-Override": "DELETE"})

    assert fetch("GET", f"{ingress.url}/echo", headers).status == 403


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_read_scope_lets_safe_methods_through(ingress: Ingress, sandbox: Sandbox, method: str) -> None:
    assert fetch(method, f"{ingress.url}/echo", cloudfront(assertion(scope="read"))).status == 200


def test_head_keeps_the_apps_content_length(ingress: Ingress, sandbox: Sandbox) -> None:
    answer = fetch("HEAD", f"{ingress.url}/download?bytes=1000", cloudfront(assertion(scope="read")))

    assert (answer.status, answer.headers.getall("Content-Length"), answer.body) == (200, ["1000"], b"")


def test_interact_scope_posts_input(ingress: Ingress, sandbox: Sandbox) -> None:
    answer = fetch("POST", f"{ingress.url}/input/keys", cloudfront(assertion()), data=b"abc")

    assert answer.status == 200
    assert answer.json()["body_length"] == 3


def test_a_shared_ingress_serves_the_sandbox_its_host_names(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    shared = make_ingress(upstream_resolver={"sbx-two": sandbox.url}.get)
    host = {"Host": "sbx-two.preview.example"}

    served = fetch("GET", f"{shared.url}/echo", cloudfront(assertion(sandbox="sbx-two"), **host))
    other = fetch("GET", f"{shared.url}/echo", cloudfront(assertion(sandbox=SANDBOX), **host))
    unknown = fetch("GET", f"{shared.url}/echo", cloudfront(assertion(), Host=f"{SANDBOX}.preview.example"))

    assert served.status == 200
    assert other.status == 403
    assert "different sandbox" in other.text
    assert unknown.status == 502


@pytest.mark.parametrize("status", [404, 500, 200])
def test_our_cookies_never_leave_an_app_response_whatever_its_status(
    ingress: Ingress, sandbox: Sandbox, status: int
) -> None:
    answer = fetch("GET", f"{ingress.url}/cookies?status={status}", cloudfront(assertion()))

    assert answer.status == status
    assert answer.headers.getall("Set-Cookie") == [
        "app_cookie=kept; Path=/; Secure; SameSite=None; Partitioned"
    ]
    assert "X-Frame-Options" not in answer.headers
    assert answer.headers["Content-Security-Policy"] == f"default-src 'self', frame-ancestors {TENANT_FA}"


APP_COOKIES = [
    ("sid=abc; Path=/; HttpOnly", "sid=abc; Path=/; HttpOnly; Secure; SameSite=None; Partitioned"),
    (
        "csrftoken=x; Domain=preview.example; Path=/; SameSite=Lax; Max-Age=60",
        "csrftoken=x; Path=/; Max-Age=60; Secure; SameSite=None; Partitioned",
    ),
    (
        "t=1; expires=Wed, 09 Jun 2027 10:18:14 GMT; secure; samesite=strict; domain=.other.example",
        "t=1; expires=Wed, 09 Jun 2027 10:18:14 GMT; Secure; SameSite=None; Partitioned",
    ),
    ("p=1; Secure; SameSite=None; Partitioned", "p=1; Secure; SameSite=None; Partitioned"),
]


@pytest.mark.parametrize(
    "keep_app_cookies", [False, True], ids=["partitioned-for-the-frame", "with-keep-app-cookies-as-written"]
)
def test_an_apps_cookies_become_host_only_cookies_partitioned_for_the_frame_unless_kept(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox, keep_app_cookies: bool
) -> None:
    ingress = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, keep_app_cookies=keep_app_cookies)
    query = "&".join(f"c={quote(sent)}" for sent, _ in APP_COOKIES)

    answer = fetch("GET", f"{ingress.url}/set-cookies?{query}", cloudfront(assertion()))

    expected = [sent if keep_app_cookies else relayed for sent, relayed in APP_COOKIES]
    assert answer.headers.getall("Set-Cookie") == expected


def test_frame_ancestors_come_from_the_assertion_else_the_default(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    ingress = make_ingress(
        upstream=sandbox.url, sandbox_id=SANDBOX, default_frame_ancestors="https://default.example"
    )

    with_fa = fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(fa="https://a.example")))
    without = fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(fa=None)))

    assert with_fa.headers["Content-Security-Policy"] == "frame-ancestors https://a.example"
    assert without.headers["Content-Security-Policy"] == "frame-ancestors https://default.example"


def test_an_unreachable_app_gets_the_sandbox_not_responding_page(
    make_ingress: Callable[..., Ingress],
) -> None:
    ingress = make_ingress(upstream="http://127.0.0.1:9", sandbox_id=SANDBOX)

    answer = fetch("GET", f"{ingress.url}/", cloudfront(assertion()))

    assert answer.status == 502
    assert "Sandbox not responding" in answer.text
    assert f"frame-ancestors {TENANT_FA}" in answer.headers["Content-Security-Policy"]
