"""The local CloudFront's request to the fleet ingress: the headers CloudFront adds, as the template asks."""

from __future__ import annotations

from typing import Any, cast

from preview_local.edge import EdgeDecision
from preview_local.front_door import FrontDoor, OriginRelay
from preview_local.http_messages import HttpRequest

SECRET = "ingress-secret-for-the-test"


class _ToTheIngress:
    """A viewer-request function that sends every request to the fleet ingress as it came."""

    def decide(self, request: HttpRequest) -> EdgeDecision:
        return EdgeDecision("ingress", request)


def _relayed(*headers: tuple[str, str]) -> HttpRequest:
    unused = cast(Any, None)  # the REST APIs, the demo and the identity provider: not on this route
    front_door = FrontDoor(
        preview_domain="sandboxes.localhost",
        control_plane=unused,
        data_plane=unused,
        demo=unused,
        identity_provider=unused,
        edge=_ToTheIngress(),
        ingress_secret=SECRET,
        ingress_port=lambda sandbox_id: 8080,
    )
    viewer = HttpRequest("GET", "/app", "", (("Host", "sbx-one.sandboxes.localhost:3000"), *headers))

    relay = front_door.take_over(viewer)

    assert isinstance(relay, OriginRelay)
    return relay.request


def test_the_ingress_gets_cloudfronts_secret_and_the_viewers_scheme_never_the_viewers_own() -> None:
    sent = _relayed(
        ("X-Preview-Ingress-Secret", "guessed"),
        ("CloudFront-Forwarded-Proto", "https"),  # a viewer's claim: the local front door serves http
        ("Origin", "http://sbx-one.sandboxes.localhost:3000"),
    )

    assert [value for name, value in sent.headers if name.lower() == "x-preview-ingress-secret"] == [SECRET]
    assert [value for name, value in sent.headers if name.lower() == "cloudfront-forwarded-proto"] == ["http"]
    assert sent.header("Origin") == "http://sbx-one.sandboxes.localhost:3000"  # the ingress's to translate
    assert sent.header("X-Amz-Cf-Id")  # CloudFront's request id, which the ingress logs
