"""Which origins a tenant may declare as frame ancestors: strictly origins, at most 16."""

from __future__ import annotations

import pytest
from preview_tokens.data_plane.frame_ancestors import (
    MAX_FRAME_ANCESTORS,
    FrameAncestorsError,
    parse_frame_ancestors,
)


def test_https_origins_and_wildcard_subdomains_are_kept_in_order_lower_cased_once() -> None:
    declared = ["https://app.acme.com", "https://*.Acme.com", "https://app.acme.com", "https://acme.com:8443"]

    assert parse_frame_ancestors(declared) == (
        "https://app.acme.com",
        "https://*.acme.com",
        "https://acme.com:8443",
    )


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https:",
        "https://",
        "'self'",
        "'none'",
        "http://app.acme.com",  # plain http outside the local stack
        "https://app.acme.com/",  # a path, even "/"
        "https://app.acme.com/embed",
        "https://app.acme.com?x=1",
        "https://user@app.acme.com",
        "https://*.com",  # a wildcard over a whole top-level domain
        "https://*",
        "https://a.*.acme.com",
        "https://*acme.com",
        "https://localhost",  # one label: not a public origin
        "https://203.0.113.7",
        "https://app.acme.com:0",
        "https://app.acme.com:65536",
        "https://app.acme.com:08443",
        "https://-acme.com",
        "https://acme-.com",
        "https://app.acme.com frame-ancestors *",
        "https://app.acme.com;script-src *",
        "https://app.acme.com,https://evil.com",
        "https://app.acme.com\nhttps://evil.com",
        "https://bücher.de",
        "javascript:alert(1)",
        "data:",
    ],
)
def test_anything_but_an_https_origin_is_refused(origin: str) -> None:
    with pytest.raises(FrameAncestorsError):
        parse_frame_ancestors([origin])


def test_local_http_origins_are_accepted_only_where_allowed() -> None:
    local = ["http://127.0.0.1:3000", "http://localhost:3000", "http://demo.localhost:3000"]

    assert parse_frame_ancestors(local, allow_local_http=True) == tuple(local)
    for origin in local:
        with pytest.raises(FrameAncestorsError):
            parse_frame_ancestors([origin])
    with pytest.raises(FrameAncestorsError):
        parse_frame_ancestors(["http://evil.example.com"], allow_local_http=True)


def test_at_most_sixteen_origins_and_at_least_one() -> None:
    sixteen = [f"https://app{i}.acme.com" for i in range(MAX_FRAME_ANCESTORS)]

    assert len(parse_frame_ancestors(sixteen)) == 16
    with pytest.raises(FrameAncestorsError, match="at most 16"):
        parse_frame_ancestors([*sixteen, "https://one-more.acme.com"])
    with pytest.raises(FrameAncestorsError):
        parse_frame_ancestors([])


def test_the_declared_list_must_fit_one_edge_store_value() -> None:
    long_host = ".".join(["a" * 63] * 3) + ".com"  # a valid 196-character host name

    with pytest.raises(FrameAncestorsError, match="1024 bytes"):
        parse_frame_ancestors([f"https://{i}{long_host[1:]}" for i in range(6)])
