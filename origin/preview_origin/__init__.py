"""Verify the data plane's origin assertion (``X-Preview-Assertion``) on the sandbox fleet.

Install it beside the fleet's ingress (it needs only ``cryptography``)::

    from preview_origin import HttpJwks, OriginAssertionVerifier

    verifier = OriginAssertionVerifier(
        HttpJwks("https://<control-plane>/v1/api/v1/origin-keys"), audience="https://ingress.example.com"
    )
    claims = verifier.verify(request.headers["X-Preview-Assertion"], sandbox_id)  # raises if not valid
    if not names_session(claims, request.headers.getall("X-Preview-Token-Id")):
        refuse()  # another session's assertion

and see :mod:`preview_origin.asgi` / :mod:`preview_origin.wsgi` for middleware that refuses every
request without a valid assertion for the sandbox it is addressed to.
"""

from preview_origin.verifier import (
    ASSERTION_HEADER,
    TOKEN_ID_HEADER,
    AssertionRejectedError,
    HttpJwks,
    JwksUnavailableError,
    OriginAssertion,
    OriginAssertionVerifier,
    StaticJwks,
    names_session,
)

__all__ = [
    "ASSERTION_HEADER",
    "TOKEN_ID_HEADER",
    "AssertionRejectedError",
    "HttpJwks",
    "JwksUnavailableError",
    "OriginAssertion",
    "OriginAssertionVerifier",
    "StaticJwks",
    "names_session",
]
